//! Batch sources: the data crate's [`Loader`] adapted to the engine's [`BatchSource`], turning
//! mapped items into tensors on the training device.

use candle_core::Device;
use dnc_augment::{TwoViewMapper, TwoViews, ViewConfig, augment_view};
use dnc_core::SeededRng;
use dnc_data::{Batch, DataError, Dataset, ImageItem, ItemContext, Loader, stack_chw};
use dnc_distill::DistillBatch;
use dnc_engine::BatchSource;
use dnc_moclr::ViewPair;
use std::sync::Arc;

/// Stream id of the distillation view, apart from the two contrastive views (0 and 1).
const DISTILL_VIEW: u64 = 2;
/// Stream id of the distillation's second view (the student's own MoCLR term).
const DISTILL_SECOND_VIEW: u64 = 3;

fn chw(size: u32) -> (usize, usize, usize) {
    (3, size as usize, size as usize)
}

fn tensor_error(e: candle_core::Error) -> DataError {
    DataError::transform(0, e)
}

/// Pairs of augmented views for MoCLR.
pub(crate) struct ViewPairSource<D: Dataset<Item = ImageItem>> {
    loader: Loader<D, TwoViewMapper>,
    chw: (usize, usize, usize),
    device: Device,
}

impl<D: Dataset<Item = ImageItem> + 'static> ViewPairSource<D> {
    /// `size`: the side of the (square) augmented views.
    pub(crate) fn new(loader: Loader<D, TwoViewMapper>, size: u32, device: Device) -> Self {
        Self {
            loader,
            chw: chw(size),
            device,
        }
    }

    fn to_pair(&self, batch: Batch<TwoViews>) -> Result<ViewPair, DataError> {
        let v1 = stack_chw(
            batch.items.iter().map(|t| t.view1.as_slice()),
            self.chw,
            &self.device,
        );
        let v2 = stack_chw(
            batch.items.iter().map(|t| t.view2.as_slice()),
            self.chw,
            &self.device,
        );
        Ok(ViewPair {
            view1: v1.map_err(tensor_error)?,
            view2: v2.map_err(tensor_error)?,
        })
    }
}

impl<D: Dataset<Item = ImageItem> + 'static> BatchSource for ViewPairSource<D> {
    type Batch = ViewPair;
    type Error = DataError;

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn batch_size(&self) -> usize {
        self.loader.config().batch_size
    }

    fn epoch(
        &self,
        epoch: usize,
        skip_batches: usize,
    ) -> Box<dyn Iterator<Item = Result<ViewPair, DataError>> + '_> {
        Box::new(
            self.loader
                .epoch(epoch as u64, skip_batches)
                .map(move |b| b.and_then(|b| self.to_pair(b))),
        )
    }
}

/// One augmented view per image, with the image's cluster id, for distillation.
pub(crate) struct DistillSource<D: Dataset<Item = ImageItem>> {
    loader: Loader<D, DistillViewMapper>,
    /// Cluster id of every image of the source dataset, by source index.
    clusters: Arc<Vec<u32>>,
    chw: (usize, usize, usize),
    device: Device,
}

/// One augmented distillation view of an image, a second one when asked for, and the image's
/// source index.
pub(crate) type DistillViews = (Vec<f32>, Option<Vec<f32>>, usize);

/// Augments one view per image (the first view's recipe) and, for the student's own MoCLR
/// term, a second one (the second view's recipe), each seeded per `(epoch, index, view)`.
pub(crate) struct DistillViewMapper {
    config: ViewConfig,
    second: Option<ViewConfig>,
    seed: u64,
}

impl DistillViewMapper {
    pub(crate) fn new(config: ViewConfig, second: Option<ViewConfig>, seed: u64) -> Self {
        Self {
            config,
            second,
            seed,
        }
    }
}

impl dnc_data::Mapper<ImageItem> for DistillViewMapper {
    type Output = DistillViews;

    fn map(&self, item: ImageItem, ctx: ItemContext) -> Result<DistillViews, DataError> {
        let view = |config: &ViewConfig, stream: u64| {
            let mut rng =
                SeededRng::derive(self.seed, &[ctx.epoch, ctx.source_index as u64, stream]);
            augment_view(&item.image, config, &mut rng)
        };
        Ok((
            view(&self.config, DISTILL_VIEW),
            self.second.as_ref().map(|c| view(c, DISTILL_SECOND_VIEW)),
            ctx.source_index,
        ))
    }
}

impl<D: Dataset<Item = ImageItem> + 'static> DistillSource<D> {
    pub(crate) fn new(
        loader: Loader<D, DistillViewMapper>,
        clusters: Arc<Vec<u32>>,
        size: u32,
        device: Device,
    ) -> Self {
        Self {
            loader,
            clusters,
            chw: chw(size),
            device,
        }
    }

    fn to_batch(&self, batch: Batch<DistillViews>) -> Result<DistillBatch, DataError> {
        let images = stack_chw(
            batch.items.iter().map(|(v, _, _)| v.as_slice()),
            self.chw,
            &self.device,
        )
        .map_err(tensor_error)?;
        let second: Option<Vec<&[f32]>> =
            batch.items.iter().map(|(_, v2, _)| v2.as_deref()).collect();
        let second_view = match second {
            Some(views) if !views.is_empty() => {
                Some(stack_chw(views, self.chw, &self.device).map_err(tensor_error)?)
            }
            _ => None,
        };
        let clusters = batch
            .items
            .iter()
            .map(|(_, _, source)| {
                self.clusters.get(*source).copied().ok_or_else(|| {
                    DataError::transform(
                        *source,
                        format!("image {source} has no cluster assignment"),
                    )
                })
            })
            .collect::<Result<Vec<u32>, DataError>>()?;
        Ok(DistillBatch {
            images,
            clusters,
            second_view,
        })
    }
}

impl<D: Dataset<Item = ImageItem> + 'static> BatchSource for DistillSource<D> {
    type Batch = DistillBatch;
    type Error = DataError;

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn batch_size(&self) -> usize {
        self.loader.config().batch_size
    }

    fn epoch(
        &self,
        epoch: usize,
        skip_batches: usize,
    ) -> Box<dyn Iterator<Item = Result<DistillBatch, DataError>> + '_> {
        Box::new(
            self.loader
                .epoch(epoch as u64, skip_batches)
                .map(move |b| b.and_then(|b| self.to_batch(b))),
        )
    }
}
