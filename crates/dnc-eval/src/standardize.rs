//! Per-feature standardisation with statistics of the training split only.

use candle_core::{DType, Result, Tensor};

/// Standard deviations below this are treated as 1, as scikit-learn's `StandardScaler` does
/// for constant features, so that a feature constant on the train split cannot blow up on test.
pub const MIN_STD: f64 = 1e-6;

/// `x ↦ (x − mean) / std` with the mean and (population) standard deviation of the features it
/// was fitted on.
#[derive(Debug, Clone)]
pub struct Standardizer {
    mean: Tensor,
    std: Tensor,
}

impl Standardizer {
    /// Computes the per-feature mean and standard deviation of `train` (in f32).
    ///
    /// # Shapes
    /// `train`: `[N, D]`; the statistics are `[D]`.
    pub fn fit(train: &Tensor) -> Result<Self> {
        let (n, _) = train.dims2()?;
        if n == 0 {
            candle_core::bail!("Standardizer::fit: no rows, shape {:?}", train.dims())
        }
        let x = train.to_dtype(DType::F32)?;
        let mean = x.mean(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean(0)?;
        let std: Vec<f32> = var.sqrt()?.to_vec1()?;
        let std: Vec<f32> = std
            .into_iter()
            .map(|s| if f64::from(s) < MIN_STD { 1.0 } else { s })
            .collect();
        let std = Tensor::from_vec(std, mean.dims(), mean.device())?;
        Ok(Self { mean, std })
    }

    /// Applies the fitted statistics (to the train split or to any other).
    ///
    /// # Shapes
    /// `x`: `[M, D]` → `[M, D]` (f32).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (_, d) = x.dims2()?;
        let fitted = self.mean.dim(0)?;
        if d != fitted {
            candle_core::bail!("Standardizer::apply: fitted on D = {fitted}, got D = {d}")
        }
        x.to_dtype(DType::F32)?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)
    }

    /// Per-feature means, `[D]`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// Per-feature standard deviations (1 for constant features), `[D]`.
    pub fn std(&self) -> &Tensor {
        &self.std
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn test_split_uses_train_statistics() {
        let dev = Device::Cpu;
        // Column 0: values 1 and 3, mean 2, population std 1. Column 1: constant 10, std → 1.
        let train = Tensor::new(&[[1f32, 10.0], [3.0, 10.0]], &dev).unwrap();
        let s = Standardizer::fit(&train).unwrap();
        assert_eq!(s.mean().to_vec1::<f32>().unwrap(), vec![2.0, 10.0]);
        assert_eq!(s.std().to_vec1::<f32>().unwrap(), vec![1.0, 1.0]);
        // A test split with other statistics is shifted and scaled by the train ones:
        // (5 − 2) / 1 = 3, (12 − 10) / 1 = 2, (−1 − 2) / 1 = −3, (10 − 10) / 1 = 0.
        let test = Tensor::new(&[[5f32, 12.0], [-1.0, 10.0]], &dev).unwrap();
        let out = s.apply(&test).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(out, vec![vec![3.0, 2.0], vec![-3.0, 0.0]]);
        assert_eq!(
            s.apply(&train).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![-1.0, 0.0], vec![1.0, 0.0]]
        );
    }

    #[test]
    fn std_is_the_population_one_and_widths_must_match() {
        let dev = Device::Cpu;
        // Values 0, 0, 0, 4: mean 1, variance (1 + 1 + 1 + 9) / 4 = 3.
        let train = Tensor::new(&[[0f32], [0.0], [0.0], [4.0]], &dev).unwrap();
        let s = Standardizer::fit(&train).unwrap();
        let std = s.std().to_vec1::<f32>().unwrap()[0];
        assert!((std - 3f32.sqrt()).abs() < 1e-6);
        let wide = Tensor::zeros((1, 2), DType::F32, &dev).unwrap();
        let err = s.apply(&wide).unwrap_err().to_string();
        assert!(err.contains("D = 1") && err.contains("D = 2"), "{err}");
    }
}
