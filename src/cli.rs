//! The `bcl` command line: argument parsing and printing over the library.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, ensure};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::augment::{ClViews, Recipe, Rng};
use crate::checkpoint;
use crate::config::{Amp, LossKind, TrainConfig};
use crate::data::long_tail::{Profile, imbalance_factor, shot_groups};
use crate::data::{DataConfig, Dataset, DatasetKind, Split};
use crate::distributed::{self, Group, World};
use crate::loader::{self, LoaderConfig};
use crate::metrics::Evaluation;
use crate::run::RunDir;
use crate::sanity::{OverfitConfig, overfit_batch};
use crate::train::{self, Progress, TrainOptions};
use crate::{predict, report};

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
    /// Evaluate a checkpoint: top-1, Many/Medium/Few, per-class accuracy and plots.
    Eval(EvalArgs),
    /// Print the most probable classes of image files.
    Predict {
        /// A checkpoint (RUN/best, RUN/last, a run folder).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The preset describing plain weights that carry no bcl config.
        #[arg(long)]
        preset: Option<String>,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// fashion-mnist-lt, cifar10-lt, cifar100-lt, imagenet-lt or inat2018.
    #[arg(long, default_value = "fashion-mnist-lt")]
    preset: String,
    /// TOML file of config keys to change after the preset (see a run's config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
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
    /// Mixed precision on CUDA.
    #[arg(long, value_enum)]
    amp: Option<Amp>,
    /// Loader threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Checkpoint and stop after this many steps, printing the throughput after the first
    /// 10 (for benchmarks).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Run folder (default: runs/<preset>-<date>-<time>).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Data-parallel training on this machine: start this many processes (one per GPU),
    /// as `torchrun --nproc-per-node N` would. Under torchrun (or any launcher that sets
    /// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) leave it out.
    #[arg(long)]
    nproc_per_node: Option<usize>,
    /// Continue the run in this folder from its last checkpoint, with its saved config.
    #[arg(long, conflicts_with_all = ["config", "root", "epochs", "batch_size", "lr", "loss", "no_class_averaging",
        "no_class_complement", "imb_factor", "seed", "amp"])]
    resume: Option<PathBuf>,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None if self.preset == "fashion-mnist-lt" => crate::data::fashion_mnist_dir().0,
            None => PathBuf::new(),
        };
        let mut config = TrainConfig::preset(&self.preset, root)?;
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            config = config.with_overrides(&text, &path.display().to_string())?;
        }
        ensure!(
            !config.data.root.as_os_str().is_empty(),
            "--root is required for --preset {} (or data.root in --config)",
            self.preset
        );
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
        config.amp = self.amp.unwrap_or(config.amp);
        config.workers = self.workers.or(config.workers);
        config.validate().context("the options")?;
        Ok(config)
    }
}

#[derive(Args)]
struct EvalArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder) or plain safetensors weights.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset folder (default: the one the model was trained on).
    #[arg(long)]
    root: Option<PathBuf>,
    /// The preset describing plain weights that carry no bcl config (such as the reference's).
    #[arg(long)]
    preset: Option<String>,
    /// Where to write per_class.csv and the plots (default: the checkpoint's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: String,
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
        Command::Eval(args) => run_eval(&args)?,
        Command::Predict { checkpoint, preset, top_k, device, images } => {
            let path = checkpoint::resolve(&checkpoint);
            let fallback = preset.map(|p| TrainConfig::preset(&p, PathBuf::new())).transpose()?;
            let device = crate::parse_device(&device)?;
            let loaded = train::load_model(&path, fallback.as_ref(), device)?;
            for image in &images {
                println!("{}", image.display());
                for (class, p) in predict::top_k(&loaded.model, &loaded.config, image, top_k, device)? {
                    println!("  {:>6.2}%  {}", 100.0 * p, loaded.class_names[class as usize]);
                }
            }
        }
    }
    Ok(())
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}", 100.0 * v))
}

