//! `bcl train`: a preset, changed by flags or a TOML file, trained in a run folder; or a
//! run folder resumed.
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, ensure};
use bcl::amp;
use bcl::config::{Amp, LossKind, Preset, TrainConfig};
use bcl::distributed::{self, Group};
use bcl::run::RunDir;
use bcl::train::{self, Outcome, TrainOptions};
use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::progress::ProgressView;

#[derive(Args)]
pub struct TrainArgs {
    /// The benchmark recipe to start from.
    #[arg(long, default_value = "fashion-mnist-lt", value_parser = super::PresetParser)]
    preset: Preset,
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
    /// Mixed precision: auto (the presets': bf16 on GPUs and on CPUs with AMX, float32 on
    /// other CPUs, where bf16 measured slower), bf16, fp16 (GPUs, with loss scaling) or off.
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
    /// The preset, changed by `--config`, then by the flags.
    fn config(&self) -> Result<TrainConfig> {
        let root = match (&self.root, self.preset) {
            (None, Preset::FashionMnistLt) => bcl::data::fashion_mnist_dir().0,
            (root, _) => root.clone().unwrap_or_default(),
        };
        let mut config = TrainConfig::preset(self.preset, root);
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            config = config.with_overrides(&text, &path.display().to_string())?;
        }
        ensure!(
            !config.data.root.as_os_str().is_empty(),
            "--root is required for --preset {} (or data.root in --config)",
            self.preset.name()
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

    /// The run folder's name when `--out` is not given: the preset, and the config file's.
    fn run_name(&self) -> String {
        let preset = self.preset.name();
        match self.config.as_ref().and_then(|p| p.file_stem()) {
            Some(stem) => format!("{preset}-{}", stem.to_string_lossy()),
            None => preset,
        }
    }
}

pub fn exec(args: &TrainArgs) -> Result<()> {
    if let Some(processes) = args.nproc_per_node {
        return distributed::launch_local(processes);
    }
    let (device, group) = distributed::join_from_env(bcl::parse_device(&args.device)?)?;
    let is_primary = group.as_deref().is_none_or(Group::is_primary);
    let (config, run, resume) = match &args.resume {
        Some(folder) => {
            let run = RunDir::open(folder)?;
            let mut config = run.config()?;
            config.workers = args.workers.or(config.workers);
            // Stopped before its first checkpoint: nothing to lose by starting over.
            let has_checkpoint = run.last().is_file();
            if !has_checkpoint && is_primary {
                println!("{} has no checkpoint yet: starting its config from the first epoch", folder.display());
            }
            (config, run, has_checkpoint)
        }
        None => {
            let mut config = args.config()?;
            // The saved config says what the run uses.
            let (used, why) = amp::resolve(config.amp, device);
            if let Some(why) = why.filter(|_| is_primary) {
                println!("amp = {:?} is not used on {device:?} ({why}): training in float32", config.amp);
            }
            config.amp = used;
            let folder = args.out.clone().unwrap_or_else(|| RunDir::default_path(&args.run_name()));
            let run = RunDir::create_shared(&folder, &config, group.as_deref())?;
            (config, run, false)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let options = TrainOptions { device, resume, stop, max_steps: args.max_steps, group };
    if !is_primary {
        // The other ranks train in silence; rank 0 reports and writes.
        train::train(&config, &run, &options, |_| ())?;
        return options.group.as_deref().map_or(Ok(()), Group::finish);
    }
    let processes = options
        .group
        .as_ref()
        .map_or(String::new(), |g| format!(" × {} processes ({} collectives)", g.world_size(), g.backend_name()));
    println!(
        "{} {} on {device:?}{processes}: {:?} loss, {:?}, {} epochs of batch {}, lr {}, amp {:?}",
        if resume { "resuming" } else { "run" },
        run.path.display(),
        config.loss,
        config.model.arch,
        config.epochs,
        config.batch_size,
        config.schedule.base_lr,
        amp::resolve(config.amp, device).0,
    );
    let mut progress = ProgressView::new();
    let outcome = train::train(&config, &run, &options, |p| progress.show(p))?;
    progress.finish();
    options.group.as_deref().map_or(Ok(()), Group::finish)?;
    if let Some(line) = progress.throughput(config.batch_size) {
        println!("{line}");
    }
    report_outcome(&config, &run, &outcome)
}

/// How the run ended: where it stopped, or the last epoch's evaluation and the report.
fn report_outcome(config: &TrainConfig, run: &RunDir, outcome: &Outcome) -> Result<()> {
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
    super::print_evaluation(train_set.class_names(), &counts, &last.eval);
    let written = bcl::report::write(&run.path, train_set.class_names(), &counts, &last.eval, &run.read_metrics()?)?;
    super::print_written(&written);
    println!("checkpoints: {} and {}", run.last().display(), run.best().display());
    Ok(())
}
