//! Data for dnc: datasets, subsets and a deterministic, multi-threaded loader.
//!
//! - [`Dataset`]: random access to items by index; [`InMemory`] holds items in memory; [`Subset`] picks indices of another dataset
//!   (what an expert trains on) and keeps the original indices;
//! - [`ImageFolder`]: images in class folders, in one flat folder, in a tree of any depth, in a
//!   list file or in WebDataset tar shards ([`shards`], [`write_shards`]), with an optional
//!   cache of images resized to the training resolution in a memory-mapped file
//!   ([`ResizedCacheConfig`]), JPEG decoding at reduced scale when the consumer needs less
//!   ([`Dataset::get_sized`], [`Mapper::decode_size`]), a policy for corrupt files
//!   ([`OnCorrupt`]) and the reference class-balanced subset ([`balanced_subset`]);
//! - [`Mapper`]: the per-item transform (augmentation) run on worker threads, with randomness
//!   derived from `(seed, epoch, index)`;
//! - [`Loader`]: seeded shuffling, batching, parallel loading and exact resumption: the batch
//!   sequence is the same for any number of workers;
//! - [`stack_chw`]: per-item CHW buffers to a `[B, C, H, W]` tensor.

mod balanced;
mod cache;
mod dataset;
mod decode;
mod error;
mod folder;
mod loader;
mod mapper;
mod scan;
pub mod shards;
mod stack;
mod subset;
#[cfg(test)]
mod test_images;
mod tiff_modes;

pub use balanced::{SubsetRule, balanced_counts, balanced_subset, proportional_counts};
pub use cache::ResizedCacheConfig;
pub use dataset::{Dataset, InMemory};
pub use decode::{DEFAULT_MAX_IMAGE_PIXELS, SizeRequest, full_size, size_for_side};
pub use error::{BoxError, DataError};
pub use folder::{ImageFolder, ImageFolderConfig, ImageItem, OnCorrupt, UNLABELLED_PREFIX};
pub use loader::{Batch, EpochIter, Loader, LoaderConfig};
pub use mapper::{Identity, ItemContext, Mapper};
pub use scan::{IMAGE_EXTENSIONS, ScanCounts};
pub use shards::{WrittenShards, write_shards};
pub use stack::stack_chw;
pub use subset::Subset;