fn run_train(args: &TrainArgs) -> Result<()> {
    if let Some(processes) = args.nproc_per_node {
        return distributed::launch_local(processes);
    }
    let mut device = crate::parse_device(&args.device)?;
    let group = match World::from_env()? {
        Some(world) => {
            if device.is_cuda() {
                device = crate::parse_device(&format!("cuda:{}", world.local_rank))?;
            }
            Some(Arc::new(Group::join(world, device)?))
        }
        None => None,
    };
    let lead = group.as_deref().is_none_or(Group::is_lead);
    let (config, run, resume) = match &args.resume {
        Some(folder) => {
            let run = RunDir::open(folder)?;
            let mut config = run.config()?;
            config.workers = args.workers.or(config.workers);
            // Stopped before its first checkpoint: nothing to lose by starting over.
            let has_checkpoint = run.last().is_file();
            if !has_checkpoint && lead {
                println!("{} has no checkpoint yet: starting its config from the first epoch", folder.display());
            }
            (config, run, has_checkpoint)
        }
        None => {
            let config = args.config()?;
            let name = args
                .config
                .as_ref()
                .and_then(|p| p.file_stem())
                .map_or(args.preset.clone(), |s| format!("{}-{}", args.preset, s.to_string_lossy()));
            let folder = args.out.clone().unwrap_or_else(|| RunDir::default_path(&name));
            let run = match &group {
                None => RunDir::create(&folder, &config)?,
                // Rank 0 creates the folder (its default name has the time in it) and names it.
                Some(group) => {
                    let created = if lead { Some(RunDir::create(&folder, &config)?) } else { None };
                    let path = created.as_ref().map_or(Vec::new(), |r| r.path.as_os_str().as_encoded_bytes().to_vec());
                    let path = String::from_utf8(group.broadcast_bytes(&path)?).context("the run folder's name")?;
                    RunDir { path: PathBuf::from(path) }
                }
            };
            (config.clone(), run, false)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let processes = group
        .as_ref()
        .map_or(String::new(), |g| format!(" × {} processes ({} collectives)", g.world_size(), g.backend_name()));
    let options = TrainOptions { device, resume, stop, max_steps: args.max_steps, group };
    if !lead {
        // The other ranks train in silence; rank 0 reports and writes.
        train::train(&config, &run, &options, |_| ())?;
        return options.group.as_deref().map_or(Ok(()), Group::finish);
    }
    println!(
        "{} {} on {device:?}{processes}: {:?} loss, {:?}, {} epochs of batch {}, lr {}",
        if resume { "resuming" } else { "run" },
        run.path.display(),
        config.loss,
        config.model.arch,
        config.epochs,
        config.batch_size,
        config.schedule.base_lr,
    );
    let mut progress = ProgressView::new();
    let outcome = train::train(&config, &run, &options, |p| progress.show(p))?;
    progress.finish();
    options.group.as_deref().map_or(Ok(()), Group::finish)?;
    if let Some(line) = progress.throughput(config.batch_size) {
        println!("{line}");
    }
    if let Some((epoch, step)) = outcome.stopped_at {
        println!(
            "stopped at epoch {}, step {}; saved {}. Continue with: bcl train --resume {}",
            epoch + 1,
            step,
            run.last().display(),
            run.path.display()
        );
        return Ok(());
    }
    let Some(last) = outcome.records.last() else {
        println!("{} had already finished all {} epochs", run.path.display(), config.epochs);
        return Ok(());
    };
    let train_set = config.data.train_set()?;
    let counts = train_set.class_counts();
    print_evaluation(train_set.class_names(), &counts, &last.eval);
    let written = report::write(&run.path, train_set.class_names(), &counts, &last.eval, &run.read_metrics()?)?;
    print_written(&written);
    println!("checkpoints: {} and {}", run.last().display(), run.best().display());
    Ok(())
}

fn run_eval(args: &EvalArgs) -> Result<()> {
    let device = crate::parse_device(&args.device)?;
    let path = checkpoint::resolve(&args.checkpoint);
    let fallback = match &args.preset {
        Some(preset) => {
            let root = args.root.clone().context("--preset needs --root (the data to evaluate on)")?;
            Some(TrainConfig::preset(preset, root)?)
        }
        None => None,
    };
    let mut loaded = train::load_model(&path, fallback.as_ref(), device)?;
    if let Some(root) = &args.root {
        loaded.config.data.root = root.clone();
    }
    let config = &loaded.config;
    let train_set = config.data.train_set()?;
    let counts = train_set.class_counts();
    let split = config.data.dataset.eval_split();
    let test_set = config.data.eval_set(split)?;
    let recipe = Arc::new(train::recipe(config, train_set.as_ref())?);
    let loader_config = train::loader_config(config, device);
    println!(
        "evaluating {} on the {split:?} split of {} ({} images)",
        path.display(),
        config.data.root.display(),
        test_set.len()
    );
    let eval = train::evaluate(&loaded.model, test_set, recipe, &loader_config, device, &counts)?;
    print_evaluation(train_set.class_names(), &counts, &eval);
    let folder = args.out.clone().unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    // The training curves come from the run the checkpoint belongs to, if any.
    let run_folder = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let history = RunDir { path: run_folder }.read_metrics()?;
    print_written(&report::write(&folder, train_set.class_names(), &counts, &eval, &history)?);
    Ok(())
}

/// Top-1, Many/Medium/Few and, for up to 20 classes, each class's accuracy.
fn print_evaluation(names: &[String], counts: &[i64], eval: &Evaluation) {
    println!(
        "test top-1 {:.2}%   many {}   medium {}   few {}",
        100.0 * eval.top1,
        percent(eval.many),
        percent(eval.medium),
        percent(eval.few)
    );
    if eval.per_class.len() <= 20 {
        println!("per-class test accuracy (class: training images → accuracy):");
        for ((name, n), acc) in names.iter().zip(counts).zip(&eval.per_class) {
            println!("  {name:<20} {n:>6} → {:>5.1}%", 100.0 * acc);
        }
    }
}

fn print_written(paths: &[PathBuf]) {
    for path in paths {
        println!("wrote {}", path.display());
    }
    println!("({})", report::LEGEND);
}

/// Progress of training: a bar with ETA, images/s and running losses on a terminal, and
/// one line per epoch everywhere.
struct ProgressView {
    bar: Option<ProgressBar>,
    header_shown: bool,
    /// (steps taken, time) when the warm-up steps were done and at the latest report.
    timing: Option<(usize, Instant)>,
    latest: Option<(usize, Instant)>,
    /// Steps taken before the current epoch, and the step it started at (resumed epochs
    /// start later than 0).
    epoch_base: (usize, usize),
}

impl ProgressView {
    const WARMUP_STEPS: usize = 10;

    fn new() -> Self {
        Self { bar: None, header_shown: false, timing: None, latest: None, epoch_base: (0, 0) }
    }

    /// Training samples per second after the warm-up steps, as `--max-steps` reports it.
    fn throughput(&self, batch_size: usize) -> Option<String> {
        let ((first, t0), (last, t1)) = (self.timing?, self.latest?);
        (last > first).then(|| {
            let rate = ((last - first) * batch_size) as f64 / (t1 - t0).as_secs_f64();
            format!("throughput: {rate:.1} samples/s over steps {}–{last} (after {first} warm-up steps)", first + 1)
        })
    }

    fn show(&mut self, progress: Progress) {
        match progress {
            Progress::EpochStart { epoch, step, steps } => {
                self.epoch_base = (self.latest.map_or(0, |(taken, _)| taken), step);
                let bar = ProgressBar::new(steps as u64).with_position(step as u64);
                bar.set_style(
                    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix((epoch + 1).to_string());
                self.bar = Some(bar);
            }
            Progress::Steps { step, ce, contrastive, samples_per_second, .. } => {
                let total = self.epoch_base.0 + step - self.epoch_base.1;
                if self.timing.is_none() && total >= Self::WARMUP_STEPS {
                    self.timing = Some((total, Instant::now()));
                }
                self.latest = Some((total, Instant::now()));
                if let Some(bar) = &self.bar {
                    bar.set_position(step as u64);
                    bar.set_message(format!("CE {ce:.3} CL {contrastive:.3} {samples_per_second:.0} img/s"));
                }
            }
            Progress::Evaluating { .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message("evaluating");
                }
            }
            Progress::Epoch(r) => {
                self.finish();
                if !self.header_shown {
                    println!(
                        "epoch      lr  train-CE  contrast  train-acc  test-top1   many  medium   few   samples/s   time"
                    );
                    self.header_shown = true;
                }
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
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
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
            let mut epoch_batches = loader::train_epoch(dataset.clone(), recipe.clone(), &loader_config, epoch, 0);
            let mut next_views = || -> Result<tch::Tensor> {
                loop {
                    if let Some(batch) = epoch_batches.next() {
                        let batch = batch?;
                        return Ok(if uint8 { batch.images } else { batch.input(tch::Device::Cpu) });
                    }
                    epoch += 1;
                    epoch_batches = loader::train_epoch(dataset.clone(), recipe.clone(), &loader_config, epoch, 0);
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
