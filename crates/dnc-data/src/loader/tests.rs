//! Tests of the loader: determinism across worker counts, resumption, drop_last, early drop,
//! error propagation and skipped items.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dnc_core::SeededRng;

use super::*;
use crate::{ItemContext, Subset};

/// `0..n`, counting every `get` and leaving out the listed indices.
struct Counting {
    n: usize,
    gets: AtomicUsize,
    skip: Vec<usize>,
}

impl Counting {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            n,
            gets: AtomicUsize::new(0),
            skip: Vec::new(),
        })
    }
}

impl Dataset for Counting {
    type Item = usize;
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, index: usize) -> Result<usize, DataError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if self.skip.contains(&index) {
            return Err(DataError::Skipped {
                index,
                path: format!("item-{index}").into(),
                message: "marked corrupt".into(),
            });
        }
        Ok(index)
    }
}

/// An augmentation-like mapper: a value drawn from `(seed, epoch, index)`, with a random short
/// sleep so that workers finish out of order.
#[allow(clippy::type_complexity)]
fn noisy(seed: u64) -> Arc<impl Fn(usize, ItemContext) -> Result<(usize, u64), DataError>> {
    Arc::new(move |x: usize, ctx: ItemContext| {
        let mut rng = SeededRng::derive(seed, &[ctx.epoch, ctx.index as u64]);
        std::thread::sleep(Duration::from_micros(rng.below(300)));
        Ok((x, rng.next_u64()))
    })
}

fn config(batch_size: usize, workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle: true,
        shuffle_buffer: 0,
        drop_last: false,
        seed: 11,
        workers,
        prefetch_batches: 2,
    }
}

fn collect<T>(it: impl Iterator<Item = Result<Batch<T>, DataError>>) -> Vec<Batch<T>> {
    it.map(Result::unwrap).collect()
}

#[test]
fn batches_are_identical_for_0_1_and_3_workers() {
    let reference = {
        let loader = Loader::new(Counting::new(23), noisy(5), config(4, 0)).unwrap();
        collect(loader.epoch(3, 0))
    };
    assert_eq!(reference.len(), 6);
    for workers in [1, 3] {
        let loader = Loader::new(Counting::new(23), noisy(5), config(4, workers)).unwrap();
        assert_eq!(
            collect(loader.epoch(3, 0)),
            reference,
            "workers = {workers}"
        );
    }
    // Every index is served exactly once, items match their indices, batch indices count up.
    let mut served: Vec<usize> = reference.iter().flat_map(|b| b.indices.clone()).collect();
    served.sort_unstable();
    assert_eq!(served, (0..23).collect::<Vec<_>>());
    for (k, b) in reference.iter().enumerate() {
        assert_eq!((b.batch_index, b.epoch), (k, 3));
        assert_eq!(b.items.iter().map(|it| it.0).collect::<Vec<_>>(), b.indices);
        assert_eq!(b.source_indices, b.indices);
    }
}

