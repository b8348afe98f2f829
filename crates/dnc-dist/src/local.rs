//! [`LocalGroup`]: ranks as threads of one process, for tests of the collective code paths.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::{Communicator, DistError};

/// How long a rank waits for the others before it gives up (a test whose rank failed must
/// fail, not hang).
const WAIT: Duration = Duration::from_secs(120);

/// Ranks that are threads of one process, meeting through shared memory.
///
/// This is the test bench of the collectives: the same code paths as MPI, without a
/// launcher. Each thread takes one rank and installs it with [`scoped`](crate::scoped).
#[derive(Debug)]
pub struct LocalGroup;

impl LocalGroup {
    /// The `world_size` ranks of a new group, rank `r` at index `r`.
    pub fn ranks(world_size: usize) -> Vec<Arc<dyn Communicator>> {
        assert!(world_size >= 1, "a group needs at least one rank");
        let shared = Arc::new(Shared {
            world_size,
            state: Mutex::new(State {
                slots: vec![Vec::new(); world_size],
                arrived: 0,
                generation: 0,
            }),
            turn: Condvar::new(),
        });
        (0..world_size)
            .map(|rank| {
                Arc::new(LocalRank {
                    rank,
                    shared: shared.clone(),
                }) as Arc<dyn Communicator>
            })
            .collect()
    }

    /// Runs `f` once per rank of a new group of `world_size`, each on its own thread with that
    /// rank's group [`scoped`](crate::scoped) (BatchNorm synchronised); the results in rank
    /// order. A rank's panic is re-raised here.
    pub fn run<T: Send>(
        world_size: usize,
        f: impl Fn(Arc<dyn Communicator>) -> T + Sync,
    ) -> Vec<T> {
        let f = &f;
        std::thread::scope(|scope| {
            let handles: Vec<_> = Self::ranks(world_size)
                .into_iter()
                .map(|comm| {
                    scope.spawn(move || {
                        let _group = crate::scoped(crate::Group::new(comm.clone()));
                        f(comm)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }
}

#[derive(Debug)]
struct Shared {
    world_size: usize,
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Debug)]
struct State {
    /// Each rank's contribution to the collective in progress (f32 values are exact in f64).
    slots: Vec<Vec<f64>>,
    /// Ranks arrived at the current barrier.
    arrived: usize,
    /// Barriers passed so far.
    generation: u64,
}

#[derive(Debug)]
struct LocalRank {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalRank {
    /// Waits until every rank has arrived; `contribute` runs under the lock on arrival.
    fn meet(
        &self,
        op: &'static str,
        contribute: impl FnOnce(&mut State),
    ) -> Result<std::sync::MutexGuard<'_, State>, DistError> {
        let shared = &*self.shared;
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        contribute(&mut state);
        let generation = state.generation;
        state.arrived += 1;
        if state.arrived == shared.world_size {
            state.arrived = 0;
            state.generation += 1;
            shared.turn.notify_all();
            return Ok(state);
        }
        let (state, timeout) = shared
            .turn
            .wait_timeout_while(state, WAIT, |s| s.generation == generation)
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() {
            return Err(DistError::Timeout {
                op,
                rank: self.rank,
                seconds: WAIT.as_secs(),
            });
        }
        Ok(state)
    }

    fn all_gather(&self, local: Vec<f64>) -> Result<Vec<f64>, DistError> {
        let len = local.len();
        let state = self.meet("all_gather", |s| s.slots[self.rank] = local)?;
        let gathered = gather_checked(&state.slots, self.rank, len);
        drop(state);
        // Nobody may overwrite a slot before every rank has read them all.
        drop(self.meet("all_gather", |_| ())?);
        gathered
    }
}

fn gather_checked(slots: &[Vec<f64>], rank: usize, len: usize) -> Result<Vec<f64>, DistError> {
    let expected = slots[0].len();
    if let Some((r, slot)) = slots.iter().enumerate().find(|(_, s)| s.len() != expected) {
        return Err(DistError::LengthMismatch {
            op: "all_gather",
            rank: r,
            got: slot.len(),
            expected,
        });
    }
    debug_assert_eq!(len, expected, "rank {rank}");
    Ok(slots.concat())
}

impl Communicator for LocalRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world_size
    }

    fn backend(&self) -> &'static str {
        "threads"
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>, DistError> {
        let all = self.all_gather(local.iter().map(|&v| f64::from(v)).collect())?;
        Ok(all.into_iter().map(|v| v as f32).collect())
    }

    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>, DistError> {
        self.all_gather(local.to_vec())
    }

    fn barrier(&self) -> Result<(), DistError> {
        self.meet("barrier", |_| ()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_gather_concatenates_in_rank_order_on_every_rank_many_times() {
        let out = LocalGroup::run(3, |c| {
            (0..50)
                .map(|round| {
                    let local = [c.rank() as f32, round as f32 + 0.5];
                    c.all_gather_f32(&local).unwrap()
                })
                .collect::<Vec<_>>()
        });
        for per_rank in &out {
            for (round, got) in per_rank.iter().enumerate() {
                let r = round as f32 + 0.5;
                assert_eq!(got, &vec![0.0, r, 1.0, r, 2.0, r]);
            }
        }
        let f64s = LocalGroup::run(2, |c| {
            c.all_gather_f64(&[c.rank() as f64 * 1e-300]).unwrap()
        });
        assert_eq!(f64s[0], vec![0.0, 1e-300]);
        assert_eq!(f64s[0], f64s[1]);
    }

    #[test]
    fn unequal_lengths_are_an_error_on_every_rank() {
        let out = LocalGroup::run(2, |c| {
            let local = vec![1.0f32; c.rank() + 1];
            c.all_gather_f32(&local).map_err(|e| e.to_string())
        });
        for r in out {
            let msg = r.unwrap_err();
            assert!(msg.contains("rank 1 passed 2 values"), "{msg}");
        }
    }

    #[test]
    fn a_single_rank_group_needs_nobody() {
        let comm = &LocalGroup::ranks(1)[0];
        assert_eq!(comm.all_gather_f32(&[3.0]).unwrap(), vec![3.0]);
        comm.barrier().unwrap();
    }
}
