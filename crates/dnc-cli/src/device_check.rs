//! `dnc device-check`: the same computations on the CPU and on a device, compared.
//!
//! Checks (each with a relative tolerance, `max |device − cpu| / max(1, max |cpu|)`):
//! - a ResNet-18 (CIFAR stem) + projector forward in training mode and the backward pass to
//!   every parameter, in f32 and with bf16 mixed precision (against the f32 CPU result);
//! - the MoCLR loss and its gradients with respect to the online projections;
//! - k-means assignments and inertia on fixed data.
//!
//! Then it times one convolution layer's forward + backward on the device, candle's own
//! `conv2d` against `dnc_kernels::conv2d`. With `--device cpu` every comparison is CPU against
//! CPU: a dry run of the whole command where no GPU exists. The last line of stdout is one JSON
//! object; the exit status is non-zero if any check fails.

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use clap::Args;
use dnc_core::{DeviceSpec, SeededRng, SeededVarMap, l2_normalize};
use dnc_models::{Arch, BackboneConfig, Encoder, EncoderConfig, Precision, ProjectorConfig, Stem};
use dnc_objectives::ObjectiveConfig;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct DeviceCheckArgs {
    /// The device compared with the CPU (`cpu` compares the CPU with itself).
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// Images in the parity batch (32×32).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Images in the timed convolution (64 → 64 channels, 3×3, 32×32).
    #[arg(long, default_value_t = 256)]
    conv_batch: usize,
    /// Timed repetitions of the convolution (after one untimed).
    #[arg(long, default_value_t = 5)]
    conv_reps: usize,
}

/// One parity comparison.
struct Check {
    name: &'static str,
    error: f64,
    tolerance: f64,
}

impl Check {
    fn passed(&self) -> bool {
        self.error.is_finite() && self.error <= self.tolerance
    }
}

pub(crate) fn run(a: DeviceCheckArgs) -> Result<()> {
    let device = a.device.open()?;
    let cpu = Device::Cpu;
    let mut checks = Vec::new();
    let (out_cpu, grads_cpu) = resnet_pass(&cpu, a.batch, Precision::F32)?;
    for precision in [Precision::F32, Precision::Bf16] {
        // bf16 on the device is compared with f32 on the CPU, so the tolerances are bf16's:
        // through 20 train-mode BatchNorms, bf16 rounding moves the first layers' gradients by
        // tens of percent (PyTorch's CPU autocast on this network and batch: up to 0.43 of a
        // tensor's largest entry). bf16 gradients are therefore checked as a whole, by
        // `‖Δ‖ / ‖cpu‖` over all of them: garbage or zero gradients give 1 or more.
        let (fwd_tol, bwd_tol) = match precision {
            Precision::F32 => (1e-3, 1e-3),
            Precision::Bf16 => (5e-2, 0.5),
        };
        let (out, grads) = resnet_pass(&device, a.batch, precision)?;
        let tag = matches!(precision, Precision::Bf16);
        checks.push(Check {
            name: if tag {
                "resnet18 forward (bf16)"
            } else {
                "resnet18 forward"
            },
            error: rel_error(&out, &out_cpu)?,
            tolerance: fwd_tol,
        });
        checks.push(Check {
            name: if tag {
                "resnet18 backward (bf16)"
            } else {
                "resnet18 backward"
            },
            error: match precision {
                Precision::F32 => max_rel_error(&grads, &grads_cpu)?,
                Precision::Bf16 => norm_rel_error(&grads, &grads_cpu)?,
            },
            tolerance: bwd_tol,
        });
    }
    let (loss_cpu, loss_grads_cpu) = moclr_pass(&cpu)?;
    let (loss, loss_grads) = moclr_pass(&device)?;
    checks.push(Check {
        name: "moclr loss",
        error: rel_error(&loss, &loss_cpu)?,
        tolerance: 1e-4,
    });
    checks.push(Check {
        name: "moclr gradients",
        error: max_rel_error(&loss_grads, &loss_grads_cpu)?,
        tolerance: 1e-3,
    });
    checks.extend(kmeans_checks(&device)?);
    let conv = time_conv(&device, a.conv_batch, a.conv_reps)?;
    report(&device, &checks, &conv)
}

