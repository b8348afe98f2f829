//! Tests of the two-view and evaluation mappers, alone and through the loader.

use std::sync::Arc;

use dnc_core::candle::Device;
use dnc_data::{Dataset, InMemory, Loader, LoaderConfig, stack_chw};
use image::{Rgb, RgbImage};

use super::*;

fn item(index: usize, label: Option<u32>) -> ImageItem {
    let image = RgbImage::from_fn(32, 32, |x, y| {
        Rgb([
            (x * 8) as u8,
            (y * 8) as u8,
            ((x + y + index as u32) * 4) as u8,
        ])
    });
    ImageItem {
        index,
        image,
        label,
    }
}

fn ctx(epoch: u64, index: usize) -> ItemContext {
    ItemContext {
        epoch,
        index,
        source_index: index,
    }
}

#[test]
fn views_come_from_the_documented_streams() {
    let m = TwoViewMapper::new(TwoViewConfig::cifar(), 42).unwrap();
    let it = item(3, Some(7));
    let out = m.map(it.clone(), ctx(2, 5)).unwrap();
    let cfg = TwoViewConfig::cifar();
    let v1 = augment_view(
        &it.image,
        &cfg.view1,
        &mut SeededRng::derive(42, &[2, 5, 0]),
    );
    let v2 = augment_view(
        &it.image,
        &cfg.view2,
        &mut SeededRng::derive(42, &[2, 5, 1]),
    );
    assert_eq!((out.view1, out.view2), (v1, v2));
    assert_eq!((out.label, out.index), (Some(7), 3));
}

#[test]
fn views_differ_across_views_epochs_items_and_seeds() {
    let m = TwoViewMapper::new(TwoViewConfig::cifar(), 1).unwrap();
    let base = m.map(item(0, None), ctx(0, 0)).unwrap();
    assert_eq!(base, m.map(item(0, None), ctx(0, 0)).unwrap());
    assert_ne!(base.view1, base.view2);
    assert_ne!(base.view1, m.map(item(0, None), ctx(1, 0)).unwrap().view1);
    assert_ne!(base.view1, m.map(item(0, None), ctx(0, 1)).unwrap().view1);
    let other = TwoViewMapper::new(TwoViewConfig::cifar(), 2).unwrap();
    assert_ne!(
        base.view1,
        other.map(item(0, None), ctx(0, 0)).unwrap().view1
    );
}

