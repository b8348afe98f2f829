//! Targets computed once per image and read back at every step: the paper's cheap distillation
//! (Tian, Hénaff & van den Oord, arXiv 2105.08054, appendix: the teachers' projections of each
//! training image's centre crop, computed once, give 75.6% linear top-1 against 75.8% with the
//! augmented views' targets), in which a step runs the student alone.

use candle_core::{Result, Tensor, bail};

/// Every teacher's target of every training image, looked up by the images' dataset indices.
///
/// Row `i` of the base's matrix is the base's L2-normalised target of image `i`; row `i` of the
/// experts' matrix is the target of the expert of image `i`'s cluster (the only expert whose
/// head regresses that image), so the experts take one matrix whatever their number.
#[derive(Debug, Clone)]
pub struct CachedTargets {
    base: Tensor,
    experts: Option<Tensor>,
    n_experts: usize,
}

impl CachedTargets {
    /// Targets of `n_experts` experts (0: the base is distilled alone, and `experts` is `None`).
    ///
    /// # Shapes
    /// `base`, `experts`: `[N, D]`, on the training device.
    pub fn new(base: Tensor, experts: Option<Tensor>, n_experts: usize) -> Result<Self> {
        let (n, d) = base.dims2()?;
        if u32::try_from(n).is_err() {
            bail!("cached targets of {n} images: at most {} fit", u32::MAX)
        }
        match (&experts, n_experts) {
            (None, 0) => {}
            (Some(e), k) if k > 0 => {
                if e.dims2()? != (n, d) {
                    bail!(
                        "cached expert targets have shape {:?}, the base's [{n}, {d}]",
                        e.dims()
                    )
                }
            }
            (Some(_), _) => bail!("cached expert targets for 0 experts"),
            (None, k) => bail!("no cached expert targets for {k} experts"),
        }
        Ok(Self {
            base,
            experts,
            n_experts,
        })
    }

    /// Number of images N.
    pub fn len(&self) -> usize {
        self.base.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width D of every target.
    pub fn dim(&self) -> usize {
        self.base.dims()[1]
    }

    pub fn n_experts(&self) -> usize {
        self.n_experts
    }

    /// The base's and the experts' targets of the images `indices`.
    ///
    /// # Shapes
    /// `indices`: B dataset indices below N → `[B, D]` and (with experts) `[B, D]`.
    pub fn rows(&self, indices: &[usize]) -> Result<(Tensor, Option<Tensor>)> {
        let n = self.len();
        if let Some(bad) = indices.iter().find(|&&i| i >= n) {
            bail!("image {bad} in a batch, but the cached targets hold {n} images")
        }
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids.as_slice(), self.base.device())?;
        let experts = match &self.experts {
            Some(e) => Some(e.index_select(&ids, 0)?),
            None => None,
        };
        Ok((self.base.index_select(&ids, 0)?, experts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn matrix(rows: &[[f32; 2]]) -> Tensor {
        let values = rows.iter().flatten().copied().collect::<Vec<_>>();
        Tensor::from_vec(values, (rows.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn rows_are_looked_up_by_index_and_bad_shapes_are_errors() {
        let base = matrix(&[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]);
        let experts = matrix(&[[0.0, -1.0], [-1.0, 0.0], [0.8, 0.6]]);
        let cache = CachedTargets::new(base.clone(), Some(experts), 2).unwrap();
        assert_eq!((cache.len(), cache.dim(), cache.n_experts()), (3, 2, 2));
        let (b, e) = cache.rows(&[2, 0, 2]).unwrap();
        assert_eq!(
            b.to_vec2::<f32>().unwrap(),
            [[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]]
        );
        assert_eq!(
            e.unwrap().to_vec2::<f32>().unwrap(),
            [[0.8, 0.6], [0.0, -1.0], [0.8, 0.6]]
        );
        let err = cache.rows(&[1, 3]).unwrap_err().to_string();
        assert!(err.contains("image 3") && err.contains("3 images"), "{err}");

        let alone = CachedTargets::new(base.clone(), None, 0).unwrap();
        assert!(alone.rows(&[1]).unwrap().1.is_none());
        assert!(CachedTargets::new(base.clone(), None, 2).is_err());
        assert!(CachedTargets::new(base.clone(), Some(base.clone()), 0).is_err());
        let short = matrix(&[[1.0, 0.0]]);
        assert!(CachedTargets::new(base, Some(short), 1).is_err());
    }
}
