//! A toy train step and batch source for the `fit` tests: a linear regression with a bias, a
//! BatchNorm-like running buffer, an EMA target map and a random generator of its own, fed by
//! batches that depend only on `(seed, epoch, batch)`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};
use dnc_core::{SeededRng, SeededVarMap, is_buffer};

use crate::step::{BatchSource, EpochBatches, StepContext, StepOutput, TrainStep};

pub(super) const IN: usize = 3;
pub(super) const OUT: usize = 2;

/// `(x [B, 3], y [B, 2])`.
pub(super) type ToyBatch = (Tensor, Tensor);

pub(super) struct ToyStep {
    pub(super) online: VarMap,
    pub(super) target: VarMap,
    rng: SeededRng,
    /// Return a NaN loss at this global step.
    pub(super) nan_at: Option<usize>,
    /// Every context seen by `forward`.
    pub(super) seen: Vec<StepContext>,
}

fn build(seed: u64) -> VarMap {
    let map = SeededVarMap::new(seed);
    let vb = map.var_builder(DType::F32, &Device::Cpu);
    let normal = Init::Randn {
        mean: 0.0,
        stdev: 0.5,
    };
    vb.get_with_hints((OUT, IN), "linear.weight", normal)
        .unwrap();
    vb.get_with_hints(OUT, "linear.bias", normal).unwrap();
    vb.get_with_hints(OUT, "bn.running_mean", Init::Const(0.0))
        .unwrap();
    map.varmap().clone()
}

fn var(map: &VarMap, name: &str) -> Var {
    map.data().lock().unwrap()[name].clone()
}

impl ToyStep {
    /// Weights drawn from `seed`: two different seeds give two different starting points.
    pub(super) fn new(seed: u64) -> Self {
        let online = build(seed);
        let target = build(seed);
        Self {
            online,
            target,
            rng: SeededRng::new(seed),
            nan_at: None,
            seen: Vec::new(),
        }
    }

    /// Every value of a map, by name, as raw bits.
    pub(super) fn bits(map: &VarMap) -> Vec<(String, Vec<u32>)> {
        let data = map.data().lock().unwrap();
        let mut out: Vec<(String, Vec<u32>)> = data
            .iter()
            .map(|(name, v)| {
                let values: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
                (name.clone(), values.iter().map(|x| x.to_bits()).collect())
            })
            .collect();
        out.sort();
        out
    }
}

impl TrainStep for ToyStep {
    type Batch = ToyBatch;

    fn forward(&mut self, (x, y): &ToyBatch, ctx: &StepContext) -> candle_core::Result<StepOutput> {
        self.seen.push(*ctx);
        let w = var(&self.online, "linear.weight");
        let b = var(&self.online, "linear.bias");
        let pred = x.matmul(&w.t()?)?.broadcast_add(&b)?;
        let mse = (pred.detach() - y)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
        // A running statistic, updated like BatchNorm's: saved, never trained.
        let running = var(&self.online, "bn.running_mean");
        let batch_mean = pred.detach().mean(0)?;
        running.set(&((running.as_tensor() * 0.9)? + (batch_mean * 0.1)?)?)?;
        // A random loss scale from the step's own generator, so that resuming must restore it.
        let scale = 1.0 + 0.1 * self.rng.uniform();
        let mut loss = ((pred - y)?.sqr()?.mean_all()? * scale)?;
        if self.nan_at == Some(ctx.step) {
            loss = (loss * f64::NAN)?;
        }
        let n = x.dim(0)?;
        let mut out = StepOutput::new(loss, n).with_metric("mse", f64::from(mse));
        if dnc_dist::current().rank() == 1 {
            // A metric only one rank reports (as distillation's per-cluster terms can be).
            out = out.with_metric("rank_one_only", 1.0);
        }
        Ok(out)
    }

