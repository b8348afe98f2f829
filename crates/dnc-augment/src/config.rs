//! Augmentation settings: one view ([`ViewConfig`]), BYOL's asymmetric pair ([`TwoViewConfig`])
//! and the evaluation transform ([`EvalConfig`]).
//!
//! Defaults follow BYOL (Grill et al., 2020, arXiv 2006.07733, table 6), the augmentations that
//! Divide and Contrast (arXiv 2105.08054) trains its base model, experts and student with.

use serde::{Deserialize, Serialize};

use crate::AugmentError;

/// ImageNet channel means (RGB, on `[0, 1]`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// CIFAR-10 channel means.
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 channel standard deviations.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The random transforms of one view, applied in this order: random resized crop, horizontal
/// flip, colour jitter, grayscale, Gaussian blur, solarize, normalisation.
/// Defaults are BYOL's first view at 224 pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewConfig {
    /// Side of the square output, in pixels (224).
    pub size: u32,
    /// Range of the crop's area as a fraction of the image's ([0.08, 1]).
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio, width / height ([3/4, 4/3]).
    pub ratio: [f64; 2],
    /// Probability of a horizontal flip (0.5).
    pub flip_p: f64,
    /// Probability of colour jitter (0.8); its four operations run in a random order.
    pub jitter_p: f64,
    /// Brightness factor drawn from [max(0, 1 − b), 1 + b] (0.4).
    pub brightness: f64,
    /// Contrast factor drawn from [max(0, 1 − c), 1 + c] (0.4).
    pub contrast: f64,
    /// Saturation factor drawn from [max(0, 1 − s), 1 + s] (0.2).
    pub saturation: f64,
    /// Hue shift drawn from [−h, h], in turns, h ≤ 0.5 (0.1).
    pub hue: f64,
    /// Probability of converting to grayscale (0.2).
    pub grayscale_p: f64,
    /// Probability of a Gaussian blur (1.0 for BYOL's first view, 0.1 for the second).
    pub blur_p: f64,
    /// Range of the blur's standard deviation, in pixels ([0.1, 2.0]).
    pub blur_sigma: [f64; 2],
    /// Side of the blur kernel (odd); unset: 10% of `size`, made odd (23 for 224).
    pub blur_kernel_size: Option<u32>,
    /// Probability of solarizing (0.0 for BYOL's first view, 0.2 for the second).
    pub solarize_p: f64,
    /// Values at or above this threshold (on [0, 1]) are inverted (0.5).
    pub solarize_threshold: f64,
    /// Channel means subtracted at the end (ImageNet's).
    pub mean: [f32; 3],
    /// Channel standard deviations divided by at the end (ImageNet's).
    pub std: [f32; 3],
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self::byol_view1(224)
    }
}

impl ViewConfig {
    /// BYOL's first view at `size` pixels: blur always, never solarize.
    pub fn byol_view1(size: u32) -> Self {
        Self {
            size,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.2,
            hue: 0.1,
            grayscale_p: 0.2,
            blur_p: 1.0,
            blur_sigma: [0.1, 2.0],
            blur_kernel_size: None,
            solarize_p: 0.0,
            solarize_threshold: 0.5,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// BYOL's second view: blur with probability 0.1, solarize with probability 0.2.
    pub fn byol_view2(size: u32) -> Self {
        Self {
            blur_p: 0.1,
            solarize_p: 0.2,
            ..Self::byol_view1(size)
        }
    }

    /// The SimCLR CIFAR-10 recipe of the PyTorch reference (`anchors/torch_ref.py`): 32 pixels,
    /// jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale 0.2, no blur, no solarize.
    pub fn cifar() -> Self {
        Self {
            size: 32,
            saturation: 0.4,
            blur_p: 0.0,
            solarize_p: 0.0,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
            ..Self::byol_view1(32)
        }
    }

    /// The blur kernel side: the configured one, or 10% of `size` made odd (at least 1).
    pub fn kernel_size(&self) -> usize {
        match self.blur_kernel_size {
            Some(k) => k as usize,
            None => (self.size as usize / 10).max(1) | 1,
        }
    }

    /// Checks every value; errors name the field and the value.
    pub fn validate(&self) -> Result<(), AugmentError> {
        if self.size == 0 {
            return Err(AugmentError::invalid(
                "size",
                self.size,
                "must be at least 1",
            ));
        }
        check_range(
            "scale",
            self.scale,
            |lo| lo > 0.0,
            1.0,
            "must satisfy 0 < lo <= hi <= 1",
        )?;
        check_range(
            "ratio",
            self.ratio,
            |lo| lo > 0.0,
            f64::INFINITY,
            "must satisfy 0 < lo <= hi",
        )?;
        for (field, p) in [
            ("flip_p", self.flip_p),
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
            ("solarize_threshold", self.solarize_threshold),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(AugmentError::invalid(field, p, "must be in [0, 1]"));
            }
        }
        for (field, x) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return Err(AugmentError::invalid(
                    field,
                    x,
                    "must be a finite number >= 0",
                ));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(AugmentError::invalid(
                "hue",
                self.hue,
                "must be in [0, 0.5]",
            ));
        }
        check_range(
            "blur_sigma",
            self.blur_sigma,
            |lo| lo > 0.0,
            f64::INFINITY,
            "must satisfy 0 < lo <= hi",
        )?;
        if let Some(k) = self.blur_kernel_size.filter(|k| k % 2 == 0) {
            return Err(AugmentError::invalid("blur_kernel_size", k, "must be odd"));
        }
        check_normalisation(&self.mean, &self.std)
    }
}

