//! Batch sources: the data crate's [`Loader`] adapted to the engine's [`BatchSource`], turning
//! mapped items into tensors on the training device.

use crate::assignments::UNASSIGNED;
use candle_core::Device;
use dnc_augment::{TwoViewMapper, TwoViews, ViewConfig, augment_view, view_decode_size};
use dnc_core::SeededRng;
use dnc_data::{Batch, DataError, Dataset, ImageItem, ItemContext, Loader, stack_chw};
use dnc_distill::DistillBatch;
use dnc_engine::{BatchSource, EpochBatches};
use dnc_moclr::ViewPair;
use std::sync::Arc;

/// Stream id of the distillation view, apart from the two contrastive views (0 and 1).
const DISTILL_VIEW: u64 = 2;
/// Stream id of the distillation's second view (the student's own MoCLR term).
const DISTILL_SECOND_VIEW: u64 = 3;

/// The fewest images a batch trains on: a contrastive loss needs a negative, and BatchNorm in
/// training mode more than one value per channel. A batch left with fewer (its other images
/// unreadable) is a step without an update.
const MIN_BATCH: usize = 2;

/// The loader's batches of one epoch from position `first` to `end`, one item per position:
/// `None` where the loader yielded nothing because every image of the batch was skipped.
fn by_position<T>(
    batches: impl Iterator<Item = Result<Batch<T>, DataError>>,
    first: usize,
    end: usize,
) -> impl Iterator<Item = Result<Option<Batch<T>>, DataError>> {
    let mut batches = batches.peekable();
    let mut next = first;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || next >= end {
            return None;
        }
        let position = next;
        next += 1;
        match batches.peek() {
            Some(Ok(b)) if b.batch_index == position => batches.next().map(|b| b.map(Some)),
            Some(Ok(_)) | None => Some(Ok(None)),
            Some(Err(_)) => {
                failed = true;
                batches.next().map(|b| b.map(Some))
            }
        }
    })
}

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

    fn examples(&self, batch: &ViewPair) -> Option<usize> {
        batch.view1.dim(0).ok()
    }

    fn epoch(&self, epoch: usize, skip_batches: usize) -> EpochBatches<'_, ViewPair, DataError> {
        let batches = self.loader.epoch(epoch as u64, skip_batches);
        let positions = by_position(batches, skip_batches, self.batches_per_epoch());
        Box::new(positions.map(move |b| match b {
            Ok(Some(b)) if b.len() >= MIN_BATCH => self.to_pair(b).map(Some),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        }))
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

    fn decode_size(&self, ctx: ItemContext, width: u32, height: u32) -> (u32, u32) {
        let need = |config: &ViewConfig, stream: u64| {
            let mut rng =
                SeededRng::derive(self.seed, &[ctx.epoch, ctx.source_index as u64, stream]);
            view_decode_size(width, height, config, &mut rng)
        };
        let first = need(&self.config, DISTILL_VIEW);
        match &self.second {
            Some(c) => {
                let second = need(c, DISTILL_SECOND_VIEW);
                (first.0.max(second.0), first.1.max(second.1))
            }
            None => first,
        }
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

    /// The batch's tensors; `None` when fewer than [`MIN_BATCH`] of its images have a cluster
    /// (images the embed stage skipped have none and are left out here too).
    fn to_batch(&self, mut batch: Batch<DistillViews>) -> Result<Option<DistillBatch>, DataError> {
        let mut clusters = Vec::with_capacity(batch.items.len());
        for (_, _, source) in &batch.items {
            let cluster = self.clusters.get(*source).copied().ok_or_else(|| {
                DataError::transform(*source, format!("image {source} has no cluster assignment"))
            })?;
            clusters.push(cluster);
        }
        if clusters.contains(&UNASSIGNED) {
            let mut keep = clusters.iter().map(|&c| c != UNASSIGNED);
            batch.items.retain(|_| keep.next().unwrap_or(false));
            clusters.retain(|&c| c != UNASSIGNED);
        }
        // Cached distillation targets are looked up by the same index as the clusters.
        let indices = batch.items.iter().map(|(_, _, source)| *source).collect();
        if batch.items.len() < MIN_BATCH {
            return Ok(None);
        }
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
        Ok(Some(DistillBatch {
            images,
            clusters,
            second_view,
            indices: Some(indices),
        }))
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

    fn examples(&self, batch: &DistillBatch) -> Option<usize> {
        Some(batch.clusters.len())
    }

    fn epoch(
        &self,
        epoch: usize,
        skip_batches: usize,
    ) -> EpochBatches<'_, DistillBatch, DataError> {
        let batches = self.loader.epoch(epoch as u64, skip_batches);
        let positions = by_position(batches, skip_batches, self.batches_per_epoch());
        Box::new(positions.map(move |b| match b {
            Ok(Some(b)) => self.to_batch(b),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dnc_data::LoaderConfig;
    use image::RgbImage;
    use std::path::PathBuf;

    /// `n` small grey images; the indices in `bad` are skipped as unreadable.
    struct Images {
        n: usize,
        bad: Vec<usize>,
    }

    impl Dataset for Images {
        type Item = ImageItem;

        fn len(&self) -> usize {
            self.n
        }

        fn get(&self, index: usize) -> Result<ImageItem, DataError> {
            if self.bad.contains(&index) {
                return Err(DataError::Skipped {
                    index,
                    path: PathBuf::from(format!("img-{index}.jpg")),
                    message: "truncated".into(),
                });
            }
            Ok(ImageItem {
                index,
                image: RgbImage::from_pixel(12, 12, image::Rgb([index as u8 * 20, 90, 40])),
                label: None,
            })
        }
    }

    fn loader_config() -> LoaderConfig {
        LoaderConfig {
            shuffle_buffer: 0,
            batch_size: 3,
            shuffle: false,
            drop_last: true,
            seed: 1,
            workers: 0,
            prefetch_batches: 1,
        }
    }

    fn view() -> ViewConfig {
        ViewConfig {
            size: 8,
            ..ViewConfig::default()
        }
    }

    /// `Some(batch size)` or `None` for every position of epoch 0 from `skip` on.
    fn sizes<B>(
        items: impl Iterator<Item = Result<Option<B>, DataError>>,
        len: impl Fn(&B) -> usize,
    ) -> Vec<Option<usize>> {
        items.map(|b| b.unwrap().map(|b| len(&b))).collect()
    }

    #[test]
    fn every_position_of_an_epoch_is_kept_and_too_small_batches_are_none() {
        // Batches [0 1 2] [3 4 5] [6 7 8] [9 10 11]: the second loses every image, the third all
        // but one, the last is whole after a gap.
        let data = Arc::new(Images {
            n: 12,
            bad: vec![1, 3, 4, 5, 6, 7],
        });
        let mapper = Arc::new(
            TwoViewMapper::new(
                dnc_augment::TwoViewConfig {
                    view1: view(),
                    view2: view(),
                },
                5,
            )
            .unwrap(),
        );
        let source = ViewPairSource::new(
            Loader::new(data.clone(), mapper, loader_config()).unwrap(),
            8,
            Device::Cpu,
        );
        let n = |p: &ViewPair| p.view1.dim(0).unwrap();
        assert_eq!(sizes(source.epoch(0, 0), n), [Some(2), None, None, Some(3)]);
        assert_eq!(sizes(source.epoch(0, 2), n), [None, Some(3)], "resumed");

        // Distillation also leaves out images without a cluster: image 9's batch keeps two.
        let mut clusters = vec![0u32; 12];
        clusters[10] = UNASSIGNED;
        let mapper = Arc::new(DistillViewMapper::new(view(), None, 5));
        let source = DistillSource::new(
            Loader::new(data, mapper, loader_config()).unwrap(),
            Arc::new(clusters),
            8,
            Device::Cpu,
        );
        let batches: Vec<Option<DistillBatch>> = source.epoch(0, 0).map(|b| b.unwrap()).collect();
        let shape: Vec<Option<usize>> = batches
            .iter()
            .map(|b| b.as_ref().map(|b| b.images.dim(0).unwrap()))
            .collect();
        assert_eq!(shape, [Some(2), None, None, Some(2)]);
        assert_eq!(batches[3].as_ref().unwrap().clusters, [0, 0]);
        assert_eq!(batches[3].as_ref().unwrap().indices, Some(vec![9, 11]));
    }

    #[test]
    fn a_data_error_ends_the_positions() {
        let batches = vec![
            Ok(Batch {
                items: vec![1, 2],
                indices: vec![0, 1],
                source_indices: vec![0, 1],
                skipped: vec![],
                epoch: 0,
                batch_index: 0,
            }),
            Err(DataError::invalid("x", 1, "broken")),
        ];
        let positions: Vec<_> = by_position(batches.into_iter(), 0, 4).collect();
        assert_eq!(positions.len(), 2);
        assert!(matches!(positions[0], Ok(Some(_))));
        assert!(positions[1].is_err());
    }
}