    fn after_update(&mut self, _ctx: &StepContext) -> candle_core::Result<()> {
        for name in ["linear.weight", "linear.bias"] {
            let t = var(&self.target, name);
            let o = var(&self.online, name);
            t.set(&((t.as_tensor() * 0.9)? + (o.as_tensor() * 0.1)?)?)?;
        }
        Ok(())
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        let data = self.online.data().lock().unwrap();
        let mut params: Vec<(String, Var)> = data
            .iter()
            .filter(|(name, _)| !is_buffer(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params
    }

    fn state(&self) -> Vec<(String, VarMap)> {
        vec![
            ("online".into(), self.online.clone()),
            ("target".into(), self.target.clone()),
        ]
    }

    fn extra_state(&self) -> serde_json::Value {
        serde_json::to_value(&self.rng).unwrap()
    }

    fn load_extra_state(&mut self, state: &serde_json::Value) -> candle_core::Result<()> {
        self.rng = serde_json::from_value(state.clone()).map_err(candle_core::Error::wrap)?;
        Ok(())
    }
}

/// Batches of `y = x·Aᵀ + c + noise` drawn from `(seed, epoch, batch)`.
pub(super) struct ToySource {
    pub(super) seed: u64,
    pub(super) batches: usize,
    pub(super) batch_size: usize,
    /// Fail with an I/O error at `(epoch, batch)`.
    pub(super) fail_at: Option<(usize, usize)>,
    /// Positions `(epoch, batch)` left without a batch (every example unusable).
    pub(super) empty_at: Vec<(usize, usize)>,
    /// `(rank, world_size)`: this rank's rows of every batch, as data-parallel training
    /// splits them; `batch_size` stays the global batch's.
    pub(super) share: (usize, usize),
    /// Positions `(epoch, batch)` whose batch lost one example (an unreadable image).
    pub(super) short_at: Vec<(usize, usize)>,
}

impl ToySource {
    pub(super) fn new(batches: usize) -> Self {
        Self {
            seed: 7,
            batches,
            batch_size: 8,
            fail_at: None,
            empty_at: Vec::new(),
            share: (0, 1),
            short_at: Vec::new(),
        }
    }

    fn batch(&self, epoch: usize, index: usize) -> ToyBatch {
        let mut rng = SeededRng::derive(self.seed, &[epoch as u64, index as u64]);
        let a = [[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]];
        let c = [0.2, -0.4];
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..self.batch_size {
            let x: Vec<f32> = (0..IN).map(|_| rng.normal() as f32).collect();
            for (row, bias) in a.iter().zip(c) {
                let dot: f32 = row.iter().zip(&x).map(|(w, v)| w * v).sum();
                ys.push(dot + bias + 0.1 * rng.normal() as f32);
            }
            xs.extend(x);
        }
        let x = Tensor::from_vec(xs, (self.batch_size, IN), &Device::Cpu).unwrap();
        let y = Tensor::from_vec(ys, (self.batch_size, OUT), &Device::Cpu).unwrap();
        let (rank, world) = self.share;
        let rows = self.batch_size / world;
        (
            x.narrow(0, rank * rows, rows).unwrap(),
            y.narrow(0, rank * rows, rows).unwrap(),
        )
    }
}

impl BatchSource for ToySource {
    type Batch = ToyBatch;
    type Error = std::io::Error;

    fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn examples(&self, (x, _): &ToyBatch) -> Option<usize> {
        x.dim(0).ok()
    }

    fn epoch(
        &self,
        epoch: usize,
        skip_batches: usize,
    ) -> EpochBatches<'_, ToyBatch, std::io::Error> {
        Box::new((skip_batches..self.batches).map(move |i| {
            if self.fail_at == Some((epoch, i)) {
                return Err(std::io::Error::other(format!("corrupt batch {i}")));
            }
            if self.empty_at.contains(&(epoch, i)) {
                return Ok(None);
            }
            let (x, y) = self.batch(epoch, i);
            if self.short_at.contains(&(epoch, i)) {
                let n = x.dim(0).unwrap() - 1;
                return Ok(Some((
                    x.narrow(0, 0, n).unwrap(),
                    y.narrow(0, 0, n).unwrap(),
                )));
            }
            Ok(Some((x, y)))
        }))
    }
}
