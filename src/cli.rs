//! The `bcl` command line: argument parsing and printing over the library.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;

use crate::augment::{ClViews, Recipe, Rng};
use crate::data::long_tail::{Profile, imbalance_factor, shot_groups};
use crate::data::{DataConfig, Dataset, DatasetKind, Split};
use crate::loader::{self, LoaderConfig};
use crate::sanity::{OverfitConfig, overfit_batch};
use crate::train::{LossKind, TrainConfig};

#[derive(Parser)]
#[command(name = "bcl", version, about = "Balanced Contrastive Learning for long-tailed image recognition")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this build finds: libtorch, CPU threads, CUDA devices, cuDNN, the data.
    Doctor,
    /// Train the Fashion-MNIST BCL model on one fixed batch and show both losses fall.
    OverfitBatch {
        /// Fashion-MNIST folder (default: $BCL_FASHION_MNIST, else Debian's location).
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 0.05)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Inspect datasets and the augmentation pipeline.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train BCL (or a baseline) with a benchmark preset, evaluating after every epoch.
    Train(TrainArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// fashion-mnist-lt, cifar10-lt, cifar100-lt, imagenet-lt or inat2018.
    #[arg(long, default_value = "fashion-mnist-lt")]
    preset: String,
    /// Dataset folder (default for Fashion-MNIST: $BCL_FASHION_MNIST, else Debian's location).
    #[arg(long)]
    root: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, value_enum)]
    loss: Option<LossKind>,
    #[arg(long)]
    no_class_averaging: bool,
    #[arg(long)]
    no_class_complement: bool,
    /// Imbalance factor of the long-tailed subset (balanced datasets only).
    #[arg(long)]
    imb_factor: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Loader threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None if self.preset == "fashion-mnist-lt" => crate::data::fashion_mnist_dir().0,
            None => anyhow::bail!("--root is required for --preset {}", self.preset),
        };
        let mut config = TrainConfig::preset(&self.preset, root)?;
        config.epochs = self.epochs.unwrap_or(config.epochs);
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        config.schedule.base_lr = self.lr.unwrap_or(config.schedule.base_lr);
        config.loss = self.loss.unwrap_or(config.loss);
        config.class_averaging &= !self.no_class_averaging;
        config.class_complement &= !self.no_class_complement;
        if self.imb_factor.is_some() {
            config.data.imb_factor = self.imb_factor;
        }
        config.seed = self.seed.unwrap_or(config.seed);
        config.workers = self.workers.or(config.workers);
        ensure!(config.epochs > 0 && config.batch_size > 1, "--epochs must be positive and --batch-size above 1");
        Ok(config)
    }
}

/// Which data: dataset, root and long-tailed subset.
#[derive(Args, Clone)]
struct DataArgs {
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetKind,
    /// Dataset folder (default for Fashion-MNIST: $BCL_FASHION_MNIST, else Debian's location).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Take a long-tailed subset of the training split with this imbalance factor ρ.
    #[arg(long)]
    imb_factor: Option<f64>,
    #[arg(long, value_enum, default_value = "exp")]
    profile: Profile,
    #[arg(long, default_value_t = 0)]
    subset_seed: u64,
}

impl DataArgs {
    fn config(&self) -> Result<DataConfig> {
        let root = match (&self.root, self.dataset) {
            (Some(root), _) => root.clone(),
            (None, DatasetKind::FashionMnist) => crate::data::fashion_mnist_dir().0,
            (None, kind) => anyhow::bail!("--root is required for --dataset {kind:?}"),
        };
        Ok(DataConfig {
            dataset: self.dataset,
            root,
            imb_factor: self.imb_factor,
            profile: self.profile,
            subset_seed: self.subset_seed,
        })
    }
}

/// Which views: the recipe follows the dataset (CIFAR-style or ImageNet-style).
#[derive(Args, Clone)]
struct RecipeArgs {
    /// ImageNet-style contrastive views.
    #[arg(long, value_enum, default_value = "sim-sim")]
    cl_views: ClViews,
    /// RandAugment configuration of the ImageNet-style views.
    #[arg(long, default_value = "rand-n2-m10-mstd0.5")]
    randaugment: String,
    /// Cutout 16 on view 0 of the CIFAR-style recipe.
    #[arg(long)]
    cutout: bool,
}

