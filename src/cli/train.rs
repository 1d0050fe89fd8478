//! `bcl train`: a preset, changed by flags or a TOML file, trained in a run folder; or a
//! run folder resumed.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Result, ensure};
use bcl::amp;
use bcl::config::{Amp, TrainConfig};
use bcl::distributed::{self, Group};
use bcl::evaluation::score;
use bcl::loader::LoaderConfig;
use bcl::metrics::{self, Scored};
use bcl::predict::load_model;
use bcl::run::RunDir;
use bcl::train::{self, Outcome, TrainOptions};
use clap::Args;
use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU};
use tch::Device;

use super::config::ConfigArgs;
use super::progress::ProgressView;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Checkpoint and stop after this many steps, printing the throughput after the first
    /// 10 (for benchmarks); 0 writes the run folder with the model as initialised (to
    /// inspect or `bcl export` what --init loaded).
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
    /// Continue the run in this folder from its last checkpoint, with its saved config;
    /// `--epochs N` extends it to N epochs (the schedule is recomputed for N).
    #[arg(long, conflicts_with_all = ["preset", "config", "dataset", "root", "train_list", "val_list", "test_list", "recipe",
        "image_size", "batch_size", "sampler", "lr", "loss", "temperature", "beta", "no_class_averaging",
        "no_class_complement", "imb_factor", "seed", "amp", "arch", "holdout", "init", "encoder_lr_scale", "tune",
        "adapter_dim", "freeze_bn", "init_classifier"])]
    resume: Option<PathBuf>,
    /// If the --out folder already holds this run, continue it instead of refusing: the
    /// same command line works for the first start and for every requeue.
    #[arg(long, requires = "out")]
    auto_resume: bool,
    /// Another signal on which to save and exit, besides SIGINT, SIGTERM and SIGUSR1 (for
    /// schedulers that warn with another one), e.g. USR2.
    #[arg(long, value_parser = parse_signal)]
    stop_signal: Option<i32>,
}

impl TrainArgs {
    /// The run folder to continue: `--resume`'s, or `--out` under `--auto-resume` when it
    /// holds a run.
    fn folder_to_resume(&self) -> Option<&Path> {
        let auto = self.out.as_deref().filter(|out| self.auto_resume && out.join("config.toml").is_file());
        self.resume.as_deref().or(auto)
    }
}

pub fn exec(args: &TrainArgs) -> Result<ExitCode> {
    let mut stop_signals = STOP_SIGNALS.to_vec();
    // Registered once each: a second registration would end the process at the first signal.
    stop_signals.extend(args.stop_signal.filter(|s| !STOP_SIGNALS.contains(s)));
    if let Some(processes) = args.nproc_per_node {
        return Ok(ExitCode::from(distributed::launch_local(processes, &stop_signals)?));
    }
    // Decided before the ranks meet, while rank 0 has not created the folder yet.
    let folder_to_resume = args.folder_to_resume().map(Path::to_path_buf);
    let (device, group) = distributed::join_from_env(bcl::parse_device(&args.device)?)?;
    let is_primary = group.as_deref().is_none_or(Group::is_primary);
    let (config, run, resume) = match folder_to_resume.as_deref() {
        Some(folder) => resumed_run(args, folder, device, is_primary)?,
        None => new_run(args, device, group.as_deref(), is_primary)?,
    };
    let signals = StopSignals::register(&stop_signals)?;
    let options = TrainOptions { device, resume, stop: signals.flag.clone(), max_steps: args.max_steps, group };
    if !is_primary {
        // The other ranks train in silence; rank 0 reports and writes.
        let outcome = train::train(&config, &run, &options, |_| ())?;
        options.group.as_deref().map_or(Ok(()), Group::finish)?;
        return Ok(signals.exit_code(&outcome));
    }
    let processes = options
        .group
        .as_ref()
        .map_or(String::new(), |g| format!(" × {} processes ({} collectives)", g.world_size(), g.backend_name()));
    println!(
        "{} {} on {device:?}{processes}: {:?} loss, {:?}, {} epochs of batch {}, lr {}, amp {:?}",
        if resume { "resuming" } else { "run" },
        run.path.display(),
        config.loss.kind(),
        config.model.arch,
        config.epochs,
        config.batch_size,
        config.schedule.base_lr,
        amp::resolve(config.amp, device).0,
    );
    let mut progress = ProgressView::new(config.data.selection_split());
    let outcome = train::train(&config, &run, &options, |p| progress.show(p))?;
    progress.finish();
    options.group.as_deref().map_or(Ok(()), Group::finish)?;
    if let Some(line) = progress.throughput(config.batch_size) {
        println!("{line}");
    }
    report_outcome(&config, &run, &outcome, device)?;
    Ok(signals.exit_code(&outcome))
}

