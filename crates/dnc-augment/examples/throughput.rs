//! Two-view loading throughput: decode (from a folder) or read (synthetic images in memory),
//! augment with the CIFAR preset and batch, on 0, 1 and 2 worker threads.
//!
//! `cargo run --release -p dnc-augment --example throughput -- [FOLDER [LIMIT]]`

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use dnc_augment::{TwoViewConfig, TwoViewMapper};
use dnc_data::{
    Dataset, ImageFolder, ImageFolderConfig, ImageItem, InMemory, Loader, LoaderConfig,
};
use image::{Rgb, RgbImage};

fn measure<D>(data: Arc<D>, workers: usize) -> Result<f64, Box<dyn Error>>
where
    D: Dataset<Item = ImageItem> + 'static,
{
    let mapper = Arc::new(TwoViewMapper::new(TwoViewConfig::cifar(), 0)?);
    let config = LoaderConfig {
        batch_size: 256,
        workers,
        ..Default::default()
    };
    let loader = Loader::new(data, mapper, config)?;
    let start = Instant::now();
    let mut images = 0usize;
    for batch in loader.epoch(0, 0) {
        images += batch?.len();
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

fn synthetic(n: usize) -> InMemory<ImageItem> {
    InMemory::new(
        (0..n)
            .map(|i| ImageItem {
                index: i,
                image: RgbImage::from_fn(32, 32, |x, y| {
                    Rgb([(x * 8) as u8, (y * 8) as u8, (i % 251) as u8])
                }),
                label: None,
            })
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for workers in [0, 1, 2] {
        let rate = match args.first() {
            Some(folder) => {
                let limit = args.get(1).map(|s| s.parse()).transpose()?.or(Some(10_000));
                let config = ImageFolderConfig {
                    limit,
                    ..Default::default()
                };
                measure(Arc::new(ImageFolder::open(folder, &config)?), workers)?
            }
            None => measure(Arc::new(synthetic(10_000)), workers)?,
        };
        eprintln!("workers = {workers}: {rate:.0} images/s (two 32x32 views each)");
    }
    Ok(())
}
