//! Distillation, step 4 of Divide and Contrast (Tian, Hénaff & van den Oord, arXiv 2105.08054,
//! section 3.3): the base model and the K experts are distilled into one student.
//!
//! The student has the base's architecture (backbone + projector) and K + 1 regression heads on
//! its projector output z. Head `r_0` regresses the base's L2-normalised projection `t_0` of the
//! same augmented view, head `r_c` the projection `t_c` of the expert of the image's cluster:
//! loss = ½‖r_0(z) − t_0‖² + ½‖r_c(z) − t_c‖², averaged over the batch. There is no contrastive
//! term. The student's backbone is the DnC model.
//!
//! [`DistillOptions`] adds what the paper leaves out and what was measured against it: a
//! warm-up in which only the heads learn, heads whose last layer starts at zero, where the
//! expert heads' BatchNorm takes its statistics, an in-batch contrastive term beside the
//! regression, a MoCLR term that keeps training the student on its own views, and which layer
//! the heads regress (the teachers' projections, or their backbone features). With
//! [`CachedTargets`] (the paper's cheap variant) the teachers' targets are computed once per image
//! beforehand and a step runs the student alone.

mod cached;
mod options;
mod provider;
mod step;
mod teacher;

pub use cached::CachedTargets;
pub use options::{DistillOptions, DistillTarget, HeadBatchNorm, StudentMoclr, TargetSource};
pub use step::{DistillBatch, DistillStep};
pub use teacher::Teacher;