impl RecipeArgs {
    fn recipe(&self, kind: DatasetKind, dataset: &dyn Dataset) -> Result<Recipe> {
        ensure!(!dataset.is_empty(), "the dataset is empty");
        Recipe::for_dataset(kind, &dataset.image(0)?, self.cl_views, &self.randaugment, self.cutout)
    }
}

#[derive(Subcommand)]
enum DataCommand {
    /// Classes, counts, imbalance factor and head/tail split; writes a PNG histogram.
    Stats {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_enum, default_value = "train")]
        split: Split,
        /// Where to write the sorted class-count histogram.
        #[arg(long, default_value = "class_counts.png")]
        out: PathBuf,
    },
    /// A PNG grid of training samples: the image, then its views 0, 1, 2.
    Preview {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        recipe: RecipeArgs,
        #[arg(long, default_value_t = 8)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "preview.png")]
        out: PathBuf,
    },
    /// Measures the training loader: augmented views per second, as normalised floats on CPU.
    Bench {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        recipe: RecipeArgs,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Loader threads (default: the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Batches timed after `--warmup` batches.
        #[arg(long, default_value_t = 20)]
        batches: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Hand batches over as uint8, as for a GPU (which normalises them); by default the
        /// workers normalise to float32, as for CPU training.
        #[arg(long)]
        uint8: bool,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor => println!("{}", crate::doctor::Report::collect()),
        Command::OverfitBatch { root, batch_size, steps, lr, seed, device } => {
            let config = OverfitConfig {
                data_dir: root.unwrap_or_else(|| crate::data::fashion_mnist_dir().0),
                batch_size,
                steps,
                learning_rate: lr,
                seed,
                device: crate::parse_device(&device)?,
            };
            println!(
                "overfitting one batch of {batch_size} Fashion-MNIST images (views 0, 1, 2) on {:?}",
                config.device
            );
            println!("{:>4}  {:>8}  {:>8}  {:>8}  {:>9}", "step", "LA-CE", "BCL", "total", "batch acc");
            let records = overfit_batch(&config)?;
            for r in &records {
                println!(
                    "{:>4}  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.1}%",
                    r.step,
                    r.la_ce,
                    r.bcl,
                    r.total,
                    100.0 * r.accuracy
                );
            }
            if let (Some(first), Some(last)) = (records.first(), records.last()) {
                println!("total loss {:.4} -> {:.4} in {} steps", first.total, last.total, records.len());
            }
        }
        Command::Data(command) => run_data(command)?,
        Command::Train(args) => run_train(&args)?,
    }
    Ok(())
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}", 100.0 * v))
}

fn run_train(args: &TrainArgs) -> Result<()> {
    let config = args.config()?;
    let device = crate::parse_device(&args.device)?;
    let train_set = config.data.train_set()?;
    let counts = train_set.class_counts();
    println!(
        "preset {} on {device:?}: {:?} {:?}, {} epochs of batch {}, lr {}, {} training images in {} classes \
         (imbalance {:.0})",
        args.preset,
        config.loss,
        config.model.arch,
        config.epochs,
        config.batch_size,
        config.schedule.base_lr,
        train_set.len(),
        counts.len(),
        imbalance_factor(&counts)
    );
    println!("class counts: {counts:?}");
    println!("epoch      lr  train-CE  contrast  train-acc  test-top1   many  medium   few   samples/s   time");
    let mut last = None;
    crate::train::train(&config, device, |r| {
        println!(
            "{:>5} {:>7.4} {:>9.4} {:>9.4} {:>9.1}% {:>9.1}% {:>6} {:>7} {:>5} {:>11.0} {:>5.0}s",
            r.epoch + 1,
            r.lr,
            r.train_ce,
            r.train_contrastive,
            100.0 * r.train_accuracy,
            100.0 * r.eval.top1,
            percent(r.eval.many),
            percent(r.eval.medium),
            percent(r.eval.few),
            r.samples_per_second,
            r.seconds
        );
        last = Some(r.eval.clone());
    })?;
    if let Some(eval) = last.filter(|e| e.per_class.len() <= 20) {
        println!("per-class test accuracy (class: training images → accuracy):");
        for ((name, n), acc) in train_set.class_names().iter().zip(&counts).zip(&eval.per_class) {
            println!("  {name:<20} {n:>6} → {:>5.1}%", 100.0 * acc);
        }
    }
    Ok(())
}

