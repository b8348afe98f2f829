//! Image augmentations for dnc: BYOL's view recipe, as used by Divide and Contrast
//! (arXiv 2105.08054) for its base model, experts and student, on `image::RgbImage` inputs,
//! producing normalised CHW `f32` buffers.
//!
//! - [`augment_view`]: random resized crop, flip, colour jitter, grayscale, Gaussian blur,
//!   solarize and normalisation, configured by a [`ViewConfig`];
//! - [`TwoViewConfig`]: BYOL's asymmetric pair and the CIFAR-10 preset;
//! - [`eval_transform`]: resize, centre crop and normalise, configured by an [`EvalConfig`];
//! - [`TwoViewMapper`] and [`EvalMapper`]: [`dnc_data::Mapper`]s whose randomness is derived
//!   from `(seed, epoch, index, view)`;
//! - [`ops`]: the individual operations on CHW buffers, for reuse.

mod blur;
mod color;
mod config;
mod crop;
mod error;
mod mapper;
mod resize;
mod view;

/// The individual operations, on `[3, H, W]` buffers in row-major order.
pub mod ops {
    pub use crate::blur::{gaussian_blur, gaussian_kernel};
    pub use crate::color::{
        GRAY_WEIGHTS, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, normalize,
        solarize, to_grayscale,
    };
    pub use crate::crop::{CropBox, resized_crop, sample_crop_box};
    pub use crate::resize::resize_center_crop;
    pub use crate::view::color_jitter;
}

pub use config::{
    CIFAR10_MEAN, CIFAR10_STD, EvalConfig, IMAGENET_MEAN, IMAGENET_STD, TwoViewConfig, ViewConfig,
};
pub use error::AugmentError;
pub use mapper::{EvalItem, EvalMapper, TwoViewMapper, TwoViews};
pub use view::{augment_view, eval_decode_size, eval_transform, view_decode_size};
