//! A frozen teacher: an encoder evaluated with BatchNorm running statistics and no gradient.

use crate::options::DistillTarget;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dnc_core::l2_normalize;
use dnc_models::{Encoder, EncoderConfig, frozen_tensors};

/// A trained encoder used only to produce targets.
pub struct Teacher {
    encoder: Encoder,
    /// Kept so the weights stay alive with the encoder.
    _vars: VarMap,
}

impl Teacher {
    /// A teacher of architecture `cfg` with the weights in `vars`, built on detached views of
    /// them ([`frozen_tensors`]) so that its forward passes record no autograd graph.
    pub fn new(cfg: &EncoderConfig, vars: VarMap, device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_tensors(frozen_tensors(&vars), DType::F32, device);
        Ok(Self {
            encoder: Encoder::new(cfg, vb)?,
            _vars: vars,
        })
    }

    /// The teacher's L2-normalised `layer` of `images` (evaluation mode, detached).
    ///
    /// # Shapes
    /// `images`: `[N, 3, H, W]` → `[N, out]` (projection) or `[N, D]` (backbone features).
    pub fn target(&self, images: &Tensor, layer: DistillTarget) -> Result<Tensor> {
        let out = self.encoder.forward_t(images, false)?;
        Ok(l2_normalize(layer.layer(&out))?.detach())
    }
}
