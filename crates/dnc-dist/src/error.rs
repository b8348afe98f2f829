//! [`DistError`]: what can go wrong between ranks.

/// A failed collective or launch.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// Ranks passed different lengths to one collective.
    #[error("rank {rank} passed {got} values to {op}, rank 0 passed {expected}")]
    LengthMismatch {
        op: &'static str,
        rank: usize,
        got: usize,
        expected: usize,
    },
    /// A rank waited too long for the others (one of them stopped calling collectives).
    #[error("rank {rank} waited {seconds} s in {op} for the other ranks")]
    Timeout {
        op: &'static str,
        rank: usize,
        seconds: u64,
    },
    /// The launcher's environment and the engine disagree, or no engine can serve it.
    #[error("cannot start data-parallel training: {0}")]
    Launch(String),
    /// A tensor a collective cannot carry.
    #[error("{op}: {reason}")]
    Unsupported { op: &'static str, reason: String },
}

impl From<DistError> for candle_core::Error {
    fn from(e: DistError) -> Self {
        candle_core::Error::wrap(e)
    }
}
