//! [`Group`]: the ranks a training runs over, and where the engine, the losses and BatchNorm
//! find it ([`current`]).

use std::cell::RefCell;
use std::sync::{Arc, RwLock};

use crate::{Communicator, Solo};

/// The ranks a training runs over, and whether BatchNorm takes its statistics over all of
/// them.
#[derive(Debug, Clone)]
pub struct Group {
    comm: Arc<dyn Communicator>,
    sync_batch_norm: bool,
}

impl Group {
    /// A group over `comm`, BatchNorm statistics synchronised.
    pub fn new(comm: Arc<dyn Communicator>) -> Self {
        Self {
            comm,
            sync_batch_norm: true,
        }
    }

    /// One process alone.
    pub fn solo() -> Self {
        Self::new(Arc::new(Solo))
    }

    /// Whether BatchNorm layers in training take their batch statistics over every rank's
    /// share of the batch (as one process with the whole batch would) or over their own share.
    pub fn with_sync_batch_norm(mut self, sync: bool) -> Self {
        self.sync_batch_norm = sync;
        self
    }

    pub fn comm(&self) -> &Arc<dyn Communicator> {
        &self.comm
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// More than one rank.
    pub fn is_distributed(&self) -> bool {
        self.world_size() > 1
    }

    /// Rank 0, the one that writes checkpoints, metrics and summaries.
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// The communicator BatchNorm synchronises over: `Some` with more than one rank and
    /// synchronisation on.
    pub fn batch_norm_comm(&self) -> Option<&Arc<dyn Communicator>> {
        (self.sync_batch_norm && self.is_distributed()).then_some(&self.comm)
    }
}

static INSTALLED: RwLock<Option<Group>> = RwLock::new(None);

thread_local! {
    static SCOPED: RefCell<Option<Group>> = const { RefCell::new(None) };
}

/// The group of this thread: the one of the innermost [`scoped`] guard alive on it, else the
/// one [`install`]ed for the process, else one process alone.
pub fn current() -> Group {
    if let Some(group) = SCOPED.with(|s| s.borrow().clone()) {
        return group;
    }
    let installed = INSTALLED.read().unwrap_or_else(|e| e.into_inner());
    installed.clone().unwrap_or_else(Group::solo)
}

/// Makes `group` the process's group (for every thread without a [`scoped`] one); `None`
/// removes it. Returns the one it replaces.
pub fn install(group: Option<Group>) -> Option<Group> {
    let mut installed = INSTALLED.write().unwrap_or_else(|e| e.into_inner());
    std::mem::replace(&mut *installed, group)
}

/// Makes `group` this thread's group until the guard is dropped.
pub fn scoped(group: Group) -> ScopedGroup {
    let previous = SCOPED.with(|s| s.borrow_mut().replace(group));
    ScopedGroup { previous }
}

/// Restores the thread's previous group when dropped; see [`scoped`].
#[derive(Debug)]
#[must_use = "the group is this thread's only while the guard lives"]
pub struct ScopedGroup {
    previous: Option<Group>,
}

impl Drop for ScopedGroup {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SCOPED.with(|s| *s.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalGroup;

    #[test]
    fn scoped_groups_nest_and_restore() {
        assert_eq!(current().world_size(), 1);
        let ranks = LocalGroup::ranks(2);
        {
            let _outer = scoped(Group::new(ranks[1].clone()));
            assert_eq!((current().rank(), current().world_size()), (1, 2));
            assert!(current().batch_norm_comm().is_some());
            {
                let _inner = scoped(Group::solo());
                assert_eq!(current().world_size(), 1);
                assert!(current().batch_norm_comm().is_none());
            }
            assert_eq!(current().rank(), 1);
            let unsynced = Group::new(ranks[0].clone()).with_sync_batch_norm(false);
            assert!(unsynced.batch_norm_comm().is_none());
        }
        assert_eq!(current().world_size(), 1);
        // Another thread does not see this thread's scope.
        let _scope = scoped(Group::new(ranks[0].clone()));
        let other = std::thread::spawn(|| current().world_size())
            .join()
            .unwrap();
        assert_eq!(other, 1);
    }
}