#[test]
fn order_depends_on_seed_and_epoch_only() {
    let loader = Loader::new(Counting::new(50), noisy(0), config(8, 0)).unwrap();
    let again = Loader::new(Counting::new(50), noisy(9), config(8, 2)).unwrap();
    assert_eq!(loader.epoch_order(4), again.epoch_order(4));
    assert_ne!(loader.epoch_order(4), loader.epoch_order(5));
    let mut sorted = loader.epoch_order(4);
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    let other_seed = Loader::new(
        Counting::new(50),
        noisy(0),
        LoaderConfig {
            seed: 12,
            ..config(8, 0)
        },
    )
    .unwrap();
    assert_ne!(loader.epoch_order(4), other_seed.epoch_order(4));
    let plain = Loader::new(
        Counting::new(10),
        noisy(0),
        LoaderConfig {
            shuffle: false,
            ..config(4, 0)
        },
    )
    .unwrap();
    assert_eq!(
        plain.batch_plan(7),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
}

#[test]
fn skipping_batches_equals_dropping_them_and_loads_nothing_skipped() {
    for workers in [0, 3] {
        let full = Loader::new(Counting::new(30), noisy(1), config(4, workers)).unwrap();
        let all = collect(full.epoch(2, 0));
        let data = Counting::new(30);
        let resumed = Loader::new(data.clone(), noisy(1), config(4, workers)).unwrap();
        let tail = collect(resumed.epoch(2, 5));
        assert_eq!(tail, all[5..].to_vec(), "workers = {workers}");
        assert_eq!(tail[0].batch_index, 5);
        // 8 batches; the last 3 hold 4 + 4 + 2 items; nothing else was read.
        assert_eq!(data.gets.load(Ordering::SeqCst), 10, "workers = {workers}");
        assert_eq!(resumed.epoch(2, 8).count(), 0);
        let mut past = resumed.epoch(2, 9);
        assert!(past.next().unwrap().unwrap_err().is_parameter_error());
        assert!(past.next().is_none());
    }
}

#[test]
fn drop_last_controls_the_final_partial_batch() {
    let keep = Loader::new(Counting::new(10), noisy(0), config(4, 0)).unwrap();
    let sizes: Vec<_> = collect(keep.epoch(0, 0)).iter().map(Batch::len).collect();
    assert_eq!((keep.batches_per_epoch(), sizes), (3, vec![4, 4, 2]));
    let drop = Loader::new(
        Counting::new(10),
        noisy(0),
        LoaderConfig {
            drop_last: true,
            ..config(4, 2)
        },
    )
    .unwrap();
    let batches = collect(drop.epoch(0, 0));
    assert_eq!(drop.batches_per_epoch(), 2);
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        vec![4, 4]
    );
    // The dropped items are the last two of the epoch's order.
    let order = drop.epoch_order(0);
    let served: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(served, order[..8].to_vec());
    // Not enough items for one full batch is an error naming the sizes.
    let e = Loader::new(
        Counting::new(3),
        noisy(0),
        LoaderConfig {
            drop_last: true,
            ..config(4, 0)
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("batch_size = 4") && e.to_string().contains("3 items"),
        "{e}"
    );
}

#[test]
fn dropping_the_iterator_early_stops_the_workers_without_hanging() {
    let data = Counting::new(10_000);
    let slow = Arc::new(|x: usize, _: ItemContext| {
        std::thread::sleep(Duration::from_millis(1));
        Ok::<_, DataError>(x)
    });
    let loader = Loader::new(data.clone(), slow, config(16, 3)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut epoch = loader.epoch(0, 0);
        let first = epoch.next().unwrap().unwrap();
        drop(epoch);
        tx.send(first.len()).unwrap();
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("dropping the epoch iterator hung");
    assert_eq!(first, 16);
    // At most the consumed batch, the prefetched ones and one item per worker were read.
    let gets = data.gets.load(Ordering::SeqCst);
    assert!(gets <= 16 * 3 + 3, "{gets} items were read");
}

#[test]
fn errors_propagate_and_end_the_epoch() {
    let failing = Arc::new(|x: usize, ctx: ItemContext| {
        if x == 13 {
            return Err(DataError::transform(ctx.index, "cannot map 13"));
        }
        Ok(x)
    });
    for workers in [0, 1, 3] {
        let cfg = LoaderConfig {
            shuffle: false,
            ..config(5, workers)
        };
        let loader = Loader::new(Counting::new(40), failing.clone(), cfg).unwrap();
        let results: Vec<_> = loader.epoch(0, 0).collect();
        assert_eq!(results.len(), 3, "workers = {workers}");
        assert!(results[0].is_ok() && results[1].is_ok());
        let e = results[2].as_ref().unwrap_err();
        assert_eq!(e.to_string(), "transform of item 13 failed: cannot map 13");
    }
}

#[test]
fn a_panicking_mapper_becomes_an_error() {
    let panicking = Arc::new(|x: usize, _: ItemContext| -> Result<usize, DataError> {
        assert!(x != 6, "mapper broke on six");
        Ok(x)
    });
    for workers in [0, 2] {
        let cfg = LoaderConfig {
            shuffle: false,
            ..config(4, workers)
        };
        let loader = Loader::new(Counting::new(12), panicking.clone(), cfg).unwrap();
        let results: Vec<_> = loader.epoch(0, 0).collect();
        assert_eq!(results.len(), 2);
        match &results[1] {
            Err(DataError::WorkerPanicked { index: 6, message }) => {
                assert!(message.contains("mapper broke on six"), "{message}")
            }
            other => panic!("expected WorkerPanicked, got {other:?}"),
        }
    }
}

#[test]
fn skipped_items_leave_their_batch_and_are_reported() {
    let mut reference = None;
    for workers in [0, 3] {
        let data = Arc::new(Counting {
            n: 12,
            gets: AtomicUsize::new(0),
            skip: vec![1, 4, 5, 6, 7],
        });
        let cfg = LoaderConfig {
            shuffle: false,
            ..config(4, workers)
        };
        let loader = Loader::new(data, noisy(2), cfg).unwrap();
        let batches = collect(loader.epoch(0, 0));
        // Batch 1 (items 4..8) is entirely skipped and not yielded; batch indices keep their place.
        assert_eq!(
            batches.iter().map(|b| b.batch_index).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!(batches[0].indices, vec![0, 2, 3]);
        assert_eq!(batches[0].skipped, vec![1]);
        assert_eq!(batches[1].indices, vec![8, 9, 10, 11]);
        match &reference {
            None => reference = Some(batches),
            Some(r) => assert_eq!(&batches, r),
        }
    }
}

#[test]
fn subsets_report_original_indices() {
    let base = Counting::new(20);
    let subset = Arc::new(Subset::new(base, vec![15, 3, 8, 11, 0]).unwrap());
    let cfg = LoaderConfig {
        shuffle: false,
        ..config(2, 2)
    };
    let loader = Loader::new(subset, noisy(3), cfg).unwrap();
    let batches = collect(loader.epoch(0, 0));
    let positions: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    let sources: Vec<usize> = batches
        .iter()
        .flat_map(|b| b.source_indices.clone())
        .collect();
    let items: Vec<usize> = batches
        .iter()
        .flat_map(|b| b.items.iter().map(|it| it.0))
        .collect();
    assert_eq!(positions, vec![0, 1, 2, 3, 4]);
    assert_eq!(sources, vec![15, 3, 8, 11, 0]);
    assert_eq!(items, sources);
}

/// Items of a 1000 × 600 "image" that report the size they were asked to decode at.
struct Sized;

impl Dataset for Sized {
    type Item = (u32, u32);
    fn len(&self) -> usize {
        6
    }
    fn get(&self, _: usize) -> Result<(u32, u32), DataError> {
        Ok((1000, 600))
    }
    fn get_sized(&self, _: usize, want: crate::SizeRequest<'_>) -> Result<(u32, u32), DataError> {
        Ok(want(1000, 600))
    }
}

/// A mapper that needs a tenth of the image in epoch 0 and a fifth in the others, plus the index.
struct NeedsLess;

impl Mapper<(u32, u32)> for NeedsLess {
    type Output = (u32, u32);
    fn map(&self, item: (u32, u32), _: ItemContext) -> Result<(u32, u32), DataError> {
        Ok(item)
    }
    fn decode_size(&self, ctx: ItemContext, width: u32, height: u32) -> (u32, u32) {
        let d = if ctx.epoch == 0 { 10 } else { 5 };
        (width / d + ctx.index as u32, height / d)
    }
}

#[test]
fn the_loader_asks_the_dataset_for_the_mappers_decode_size() {
    for workers in [0, 2] {
        let cfg = LoaderConfig {
            batch_size: 3,
            workers,
            shuffle: false,
            ..Default::default()
        };
        let loader = Loader::new(
            Arc::new(Subset::new(Arc::new(Sized), vec![5, 1, 0, 2, 3, 4]).unwrap()),
            Arc::new(NeedsLess),
            cfg,
        )
        .unwrap();
        for epoch in [0u64, 1] {
            let items: Vec<(u32, u32)> = loader
                .epoch(epoch, 0)
                .flat_map(|b| b.unwrap().items)
                .collect();
            let d = if epoch == 0 { 10 } else { 5 };
            let expected: Vec<(u32, u32)> = (0..6).map(|i| (1000 / d + i, 600 / d)).collect();
            assert_eq!(items, expected, "{workers} workers, epoch {epoch}");
        }
    }
}

/// 1,000 items in read groups of 50 consecutive items (20 shards).
struct Sharded;

impl Dataset for Sharded {
    type Item = usize;
    fn len(&self) -> usize {
        1000
    }
    fn get(&self, index: usize) -> Result<usize, DataError> {
        Ok(index)
    }
    fn read_group(&self, index: usize) -> Option<u32> {
        Some(index as u32 / 50)
    }
}

#[test]
fn a_shuffle_buffer_reads_shards_whole_in_a_seeded_order() {
    let order = |buffer: usize, seed: u64, epoch: u64| {
        let cfg = LoaderConfig {
            shuffle_buffer: buffer,
            seed,
            ..config(10, 0)
        };
        Loader::new(Arc::new(Sharded), Arc::new(crate::Identity), cfg)
            .unwrap()
            .epoch_order(epoch)
    };
    let a = order(100, 3, 0);
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
    assert_eq!(a, order(100, 3, 0), "seeded");
    assert_ne!(a, order(100, 3, 1), "a new order each epoch");
    assert_ne!(a, order(100, 4, 0));
    assert_ne!(a, order(0, 3, 0));
    // Locality: 100 consecutive items mostly come from a handful of shards (items can linger
    // in the buffer, and its last 100 leave together), where a global shuffle touches nearly
    // all 20 every time.
    let shards_in = |o: &[usize]| {
        let mut counts: Vec<usize> = o
            .chunks(100)
            .map(|w| {
                let mut s: Vec<usize> = w.iter().map(|i| i / 50).collect();
                s.sort_unstable();
                s.dedup();
                s.len()
            })
            .collect();
        counts.sort_unstable();
        counts[counts.len() / 2]
    };
    assert!(shards_in(&a) <= 10, "median {}", shards_in(&a));
    assert!(shards_in(&order(0, 3, 0)) >= 15);
    // Within a shard, items leave in random order, not in the shard's own order.
    assert!(a.windows(2).filter(|w| w[1] == w[0] + 1).count() < 100);
    // A subset keeps the groups of the items it picks.
    let subset = Arc::new(Subset::new(Arc::new(Sharded), (0..1000).rev().collect()).unwrap());
    assert_eq!(subset.read_group(0), Some(19));
}

#[test]
fn ranks_load_equal_shares_that_together_are_the_whole_batch() {
    let mut cfg = config(6, 1);
    cfg.drop_last = true;
    let whole = Loader::new(Counting::new(20), noisy(5), cfg.clone()).unwrap();
    let reference = collect(whole.epoch(2, 1));
    let shares: Vec<Vec<Batch<(usize, u64)>>> = (0..3)
        .map(|rank| {
            let loader = Loader::new(Counting::new(20), noisy(5), cfg.clone())
                .unwrap()
                .with_share(rank, 3)
                .unwrap();
            assert_eq!(loader.batches_per_epoch(), 3);
            collect(loader.epoch(2, 1))
        })
        .collect();
    for (k, batch) in reference.iter().enumerate() {
        let joined: Vec<(usize, u64)> = shares
            .iter()
            .flat_map(|rank| {
                assert_eq!(rank[k].batch_index, batch.batch_index);
                assert_eq!(rank[k].len(), 2);
                rank[k].items.clone()
            })
            .collect();
        // The same items with the same augmentation draws, split in order.
        assert_eq!(joined, batch.items);
    }
    let refuse = |rank, world, drop_last| {
        let mut cfg = config(6, 0);
        cfg.drop_last = drop_last;
        let loader = Loader::new(Counting::new(20), noisy(5), cfg).unwrap();
        loader.with_share(rank, world).unwrap_err().to_string()
    };
    assert!(refuse(0, 4, true).contains("multiple of 4"));
    assert!(refuse(0, 2, false).contains("drop_last"));
    assert!(refuse(2, 2, true).contains("below the world size 2"));
}