/// Features `[B, 512]` of a seeded ResNet-18 + projector on a seeded batch, and the gradients of
/// `Σ z·g` (fixed `g`) with respect to every parameter, all moved to the CPU.
fn resnet_pass(
    device: &Device,
    batch: usize,
    precision: Precision,
) -> Result<(Tensor, Vec<Tensor>)> {
    let cfg = EncoderConfig {
        backbone: BackboneConfig {
            arch: Arch::Resnet18,
            stem: Stem::Cifar,
            ..BackboneConfig::default()
        },
        projector: ProjectorConfig {
            hidden: 512,
            out: 128,
            final_bn: false,
        },
        precision,
    };
    let map = SeededVarMap::new(11);
    let encoder = Encoder::new(&cfg, map.var_builder(DType::F32, device))?;
    let x = seeded(1, &[batch, 3, 32, 32], device)?;
    let out = encoder.forward_t(&x, true)?;
    let g = seeded(2, out.z.dims(), device)?;
    let grads = (&out.z * &g)?.sum_all()?.backward()?;
    let mut params = dnc_core::trainable_parameters(map.varmap());
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let grads = params
        .iter()
        .map(|(name, var)| {
            grads
                .get(var.as_tensor())
                .with_context(|| format!("no gradient for {name}"))?
                .to_device(&Device::Cpu)
                .map_err(Into::into)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out.features.to_device(&Device::Cpu)?, grads))
}

/// The MoCLR loss on seeded projections, and its gradients with respect to both online views.
fn moclr_pass(device: &Device) -> Result<(Tensor, Vec<Tensor>)> {
    let dims = [64, 128];
    let q1 = Var::from_tensor(&seeded(3, &dims, device)?)?;
    let q2 = Var::from_tensor(&seeded(4, &dims, device)?)?;
    let k1 = l2_normalize(&seeded(5, &dims, device)?)?;
    let k2 = l2_normalize(&seeded(6, &dims, device)?)?;
    let (n1, n2) = (l2_normalize(q1.as_tensor())?, l2_normalize(q2.as_tensor())?);
    let loss = ObjectiveConfig::default().loss((&n1, &n2), Some((&k1, &k2)))?;
    let grads = loss.backward()?;
    let grads = [&q1, &q2]
        .iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .context("no gradient for an online projection")?
                .to_device(&Device::Cpu)
                .map_err(Into::into)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((loss.to_device(&Device::Cpu)?, grads))
}

/// k-means on four well-separated seeded blobs: assignments must agree exactly and the inertia
/// closely.
fn kmeans_checks(device: &Device) -> Result<Vec<Check>> {
    let (n, d, k) = (4000, 32, 4);
    let mut rng = SeededRng::new(7);
    let centres: Vec<f64> = (0..k * d).map(|_| 4.0 * rng.normal()).collect();
    let values: Vec<f32> = (0..n * d)
        .map(|i| (centres[(i / d % k) * d + i % d] + rng.normal()) as f32)
        .collect();
    let data = Tensor::from_vec(values, (n, d), &Device::Cpu)?;
    let cfg = dnc_cluster::KMeansConfig {
        n_clusters: k,
        max_iter: 20,
        ..dnc_cluster::KMeansConfig::default()
    };
    let on_cpu = dnc_cluster::fit(&data, &cfg)?;
    let on_device = dnc_cluster::fit(&data.to_device(device)?, &cfg)?;
    let differ = on_cpu
        .assignments
        .iter()
        .zip(&on_device.assignments)
        .filter(|(a, b)| a != b)
        .count();
    let (i_cpu, i_dev) = (on_cpu.model.inertia, on_device.model.inertia);
    Ok(vec![
        Check {
            name: "kmeans assignments (fraction differing)",
            error: differ as f64 / n as f64,
            tolerance: 0.0,
        },
        Check {
            name: "kmeans inertia",
            error: (i_dev - i_cpu).abs() / i_cpu.abs().max(1.0),
            tolerance: 1e-4,
        },
    ])
}

