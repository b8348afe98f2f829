//! Shapes of a 2-d convolution and their validation.

use crate::error::KernelError;

/// The sizes of one `conv2d` call: input `[batch, in_channels, in_h, in_w]`, kernel
/// `[out_channels, in_channels, kernel_h, kernel_w]`, output `[batch, out_channels, out_h, out_w]`.
///
/// Square stride and padding, no dilation, one group: what ResNets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Checks that an input of dims `x` and a kernel of dims `w` can be convolved with `stride`
    /// and `padding`, and computes the output size
    /// `out = (in + 2·padding − kernel) / stride + 1` (rounded down, as PyTorch does).
    pub fn new(
        x: &[usize],
        w: &[usize],
        stride: usize,
        padding: usize,
    ) -> Result<Self, KernelError> {
        let (&[batch, in_channels, in_h, in_w], &[out_channels, w_in, kernel_h, kernel_w]) = (x, w)
        else {
            return Err(KernelError::Shape {
                op: "conv2d",
                what: format!("needs a 4-d input and a 4-d kernel, got {x:?} and {w:?}"),
            });
        };
        if [batch, in_channels, in_h, in_w, out_channels].contains(&0) {
            return Err(KernelError::Shape {
                op: "conv2d",
                what: format!("needs non-empty tensors, got input {x:?} and kernel {w:?}"),
            });
        }
        if w_in != in_channels {
            return Err(KernelError::Shape {
                op: "conv2d",
                what: format!(
                    "input {x:?} has {in_channels} channels but kernel {w:?} expects {w_in}"
                ),
            });
        }
        if stride == 0 || kernel_h == 0 || kernel_w == 0 {
            return Err(KernelError::Parameter {
                op: "conv2d",
                what: format!("stride {stride} and kernel {kernel_h}x{kernel_w} must be non-zero"),
            });
        }
        let (pad_h, pad_w) = (in_h + 2 * padding, in_w + 2 * padding);
        if kernel_h > pad_h || kernel_w > pad_w {
            return Err(KernelError::Parameter {
                op: "conv2d",
                what: format!(
                    "kernel {kernel_h}x{kernel_w} is larger than the padded input {pad_h}x{pad_w}"
                ),
            });
        }
        Ok(Self {
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
            out_h: (pad_h - kernel_h) / stride + 1,
            out_w: (pad_w - kernel_w) / stride + 1,
        })
    }

    /// Output dims `[batch, out_channels, out_h, out_w]`.
    pub fn out_dims(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }

    /// Rows of the patch matrix: `in_channels · kernel_h · kernel_w`.
    pub(crate) fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Output pixels per image and channel: `out_h · out_w`.
    pub(crate) fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Input pixels per image and channel: `in_h · in_w`.
    pub(crate) fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    /// Elements of one input image.
    pub(crate) fn in_image(&self) -> usize {
        self.in_channels * self.in_plane()
    }

    /// Elements of one output image.
    pub(crate) fn out_image(&self) -> usize {
        self.out_channels * self.out_plane()
    }

    /// Whether the patch matrix of an image is the image itself (1×1 kernel, stride 1, no
    /// padding), so that no patch matrix needs to be built.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.padding == 0
    }

    /// Floating-point operations of the forward pass (two per multiply-add).
    pub fn forward_flops(&self) -> usize {
        2 * self.batch * self.out_image() * self.patch_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_pytorch_formula() {
        let g = Conv2dGeometry::new(&[2, 3, 32, 32], &[8, 3, 3, 3], 1, 1).unwrap();
        assert_eq!(g.out_dims(), [2, 8, 32, 32]);
        let g = Conv2dGeometry::new(&[1, 64, 32, 32], &[128, 64, 3, 3], 2, 1).unwrap();
        assert_eq!(g.out_dims(), [1, 128, 16, 16]);
        // (7 + 6 − 7) / 2 + 1 = 4, rounding down.
        let g = Conv2dGeometry::new(&[1, 3, 7, 7], &[4, 3, 7, 7], 2, 3).unwrap();
        assert_eq!((g.out_h, g.out_w), (4, 4));
        assert_eq!(g.patch_len(), 147);
        assert_eq!(g.forward_flops(), 2 * 4 * 16 * 147);
    }

    #[test]
    fn bad_geometries_name_the_offending_sizes() {
        let err = Conv2dGeometry::new(&[2, 3, 8, 8], &[8, 4, 3, 3], 1, 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("3 channels but kernel [8, 4, 3, 3] expects 4")
        );
        let err = Conv2dGeometry::new(&[2, 3, 8, 8], &[8, 3, 3, 3], 0, 1).unwrap_err();
        assert!(matches!(err, KernelError::Parameter { .. }), "{err}");
        let err = Conv2dGeometry::new(&[2, 3, 2, 2], &[8, 3, 5, 5], 1, 1).unwrap_err();
        assert!(err.to_string().contains("larger than the padded input 4x4"));
        let err = Conv2dGeometry::new(&[3, 8, 8], &[8, 3, 3, 3], 1, 1).unwrap_err();
        assert!(matches!(err, KernelError::Shape { .. }), "{err}");
    }
}