fn check_range(
    field: &str,
    [lo, hi]: [f64; 2],
    lo_ok: impl Fn(f64) -> bool,
    max: f64,
    reason: &'static str,
) -> Result<(), AugmentError> {
    if lo_ok(lo) && lo <= hi && hi <= max && hi.is_finite() {
        Ok(())
    } else {
        Err(AugmentError::invalid(field, [lo, hi], reason))
    }
}

fn check_normalisation(mean: &[f32; 3], std: &[f32; 3]) -> Result<(), AugmentError> {
    if !mean.iter().all(|m| m.is_finite()) {
        return Err(AugmentError::invalid("mean", mean, "must be finite"));
    }
    if !std.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(AugmentError::invalid("std", std, "must be finite and > 0"));
    }
    Ok(())
}

/// The two views of a pair. Defaults are BYOL's asymmetric pair at 224 pixels.
///
/// Read on its own, a `[view1]` or `[view2]` table starts from [`ViewConfig::default`] (BYOL's
/// first view) for the keys it leaves out. In a run configuration (`dnc-pipeline`), a partial
/// view table keeps instead every key at the value in force (the CIFAR pair unless the preset
/// says otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwoViewConfig {
    pub view1: ViewConfig,
    pub view2: ViewConfig,
}

impl Default for TwoViewConfig {
    fn default() -> Self {
        Self::byol(224)
    }
}

impl TwoViewConfig {
    /// BYOL's pair at `size` pixels: blur 1.0 / 0.1, solarize 0.0 / 0.2.
    pub fn byol(size: u32) -> Self {
        Self {
            view1: ViewConfig::byol_view1(size),
            view2: ViewConfig::byol_view2(size),
        }
    }

    /// The CIFAR-10 pair: both views [`ViewConfig::cifar`] (no blur, no solarize).
    pub fn cifar() -> Self {
        Self {
            view1: ViewConfig::cifar(),
            view2: ViewConfig::cifar(),
        }
    }

    /// Checks both views; errors name the field as `view1.<field>` or `view2.<field>`.
    pub fn validate(&self) -> Result<(), AugmentError> {
        self.view1.validate().map_err(|e| e.within("view1"))?;
        self.view2.validate().map_err(|e| e.within("view2"))
    }
}

