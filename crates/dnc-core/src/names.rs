//! Naming conventions shared by models, optimisers and checkpoints.
//!
//! Variables follow torchvision's names (`layer1.0.bn1.running_mean`). Buffers (BatchNorm running
//! statistics and batch counters) are stored with the weights but never trained; biases and
//! BatchNorm affine parameters (every parameter of rank < 2) are excluded from weight decay and
//! from LARS's trust ratio, as in SimCLR/BYOL.

/// `true` for BatchNorm running statistics and counters, which are saved but not trained.
pub fn is_buffer(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    matches!(leaf, "running_mean" | "running_var" | "num_batches_tracked")
}

/// Every variable of `map` that is a parameter (not a buffer), sorted by name so that optimiser
/// state and checkpoints never depend on hash-map order.
pub fn trainable_parameters(map: &candle_nn::VarMap) -> Vec<(String, candle_core::Var)> {
    let data = map.data().lock().expect("varmap lock poisoned");
    let mut params: Vec<(String, candle_core::Var)> = data
        .iter()
        .filter(|(name, _)| !is_buffer(name))
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

/// `true` for parameters excluded from weight decay and the LARS trust ratio: biases and
/// normalisation parameters, i.e. every parameter of rank below 2.
pub fn is_no_decay(rank: usize) -> bool {
    rank < 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_recognised_by_leaf_name() {
        assert!(is_buffer("layer1.0.bn1.running_mean"));
        assert!(is_buffer("bn1.running_var"));
        assert!(is_buffer("bn1.num_batches_tracked"));
        assert!(!is_buffer("bn1.weight"));
        assert!(!is_buffer("running_mean_head.weight"));
        assert!(is_no_decay(1) && !is_no_decay(2) && !is_no_decay(4));
    }

    #[test]
    fn trainable_parameters_are_sorted_and_skip_buffers() {
        let map = candle_nn::VarMap::new();
        let dev = candle_core::Device::Cpu;
        for name in ["b.weight", "a.running_mean", "a.weight"] {
            map.get(
                2,
                name,
                candle_nn::Init::Const(0.0),
                candle_core::DType::F32,
                &dev,
            )
            .unwrap();
        }
        let names: Vec<String> = trainable_parameters(&map)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a.weight", "b.weight"]);
    }
}
