//! The parallel batch loader: worker threads decode and augment samples into batches while
//! the trainer computes. For CPU training the workers also normalise to floats (one table
//! lookup per value); for a GPU they hand over 8-bit images, a quarter of the bytes to
//! copy, which are normalised on the device.
//!
//! Worker k builds batches k, k + W, k + 2W, … and hands them over a bounded channel of
//! its own (`prefetch` batches deep), which the consumer reads round-robin. So the batch
//! order is fixed, memory is bounded (at most W · prefetch batches in flight) and every
//! sample's augmentation depends only on (seed, epoch, position): the batches are the same
//! for any number of workers.
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail, ensure};
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use crate::augment::{Recipe, Rng};
use crate::config::TrainConfig;
use crate::data::sampler::{SamplerKind, epoch_order};
use crate::data::{Dataset, Image, Normalization};

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
    pub normalization: Normalization,
    /// Normalise to float32 in the workers (CPU training) rather than on the device.
    pub normalize_in_workers: bool,
    /// Data-parallel training: this process loads slice `rank` of `world_size` equal
    /// slices of every training batch (`batch_size` is the global batch).
    pub rank: usize,
    pub world_size: usize,
    /// Training views made of each sample: 3 for the contrastive losses, 1 (view 0, drawn
    /// as it would be among three) for those that train on view 0 alone.
    pub train_views: usize,
}

impl LoaderConfig {
    /// Defaults for CPU training: one worker per core, normalisation in the workers.
    pub fn new(batch_size: usize, seed: u64, normalization: Normalization) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = default_workers(cores, std::env::var("LOCAL_WORLD_SIZE").ok().and_then(|n| n.parse().ok()));
        Self {
            batch_size,
            workers,
            prefetch: 2,
            seed,
            sampler: SamplerKind::Shuffle,
            pin_memory_for: None,
            normalization,
            normalize_in_workers: true,
            rank: 0,
            world_size: 1,
            train_views: 3,
        }
    }
}

/// Loader threads per process by default: the cores shared out over the processes of this
/// machine (`LOCAL_WORLD_SIZE`, set by torchrun and `--nproc-per-node`), at least one.
pub fn default_workers(cores: usize, local_processes: Option<usize>) -> usize {
    (cores / local_processes.unwrap_or(1).max(1)).max(1)
}

/// One batch: `views × B` images (view-major: all of view 0, then view 1, …) as
/// N × C × H × W, and the B labels. The images are normalised float32 when the workers
/// normalise, uint8 otherwise.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub views: usize,
    /// Dataset indices of the B samples.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The normalised float32 images on `device` (copied asynchronously from pinned memory);
    /// 8-bit images are normalised there by `on_device`, built once per run.
    pub fn input(&self, device: Device, on_device: &DeviceNormalization) -> Tensor {
        let images = self.images.to_device_(device, self.images.kind(), true, false);
        if images.kind() == Kind::Float {
            return images;
        }
        (images.to_kind(Kind::Float) - &on_device.mean) / &on_device.std
    }

    /// The labels on `device` (copied asynchronously from pinned memory).
    pub fn labels_on(&self, device: Device) -> Tensor {
        self.labels.to_device_(device, Kind::Int64, true, false)
    }
}

/// Per-channel mean and standard deviation on the device, in 8-bit units (× 255), as
/// 1 × C × 1 × 1 tensors: built once, so that normalising a batch copies nothing from the
/// host (a pageable copy would make the CPU wait for the GPU at every step).
pub struct DeviceNormalization {
    mean: Tensor,
    std: Tensor,
}

impl DeviceNormalization {
    pub fn new(normalization: &Normalization, device: Device) -> Self {
        let c = normalization.mean.len() as i64;
        let per_channel =
            |v: &[f64]| (Tensor::from_slice(v).to_kind(Kind::Float).view([1, c, 1, 1]) * 255.0).to_device(device);
        Self { mean: per_channel(&normalization.mean), std: per_channel(&normalization.std) }
    }
}

