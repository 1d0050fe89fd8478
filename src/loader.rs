//! The parallel batch loader: worker threads decode and augment samples into batches of
//! 8-bit images while the trainer computes; normalisation to floats happens on the device.
//!
//! Worker k builds batches k, k + W, k + 2W, … and hands them over a bounded channel of
//! its own (`prefetch` batches deep), which the consumer reads round-robin. So the batch
//! order is fixed, memory is bounded (at most W · prefetch batches in flight) and every
//! sample's augmentation depends only on (seed, epoch, position): the batches are the same
//! for any number of workers.
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use crate::augment::{Recipe, Rng};
use crate::data::sampler::{SamplerKind, epoch_order};
use crate::data::{Dataset, Image};

/// How batches are drawn.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub workers: usize,
    /// Batches each worker may have ready ahead of the consumer.
    pub prefetch: usize,
    pub seed: u64,
    pub sampler: SamplerKind,
    /// Page-lock batches so that copies to this CUDA device can be asynchronous.
    pub pin_memory_for: Option<Device>,
}

impl LoaderConfig {
    pub fn new(batch_size: usize, seed: u64) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            batch_size,
            workers,
            prefetch: 2,
            seed,
            sampler: SamplerKind::Shuffle,
            pin_memory_for: None,
        }
    }
}

/// One batch: `views × B` images (view-major: all of view 0, then view 1, …) as uint8
/// N × C × H × W, and the B labels.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub views: usize,
    /// Dataset indices of the B samples.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The images as float32 on `device`, scaled to [0, 1] and normalised per channel.
    pub fn normalized_images(&self, device: Device, mean: &[f64], std: &[f64]) -> Tensor {
        let c = mean.len() as i64;
        let images = self
            .images
            .to_device_(device, Kind::Uint8, true, false)
            .to_kind(Kind::Float);
        let mean = Tensor::from_slice(mean)
            .to_kind(Kind::Float)
            .view([1, c, 1, 1])
            .to_device(device)
            * 255.0;
        let std = Tensor::from_slice(std)
            .to_kind(Kind::Float)
            .view([1, c, 1, 1])
            .to_device(device)
            * 255.0;
        (images - mean) / std
    }
}

/// What a worker makes of each sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The recipe's three training views.
    Train,
    /// The evaluation transform only.
    Eval,
}

/// The batches of one pass over a dataset, in order. Dropping it stops the workers.
pub struct EpochLoader {
    receivers: Vec<Receiver<Result<Batch>>>,
    workers: Vec<JoinHandle<()>>,
    next: usize,
    num_batches: usize,
}

impl EpochLoader {
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }
}

impl Iterator for EpochLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.num_batches {
            return None;
        }
        let worker = self.next % self.receivers.len();
        self.next += 1;
        Some(
            self.receivers[worker]
                .recv()
                .unwrap_or_else(|_| bail!("loader worker {worker} stopped unexpectedly")),
        )
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        // Closing the channels makes blocked workers' sends fail, so they return.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Training batches of epoch `epoch`: B samples in sampler order (the last partial batch
/// is dropped, as BatchNorm needs more than one sample), three views each.
pub fn train_epoch(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
    epoch: u64,
) -> EpochLoader {
    let order = epoch_order(
        config.sampler,
        dataset.labels(),
        dataset.num_classes(),
        config.seed,
        epoch,
    );
    let batches: Vec<Vec<usize>> = order
        .chunks_exact(config.batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    spawn(dataset, recipe, config, epoch, batches, Mode::Train)
}

/// Evaluation batches over the whole dataset in order, one evaluation view each.
pub fn eval_batches(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
) -> EpochLoader {
    let order: Vec<usize> = (0..dataset.len()).collect();
    let batches = order
        .chunks(config.batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    spawn(dataset, recipe, config, 0, batches, Mode::Eval)
}

fn spawn(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
    epoch: u64,
    batches: Vec<Vec<usize>>,
    mode: Mode,
) -> EpochLoader {
    let num_workers = config.workers.max(1);
    let num_batches = batches.len();
    let batches = Arc::new(batches);
    let mut receivers = Vec::with_capacity(num_workers);
    let mut workers = Vec::with_capacity(num_workers);
    for worker in 0..num_workers {
        let (sender, receiver) = sync_channel(config.prefetch.max(1));
        receivers.push(receiver);
        let job = WorkerJob {
            dataset: dataset.clone(),
            recipe: recipe.clone(),
            batches: batches.clone(),
            seed: config.seed,
            epoch,
            mode,
            pin_memory_for: config.pin_memory_for,
            batch_size: config.batch_size,
        };
        let handle = std::thread::Builder::new()
            .name(format!("bcl-loader-{worker}"))
            .spawn(move || job.run(worker, num_workers, sender))
            .expect("spawning a loader thread");
        workers.push(handle);
    }
    EpochLoader {
        receivers,
        workers,
        next: 0,
        num_batches,
    }
}

struct WorkerJob {
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    batches: Arc<Vec<Vec<usize>>>,
    seed: u64,
    epoch: u64,
    mode: Mode,
    pin_memory_for: Option<Device>,
    batch_size: usize,
}

/// A per-sample seed from (seed, epoch, position in the epoch): SplitMix64 mixing.
fn sample_seed(seed: u64, epoch: u64, position: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ position.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl WorkerJob {
    fn run(self, worker: usize, num_workers: usize, sender: SyncSender<Result<Batch>>) {
        for b in (worker..self.batches.len()).step_by(num_workers) {
            let batch = self.make_batch(b);
            if sender.send(batch).is_err() {
                return; // the consumer is gone
            }
        }
    }

    fn make_batch(&self, b: usize) -> Result<Batch> {
        let indices = &self.batches[b];
        let views = if self.mode == Mode::Train { 3 } else { 1 };
        let (size, channels) = (self.recipe.size, self.dataset.channels());
        let image_len = size * size * channels;
        let mut planar = vec![0u8; views * indices.len() * image_len];
        let mut labels = Vec::with_capacity(indices.len());
        for (i, &index) in indices.iter().enumerate() {
            let position = (b * self.batch_size + i) as u64;
            let mut rng = Rng::seed_from_u64(sample_seed(self.seed, self.epoch, position));
            let image = self
                .dataset
                .image(index)
                .with_context(|| format!("sample {index}"))?;
            let made: Vec<Image> = match self.mode {
                Mode::Train => self.recipe.train_views(&image, &mut rng).into(),
                Mode::Eval => vec![self.recipe.eval.apply(image, &mut rng)],
            };
            for (v, view) in made.iter().enumerate() {
                self.recipe.check_size(view, &format!("sample {index}"))?;
                let offset = (v * indices.len() + i) * image_len;
                to_planar(view, &mut planar[offset..offset + image_len]);
            }
            labels.push(self.dataset.labels()[index]);
        }
        let n = (views * indices.len()) as i64;
        let mut images =
            Tensor::from_slice(&planar).view([n, channels as i64, size as i64, size as i64]);
        if let Some(device) = self.pin_memory_for {
            images = images.pin_memory(device);
        }
        Ok(Batch {
            images,
            labels: Tensor::from_slice(&labels),
            views,
            indices: indices.clone(),
        })
    }
}

/// Interleaved HWC → planar CHW.
fn to_planar(img: &Image, out: &mut [u8]) {
    let plane = img.width * img.height;
    for (p, px) in img.pixels.chunks_exact(img.channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + p] = v;
        }
    }
}