/// A new run: the config from the preset and flags, with the precision the device will use
/// (so that the saved config says it), in a new run folder.
fn new_run(
    args: &TrainArgs,
    device: Device,
    group: Option<&Group>,
    is_primary: bool,
) -> Result<(TrainConfig, RunDir, bool)> {
    let (mut config, decisions) = args.settings.resolve()?;
    if is_primary {
        decisions.iter().for_each(|line| println!("{line}"));
    }
    let (used, why) = amp::resolve(config.amp, device);
    if let Some(why) = why.filter(|_| is_primary) {
        println!("amp = {:?} is not used on {device:?} ({why}): training in float32", config.amp);
    }
    config.amp = used;
    let folder = args.out.clone().unwrap_or_else(|| RunDir::default_path(&args.settings.run_name()));
    Ok((config.clone(), RunDir::create_shared(&folder, &config, group)?, false))
}

/// A run continued from its folder with its saved config (`--resume`, or `--auto-resume`
/// finding one), given more (or fewer) epochs by `--epochs`.
fn resumed_run(
    args: &TrainArgs,
    folder: &Path,
    device: Device,
    is_primary: bool,
) -> Result<(TrainConfig, RunDir, bool)> {
    let run = RunDir::open(folder)?;
    let mut config = run.config()?;
    config.workers = args.settings.workers.or(config.workers);
    if args.resume.is_none() {
        // --auto-resume: the same command line again (a requeued job); it must describe
        // this run, epochs aside.
        let (mut asked, _) = args.settings.resolve()?;
        // `auto` resolves by machine: a job requeued onto another kind of node is the same run.
        asked.amp = if asked.amp == Amp::Auto { config.amp } else { amp::resolve(asked.amp, device).0 };
        (asked.workers, asked.epochs) = (config.workers, config.epochs);
        let changed = changed_keys(&asked, &config)?;
        ensure!(
            changed.is_empty(),
            "--auto-resume: {} holds a run with another config ({} differ); give another --out, or --resume {} to \
             continue it as it is",
            folder.display(),
            changed.join(", "),
            folder.display()
        );
    }
    if let Some(epochs) = args.settings.epochs.filter(|&e| e != config.epochs) {
        let (done, in_epoch) = train::progress(&run)?.map_or((0, false), |state| (state.epoch, state.step > 0));
        ensure!(
            epochs >= done.max(1) && !(in_epoch && epochs == done),
            "--epochs {epochs}: {} has trained {done} epochs{} already; a run can be extended, not cut below that",
            folder.display(),
            if in_epoch { " and part of the next" } else { "" }
        );
        config.epochs = epochs;
        config.validate()?;
        if is_primary {
            run.write_config(&config)?;
            println!("{}: {epochs} epochs now; the learning-rate schedule is recomputed for them", folder.display());
        }
    }
    // Stopped before its first checkpoint: nothing to lose by starting over.
    let has_checkpoint = run.last().is_file();
    if !has_checkpoint && is_primary {
        println!("{} has no checkpoint yet: starting its config from the first epoch", folder.display());
    }
    Ok((config, run, has_checkpoint))
}

/// The top-level config keys whose values differ between `a` and `b` (unset in one of them
/// included).
fn changed_keys(a: &TrainConfig, b: &TrainConfig) -> Result<Vec<String>> {
    let (a, b) = (toml::Table::try_from(a)?, toml::Table::try_from(b)?);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    Ok(keys.into_iter().filter(|key| a.get(*key) != b.get(*key)).cloned().collect())
}

/// Signals on which a run saves a checkpoint at the next step and exits with 128 + the
/// signal's number, ready for `--resume`: Ctrl-C, `kill`, and SIGUSR1, which batch
/// schedulers send ahead of preemption (SLURM: `#SBATCH --signal=B:USR1@120`).
const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGUSR1];

