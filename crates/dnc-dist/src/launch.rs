//! [`launch`]: the rank and world size a launcher gave this process, and the communicator
//! that matches them.

use std::sync::Arc;

use crate::{Communicator, DistError, Group, Solo};

/// What the launcher's environment says about this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The launcher that set it: `"mpirun"` (Open MPI), `"pmi"` (MPICH's Hydra, `srun
    /// --mpi=pmi2`), `"srun"` (Slurm) or `"torchrun"` (`RANK`/`WORLD_SIZE`).
    pub launcher: &'static str,
}

impl LaunchEnv {
    /// Reads the environment through `var`; `None` when no launcher's variables are set.
    /// Errors name the variable and its value.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, DistError> {
        const KNOWN: [(&str, &str, &str); 4] = [
            ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "mpirun"),
            ("PMI_RANK", "PMI_SIZE", "pmi"),
            ("SLURM_PROCID", "SLURM_NTASKS", "srun"),
            ("RANK", "WORLD_SIZE", "torchrun"),
        ];
        for (rank_key, size_key, launcher) in KNOWN {
            let (Some(rank), Some(size)) = (var(rank_key), var(size_key)) else {
                continue;
            };
            let parse = |key: &str, value: &str| {
                value.trim().parse::<usize>().map_err(|_| {
                    DistError::Launch(format!("{key} = {value:?} is not a whole number"))
                })
            };
            let rank = parse(rank_key, &rank)?;
            let world_size = parse(size_key, &size)?;
            if world_size == 0 || rank >= world_size {
                return Err(DistError::Launch(format!(
                    "{rank_key} = {rank} and {size_key} = {world_size}: the rank must be below the world size"
                )));
            }
            return Ok(Some(Self {
                rank,
                world_size,
                launcher,
            }));
        }
        Ok(None)
    }

    /// Reads the process's environment.
    pub fn detect() -> Result<Option<Self>, DistError> {
        Self::from_vars(|key| std::env::var(key).ok())
    }
}

/// The process's group for as long as it lives: installed by [`launch`], removed (and MPI
/// finalised) when dropped.
#[derive(Debug)]
pub struct Launch {
    group: Group,
}

impl Launch {
    pub fn group(&self) -> &Group {
        &self.group
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The other ranks may wait in another collective: neither meet them at a barrier
            // nor finalise MPI (which may wait for them too); leave, and the launcher ends them.
            std::mem::forget(self.group.clone());
            crate::install(None);
            return;
        }
        if self.group.is_distributed() {
            // Ranks leave together, so no rank finalises while another still sends to it.
            if let Err(e) = self.group.comm().barrier() {
                tracing::warn!("leaving the group: {e}");
            }
        }
        crate::install(None);
    }
}

/// Sets up the group the launcher asked for and installs it for the whole process.
///
/// With no launcher, or a world of one, the process trains alone. With more ranks the
/// communicator is MPI (feature `mpi`), and MPI must see the same rank and world size as the
/// environment: `torchrun`-style variables alone, without an MPI launcher, are refused with
/// that explanation. `sync_batch_norm` is [`Group::with_sync_batch_norm`].
pub fn launch(sync_batch_norm: bool) -> Result<Launch, DistError> {
    let env = LaunchEnv::detect()?;
    let comm: Arc<dyn Communicator> = match &env {
        None => Arc::new(Solo),
        Some(env) if env.world_size == 1 => Arc::new(Solo),
        Some(env) => connect(env)?,
    };
    let group = Group::new(comm).with_sync_batch_norm(sync_batch_norm);
    if group.is_distributed() {
        tracing::info!(
            rank = group.rank(),
            world_size = group.world_size(),
            backend = group.comm().backend(),
            "data-parallel group"
        );
    }
    crate::install(Some(group.clone()));
    Ok(Launch { group })
}

#[cfg(feature = "mpi")]
fn connect(env: &LaunchEnv) -> Result<Arc<dyn Communicator>, DistError> {
    let comm = crate::MpiCommunicator::init()?;
    if (comm.rank(), comm.world_size()) != (env.rank, env.world_size) {
        return Err(DistError::Launch(format!(
            "the {} environment says rank {} of {}, MPI says rank {} of {}: dnc's \
             communicator is MPI, so start the processes with mpirun or srun (with MPI support)",
            env.launcher,
            env.rank,
            env.world_size,
            comm.rank(),
            comm.world_size()
        )));
    }
    Ok(Arc::new(comm))
}

#[cfg(not(feature = "mpi"))]
fn connect(env: &LaunchEnv) -> Result<Arc<dyn Communicator>, DistError> {
    Err(DistError::Launch(format!(
        "the {} environment asks for {} processes, and this dnc was built without the `mpi` \
         feature (rebuild with `--features mpi`, with Open MPI and libclang installed)",
        env.launcher, env.world_size
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<LaunchEnv>, DistError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn each_launchers_variables_are_read_mpi_first() {
        assert_eq!(env(&[]).unwrap(), None);
        let got = env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")]).unwrap();
        assert_eq!(
            got,
            Some(LaunchEnv {
                rank: 1,
                world_size: 4,
                launcher: "mpirun"
            })
        );
        let slurm = env(&[("SLURM_PROCID", "2"), ("SLURM_NTASKS", "3")]).unwrap();
        assert_eq!(slurm.unwrap().launcher, "srun");
        let both = env(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("PMI_RANK", "1"),
            ("PMI_SIZE", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((both.rank, both.launcher), (1, "pmi"));
        // A rank without a size is not a launch.
        assert_eq!(env(&[("RANK", "0")]).unwrap(), None);
    }

    #[test]
    fn bad_values_are_named() {
        let e = env(&[("RANK", "x"), ("WORLD_SIZE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK = \"x\""), "{e}");
        let e = env(&[("RANK", "2"), ("WORLD_SIZE", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RANK = 2 and WORLD_SIZE = 2"), "{e}");
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn several_ranks_without_mpi_is_refused_with_the_fix() {
        let env = LaunchEnv {
            rank: 0,
            world_size: 2,
            launcher: "torchrun",
        };
        let e = connect(&env).unwrap_err().to_string();
        assert!(
            e.contains("--features mpi") && e.contains("2 processes"),
            "{e}"
        );
    }
}