/// What a worker makes of each sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The first `views` of the recipe's three training views.
    Train { views: usize },
    /// The evaluation transform only.
    Eval,
}

impl Mode {
    fn views(self) -> usize {
        match self {
            Mode::Train { views } => views,
            Mode::Eval => 1,
        }
    }
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
        Some(self.receivers[worker].recv().unwrap_or_else(|_| bail!("loader worker {worker} stopped unexpectedly")))
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

impl LoaderConfig {
    /// The loader of a training run on `device`: 8-bit batches in pinned memory for a GPU,
    /// which normalises them itself.
    pub fn for_run(config: &TrainConfig, device: Device) -> Self {
        let mut loader = Self::new(config.batch_size, config.seed, config.input().normalization);
        loader.workers = config.workers.unwrap_or(loader.workers);
        loader.sampler = config.sampler;
        loader.train_views = config.loss.kind().views();
        if device.is_cuda() {
            loader.normalize_in_workers = false;
            loader.pin_memory_for = Some(device);
        }
        loader
    }
}

/// Training batches of epoch `epoch` from batch `first_batch` on (a resumed epoch skips
/// the batches it has seen): B samples in sampler order (the last partial batch is dropped,
/// as BatchNorm needs more than one sample), `config.train_views` views each. With several processes,
/// each gets its slice of every batch, augmented as one process would augment it.
pub fn train_epoch(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
    epoch: u64,
    first_batch: usize,
) -> EpochLoader {
    let order = epoch_order(config.sampler, dataset.labels(), dataset.num_classes(), config.seed, epoch);
    let share = config.batch_size / config.world_size.max(1);
    let slice = config.rank * share..(config.rank + 1) * share;
    let batches: Vec<Vec<usize>> = order.chunks_exact(config.batch_size).map(|b| b[slice.clone()].to_vec()).collect();
    let placement = Placement { epoch, first_batch, position_offset: slice.start };
    spawn(dataset, recipe, config, batches, placement, Mode::Train { views: config.train_views })
}

/// Evaluation batches over the whole dataset in order, one evaluation view each.
pub fn eval_batches(dataset: Arc<dyn Dataset>, recipe: Arc<Recipe>, config: &LoaderConfig) -> EpochLoader {
    let order: Vec<usize> = (0..dataset.len()).collect();
    let batches = order.chunks(config.batch_size).map(<[usize]>::to_vec).collect();
    spawn(dataset, recipe, config, batches, Placement { epoch: 0, first_batch: 0, position_offset: 0 }, Mode::Eval)
}

/// Where a pass's batches sit in the run.
struct Placement {
    epoch: u64,
    /// The first batch to make (the earlier ones were seen before a resume).
    first_batch: usize,
    /// Where this process's slice starts in each global batch.
    position_offset: usize,
}

fn spawn(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
    batches: Vec<Vec<usize>>,
    placement: Placement,
    mode: Mode,
) -> EpochLoader {
    let Placement { epoch, first_batch, position_offset } = placement;
    let num_workers = config.workers.max(1);
    let num_batches = batches.len().saturating_sub(first_batch);
    let batches = Arc::new(batches);
    let tables = config.normalize_in_workers.then(|| Arc::new(config.normalization.tables()));
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
            position_offset,
            tables: tables.clone(),
            pool: BatchPool::new(config.prefetch.max(1) + 3),
        };
        let handle = std::thread::Builder::new()
            .name(format!("bcl-loader-{worker}"))
            .spawn(move || job.run(first_batch + worker, num_workers, sender))
            .expect("spawning a loader thread");
        workers.push(handle);
    }
    EpochLoader { receivers, workers, next: 0, num_batches }
}

struct WorkerJob {
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    batches: Arc<Vec<Vec<usize>>>,
    seed: u64,
    epoch: u64,
    mode: Mode,
    pin_memory_for: Option<Device>,
    /// Sample i of batch b is at position b · batch_size + position_offset + i of the epoch.
    batch_size: usize,
    position_offset: usize,
    /// Per-channel byte → normalised float tables, when the workers normalise.
    tables: Option<Arc<Vec<[f32; 256]>>>,
    pool: BatchPool,
}

