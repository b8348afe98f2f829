//! The DnC student with its regression heads, read back from `distill/student.safetensors`, and
//! how closely each head matches its teacher.

use super::HeadFidelity;
use super::compute::{head_ids, mean_cosine};
use super::passes::{Pass, rows};
use crate::error::PipelineError;
use crate::run::Run;
use candle_core::DType;
use candle_nn::VarBuilder;
use dnc_distill::DistillTarget;
use dnc_models::{Encoder, RegressionHead};
use std::path::Path;

/// The student encoder and its regression heads, in evaluation mode, from the student file.
pub(super) struct Student {
    pub(super) encoder: Encoder,
    /// `(head id, head)`, in head order.
    heads: Vec<(usize, RegressionHead)>,
}

pub(super) fn load_student(run: &Run, path: &Path) -> Result<Student, PipelineError> {
    let named = |e: candle_core::Error| PipelineError::Other(format!("{}: {e}", path.display()));
    let tensors = candle_core::safetensors::load(path, &run.device).map_err(named)?;
    let ids = head_ids(tensors.keys().map(String::as_str));
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &run.device);
    let encoder = Encoder::new(&run.cfg.model, vb.clone()).map_err(named)?;
    let (in_dim, head_cfg) = run
        .cfg
        .distill
        .target_layer
        .head_shape(&run.cfg.model, &encoder);
    let heads = ids
        .into_iter()
        .map(|h| {
            let head = RegressionHead::new(in_dim, &head_cfg, vb.pp("heads").pp(h.to_string()));
            head.map(|head| (h, head)).map_err(named)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Student { encoder, heads })
}

/// Mean cosine of head `head`'s prediction from the student's test pass (rows `selected`, or all)
/// with the teacher's layer of the same images (`teacher_pass`, `None` when there are no such
/// images), the layer being `target` (what the heads were trained on); `None` when the student
/// file has no such head.
pub(super) fn head_fidelity(
    student: &Student,
    head: usize,
    teacher: &str,
    target: DistillTarget,
    student_pass: &Pass,
    selected: Option<&[u32]>,
    teacher_pass: Option<&Pass>,
) -> Result<Option<HeadFidelity>, PipelineError> {
    let Some((_, module)) = student.heads.iter().find(|(h, _)| *h == head) else {
        return Ok(None);
    };
    let (n, mean_cosine) = match teacher_pass {
        Some(pass) => {
            let input = student_pass.layer_of(target);
            let input = match selected {
                Some(selected) => rows(input, selected)?,
                None => input.clone(),
            };
            let pred = module.forward_t(&input, false)?;
            (
                pass.labels.len(),
                mean_cosine(&pred, pass.layer_of(target))?,
            )
        }
        None => (0, None),
    };
    tracing::info!("diagnostics: head {head} against {teacher}: mean cosine {mean_cosine:?}");
    Ok(Some(HeadFidelity {
        head,
        teacher: teacher.to_string(),
        n,
        mean_cosine,
    }))
}