/// The stop signals, registered: `flag` asks training to stop; `received` is the last one.
struct StopSignals {
    flag: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
}

impl StopSignals {
    fn register(signals: &[i32]) -> Result<Self> {
        let (flag, received) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        for &signal in signals {
            // A second signal while the first is being handled ends the process at once.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, flag.clone())?;
            signal_hook::flag::register(signal, flag.clone())?;
            signal_hook::flag::register_usize(signal, received.clone(), signal as usize)?;
        }
        Ok(Self { flag, received })
    }

    /// 0 for a run that finished (or stopped at `--max-steps`); 128 + the signal's number for
    /// one a signal stopped, as a shell reports a process that signal ended, so that
    /// schedulers and scripts do not take it for a finished run.
    fn exit_code(&self, outcome: &Outcome) -> ExitCode {
        match self.received.load(Ordering::SeqCst) {
            signal if signal > 0 && outcome.stopped_at.is_some() => ExitCode::from(128 + signal as u8),
            _ => ExitCode::SUCCESS,
        }
    }
}

/// `--stop-signal`: a signal's name (`USR2`, `SIGHUP`) or number.
fn parse_signal(text: &str) -> Result<i32, String> {
    const NAMES: [(&str, i32); 8] = [
        ("HUP", SIGHUP),
        ("INT", SIGINT),
        ("QUIT", SIGQUIT),
        ("USR1", SIGUSR1),
        ("USR2", SIGUSR2),
        ("ALRM", SIGALRM),
        ("TERM", SIGTERM),
        ("XCPU", SIGXCPU),
    ];
    let name = text.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, signal)| signal)
        .or_else(|| name.parse().ok().filter(|n| NAMES.iter().any(|&(_, s)| s == *n)))
        .ok_or_else(|| {
            let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            format!("{text:?} is not a signal a run can stop on; one of {}", names.join(", "))
        })
}

/// How the run ended: where it stopped, or the evaluation of the last epoch's model on the
/// data's evaluation split, with the report, and `best` beside it.
fn report_outcome(config: &TrainConfig, run: &RunDir, outcome: &Outcome, device: Device) -> Result<()> {
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
    let (selection, split) = (config.data.selection_split(), config.data.eval_split());
    // Picked on val, the models are scored on the evaluation split only now.
    let on_split = |checkpoint: &Path| -> Result<Vec<Scored>> {
        let loaded = load_model(checkpoint, Some(config), device)?;
        let data = config.data.eval_set(split, train_set.as_ref())?;
        let recipe = Arc::new(config.recipe()?);
        score(&loaded.model, data, recipe, &LoaderConfig::for_run(config, device), device, None)
    };
    let last_scores = if selection == split { outcome.last_scores.clone() } else { on_split(&run.last())? };
    let last_eval = metrics::evaluate(&last_scores, &counts);
    super::print_evaluation(split, train_set.class_names(), &counts, &last_eval);
    let written = bcl::report::write(
        &run.path,
        split,
        train_set.class_names(),
        &counts,
        &last_eval,
        &last_scores,
        &run.read_metrics()?,
    )?;
    super::print_written(&written);
    let (split_name, selection_name) = (split.folder_name(), selection.folder_name());
    if let Some((epoch, top1)) = outcome.best {
        if selection == split {
            println!(
                "best: epoch {}, {split_name} top-1 {:.2}% (picked on {split_name}: the data has no validation \
                 split, so this figure is optimistic; report last)",
                epoch + 1,
                100.0 * top1
            );
        } else {
            let best_top1 = metrics::evaluate(&on_split(&run.best())?, &counts).top1;
            println!(
                "best: epoch {}, {selection_name} top-1 {:.2}%, {split_name} top-1 {:.2}% (picked on {selection_name})",
                epoch + 1,
                100.0 * top1,
                100.0 * best_top1
            );
        }
    }
    let selection_top1 = if selection == split {
        String::new()
    } else {
        format!("{selection_name} top-1 {:.2}%, ", 100.0 * last.eval.top1)
    };
    println!("last: epoch {}, {selection_top1}{split_name} top-1 {:.2}%", last.epoch + 1, 100.0 * last_eval.top1);
    println!("checkpoints: {} and {}", run.last().display(), run.best().display());
    Ok(())
}
