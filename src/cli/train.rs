//! `bcl train`: a preset, changed by flags or a TOML file, trained in a run folder; or a
//! run folder resumed.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Result;
use bcl::amp;
use bcl::config::TrainConfig;
use bcl::distributed::{self, Group};
use bcl::run::RunDir;
use bcl::train::{self, Continuation, Outcome, Prepared, TrainOptions};
use clap::Args;
use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU};
use tch::Device;

use super::config::{ConfigArgs, RunLength};
use super::progress::ProgressView;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    #[command(flatten)]
    length: RunLength,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    device: Device,
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
    #[arg(long, conflicts_with_all = ConfigArgs::ids())]
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
        return Ok(ExitCode::from(super::launch::launch_local(processes, &stop_signals)?));
    }
    // Decided before the ranks meet, while rank 0 has not created the folder yet.
    let to_resume = args.folder_to_resume().map(Path::to_path_buf);
    let (device, group) = distributed::join_from_env(args.device)?;
    let is_primary = group.as_deref().is_none_or(Group::is_primary);
    let Prepared { config, run, resume, notes } =
        prepare(args, to_resume.as_deref(), device, group.as_deref(), is_primary)?;
    if is_primary {
        notes.iter().for_each(|line| println!("{line}"));
    }
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

/// A new run (the config from the preset and flags, in a new folder) or a run folder
/// continued, as the flags say.
fn prepare(
    args: &TrainArgs,
    to_resume: Option<&Path>,
    device: Device,
    group: Option<&Group>,
    is_primary: bool,
) -> Result<Prepared> {
    let Some(folder) = to_resume else {
        let (config, mut notes) = args.settings.resolve(&args.length)?;
        let folder = args.out.clone().unwrap_or_else(|| RunDir::default_path(&args.settings.run_name()));
        let mut prepared = train::start(config, &folder, device, group)?;
        notes.append(&mut prepared.notes);
        prepared.notes = notes;
        return Ok(prepared);
    };
    let how = Continuation {
        epochs: args.length.epochs,
        workers: args.length.workers,
        // --auto-resume: the same command line again; it must describe this run.
        expected: if args.resume.is_none() { Some(args.settings.resolve(&args.length)?.0) } else { None },
    };
    train::resume(folder, &how, device, is_primary)
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
    let Some(end) = train::score_end(config, run, outcome, device)? else {
        println!("{} had already finished all {} epochs", run.path.display(), config.epochs);
        return Ok(());
    };
    super::print_evaluation(end.split, &end.class_names, &end.counts, &end.last);
    super::print_written(&end.written);
    let (split, selection) = (end.split.folder_name(), end.selection.folder_name());
    match end.best {
        Some((epoch, top1, None)) => println!(
            "best: epoch {}, {split} top-1 {:.2}% (picked on {split}: the data has no validation split, so this \
             figure is optimistic; report last)",
            epoch + 1,
            100.0 * top1
        ),
        Some((epoch, top1, Some(on_split))) => println!(
            "best: epoch {}, {selection} top-1 {:.2}%, {split} top-1 {:.2}% (picked on {selection})",
            epoch + 1,
            100.0 * top1,
            100.0 * on_split
        ),
        None => {}
    }
    let selection_top1 = match end.selection == end.split {
        true => String::new(),
        false => format!("{selection} top-1 {:.2}%, ", 100.0 * end.last_selection_top1),
    };
    println!("last: epoch {}, {selection_top1}{split} top-1 {:.2}%", end.last_epoch + 1, 100.0 * end.last.top1);
    println!("checkpoints: {} and {}", run.last().display(), run.best().display());
    Ok(())
}