fn run_data(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Stats { data, split, out } => {
            let config = data.config()?;
            let dataset = if split == Split::Train { config.train_set()? } else { config.eval_set(split)? };
            print_stats(dataset.as_ref(), &out)?;
        }
        DataCommand::Preview { data, recipe, samples, seed, out } => {
            let config = data.config()?;
            let dataset = config.train_set()?;
            let recipe = recipe.recipe(config.dataset, dataset.as_ref())?;
            ensure!(!dataset.is_empty(), "the dataset is empty");
            let mut rng = Rng::seed_from_u64(seed);
            let mut rows = Vec::new();
            for i in sample_each_class(dataset.as_ref(), samples) {
                let image = dataset.image(i)?;
                let views = recipe.train_views(&image, &mut rng);
                let mut row = vec![image];
                row.extend(views);
                rows.push(row);
            }
            let cell = recipe.size.max(96);
            crate::plot::image_grid(&rows, cell, &out)?;
            println!("wrote {} ({} samples: image, view 0, view 1, view 2)", out.display(), rows.len());
        }
        DataCommand::Bench { data, recipe, batch_size, workers, batches, warmup, uint8 } => {
            let config = data.config()?;
            let dataset = config.train_set()?;
            let recipe = Arc::new(recipe.recipe(config.dataset, dataset.as_ref())?);
            let mut loader_config = LoaderConfig::new(batch_size, 0, config.dataset.normalization());
            if let Some(w) = workers {
                loader_config.workers = w;
            }
            loader_config.normalize_in_workers = !uint8;
            ensure!(
                dataset.len() >= batch_size,
                "the dataset has {} images, fewer than one batch of {batch_size}",
                dataset.len()
            );
            let mut epoch = 0;
            let mut epoch_batches = loader::train_epoch(dataset.clone(), recipe.clone(), &loader_config, epoch);
            let mut next_views = || -> Result<tch::Tensor> {
                loop {
                    if let Some(batch) = epoch_batches.next() {
                        let batch = batch?;
                        return Ok(if uint8 { batch.images } else { batch.input(tch::Device::Cpu) });
                    }
                    epoch += 1;
                    epoch_batches = loader::train_epoch(dataset.clone(), recipe.clone(), &loader_config, epoch);
                }
            };
            for _ in 0..warmup {
                let _ = next_views()?;
            }
            let start = Instant::now();
            for _ in 0..batches {
                let _ = next_views()?;
            }
            let seconds = start.elapsed().as_secs_f64();
            let views = (batches * batch_size * 3) as f64;
            println!(
                "bcl loader{}: {} workers, batch {batch_size}, {batches} batches in {seconds:.2} s: {:.0} views/s, {:.0} views/s per worker",
                if uint8 { " (uint8)" } else { "" },
                loader_config.workers,
                views / seconds,
                views / seconds / loader_config.workers as f64
            );
        }
    }
    Ok(())
}

/// Up to `n` sample indices taken from the classes in turn, so that the tail shows too.
fn sample_each_class(dataset: &dyn Dataset, n: usize) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); dataset.num_classes()];
    for (i, &l) in dataset.labels().iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let depth = by_class.iter().map(Vec::len).max().unwrap_or(0);
    (0..depth).flat_map(|d| by_class.iter().filter_map(move |members| members.get(d).copied())).take(n).collect()
}

fn print_stats(dataset: &dyn Dataset, out: &std::path::Path) -> Result<()> {
    let counts = dataset.class_counts();
    let groups = shot_groups(&counts);
    println!("{} images, {} classes, imbalance factor {:.1}", dataset.len(), counts.len(), imbalance_factor(&counts));
    println!(
        "many-shot (>100): {} classes, medium-shot (20-100): {}, few-shot (<20): {}",
        groups.many.len(),
        groups.medium.len(),
        groups.few.len()
    );
    if counts.len() <= 100 {
        for (name, n) in dataset.class_names().iter().zip(&counts) {
            println!("  {name:<20} {n}");
        }
    }
    let mut sorted = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let color = |n: i64| match n {
        n if n > 100 => [31, 119, 180],
        n if n >= 20 => [255, 127, 14],
        _ => [214, 39, 40],
    };
    let colors: Vec<[u8; 3]> = sorted.iter().map(|&n| color(n)).collect();
    let values: Vec<f64> = sorted.iter().map(|&n| n as f64).collect();
    crate::plot::bar_chart(&values, &colors, false, out)?;
    println!("wrote {} (classes by count; blue many-, orange medium-, red few-shot)", out.display());
    Ok(())
}