unsafe extern "C" {
    /// src/tensor_shim.cpp: 1 when `tensor` is the only handle to its tensor and storage.
    fn bcl_tensor_is_unshared(tensor: *const torch_sys::C_tensor) -> std::ffi::c_int;
}

/// The batch tensors a worker made, written again once nobody else holds them (the
/// trainer has dropped the batch, autograd its saved input). A fresh float32 batch is
/// 58 MB at 32 × 3 views of 224²: glibc maps allocations over 32 MiB anew each time, and
/// faulting them in cost a fifth of a worker's time.
struct BatchPool {
    tensors: Vec<Tensor>,
    capacity: usize,
}

impl BatchPool {
    fn new(capacity: usize) -> Self {
        Self { tensors: Vec::with_capacity(capacity), capacity }
    }

    /// A tensor of `shape` and `kind` whose contents the caller overwrites: a free pooled
    /// one, or a new one (pooled while there is room).
    fn take(&mut self, shape: &[i64], kind: Kind) -> Tensor {
        // SAFETY: the pointer is a live tensor of the pool, borrowed for the call.
        let free = |t: &Tensor| unsafe { bcl_tensor_is_unshared(t.as_ptr()) } == 1;
        if let Some(tensor) = self.tensors.iter().find(|t| t.kind() == kind && t.size() == shape && free(t)) {
            return tensor.shallow_clone();
        }
        let tensor = Tensor::empty(shape, (kind, Device::Cpu));
        if self.tensors.len() < self.capacity {
            self.tensors.push(tensor.shallow_clone());
        }
        tensor
    }
}