/// Milliseconds per forward + backward of a 64 → 64, 3×3 convolution on `[batch, 64, 32, 32]`:
/// `(candle's conv2d, dnc_kernels::conv2d)`, medians over `reps`.
fn time_conv(device: &Device, batch: usize, reps: usize) -> Result<(f64, f64)> {
    let x = Var::from_tensor(&seeded(8, &[batch, 64, 32, 32], device)?)?;
    let w = Var::from_tensor(&seeded(9, &[64, 64, 3, 3], device)?)?;
    let time = |conv: &dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>| -> Result<f64> {
        let mut times = Vec::with_capacity(reps);
        for rep in 0..=reps {
            let start = Instant::now();
            let y = conv(x.as_tensor(), w.as_tensor())?;
            let grads = y.sum_all()?.backward()?;
            // Reading a value back waits for the device to finish.
            let dx = grads.get(x.as_tensor()).context("no input gradient")?;
            dx.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if rep > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let candle = time(&|x, w| x.conv2d(w, 1, 1, 1, 1))?;
    let ours = time(&|x, w| dnc_kernels::conv2d(x, w, 1, 1))?;
    Ok((candle, ours))
}

fn report(device: &Device, checks: &[Check], conv: &(f64, f64)) -> Result<()> {
    let name = format!("{device:?}");
    println!("| check ({name} vs cpu) | error | tolerance | result |");
    println!("|---|---|---|---|");
    for c in checks {
        let verdict = if c.passed() { "pass" } else { "FAIL" };
        println!(
            "| {} | {:.2e} | {:.0e} | {verdict} |",
            c.name, c.error, c.tolerance
        );
    }
    println!(
        "conv 64→64 3×3 forward+backward on {name}: candle {:.2} ms, dnc {:.2} ms ({:.2}× faster)",
        conv.0,
        conv.1,
        conv.0 / conv.1
    );
    let json = serde_json::json!({
        "device": name,
        "checks": checks.iter().map(|c| serde_json::json!({
            "name": c.name, "error": c.error, "tolerance": c.tolerance, "passed": c.passed(),
        })).collect::<Vec<_>>(),
        "conv_ms": { "candle": conv.0, "dnc": conv.1 },
    });
    println!("{json}");
    if let Some(failed) = checks.iter().find(|c| !c.passed()) {
        bail!(
            "device check failed: {} differs by {:e} (tolerance {:e})",
            failed.name,
            failed.error,
            failed.tolerance
        )
    }
    Ok(())
}

/// Standard-normal values from a seeded stream, as an f32 tensor on `device`.
fn seeded(seed: u64, dims: &[usize], device: &Device) -> Result<Tensor> {
    let mut rng = SeededRng::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?.to_device(device)?)
}

/// `max |a − b| / max(1, max |b|)`.
fn rel_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let diff = dnc_core::testing::max_abs_diff(a, b)?;
    let scale = b
        .to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?;
    Ok(diff / scale.max(1.0))
}

/// The largest [`rel_error`] over pairs of tensors.
fn max_rel_error(a: &[Tensor], b: &[Tensor]) -> Result<f64> {
    if a.len() != b.len() {
        bail!("{} tensors against {}", a.len(), b.len())
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| rel_error(x, y))
        .try_fold(0f64, |m, e| Ok(m.max(e?)))
}

/// `‖a − b‖ / ‖b‖` over all pairs of tensors taken as one vector.
fn norm_rel_error(a: &[Tensor], b: &[Tensor]) -> Result<f64> {
    if a.len() != b.len() {
        bail!("{} tensors against {}", a.len(), b.len())
    }
    let (mut diff, mut norm) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.to_dtype(DType::F64)?, y.to_dtype(DType::F64)?);
        diff += (&x - &y)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        norm += y.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok((diff / norm.max(f64::MIN_POSITIVE)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_against_cpu_passes_every_check() -> Result<()> {
        run(DeviceCheckArgs {
            device: "cpu".parse()?,
            batch: 16,
            conv_batch: 2,
            conv_reps: 1,
        })
    }

    #[test]
    fn a_real_difference_fails_the_check() -> Result<()> {
        let a = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
        let b = Tensor::new(&[1f32, 2.0, 3.1], &Device::Cpu)?;
        let e = rel_error(&a, &b)?;
        assert!((e - 0.1 / 3.1).abs() < 1e-6, "{e}");
        let check = Check {
            name: "x",
            error: e,
            tolerance: 1e-3,
        };
        assert!(!check.passed());
        let nan = Check {
            name: "nan",
            error: f64::NAN,
            tolerance: 1.0,
        };
        assert!(!nan.passed());
        let zeros = [a.zeros_like()?];
        assert_eq!(norm_rel_error(&zeros, std::slice::from_ref(&b))?, 1.0);
        Ok(())
    }
}
