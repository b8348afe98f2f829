//! The stages of a run, in order, and what each needs done before it.

use crate::config::{Method, RunConfig};
use crate::error::PipelineError;
use std::fmt;
use std::str::FromStr;

/// One stage of the Divide and Contrast recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// MoCLR on all data (SPEC step 1).
    Base,
    /// Embed every training image with the base model (step 2).
    Embed,
    /// k-means on the embeddings (step 2).
    Cluster,
    /// One MoCLR expert per cluster (step 3).
    Experts,
    /// Distil base and experts into one student (step 4).
    Distill,
    /// MoCLR for the DnC run's total epochs: the fair comparison.
    Baseline,
    /// k-NN and linear probe of every trained model and the untrained floor.
    Eval,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Base,
        Stage::Embed,
        Stage::Cluster,
        Stage::Experts,
        Stage::Distill,
        Stage::Baseline,
        Stage::Eval,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Embed => "embed",
            Self::Cluster => "cluster",
            Self::Experts => "experts",
            Self::Distill => "distill",
            Self::Baseline => "baseline",
            Self::Eval => "eval",
        }
    }

    /// Whether the stage trains networks (and so can train data-parallel over processes).
    pub fn trains(self) -> bool {
        matches!(
            self,
            Self::Base | Self::Baseline | Self::Experts | Self::Distill
        )
    }

    /// The stage whose output this one reads.
    pub fn needs(self) -> Option<Stage> {
        match self {
            Self::Base | Self::Baseline => None,
            Self::Embed => Some(Self::Base),
            Self::Cluster => Some(Self::Embed),
            Self::Experts => Some(Self::Cluster),
            Self::Distill => Some(Self::Experts),
            Self::Eval => Some(Self::Base),
        }
    }

    /// The stages whose outputs this one reads (`needs` is the last of them to finish).
    fn reads(self) -> &'static [Stage] {
        match self {
            Self::Base | Self::Baseline => &[],
            Self::Embed => &[Self::Base],
            Self::Cluster => &[Self::Embed],
            Self::Experts => &[Self::Base, Self::Cluster],
            Self::Distill => &[Self::Base, Self::Cluster, Self::Experts],
            // Every model, and the clusters for the diagnostics.
            Self::Eval => &[
                Self::Base,
                Self::Embed,
                Self::Cluster,
                Self::Experts,
                Self::Distill,
                Self::Baseline,
            ],
        }
    }

    /// The stages whose results depend on this one's, directly or through others: when this
    /// stage runs again, their results are stale.
    pub fn downstream(self) -> Vec<Stage> {
        let mut found = vec![self];
        for stage in Self::ALL {
            if stage.reads().iter().any(|r| found.contains(r)) {
                found.push(stage);
            }
        }
        found.remove(0);
        found
    }

    /// The stages a configuration runs, in order.
    pub fn plan(cfg: &RunConfig) -> Vec<Stage> {
        let mut stages = match cfg.method {
            Method::Moclr => vec![Stage::Base],
            Method::Dnc => vec![
                Stage::Base,
                Stage::Embed,
                Stage::Cluster,
                Stage::Experts,
                Stage::Distill,
            ],
        };
        if cfg.baseline && cfg.method == Method::Dnc {
            stages.push(Stage::Baseline);
        }
        stages.push(Stage::Eval);
        stages
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = PipelineError;
    fn from_str(s: &str) -> Result<Self, PipelineError> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| PipelineError::UnknownStage(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_stages_are_every_stage_that_reads_the_results() {
        use Stage::*;
        assert_eq!(Base.downstream(), [Embed, Cluster, Experts, Distill, Eval]);
        assert_eq!(Cluster.downstream(), [Experts, Distill, Eval]);
        assert_eq!(Distill.downstream(), [Eval]);
        assert_eq!(Baseline.downstream(), [Eval]);
        assert!(Eval.downstream().is_empty());
        for stage in Stage::ALL {
            if let Some(needs) = stage.needs() {
                assert!(needs.downstream().contains(&stage), "{stage} after {needs}");
            }
        }
    }
}
