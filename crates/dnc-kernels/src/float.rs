//! The element types the CPU kernels are compiled for, and access to tensor data on the CPU.

use std::cell::RefCell;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType, bail};

/// An element type with a CPU kernel: `f32` (training) and `f64` (gradient checks).
pub(crate) trait Float: WithDType {
    /// `0` of this type.
    const ZERO: Self;

    /// Runs `f` on a scratch buffer of `len` elements (contents unspecified) that belongs to
    /// the current thread and is reused across calls, so that hot loops do not allocate (and
    /// page-fault) a fresh buffer per image.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! impl_float {
    ($t:ty, $scratch:ident) => {
        thread_local! {
            static $scratch: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }

        impl Float for $t {
            const ZERO: Self = 0.0;

            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $scratch.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => {
                        if buf.len() < len {
                            buf.resize(len, 0.0);
                        }
                        f(&mut buf[..len])
                    }
                    // Re-entered (a nested parallel call ran on this thread while it waited):
                    // fall back to a private buffer.
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }
        }
    };
}

impl_float!(f32, SCRATCH_F32);
impl_float!(f64, SCRATCH_F64);

/// Whether the fast CPU kernels handle tensors of this device and dtype (the CPU, `f32` or
/// `f64`); the fused ops that have no composed fallback run only on such tensors.
pub fn has_cpu_kernel(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The elements of a contiguous tensor stored in `storage` with `layout`.
pub(crate) fn storage_slice<'a, T: Float>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!(
            "{op}: kernel needs a contiguous input, got shape {:?} with strides {:?}",
            layout.dims(),
            layout.stride()
        ),
    }
}

/// Runs `f` on the elements of a CPU tensor, made contiguous first if it is not.
pub(crate) fn with_slice<T: Float, R>(
    op: &str,
    t: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(storage_slice(op, cpu, layout)?),
        _ => bail!("{op}: kernel needs a CPU tensor, got {:?}", t.device()),
    }
}

/// Runs `f` on the elements of several CPU tensors at once (each made contiguous first if it is
/// not): [`with_slice`] for the backward passes that read many tensors.
pub(crate) fn with_slices<T: Float, R, const N: usize>(
    op: &str,
    tensors: [&Tensor; N],
    f: impl FnOnce([&[T]; N]) -> Result<R>,
) -> Result<R> {
    let contiguous = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<Vec<_>>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(N);
    for ((storage, layout), t) in guards.iter().zip(&contiguous) {
        match &**storage {
            Storage::Cpu(cpu) => slices.push(storage_slice(op, cpu, layout)?),
            _ => bail!("{op}: kernel needs a CPU tensor, got {:?}", t.device()),
        }
    }
    let Ok(slices) = <[&[T]; N]>::try_from(slices) else {
        unreachable!("one slice per tensor")
    };
    f(slices)
}

/// A gradient as a tensor shaped and placed like `like`, when there is one.
pub(crate) fn grad_tensor<T: Float>(grad: Option<Vec<T>>, like: &Tensor) -> Result<Option<Tensor>> {
    grad.map(|v| Tensor::from_vec(v, like.shape(), like.device()))
        .transpose()
}

/// A vector for a kernel output that the kernel overwrites in full before anything reads it.
///
/// Zeroing an output only to overwrite it costs a full pass over memory, on the calling thread
/// while the others wait; with freed buffers kept for reuse (see
/// [`crate::retain_freed_buffers`]) that memset was 5–9 % of a training step. Debug builds
/// fill the vector with NaN instead, so that an element a kernel forgot to write poisons the
/// results the tests compare. On Linux large vectors also ask for transparent huge pages, so
/// that first touching fresh memory costs one page fault per 2 MiB instead of one per 4 KiB.
pub(crate) fn output<T: Float>(len: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    if cfg!(debug_assertions) {
        v.resize(len, T::from_f64(f64::NAN));
    } else {
        // SAFETY: the capacity is `len`, and `T` is `f32` or `f64`, for which every bit pattern
        // is a valid value. The contents are unspecified until the kernel writes them; callers
        // write every element before the vector is read (candle's own CPU backend allocates
        // its op outputs the same way).
        unsafe { v.set_len(len) };
    }
    #[cfg(target_os = "linux")]
    advise_huge_pages(v.as_mut_ptr().cast(), len * std::mem::size_of::<T>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    const MADV_HUGEPAGE: i32 = 14;
    unsafe extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside an allocation this thread owns and has not shared;
        // MADV_HUGEPAGE only changes how the kernel backs it, never its contents.
        unsafe {
            madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
        }
    }
}