#[test]
fn loader_batches_match_for_any_worker_count_and_stack() {
    let data = Arc::new(InMemory::new(
        (0..10).map(|i| item(i, Some(i as u32 % 3))).collect(),
    ));
    let mapper = Arc::new(TwoViewMapper::new(TwoViewConfig::cifar(), 9).unwrap());
    let run = |workers| {
        let cfg = LoaderConfig {
            batch_size: 4,
            workers,
            drop_last: true,
            ..Default::default()
        };
        let loader = Loader::new(data.clone(), mapper.clone(), cfg).unwrap();
        loader.epoch(1, 0).map(Result::unwrap).collect::<Vec<_>>()
    };
    let inline = run(0);
    assert_eq!(inline, run(2));
    assert_eq!(inline.len(), 2);
    let batch = &inline[0];
    let x = stack_chw(
        batch.items.iter().map(|t| &t.view1),
        (3, 32, 32),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(x.dims(), &[4, 3, 32, 32]);
    let first: Vec<f32> = x.get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(first, batch.items[0].view1);
    // The item at position k of the batch is dataset item indices[k], with its own stream.
    let k = batch.indices[1];
    let direct = mapper.map(data.get(k).unwrap(), ctx(1, k)).unwrap();
    assert_eq!(batch.items[1], direct);
}

#[test]
fn eval_mapper_applies_the_eval_transform() {
    let m = EvalMapper::new(EvalConfig::cifar()).unwrap();
    let it = item(4, Some(1));
    let out = m.map(it.clone(), ctx(0, 4)).unwrap();
    let c = EvalConfig::cifar();
    assert_eq!(out.image, eval_transform(&it.image, 32, 32, c.mean, c.std));
    assert_eq!((out.label, out.index), (Some(1), 4));
    // Epochs do not matter.
    assert_eq!(out, m.map(it, ctx(9, 4)).unwrap());
}

#[test]
fn bad_configs_and_empty_images_are_errors() {
    let mut cfg = TwoViewConfig::cifar();
    cfg.view1.grayscale_p = 2.0;
    let e = TwoViewMapper::new(cfg, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid view1.grayscale_p = 2.0: must be in [0, 1]"
    );
    assert!(
        EvalMapper::new(EvalConfig {
            crop: 0,
            ..EvalConfig::cifar()
        })
        .is_err()
    );
    let empty = ImageItem {
        index: 6,
        image: RgbImage::new(0, 0),
        label: None,
    };
    let m = TwoViewMapper::new(TwoViewConfig::cifar(), 0).unwrap();
    let e = m.map(empty.clone(), ctx(0, 2)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "transform of item 2 failed: image 6 has no pixels (0x0)"
    );
    let e = EvalMapper::new(EvalConfig::cifar())
        .unwrap()
        .map(empty, ctx(0, 2))
        .unwrap_err();
    assert!(e.to_string().contains("no pixels"));
}

#[test]
fn tiny_huge_and_extreme_aspect_images_give_views_of_the_configured_size() {
    let m = TwoViewMapper::new(TwoViewConfig::cifar(), 0).unwrap();
    let e = EvalMapper::new(EvalConfig::cifar()).unwrap();
    for (w, h) in [(1, 1), (1, 700), (900, 2), (4000, 3000)] {
        let it = ImageItem {
            index: 3,
            image: RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 9])),
            label: None,
        };
        for epoch in 0..3 {
            let views = m.map(it.clone(), ctx(epoch, 3)).unwrap();
            assert_eq!(views.view1.len(), 3 * 32 * 32, "{w}x{h}");
            assert_eq!(views.view2.len(), 3 * 32 * 32, "{w}x{h}");
            assert!(
                views
                    .view1
                    .iter()
                    .chain(&views.view2)
                    .all(|v| v.is_finite())
            );
        }
        let out = e.map(it, ctx(0, 3)).unwrap();
        assert_eq!(out.image.len(), 3 * 32 * 32, "{w}x{h}");
    }
}

#[test]
fn decode_sizes_keep_every_crop_at_the_output_resolution() {
    use crate::ops::sample_crop_box;
    let m = TwoViewMapper::new(TwoViewConfig::cifar(), 9).unwrap();
    let (w, h) = (500u32, 375u32);
    let mut reduced = 0;
    for i in 0..200 {
        let c = ctx(1, i);
        let (dw, dh) = m.decode_size(c, w, h);
        assert!(dw <= w && dh <= h, "{dw}x{dh}");
        // Same aspect ratio, rounded up.
        assert!((f64::from(dw) / f64::from(dh) - 500.0 / 375.0).abs() < 0.05);
        reduced += usize::from(dw < w);
        for v in 0..2u64 {
            let mut rng = SeededRng::derive(9, &[1, i as u64, v]);
            let crop = sample_crop_box(w, h, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut rng);
            let scale = f64::from(dw) / f64::from(w);
            assert!(
                f64::from(crop.width) * scale >= 32.0 - 1e-9
                    && f64::from(crop.height) * scale >= 32.0 - 1e-9,
                "view {v} of item {i}: crop {crop:?} at scale {scale}"
            );
        }
    }
    assert!(
        reduced > 150,
        "only {reduced} of 200 could be decoded smaller"
    );
    // An image no larger than its views is needed whole.
    assert_eq!(m.decode_size(ctx(0, 0), 32, 32), (32, 32));
    assert_eq!(m.decode_size(ctx(0, 0), 20, 40), (20, 40));

    let e = EvalMapper::new(EvalConfig::cifar()).unwrap();
    assert_eq!(e.decode_size(ctx(0, 0), 500, 375), (43, 32));
    assert_eq!(e.decode_size(ctx(0, 0), 375, 500), (32, 43));
    assert_eq!(e.decode_size(ctx(0, 0), 16, 16), (16, 16));
}
