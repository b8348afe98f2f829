//! [`MpiCommunicator`]: MPI's world communicator through the `mpi` crate (rsmpi).

use std::sync::Mutex;

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives};

use crate::{Communicator, DistError};

/// MPI's world: every process `mpirun` or `srun` started. MPI is finalised when this is
/// dropped.
#[derive(Debug)]
pub struct MpiCommunicator {
    rank: usize,
    world_size: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    // Dropped in this order: the communicator, then the universe (which finalises MPI).
    world: SimpleCommunicator,
    _universe: Universe,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mpi world")
    }
}

// SAFETY: MPI is initialised with MPI_THREAD_SERIALIZED (checked in `init`), which allows
// calls from any thread as long as no two are at once; the mutex around `Inner` ensures that.
unsafe impl Send for Inner {}

impl MpiCommunicator {
    /// Initialises MPI (once per process) and takes its world communicator.
    pub fn init() -> Result<Self, DistError> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| DistError::Launch("MPI was already initialised".into()))?;
        if threading < Threading::Serialized {
            return Err(DistError::Launch(format!(
                "this MPI offers thread support {threading:?}; dnc needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, world_size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            rank,
            world_size,
            inner: Mutex::new(Inner {
                world,
                _universe: universe,
            }),
        })
    }

    fn gather<T>(&self, local: &[T]) -> Result<Vec<T>, DistError>
    where
        T: Copy + Default + mpi::datatype::Equivalence,
    {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Every rank must pass the same length: check that first, so that a mismatch is an
        // error on every rank rather than a corrupt buffer.
        let len = local.len() as u64;
        let mut lens = vec![0u64; self.world_size];
        inner.world.all_gather_into(&len, &mut lens[..]);
        if let Some((rank, &got)) = lens.iter().enumerate().find(|(_, l)| **l != lens[0]) {
            return Err(DistError::LengthMismatch {
                op: "all_gather",
                rank,
                got: got as usize,
                expected: lens[0] as usize,
            });
        }
        let mut out = vec![T::default(); local.len() * self.world_size];
        inner.world.all_gather_into(local, &mut out[..]);
        Ok(out)
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn backend(&self) -> &'static str {
        "mpi"
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>, DistError> {
        self.gather(local)
    }

    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>, DistError> {
        self.gather(local)
    }

    fn barrier(&self) -> Result<(), DistError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.world.barrier();
        Ok(())
    }
}
