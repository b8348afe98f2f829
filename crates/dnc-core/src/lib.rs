//! Shared foundations of dnc, the Divide and Contrast framework.
//!
//! Everything here is small and used by every other crate:
//! - [`device`]: one place that turns `cpu | cuda:N | auto` into a candle [`Device`](candle_core::Device);
//! - [`rng`]: a seeded, serialisable random number generator whose streams can be derived from
//!   `(seed, epoch, index, ...)`, so results never depend on thread scheduling;
//! - [`init`]: a `VarBuilder` backend that initialises weights from that generator (candle's CPU
//!   RNG cannot be seeded);
//! - [`tensor`]: differentiable L2 normalisation and cosine-similarity matrices;
//! - [`names`]: which variable names are buffers (BatchNorm statistics) rather than parameters;
//! - [`testing`]: finite-difference gradients and closeness assertions for tests.

pub mod device;
pub mod hash;
pub mod init;
pub mod names;
pub mod rng;
pub mod tensor;
pub mod testing;

pub use device::{DeviceSpec, parse_device};
pub use hash::{Fnv1a, fnv1a};
pub use init::SeededVarMap;
pub use names::{is_buffer, is_no_decay, trainable_parameters};
pub use rng::SeededRng;
pub use tensor::{cosine_matrix, l2_normalize};

/// Re-exported so that downstream crates name one candle version.
pub use candle_core as candle;
pub use candle_nn;
