//! Mappers for the [`dnc_data::Loader`]: two augmented views per image for training, one
//! deterministic view for evaluation.

use dnc_core::SeededRng;
use dnc_data::{DataError, ImageItem, ItemContext, Mapper};

use crate::{
    AugmentError, EvalConfig, TwoViewConfig, augment_view, eval_decode_size, eval_transform,
    view_decode_size,
};

/// The two views of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoViews {
    /// The first view, `[3, S, S]` (CHW), normalised.
    pub view1: Vec<f32>,
    /// The second view, `[3, S, S]` (CHW), normalised.
    pub view2: Vec<f32>,
    /// The image's label, if any.
    pub label: Option<u32>,
    /// The image's index in its original dataset.
    pub index: usize,
}

/// Maps an [`ImageItem`] to [`TwoViews`]; view `v` (0 or 1) of item `i` in epoch `e` draws
/// from `SeededRng::derive(seed, &[e, i, v])`, `i` being the index in the dataset loaded.
#[derive(Debug, Clone)]
pub struct TwoViewMapper {
    config: TwoViewConfig,
    seed: u64,
}

impl TwoViewMapper {
    /// Validates `config`.
    pub fn new(config: TwoViewConfig, seed: u64) -> Result<Self, AugmentError> {
        config.validate()?;
        Ok(Self { config, seed })
    }

    /// The view settings.
    pub fn config(&self) -> &TwoViewConfig {
        &self.config
    }

    /// The two views of `item` in context `ctx`.
    pub fn views(&self, item: &ImageItem, ctx: ItemContext) -> Result<TwoViews, AugmentError> {
        check_image(item)?;
        let view = |v: u64, config| {
            let mut rng = SeededRng::derive(self.seed, &[ctx.epoch, ctx.index as u64, v]);
            augment_view(&item.image, config, &mut rng)
        };
        Ok(TwoViews {
            view1: view(0, &self.config.view1),
            view2: view(1, &self.config.view2),
            label: item.label,
            index: item.index,
        })
    }
}

impl Mapper<ImageItem> for TwoViewMapper {
    type Output = TwoViews;

    fn map(&self, item: ImageItem, ctx: ItemContext) -> Result<TwoViews, DataError> {
        self.views(&item, ctx)
            .map_err(|e| DataError::transform(ctx.index, e))
    }

    /// Large enough for both views' crops (each drawn from its own stream, as in
    /// [`views`](Self::views)) to keep the output resolution.
    fn decode_size(&self, ctx: ItemContext, width: u32, height: u32) -> (u32, u32) {
        let need = |v: u64, config| {
            let mut rng = SeededRng::derive(self.seed, &[ctx.epoch, ctx.index as u64, v]);
            view_decode_size(width, height, config, &mut rng)
        };
        let (a, b) = (need(0, &self.config.view1), need(1, &self.config.view2));
        (a.0.max(b.0), a.1.max(b.1))
    }
}

/// One deterministically transformed image.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    /// The image, `[3, crop, crop]` (CHW), normalised.
    pub image: Vec<f32>,
    /// The image's label, if any.
    pub label: Option<u32>,
    /// The image's index in its original dataset.
    pub index: usize,
}

/// Maps an [`ImageItem`] through [`eval_transform`].
#[derive(Debug, Clone)]
pub struct EvalMapper {
    config: EvalConfig,
}

impl EvalMapper {
    /// Validates `config`.
    pub fn new(config: EvalConfig) -> Result<Self, AugmentError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The transform settings.
    pub fn config(&self) -> &EvalConfig {
        &self.config
    }
}

impl Mapper<ImageItem> for EvalMapper {
    type Output = EvalItem;

    fn map(&self, item: ImageItem, ctx: ItemContext) -> Result<EvalItem, DataError> {
        check_image(&item).map_err(|e| DataError::transform(ctx.index, e))?;
        let c = &self.config;
        Ok(EvalItem {
            image: eval_transform(&item.image, c.resize, c.crop, c.mean, c.std),
            label: item.label,
            index: item.index,
        })
    }

    fn decode_size(&self, _ctx: ItemContext, width: u32, height: u32) -> (u32, u32) {
        eval_decode_size(width, height, self.config.resize)
    }
}

fn check_image(item: &ImageItem) -> Result<(), AugmentError> {
    let (width, height) = item.image.dimensions();
    if width == 0 || height == 0 {
        return Err(AugmentError::EmptyImage {
            index: item.index,
            width,
            height,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "mapper_tests.rs"]
mod tests;
