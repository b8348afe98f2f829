//! A frozen teacher: an encoder evaluated with BatchNorm running statistics and no gradient.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use dnc_core::l2_normalize;
use dnc_models::Encoder;

/// A trained encoder used only to produce targets.
pub struct Teacher {
    encoder: Encoder,
    /// Kept so the weights stay alive with the encoder.
    _vars: VarMap,
}

impl Teacher {
    pub fn new(encoder: Encoder, vars: VarMap) -> Self {
        Self {
            encoder,
            _vars: vars,
        }
    }

    /// The teacher's L2-normalised projection of `images` (evaluation mode, detached).
    ///
    /// # Shapes
    /// `images`: `[N, 3, H, W]` → `[N, out]`.
    pub fn target(&self, images: &Tensor) -> Result<Tensor> {
        let z = self.encoder.forward_t(images, false)?.z;
        Ok(l2_normalize(&z)?.detach())
    }
}
