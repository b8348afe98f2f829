//! Evaluation of frozen representations for dnc.
//!
//! Generic over tensors and closures, so it works with any dataset and any model:
//! - [`extract_features`]: embed a dataset batch by batch into one `[N, D]` matrix;
//! - [`knn_evaluate`] / [`knn_predict`]: weighted k-NN (InstDisc / lightly protocol: k = 200,
//!   τ = 0.1 on L2-normalised features), chunked so memory stays bounded;
//! - [`LinearProbe`] / [`linear_probe_evaluate`]: multinomial logistic regression on
//!   train-standardised features;
//! - [`few_label_subset`] / [`few_label_probe_evaluate`]: the linear probe trained on seeded,
//!   class-balanced fractions of the labelled train features (1% / 10% labels);
//! - [`evaluate`]: both, as one [`EvalResult`] with top-1 and per-class accuracies;
//! - [`Comparison`]: the accuracies of several models as a Markdown or plain-text table.

mod accuracy;
mod config;
mod error;
mod extract;
mod few_label;
mod input;
mod knn;
mod linear;
mod result;
mod standardize;
mod table;

pub use accuracy::{Accuracy, ClassAccuracy, mean_class_accuracy, score};
pub use config::{EvalConfig, KnnConfig, LinearProbeConfig};
pub use error::{EvalError, ParamError};
pub use extract::extract_features;
pub use few_label::{FewLabelScore, few_label_probe_evaluate, few_label_subset};
pub use knn::{StreamingKnn, knn_evaluate, knn_predict};
pub use linear::{LinearProbe, MOMENTUM, linear_probe_evaluate};
pub use result::{EvalResult, evaluate};
pub use standardize::{MIN_STD, Standardizer};
pub use table::Comparison;
