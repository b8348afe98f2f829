use super::*;
use crate::LocalGroup;

/// Rank `r`'s input: `[rows, 2]` values that differ between ranks.
fn input(rank: usize, rows: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * 2)
        .map(|i| (rank * 10 + i) as f32 * 0.25 - 1.0)
        .collect();
    Tensor::from_vec(v, (rows, 2), &Device::Cpu).unwrap()
}

/// A per-rank weighting of the collective's output, so every rank's loss differs.
fn weights(rank: usize, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| 1.0 + (rank + 2 * i) as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn all_reduce_sum_adds_every_rank_and_sends_every_gradient_back() {
    let world = 3;
    let out = LocalGroup::run(world, move |comm| {
        let x = Var::from_tensor(&input(comm.rank(), 2)).unwrap();
        let y = all_reduce_sum(x.as_tensor(), &comm).unwrap();
        let loss = (&y * weights(comm.rank(), y.dims()))
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        (y.to_vec2::<f32>().unwrap(), g)
    });
    let expected_y = (0..world)
        .map(|r| input(r, 2))
        .reduce(|a, b| (a + b).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // d(Σ_s L_s)/dx_r = Σ_s w_s, the same on every rank.
    let expected_g = (0..world)
        .map(|r| weights(r, &[2, 2]))
        .reduce(|a, b| (a + b).unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (y, g) in out {
        assert_eq!(y, expected_y);
        assert_eq!(g, expected_g);
    }
}

#[test]
fn all_gather_rows_stacks_in_rank_order_and_returns_each_rank_its_rows() {
    let world = 2;
    let out = LocalGroup::run(world, move |comm| {
        let x = Var::from_tensor(&input(comm.rank(), 3)).unwrap();
        let y = all_gather_rows(x.as_tensor(), &comm).unwrap();
        let loss = (&y * weights(comm.rank(), y.dims()))
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        (y.to_vec2::<f32>().unwrap(), g)
    });
    let stacked = Tensor::cat(&[input(0, 3), input(1, 3)], 0).unwrap();
    let w_sum = (weights(0, &[6, 2]) + weights(1, &[6, 2])).unwrap();
    for (rank, (y, g)) in out.into_iter().enumerate() {
        assert_eq!(y, stacked.to_vec2::<f32>().unwrap());
        let rows = w_sum.narrow(0, rank * 3, 3).unwrap();
        assert_eq!(g, rows.to_vec2::<f32>().unwrap());
    }
}

#[test]
fn collectives_in_f64_and_errors_for_other_types() {
    let out = LocalGroup::run(2, |comm| {
        let x = Tensor::new(&[comm.rank() as f64 + 0.5], &Device::Cpu).unwrap();
        let sum = all_reduce_sum(&x, &comm).unwrap().to_vec1::<f64>().unwrap();
        let ints = Tensor::new(&[1u32], &Device::Cpu).unwrap();
        let err = all_reduce_sum(&ints, &comm).unwrap_err().to_string();
        (sum, err)
    });
    for (sum, err) in out {
        assert_eq!(sum, vec![2.0]);
        assert!(err.contains("got U32"), "{err}");
    }
}

#[test]
fn average_gradients_takes_the_mean_over_ranks() {
    let out = LocalGroup::run(2, |comm| {
        let a = Var::from_tensor(&input(comm.rank(), 2)).unwrap();
        let b = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let unused = Var::new(&[7f32], &Device::Cpu).unwrap();
        let scale = (comm.rank() + 1) as f64;
        let loss = ((a.as_tensor().sqr().unwrap().sum_all().unwrap()
            + b.as_tensor().sum_all().unwrap())
        .unwrap()
            * scale)
            .unwrap();
        let mut grads = loss.backward().unwrap();
        let params = vec![
            ("a".to_string(), a.clone()),
            ("unused".to_string(), unused.clone()),
            ("b".to_string(), b.clone()),
        ];
        average_gradients(&mut grads, &params, &*comm).unwrap();
        (
            grads.get(a.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            grads.get(unused.as_tensor()).is_none(),
        )
    });
    // d/da of scale·a² is 2·scale·a; the mean over ranks of 2·1·a0 and 2·2·a1.
    let expected_a = ((input(0, 2) * 2.0).unwrap() + (input(1, 2) * 4.0).unwrap())
        .unwrap()
        .affine(0.5, 0.0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (ga, gb, unused_has_none) in out {
        assert_eq!(ga, expected_a);
        assert_eq!(gb, vec![1.5, 1.5]);
        assert!(unused_has_none);
    }
}

#[test]
fn a_gradient_on_some_ranks_only_reaches_every_rank_as_the_mean() {
    let out = LocalGroup::run(2, |comm| {
        let head = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let other = Var::new(&[3f32], &Device::Cpu).unwrap();
        // Only rank 1 uses `head` (its share had the head's images).
        let mut loss = (other.as_tensor().sum_all().unwrap() * 2.0).unwrap();
        if comm.rank() == 1 {
            loss = (loss + (head.as_tensor() * 4.0).unwrap().sum_all().unwrap()).unwrap();
        }
        let mut grads = loss.backward().unwrap();
        let params = vec![
            ("head".to_string(), head.clone()),
            ("other".to_string(), other.clone()),
        ];
        average_gradients(&mut grads, &params, &*comm).unwrap();
        let h = grads
            .get(head.as_tensor())
            .map(|g| g.to_vec1::<f32>().unwrap());
        (
            h,
            grads
                .get(other.as_tensor())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        )
    });
    for (head, other) in out {
        // (0 + 4) / 2 on both ranks, the one without a gradient of its own included.
        assert_eq!(head, Some(vec![2.0, 2.0]));
        assert_eq!(other, vec![2.0]);
    }
}

#[test]
fn agree_names_the_disagreement() {
    let out = LocalGroup::run(2, |comm| {
        let same = agree(&*comm, "the step", 7.0).is_ok();
        let differ = agree(&*comm, "the step", comm.rank() as f64)
            .unwrap_err()
            .to_string();
        (same, differ)
    });
    for (same, differ) in out {
        assert!(same);
        assert!(
            differ.contains("disagree on the step: [0.0, 1.0]"),
            "{differ}"
        );
    }
}

#[test]
fn one_rank_is_the_identity() {
    let comm: Arc<dyn Communicator> = Arc::new(crate::Solo);
    let x = input(0, 2);
    assert_eq!(
        all_gather_rows(&x, &comm)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        x.to_vec2::<f32>().unwrap()
    );
    assert_eq!(mean_over_ranks(&*comm, &[1.5]).unwrap(), vec![1.5]);
}
