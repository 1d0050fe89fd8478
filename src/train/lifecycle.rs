//! What happens around [`super::train`]'s loop: a run started in a new folder, resumed (and
//! perhaps extended) from its folder, and scored at its end. `bcl train` prints what these
//! return; a program calls them the same way.
use std::path::Path;

use anyhow::{Result, ensure};
use tch::Device;

use super::Outcome;
use crate::amp;
use crate::config::{Amp, TrainConfig};
use crate::data::Split;
use crate::distributed::Group;
use crate::evaluation::EvalData;
use crate::metrics::{self, Evaluation, Scored};
use crate::predict::load_model;
use crate::run::RunDir;

/// A run ready to train: its config, its folder, whether `last` is continued, and lines for
/// the user about what was decided.
pub struct Prepared {
    pub config: TrainConfig,
    pub run: RunDir,
    pub resume: bool,
    pub notes: Vec<String>,
}

/// A new run of `config` in `folder` (created; on the primary process of a `group`), with
/// the precision `device` will use written into the config, so that the saved config says it.
pub fn start(mut config: TrainConfig, folder: &Path, device: Device, group: Option<&Group>) -> Result<Prepared> {
    let (used, why) = amp::resolve(config.amp, device);
    let notes = why
        .map(|why| format!("amp = {:?} is not used on {device:?} ({why}): training in float32", config.amp))
        .into_iter()
        .collect();
    config.amp = used;
    let run = RunDir::create_shared(folder, &config, group)?;
    Ok(Prepared { config, run, resume: false, notes })
}

/// How a run folder is continued.
#[derive(Debug, Clone, Default)]
pub struct Continuation {
    /// Train to this many epochs (the schedule is recomputed for them); more than the run
    /// has done, or as many when the last one is unfinished.
    pub epochs: Option<usize>,
    /// Loader threads (they do not change the result).
    pub workers: Option<usize>,
    /// `--auto-resume`: the config the command line asks for, which must be the run's
    /// (epochs aside).
    pub expected: Option<TrainConfig>,
}

/// The run in `folder` continued from its last checkpoint with its saved config, as `how`
/// says; only the primary process (`write`) rewrites its config.
pub fn resume(folder: &Path, how: &Continuation, device: Device, write: bool) -> Result<Prepared> {
    let run = RunDir::open(folder)?;
    let mut config = run.config()?;
    config.workers = how.workers.or(config.workers);
    if let Some(expected) = &how.expected {
        check_same_run(expected, &config, folder, device)?;
    }
    let mut notes = Vec::new();
    if let Some(epochs) = how.epochs.filter(|&e| e != config.epochs) {
        extend(&run, &mut config, epochs)?;
        if write {
            run.write_config(&config)?;
        }
        notes.push(format!(
            "{}: {epochs} epochs now; the learning-rate schedule is recomputed for them",
            folder.display()
        ));
    }
    // Stopped before its first checkpoint: nothing to lose by starting over.
    let resume = run.last().is_file();
    if !resume {
        notes.push(format!("{} has no checkpoint yet: starting its config from the first epoch", folder.display()));
    }
    Ok(Prepared { config, run, resume, notes })
}

/// `--auto-resume` (a requeued job runs the same command line again): the folder's run must
/// be the one `expected` describes, epochs and loader threads aside.
fn check_same_run(expected: &TrainConfig, saved: &TrainConfig, folder: &Path, device: Device) -> Result<()> {
    let mut asked = expected.clone();
    // `auto` resolves by machine: a job requeued onto another kind of node is the same run.
    asked.amp = if asked.amp == Amp::Auto { saved.amp } else { amp::resolve(asked.amp, device).0 };
    (asked.workers, asked.epochs) = (saved.workers, saved.epochs);
    let changed = changed_keys(&asked, saved)?;
    ensure!(
        changed.is_empty(),
        "--auto-resume: {} holds a run with another config ({} differ); give another --out, or --resume {} to \
         continue it as it is",
        folder.display(),
        changed.join(", "),
        folder.display()
    );
    Ok(())
}

/// Gives `config` `epochs` epochs: more than `run` has trained, never fewer.
fn extend(run: &RunDir, config: &mut TrainConfig, epochs: usize) -> Result<()> {
    let (done, in_epoch) = super::progress(run)?.map_or((0, false), |state| (state.epoch, state.step > 0));
    ensure!(
        epochs >= done.max(1) && !(in_epoch && epochs == done),
        "--epochs {epochs}: {} has trained {done} epochs{} already; a run can be extended, not cut below that",
        run.path.display(),
        if in_epoch { " and part of the next" } else { "" }
    );
    config.epochs = epochs;
    config.validate()
}

/// The top-level config keys whose values differ between `a` and `b` (unset in one of them
/// included).
fn changed_keys(a: &TrainConfig, b: &TrainConfig) -> Result<Vec<String>> {
    let (a, b) = (toml::Table::try_from(a)?, toml::Table::try_from(b)?);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    Ok(keys.into_iter().filter(|key| a.get(*key) != b.get(*key)).cloned().collect())
}

/// A finished run scored on its evaluation split: `last` always, `best` when it was picked
/// on another split (validation); the report files are written into the run folder.
pub struct FinalScores {
    /// The split the models were picked on, and the one they are scored on.
    pub selection: Split,
    pub split: Split,
    pub class_names: Vec<String>,
    pub counts: Vec<i64>,
    /// The last epoch's model on `split`.
    pub last: Evaluation,
    /// The last epoch's top-1 on `selection`.
    pub last_selection_top1: f64,
    pub last_epoch: usize,
    /// The best epoch, its top-1 on `selection`, and on `split` when that is another split.
    pub best: Option<(usize, f64, Option<f64>)>,
    /// The report files written.
    pub written: Vec<std::path::PathBuf>,
}

/// Scores the run `outcome` finished (None when it stopped early or had finished before).
pub fn score_end(config: &TrainConfig, run: &RunDir, outcome: &Outcome, device: Device) -> Result<Option<FinalScores>> {
    let Some(last) = outcome.records.last().filter(|_| outcome.stopped_at.is_none()) else {
        return Ok(None);
    };
    let (selection, split) = (config.data.selection_split(), config.data.eval_split());
    let data = EvalData::open(config, split, device)?;
    // Picked on val, the models are scored on the evaluation split only now.
    let on_split = |checkpoint: &Path| -> Result<Vec<Scored>> {
        data.score(&load_model(checkpoint, Some(config), device)?.model, None)
    };
    let last_scores = if selection == split { outcome.last_scores.clone() } else { on_split(&run.last())? };
    let last_eval = metrics::evaluate(&last_scores, &data.counts);
    let history = run.read_metrics()?;
    let scope = crate::report::Scope { checkpoint: &run.last(), split };
    let written =
        crate::report::write(&run.path, scope, data.class_names(), &data.counts, &last_eval, &last_scores, &history)?;
    let best = match outcome.best {
        Some((epoch, top1)) if selection != split => {
            Some((epoch, top1, Some(metrics::evaluate(&on_split(&run.best())?, &data.counts).top1)))
        }
        Some((epoch, top1)) => Some((epoch, top1, None)),
        None => None,
    };
    Ok(Some(FinalScores {
        selection,
        split,
        class_names: data.class_names().to_vec(),
        counts: data.counts.clone(),
        last: last_eval,
        last_selection_top1: last.eval.top1,
        last_epoch: last.epoch,
        best,
        written,
    }))
}
