//! A process-wide allocator setting that makes CPU training faster with glibc.
//!
//! Every candle op allocates its output, and a training step frees and re-allocates the same
//! large buffers over and over. glibc serves blocks above its `mmap` threshold (128 KiB at
//! first, rising to at most 32 MiB as such blocks are freed) with fresh `mmap`s, so each new
//! activation or gradient is first page-faulted and zeroed by the kernel: on a 2-core machine
//! that was 15–20 % of a training step. Serving every block from the heap (no `mmap` at all,
//! as activations of a batch of 256 are often above even the 32 MiB cap) and never trimming the
//! heap lets freed buffers be reused instead.

/// Tells glibc's `malloc` to serve all blocks from its heap instead of separate `mmap`s, so that
/// freed blocks are kept for reuse, and never to return heap memory to the OS. Returns whether
/// both settings were taken; `false` on other platforms and C libraries, where nothing changes.
///
/// The process keeps its peak heap size for its lifetime, which is what a training run wants.
/// Call it once, early, from the binary: it changes allocation for the whole process.
pub fn retain_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: `mallopt` only changes allocator tuning parameters; it is thread-safe and
        // takes effect for later allocations.
        unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_settings() {
        let taken = retain_freed_buffers();
        assert_eq!(taken, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Allocation still works afterwards, for sizes on both sides of the threshold.
        let small = vec![1u8; 1 << 20];
        let large = vec![2u8; 64 << 20];
        assert_eq!(small[12345] + large[(64 << 20) - 1], 3);
    }
}
