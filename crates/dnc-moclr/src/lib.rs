//! MoCLR pre-training (the base model and the experts of Divide and Contrast), as a
//! [`dnc_engine::TrainStep`].
//!
//! MoCLR (Tian, Hénaff & van den Oord, arXiv 2105.08054, section 3) is SimCLR with an EMA target
//! network: the online encoder's L2-normalised projections of view 1 are contrasted against the
//! target's projections of view 2 and vice versa, with the other images of the batch as
//! negatives. The target follows ξ ← m·ξ + (1 − m)·θ after every update, m rising from m0 to 1
//! on a cosine. With `objective.kind = "simclr"` there is no target and the loss is NT-Xent.

mod step;

pub use step::{MoclrConfig, MoclrStep, ViewPair};