/// A per-sample seed from (seed, epoch, position in the epoch): SplitMix64 mixing.
fn sample_seed(seed: u64, epoch: u64, position: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ position.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl WorkerJob {
    /// Makes batches `first`, `first + W`, `first + 2W`, … and hands them over in order.
    fn run(mut self, first: usize, num_workers: usize, sender: SyncSender<Result<Batch>>) {
        for b in (first..self.batches.len()).step_by(num_workers) {
            let batch = self.make_batch(b);
            if sender.send(batch).is_err() {
                return; // the consumer is gone
            }
        }
    }

    fn make_batch(&mut self, b: usize) -> Result<Batch> {
        let indices = &self.batches[b];
        let views = self.mode.views() as i64;
        let (size, channels) = (self.recipe.size as i64, self.dataset.channels() as i64);
        let shape = [views * indices.len() as i64, channels, size, size];
        let mut labels = Vec::with_capacity(indices.len());
        let kind = if self.tables.is_some() { Kind::Float } else { Kind::Uint8 };
        let mut images = self.pool.take(&shape, kind);
        match &self.tables {
            Some(tables) => self.write_views(b, elements(&mut images), &mut labels, |c, v| tables[c][v as usize])?,
            None => self.write_views(b, elements(&mut images), &mut labels, |_, v| v)?,
        }
        let mut labels = Tensor::from_slice(&labels);
        if let Some(device) = self.pin_memory_for {
            // `_pin_memory`: `pin_memory(device)` prints two deprecation warnings per call in
            // libtorch 2.11, garbling the progress bar.
            images = images.f_internal_pin_memory(device)?;
            labels = labels.f_internal_pin_memory(device)?;
        }
        Ok(Batch { images, labels, views: views as usize, indices: indices.clone() })
    }

    /// Loads and augments the samples of batch `b` into `out` (N × C × H × W, view-major),
    /// each value through `map(channel, value)`, and collects their labels.
    fn write_views<T>(
        &self,
        b: usize,
        out: &mut [T],
        labels: &mut Vec<i64>,
        map: impl Fn(usize, u8) -> T,
    ) -> Result<()> {
        let indices = &self.batches[b];
        let image_len = out.len() / (self.mode.views() * indices.len());
        for (i, &index) in indices.iter().enumerate() {
            let position = (b * self.batch_size + self.position_offset + i) as u64;
            let mut rng = Rng::seed_from_u64(sample_seed(self.seed, self.epoch, position));
            let image = self.dataset.image(index).with_context(|| format!("sample {index}"))?;
            let made: Vec<Image> = match self.mode {
                Mode::Train { views } => self.recipe.train_views(&image, &mut rng, views),
                Mode::Eval => vec![self.recipe.eval.apply(image, &mut rng)],
            };
            for (v, view) in made.iter().enumerate() {
                self.recipe.check_size(view, &format!("sample {index}"))?;
                let start = (v * indices.len() + i) * image_len;
                to_planar(view, &mut out[start..start + image_len], &map);
            }
            labels.push(self.dataset.labels()[index]);
        }
        Ok(())
    }
}

/// The elements of a contiguous CPU tensor of kind `T`, to write in place.
fn elements<T: tch::kind::Element>(tensor: &mut Tensor) -> &mut [T] {
    assert!(tensor.kind() == T::KIND && tensor.device() == Device::Cpu && tensor.is_contiguous());
    // SAFETY: checked just above: contiguous, on the CPU, `numel` elements of type T; the
    // slice borrows `tensor` mutably, and the pool hands out only tensors no one else holds.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut T, tensor.numel()) }
}

/// Training views per second of the loader on `dataset`: `warmup` batches, then `batches`
/// timed ones, passing from epoch to epoch as needed. As float32 when `config` normalises
/// in the workers, as uint8 (what a GPU receives) otherwise.
pub fn views_per_second(
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    config: &LoaderConfig,
    warmup: usize,
    batches: usize,
) -> Result<f64> {
    ensure!(
        dataset.len() >= config.batch_size,
        "the dataset has {} images, fewer than one batch of {}",
        dataset.len(),
        config.batch_size
    );
    let mut epoch = 0;
    let mut epoch_batches = train_epoch(dataset.clone(), recipe.clone(), config, epoch, 0);
    let mut next_batch = || -> Result<Batch> {
        loop {
            if let Some(batch) = epoch_batches.next() {
                return batch;
            }
            epoch += 1;
            epoch_batches = train_epoch(dataset.clone(), recipe.clone(), config, epoch, 0);
        }
    };
    for _ in 0..warmup {
        next_batch()?;
    }
    let start = std::time::Instant::now();
    for _ in 0..batches {
        next_batch()?;
    }
    Ok((batches * config.batch_size * config.train_views) as f64 / start.elapsed().as_secs_f64())
}

/// Interleaved HWC → planar CHW, mapping each value with `map(channel, value)`: one pass
/// over the pixels, writing every channel's plane. With AVX2 (checked at run time) it is
/// compiled for it, where LLVM turns the 3-channel split into byte shuffles.
pub(crate) fn to_planar<T>(img: &Image, out: &mut [T], map: &impl Fn(usize, u8) -> T) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { to_planar_avx2(img, out, map) };
    }
    to_planar_here(img, out, map)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn to_planar_avx2<T>(img: &Image, out: &mut [T], map: &impl Fn(usize, u8) -> T) {
    to_planar_here(img, out, map)
}

/// [`to_planar`] for the instruction set of its caller (inlined into it).
#[inline(always)]
fn to_planar_here<T>(img: &Image, out: &mut [T], map: &impl Fn(usize, u8) -> T) {
    let plane = img.width * img.height;
    match img.channels {
        1 => out.iter_mut().zip(&img.pixels).for_each(|(o, &v)| *o = map(0, v)),
        3 => {
            let (red, rest) = out.split_at_mut(plane);
            let (green, blue) = rest.split_at_mut(plane);
            let pixels = img.pixels.as_chunks::<3>().0;
            for (((px, r), g), b) in pixels.iter().zip(red).zip(green).zip(blue) {
                (*r, *g, *b) = (map(0, px[0]), map(1, px[1]), map(2, px[2]));
            }
        }
        c => panic!("images have 1 or 3 channels, not {c}"),
    }
}
