//! Errors of the evaluation crate: bad parameters, bad inputs and runtime failures are kept apart.

/// A configuration value that cannot be used, found before any data is touched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("knn.k must be at least 1, got 0")]
    ZeroK,
    #[error("knn.temperature must be a finite number > 0, got {0}")]
    Temperature(f64),
    #[error("knn.chunk (queries per chunk) must be at least 1, got 0")]
    ZeroChunk,
    #[error("linear.epochs must be at least 1, got 0")]
    ZeroEpochs,
    #[error("linear.lr must be a finite number > 0, got {0}")]
    LearningRate(f64),
    #[error("linear.weight_decay must be a finite number >= 0, got {0}")]
    WeightDecay(f64),
    #[error("linear.batch_size must be at least 1, got 0")]
    ZeroBatchSize,
    #[error("linear.few_label_fractions must hold finite numbers in (0, 1], got {0}")]
    FewLabelFraction(f64),
    #[error("linear.few_label_fractions lists {0} twice")]
    FewLabelFractionTwice(f64),
    #[error("linear.few_label_draws must be at least 1, got 0")]
    ZeroFewLabelDraws,
}

/// Everything that can go wrong while evaluating features.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A configuration value is invalid.
    #[error("invalid evaluation parameter: {0}")]
    Params(#[from] ParamError),
    /// Features are not a `[N, D]` matrix with `N, D ≥ 1`.
    #[error("{what} must be a [N, D] matrix with N >= 1 and D >= 1, got shape {shape:?}")]
    BadShape {
        what: &'static str,
        shape: Vec<usize>,
    },
    /// Two feature matrices that are compared have different widths.
    #[error("feature dimensions differ: {left} has D = {left_dim}, {right} has D = {right_dim}")]
    DimensionMismatch {
        left: &'static str,
        left_dim: usize,
        right: &'static str,
        right_dim: usize,
    },
    /// A label vector does not have one label per feature row.
    #[error("{what}: {labels} labels for {rows} feature rows")]
    LabelCount {
        what: &'static str,
        labels: usize,
        rows: usize,
    },
    /// A label is not a class index.
    #[error("{what}[{index}] = {label} is not below num_classes = {num_classes}")]
    LabelOutOfRange {
        what: &'static str,
        index: usize,
        label: u32,
        num_classes: usize,
    },
    /// `num_classes` is zero.
    #[error("num_classes must be at least 1, got 0")]
    NoClasses,
    /// Features hold a NaN or an infinity.
    #[error("{what} hold NaN or infinite values: they cannot be evaluated")]
    NonFinite { what: &'static str },
    /// The linear probe's loss stopped being a finite number.
    #[error("linear probe diverged: mean training loss {loss} in epoch {epoch}; lower linear.lr")]
    Diverged { epoch: usize, loss: f64 },
    /// A tensor operation failed at run time (device, memory, dtype support).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
