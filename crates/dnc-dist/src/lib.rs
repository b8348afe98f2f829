//! Data-parallel training for dnc: several processes train one model, each on its share of
//! every global batch.
//!
//! - [`Communicator`]: the rank, the world size and an all-gather, over an existing engine:
//!   MPI through the `mpi` crate (feature `mpi`, [`MpiCommunicator`]), or one process alone
//!   ([`Solo`]). [`LocalGroup`] runs ranks as threads of one process, so that the collective
//!   code paths are tested without a launcher.
//! - [`all_reduce_sum`] and [`all_gather_rows`]: collectives on candle tensors that
//!   back-propagate (the gradient of a sum over ranks is the sum of the ranks' gradients), for
//!   synchronised BatchNorm statistics and for contrastive negatives gathered from every rank.
//! - [`average_gradients`]: the gradients of every rank's parameters, averaged in one call.
//! - [`Group`] and [`current`]: the group a training runs in, installed for the whole process
//!   ([`install`]) or for one thread ([`scoped`]); the engine, the losses and BatchNorm read it.
//! - [`launch`]: the rank and world size from the launcher's environment (`mpirun`, `srun`,
//!   `torchrun`-style `RANK`/`WORLD_SIZE`), and MPI set up to match.
//!
//! Every reduction is an all-gather followed by a sum in rank order, so every rank gets the
//! same bits and the result does not depend on the backend. That moves `world_size` times the
//! data of a ring all-reduce, a fair price at the few ranks of CPU data parallelism.

mod error;
mod group;
mod launch;
mod local;
#[cfg(feature = "mpi")]
mod mpi_backend;
mod ops;

pub use error::DistError;
pub use group::{Group, ScopedGroup, current, install, scoped};
pub use launch::{Launch, LaunchEnv, launch};
pub use local::LocalGroup;
#[cfg(feature = "mpi")]
pub use mpi_backend::MpiCommunicator;
pub use ops::{
    agree, all_gather_f64, all_gather_rows, all_reduce_sum, all_reduce_sum_f32, all_reduce_sum_f64,
    average_gradients, communication_seconds, mean_over_ranks,
};

use std::fmt::Debug;

/// What a data-parallel training needs from the processes it runs on.
///
/// Every rank must make the same calls in the same order with equal lengths; a rank that
/// stops calling leaves the others waiting (the MPI launcher ends them when one rank exits
/// with an error).
pub trait Communicator: Send + Sync + Debug {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// The engine's name, for logs and records (`"solo"`, `"mpi"`, `"threads"`).
    fn backend(&self) -> &'static str;
    /// Every rank's `local`, concatenated in rank order. Every rank passes the same length.
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>, DistError>;
    /// As [`all_gather_f32`](Self::all_gather_f32), in `f64`.
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>, DistError>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<(), DistError>;
}

/// One process alone: rank 0 of 1; every collective returns its input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Communicator for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn backend(&self) -> &'static str {
        "solo"
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>, DistError> {
        Ok(local.to_vec())
    }

    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>, DistError> {
        Ok(local.to_vec())
    }

    fn barrier(&self) -> Result<(), DistError> {
        Ok(())
    }
}
