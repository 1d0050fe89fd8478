//! Where a run stands, and the checkpoints that carry it from one process to the next:
//! everything `--resume` needs to continue exactly.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

use crate::amp::LossScaler;
use crate::checkpoint::{self, Checkpoint};
use crate::config::{TrainConfig, Tune};
use crate::optim::Sgd;
use crate::run::RunDir;

/// Where a run stands: saved in every checkpoint's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based); `epochs` when training is over.
    pub epoch: usize,
    /// Steps of `epoch` already taken.
    pub step: usize,
    /// Running sums of `epoch`'s steps so far.
    pub sums: EpochSums,
    /// The best top-1 on the selection split so far (`DataConfig::selection_split`), and
    /// its epoch: what `best` holds.
    pub best_top1: Option<f64>,
    pub best_epoch: Option<usize>,
    /// float16 loss scaling, when in use.
    pub loss_scaler: Option<LossScaler>,
}

/// Running sums of an epoch's steps, over every rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub ce: f64,
    pub contrastive: f64,
    pub correct: f64,
    pub samples: usize,
}

/// The format of training checkpoints: 2 since the long-tailed subset became LDAM's and the
/// CIFAR normalisation the recipe's, so that a run from before cannot be resumed on other
/// data. (Their weights still load for `eval` and `predict`.)
const FORMAT: &str = "bcl-checkpoint-2";

/// Writes a run's checkpoints; holds what all of them share (format, config, class names).
pub struct Checkpointer {
    metadata: HashMap<String, String>,
    config: TrainConfig,
}

impl Checkpointer {
    pub fn new(config: &TrainConfig, class_names: &[String]) -> Result<Self> {
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config".to_string(), config.to_toml()?),
            ("class_names".to_string(), serde_json::to_string(class_names)?),
        ]);
        if let (Tune::Head | Tune::Adapter, Some(init)) = (config.finetune.tune, &config.init) {
            metadata.insert(BASE.to_string(), serde_json::to_string(init)?);
        }
        Ok(Self { metadata, config: config.clone() })
    }

    /// Writes a checkpoint of the model and `state` to `path`, with the optimizer's
    /// momentum when given (`last`, to resume from) or without (`best`, for deployment:
    /// weights only, half the size). What the run keeps as its `--init` file has it (a
    /// frozen encoder) is left out: the metadata's `base` names the file by sha256.
    pub fn save(&self, path: &Path, state: &TrainState, vs: &nn::VarStore, optimizer: Option<&Sgd>) -> Result<()> {
        let mut metadata = self.metadata.clone();
        metadata.insert("state".into(), serde_json::to_string(state)?);
        let optimizer = optimizer.map(|o| o.buffers().iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect());
        let trained = vs.variables().into_iter().filter(|(key, _)| !self.config.keeps_from_init(key));
        let checkpoint = Checkpoint { weights: trained.collect(), optimizer: optimizer.unwrap_or_default(), metadata };
        checkpoint::save(path, &checkpoint)
    }
}

/// The metadata key naming the `--init` file (path and sha256) that holds what a
/// checkpoint leaves out.
const BASE: &str = "base";

/// Loads the checkpoint at `path` of a run of `config` into the model's variables and the
/// optimizer; returns where the run stood.
pub fn restore(
    config: &TrainConfig,
    path: &Path,
    vs: &nn::VarStore,
    optimizer: &mut Sgd,
    parameters: &[(String, Tensor)],
) -> Result<TrainState> {
    let saved = checkpoint::load(path)?;
    let state = saved_state(&saved.metadata, path)?;
    crate::predict::load_weights(config, &saved, path, vs)?;
    optimizer.load_buffers(saved.optimizer, parameters)?;
    Ok(state)
}

/// Where the run in `run` stands by its `last` checkpoint, read from the checkpoint's header
/// alone; none before its first checkpoint.
pub fn progress(run: &RunDir) -> Result<Option<TrainState>> {
    let path = run.last();
    if !path.is_file() {
        return Ok(None);
    }
    saved_state_of(&path).map(Some)
}

/// Where the run stood when it wrote the checkpoint at `path` (read from its header).
pub fn saved_state_of(path: &Path) -> Result<TrainState> {
    saved_state(&checkpoint::metadata(path)?, path)
}

fn saved_state(metadata: &HashMap<String, String>, path: &Path) -> Result<TrainState> {
    let text = metadata.get("state").with_context(|| format!("{} is not a bcl training checkpoint", path.display()))?;
    let format = metadata.get("format").map_or("none", String::as_str);
    anyhow::ensure!(
        format == FORMAT,
        "{} is a {format} checkpoint, from a bcl whose long-tailed subset and CIFAR normalisation differ from this \
         one's: it cannot be resumed here (its weights still work with bcl eval and predict); start a new run",
        path.display()
    );
    serde_json::from_str(text).with_context(|| format!("{} has a damaged training state", path.display()))
}
