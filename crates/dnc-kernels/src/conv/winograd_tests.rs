//! The Winograd path against a direct loop in `f64` (values and both gradients), and where it
//! applies. `conv/tests.rs` checks it through `conv2d` against candle in `f32`.

use super::*;
use dnc_core::SeededRng;

fn random(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = SeededRng::new(seed);
    (0..len).map(|_| rng.normal()).collect()
}

fn geometry(batch: usize, c: usize, o: usize, h: usize, w: usize) -> Conv2dGeometry {
    Conv2dGeometry::new(&[batch, c, h, w], &[o, c, 3, 3], 1, 1).unwrap()
}

/// `y[n][o][i][j] = Σ x[n][c][i + a − 1][j + b − 1] · w[o][c][a][b]` (zero outside).
fn direct(geo: &Conv2dGeometry, x: &[f64], w: &[f64]) -> Vec<f64> {
    let (c, o, h, wd) = (geo.in_channels, geo.out_channels, geo.in_h, geo.in_w);
    let mut y = vec![0.0; geo.batch * o * h * wd];
    for n in 0..geo.batch {
        for oc in 0..o {
            for i in 0..h {
                for j in 0..wd {
                    let mut acc = 0.0;
                    for ic in 0..c {
                        for a in 0..3 {
                            for b in 0..3 {
                                let (r, s) = (i + a, j + b);
                                if r == 0 || s == 0 || r > h || s > wd {
                                    continue;
                                }
                                acc += x[((n * c + ic) * h + r - 1) * wd + s - 1]
                                    * w[((oc * c + ic) * 3 + a) * 3 + b];
                            }
                        }
                    }
                    y[((n * o + oc) * h + i) * wd + j] = acc;
                }
            }
        }
    }
    y
}

#[track_caller]
fn assert_near(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() < 1e-9 * (1.0 + y.abs()),
            "{what}[{k}]: {x} vs {y}"
        );
    }
}

#[test]
fn values_and_gradients_match_a_direct_loop() {
    // One group; several groups with a partial last one; several weight slabs.
    for (batch, c, o, h, w) in [(2, 64, 16, 4, 6), (70, 64, 17, 4, 4), (9, 66, 16, 8, 8)] {
        let geo = geometry(batch, c, o, h, w);
        assert!(fits(&geo));
        let seed = (batch * 100 + c) as u64;
        let x = random(batch * c * h * w, seed);
        let wt = random(o * c * 9, seed + 1);
        let g = random(batch * o * h * w, seed + 2);
        let case = format!("batch {batch}, {c} -> {o} channels, {h}x{w}");
        assert_near(
            &format!("{case}: y"),
            &forward(&geo, &x, &wt),
            &direct(&geo, &x, &wt),
        );
        let (dx, dw) = backward(&geo, &x, &wt, &g, true, true);
        // L = Σ y·g is linear: dL/dx[k] = L(e_k)… computed by the direct loop's transpose.
        let mut dx_ref = vec![0.0; x.len()];
        let mut dw_ref = vec![0.0; wt.len()];
        for n in 0..batch {
            for oc in 0..o {
                for i in 0..h {
                    for j in 0..w {
                        let gv = g[((n * o + oc) * h + i) * w + j];
                        for ic in 0..c {
                            for a in 0..3 {
                                for b in 0..3 {
                                    let (r, s) = (i + a, j + b);
                                    if r == 0 || s == 0 || r > h || s > w {
                                        continue;
                                    }
                                    let xi = ((n * c + ic) * h + r - 1) * w + s - 1;
                                    let wi = ((oc * c + ic) * 3 + a) * 3 + b;
                                    dx_ref[xi] += gv * wt[wi];
                                    dw_ref[wi] += gv * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_near(&format!("{case}: dx"), &dx.unwrap(), &dx_ref);
        assert_near(&format!("{case}: dw"), &dw.unwrap(), &dw_ref);
        let (none_dx, only_dw) = backward(&geo, &x, &wt, &g, false, true);
        assert!(none_dx.is_none() && only_dw.is_some());
    }
}

#[test]
fn applies_to_same_size_3x3_convolutions_of_16_channels_or_more() {
    assert!(fits(&geometry(1, 64, 64, 32, 32)));
    assert!(fits(&geometry(1, 64, 16, 4, 4)));
    assert!(fits(&geometry(1, 512, 512, 4, 4)));
    assert!(
        !fits(&geometry(1, 3, 64, 32, 32)),
        "the 3-channel first layer"
    );
    assert!(!fits(&geometry(1, 32, 64, 16, 16)), "32 input channels");
    assert!(!fits(&geometry(1, 64, 8, 8, 8)), "8 output channels");
    assert!(!fits(&geometry(1, 64, 16, 5, 6)), "odd height");
    assert!(!fits(&geometry(1, 64, 16, 2, 2)), "2x2 maps");
    let strided = Conv2dGeometry::new(&[1, 64, 8, 8], &[16, 64, 3, 3], 2, 1).unwrap();
    assert!(!fits(&strided));
    let unpadded = Conv2dGeometry::new(&[1, 64, 8, 8], &[16, 64, 3, 3], 1, 0).unwrap();
    assert!(!fits(&unpadded));
}
