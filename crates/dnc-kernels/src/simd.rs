//! Run-time selection of AVX2 code for the element-wise loops.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), where the compiler leaves loops
//! with a per-element condition (ReLU masks) scalar. [`multiversion!`] compiles such a loop a
//! second time with AVX2 and FMA enabled and picks that copy when the CPU has them (every x86
//! CPU of the last decade); other architectures use the portable copy.

/// Whether this CPU runs the AVX2 + FMA copies (detected once, then cached by `std`).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Defines `fn name<T: Float>(args) -> ret { body }` twice, portable and with AVX2 + FMA, and
/// dispatches at run time. The body must be safe code; it is inlined into both copies.
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<T: Float>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<T: Float>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable<T: Float>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2<T: Float>($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2() {
                // SAFETY: the CPU supports the enabled features (checked just above).
                return unsafe { avx2($($arg),*) };
            }
            portable($($arg),*)
        }
    };
}

pub(crate) use multiversion;
