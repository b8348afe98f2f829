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