/// The deterministic evaluation transform: resize the shorter side, centre crop, normalise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The shorter side after resizing (256).
    pub resize: u32,
    /// Side of the square centre crop, at most `resize` (224).
    pub crop: u32,
    /// Channel means (ImageNet's).
    pub mean: [f32; 3],
    /// Channel standard deviations (ImageNet's).
    pub std: [f32; 3],
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            resize: 256,
            crop: 224,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl EvalConfig {
    /// CIFAR-10: 32×32 images are only normalised.
    pub fn cifar() -> Self {
        Self {
            resize: 32,
            crop: 32,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
        }
    }

    /// Checks the values; errors name the field and the value.
    pub fn validate(&self) -> Result<(), AugmentError> {
        if self.crop == 0 {
            return Err(AugmentError::invalid(
                "crop",
                self.crop,
                "must be at least 1",
            ));
        }
        if self.resize < self.crop {
            return Err(AugmentError::invalid(
                "resize",
                self.resize,
                "must be at least crop",
            ));
        }
        check_normalisation(&self.mean, &self.std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_values() {
        let byol = TwoViewConfig::default();
        assert_eq!((byol.view1.blur_p, byol.view2.blur_p), (1.0, 0.1));
        assert_eq!((byol.view1.solarize_p, byol.view2.solarize_p), (0.0, 0.2));
        assert_eq!(byol.view1.kernel_size(), 23);
        assert_eq!(byol.view1.saturation, 0.2);
        let cifar = TwoViewConfig::cifar();
        for v in [&cifar.view1, &cifar.view2] {
            assert_eq!(
                (v.size, v.blur_p, v.solarize_p, v.grayscale_p),
                (32, 0.0, 0.0, 0.2)
            );
            assert_eq!(
                [v.brightness, v.contrast, v.saturation, v.hue],
                [0.4, 0.4, 0.4, 0.1]
            );
            assert_eq!(
                (v.jitter_p, v.mean, v.std),
                (0.8, CIFAR10_MEAN, CIFAR10_STD)
            );
            assert_eq!(v.kernel_size(), 3);
        }
        assert!(byol.validate().is_ok() && cifar.validate().is_ok());
        assert!(EvalConfig::default().validate().is_ok() && EvalConfig::cifar().validate().is_ok());
    }

    #[test]
    fn invalid_values_are_named() {
        let bad = |f: fn(&mut ViewConfig)| {
            let mut c = TwoViewConfig::cifar();
            f(&mut c.view2);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            bad(|v| v.blur_p = 1.5),
            "invalid view2.blur_p = 1.5: must be in [0, 1]"
        );
        assert!(bad(|v| v.scale = [0.5, 0.2]).starts_with("invalid view2.scale = [0.5, 0.2]"));
        assert!(bad(|v| v.scale = [0.0, 1.0]).contains("view2.scale"));
        assert!(bad(|v| v.scale = [0.5, 1.5]).contains("view2.scale"));
        assert!(bad(|v| v.ratio = [1.5, 1.0]).contains("view2.ratio"));
        assert!(bad(|v| v.size = 0).starts_with("invalid view2.size = 0"));
        assert!(bad(|v| v.hue = 0.7).contains("view2.hue = 0.7"));
        assert!(bad(|v| v.brightness = -0.1).contains("view2.brightness"));
        assert!(bad(|v| v.blur_sigma = [0.0, 1.0]).contains("view2.blur_sigma"));
        assert!(bad(|v| v.blur_kernel_size = Some(4)).contains("view2.blur_kernel_size = 4"));
        assert!(bad(|v| v.std = [0.2, 0.0, 0.2]).contains("view2.std"));
        assert!(bad(|v| v.flip_p = f64::NAN).contains("view2.flip_p = NaN"));
        let eval = EvalConfig {
            resize: 30,
            crop: 32,
            ..EvalConfig::cifar()
        };
        assert!(
            eval.validate()
                .unwrap_err()
                .to_string()
                .contains("resize = 30")
        );
    }

    #[test]
    fn reads_from_toml_and_rejects_unknown_keys() {
        let text = "[view1]\nsize = 96\n[view2]\nsize = 96\nblur_p = 0.1\nsolarize_p = 0.2\n";
        let c: TwoViewConfig = toml::from_str(text).unwrap();
        assert_eq!(c, TwoViewConfig::byol(96));
        assert!(toml::from_str::<TwoViewConfig>("[view1]\nblur = 0.5\n").is_err());
        let round: TwoViewConfig =
            toml::from_str(&toml::to_string(&TwoViewConfig::cifar()).unwrap()).unwrap();
        assert_eq!(round, TwoViewConfig::cifar());
    }
}
