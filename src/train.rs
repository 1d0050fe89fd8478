//! Training and evaluation of the BCL model (SPEC sections 2, 3, 5).
//!
//! One step is one forward pass over the 3B images of views 0, 1, 2; the loss is
//! α · LA-CE(view-0 logits) + β · BCL(views 1–2 features, class prototypes).
//!
//! Training writes into a run folder ([`RunDir`]): a checkpoint after every epoch (and
//! when asked to stop), so that a resumed run continues exactly where the checkpoint left
//! off: the loader's batches and augmentations depend only on (seed, epoch, position), and
//! the checkpoint holds the weights, the momentum buffers and the epoch's running sums.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::amp::{self, LossScaler};
use crate::augment::Recipe;
use crate::c10d;
use crate::checkpoint::{self, Checkpoint};
use crate::config::{Amp, LossKind, TrainConfig};
use crate::data::Dataset;
use crate::distributed::{self, Group};
use crate::loader::{self, LoaderConfig};
use crate::loss::{balanced_contrastive_loss_of_anchors, cross_entropy, logit_adjusted_cross_entropy};
use crate::metrics::{self, Evaluation};
use crate::model::{BclModel, BclOutput, norm};
use crate::optim::Sgd;
use crate::run::RunDir;
use crate::tensorboard::EventWriter;
/// One epoch's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    /// Mean (logit-adjusted) cross-entropy of the epoch's steps.
    pub train_ce: f64,
    /// Mean contrastive loss (0 for `la` and `ce`).
    pub train_contrastive: f64,
    /// Top-1 of view 0's logits during training.
    pub train_accuracy: f64,
    pub eval: Evaluation,
    pub seconds: f64,
    /// Training samples (3 views each) per second.
    pub samples_per_second: f64,
}

/// Where a run stands: saved in every checkpoint's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based); `epochs` when training is over.
    pub epoch: usize,
    /// Steps of `epoch` already taken.
    pub step: usize,
    /// Running sums of `epoch`'s steps so far.
    pub sums: EpochSums,
    pub best_top1: Option<f64>,
    pub best_epoch: Option<usize>,
    /// float16 loss scaling, when in use.
    pub loss_scaler: Option<LossScaler>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub ce: f64,
    pub contrastive: f64,
    pub correct: f64,
    pub samples: usize,
}

/// What training reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// An epoch begins at `step` of `steps`.
    EpochStart {
        epoch: usize,
        step: usize,
        steps: usize,
    },
    /// Every few steps: running means of the epoch so far.
    Steps {
        epoch: usize,
        step: usize,
        ce: f64,
        contrastive: f64,
        samples_per_second: f64,
    },
    /// The test-set evaluation is running.
    Evaluating {
        epoch: usize,
    },
    Epoch(&'a EpochRecord),
}

/// How a call to [`train`] ended.
#[derive(Debug)]
pub struct Outcome {
    /// Set when training stopped early on request: the epoch and step it saved at.
    pub stopped_at: Option<(usize, usize)>,
    /// The records of the epochs this call finished.
    pub records: Vec<EpochRecord>,
}

/// How to run: the device, whether to continue the run folder's `last` checkpoint, a flag
/// that asks training to checkpoint and return (set by SIGINT/SIGTERM), and the other
/// processes of a data-parallel run.
pub struct TrainOptions {
    pub device: Device,
    pub resume: bool,
    pub stop: Arc<AtomicBool>,
    /// Checkpoint and return after this many steps (benchmarks and smoke tests).
    pub max_steps: Option<usize>,
    /// Data-parallel training: `config.batch_size` is the global batch, shared out over
    /// the ranks; only rank 0 evaluates and writes into the run folder.
    pub group: Option<Arc<Group>>,
}

/// Steps between checks that the loss is finite (each check waits for the device, and for
/// the other ranks, which also learn there whether one of them was asked to stop).
const CHECK_EVERY: usize = 10;

/// Trains as `config` says, writing checkpoints, metrics and TensorBoard logs into `run`.
pub fn train(
    config: &TrainConfig,
    run: &RunDir,
    options: &TrainOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<Outcome> {
    let device = options.device;
    let group = options.group.as_deref();
    let (lead, world) = group.map_or((true, 1), |g| (g.is_lead(), g.world_size()));
    ensure!(
        config.batch_size.is_multiple_of(world) && config.batch_size / world > 1,
        "batch_size = {} cannot be shared out over {world} processes (at least 2 samples each, evenly)",
        config.batch_size
    );
    let train_set = config.data.train_set()?;
    let test_set = config.data.eval_set(config.data.dataset.eval_split())?;
    let class_counts = check_data(config, train_set.as_ref())?;
    let recipe = Arc::new(recipe(config, train_set.as_ref())?);
    let mut loader_config = loader_config(config, device);
    if let Some(group) = group {
        (loader_config.rank, loader_config.world_size) = (group.rank(), world);
    }

    let (vs, model) = seeded_model(config, device);
    let parameters = trainable(&vs);
    let mut optimizer = Sgd::new(config.momentum, config.weight_decay, config.nesterov);
    let mut state = TrainState::default();
    if options.resume {
        let path = run.last();
        let saved = checkpoint::load(&path)?;
        state = saved_state(&saved, &path)?;
        checkpoint::copy_weights(&vs.variables(), &saved.weights, &path)?;
        optimizer.load_buffers(saved.optimizer, &parameters)?;
    } else if lead {
        run.write_class_counts(train_set.class_names(), &class_counts)?;
    }
    if config.channels_last {
        tch::no_grad(|| {
            for (_, mut weight) in vs.variables().into_iter().filter(|(_, t)| t.dim() == 4) {
                weight.set_data(&to_channels_last(&weight));
            }
        });
    }
    if let Some(group) = group {
        // Every rank starts from rank 0's weights, as DDP does (in name order on every rank).
        let variables: std::collections::BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        tch::no_grad(|| variables.values().try_for_each(|t| group.broadcast(t)))?;
        if !lead {
            // Rank 0 alone carries the saved running sums; the ranks' shares add up.
            state.sums = EpochSums::default();
        }
    }
    let mut events = None;
    if lead {
        // Epochs logged after the checkpoint (a crash between the two) are trained again.
        run.truncate_metrics(state.epoch)?;
        events = Some(EventWriter::create(&run.path)?);
    }
    let cuda = device.is_cuda();
    let autocast_kind = if cuda { amp::autocast_kind(config.amp) } else { None };
    if cuda {
        tch::Cuda::cudnn_set_benchmark(true);
        if config.amp == Amp::Fp16 && state.loss_scaler.is_none() {
            state.loss_scaler = Some(LossScaler::default());
        }
    }
    let metadata = HashMap::from([
        ("format".to_string(), "bcl-checkpoint-1".to_string()),
        ("config".to_string(), config.to_toml()?),
        ("class_names".to_string(), serde_json::to_string(train_set.class_names())?),
    ]);
    let counts = Tensor::from_slice(&class_counts).to_device(device);
    // SyncBatchNorm: training forward passes take their statistics over every rank's
    // samples (at world size 1 too, where they are plain BatchNorm's, computed its way).
    let sync_batch_norm = options.group.as_ref().filter(|_| config.sync_batch_norm).map(|group| {
        let group = Arc::clone(group);
        Rc::new(move |t: &Tensor| c10d::sum_over_ranks(Arc::clone(&group), t)) as Rc<norm::SumOverRanks>
    });
    let mut outcome = Outcome { stopped_at: None, records: Vec::new() };
    let mut steps_taken = 0;

    while state.epoch < config.epochs {
        let epoch = state.epoch;
        let start = Instant::now();
        let lr = config.schedule.lr(epoch, config.epochs);
        let epoch_loader =
            loader::train_epoch(train_set.clone(), recipe.clone(), &loader_config, epoch as u64, state.step);
        on_progress(Progress::EpochStart { epoch, step: state.step, steps: state.step + epoch_loader.num_batches() });
        // Sums (ce, contrastive, correct, samples) stay on the device between checks: no
        // host synchronisation at every step. Each rank adds its share (losses / world
        // size), so that the ranks' sums add up to the sums of one process.
        let EpochSums { ce, contrastive, correct, samples } = state.sums;
        let mut sums = Tensor::from_slice(&[ce, contrastive, correct, samples as f64]).to_device(device);
        let mut window: Vec<Tensor> = Vec::with_capacity(CHECK_EVERY);
        let (first_step, first_samples) = (state.step, state.sums.samples);
        for batch in epoch_loader {
            let batch = batch?;
            let mut images = batch.input(device);
            if config.channels_last {
                images = to_channels_last(&images);
            }
            let labels = batch.labels.to_device(device);
            let losses = amp::autocast(device, autocast_kind, || {
                step_losses(config, &model, &images, &labels, &counts, group, sync_batch_norm.as_ref())
            })?;
            let ce = losses.ce.to_kind(Kind::Float);
            let total = match &losses.contrastive {
                Some((_, surrogate)) => &ce * config.alpha + surrogate.to_kind(Kind::Float) * config.beta,
                None => ce.shallow_clone(),
            };
            parameters.iter().for_each(|(_, p)| p.shallow_clone().zero_grad());
            // Fails only when a collective inside the backward pass does (SyncBatchNorm).
            match &state.loss_scaler {
                Some(scaler) => (&total * scaler.scale).f_backward(),
                None => total.f_backward(),
            }?;
            if let Some(group) = group {
                group.average_gradients(&parameters)?;
            }
            if state.loss_scaler.as_mut().is_none_or(|scaler| scaler.unscale(&parameters)) {
                optimizer.step(&parameters, lr);
            }
            tch::no_grad(|| {
                let contrastive = losses.contrastive.as_ref().map_or(ce.zeros_like(), |(value, _)| value.detach());
                let correct = losses.logits.argmax(1, false).eq_tensor(&labels).sum(Kind::Float);
                let samples = correct.full_like(batch.indices.len() as f64);
                let shares = [&ce.detach() / world as f64, contrastive.to_kind(Kind::Float) / world as f64];
                sums += Tensor::stack(&[&shares[0], &shares[1], &correct, &samples], 0).to_kind(Kind::Double);
            });
            window.push(total.detach());
            state.step += 1;
            steps_taken += 1;
            let at_max_steps = options.max_steps.is_some_and(|max| steps_taken >= max);
            let requested = options.stop.load(Ordering::SeqCst);
            let mut stop = at_max_steps;
            if window.len() == CHECK_EVERY || at_max_steps || (requested && group.is_none()) {
                let any_stop;
                (state.sums, any_stop) = check_window(&mut window, &sums, requested, group, (epoch, state.step), run)?;
                stop |= any_stop;
                let steps = (state.step - first_step) as f64;
                on_progress(Progress::Steps {
                    epoch,
                    step: state.step,
                    ce: state.sums.ce / state.step as f64,
                    contrastive: state.sums.contrastive / state.step as f64,
                    samples_per_second: steps * config.batch_size as f64 / start.elapsed().as_secs_f64(),
                });
            }
            if stop {
                if lead {
                    save(&[run.last()], &metadata, &state, &vs, &optimizer)?;
                }
                outcome.stopped_at = Some((epoch, state.step));
                return Ok(outcome);
            }
        }
        let (epoch_sums, _) = check_window(&mut window, &sums, false, group, (epoch, state.step), run)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let next = TrainState { epoch: epoch + 1, step: 0, sums: EpochSums::default(), ..state.clone() };
        if let Some(events) = events.as_mut() {
            let steps = state.step.max(1) as f64;
            on_progress(Progress::Evaluating { epoch });
            let eval = evaluate(&model, test_set.clone(), recipe.clone(), &loader_config, device, &class_counts)?;
            let record = EpochRecord {
                epoch,
                lr,
                train_ce: epoch_sums.ce / steps,
                train_contrastive: epoch_sums.contrastive / steps,
                train_accuracy: epoch_sums.correct / epoch_sums.samples.max(1) as f64,
                eval,
                seconds: start.elapsed().as_secs_f64(),
                samples_per_second: (epoch_sums.samples - first_samples) as f64 / train_seconds,
            };
            log_epoch(run, events, &record)?;
            let improved = state.best_top1.is_none_or(|best| record.eval.top1 > best);
            state = next;
            if improved {
                (state.best_top1, state.best_epoch) = (Some(record.eval.top1), Some(epoch));
            }
            let paths = if improved { vec![run.last(), run.best()] } else { vec![run.last()] };
            save(&paths, &metadata, &state, &vs, &optimizer)?;
            on_progress(Progress::Epoch(&record));
            outcome.records.push(record);
        } else {
            state = next;
        }
        if any_rank(group, options.stop.load(Ordering::SeqCst))? && state.epoch < config.epochs {
            outcome.stopped_at = Some((state.epoch, 0));
            return Ok(outcome);
        }
    }
    Ok(outcome)
}

/// Whether `flag` is set on any rank.
fn any_rank(group: Option<&Group>, flag: bool) -> Result<bool> {
    let Some(group) = group else { return Ok(flag) };
    let flags = Tensor::from(flag as i64);
    group.all_reduce_sum(&flags)?;
    Ok(flags.int64_value(&[]) > 0)
}

/// A freshly initialised model. libtorch's random generator is global: the lock keeps
/// models built in other threads (tests run in parallel) from drawing between the seeding
/// and the initialisation.
fn seeded_model(config: &TrainConfig, device: Device) -> (nn::VarStore, BclModel) {
    static INIT: Mutex<()> = Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = BclModel::new(&vs.root(), &config.model);
    (vs, model)
}

/// Class counts of the training set, after checking that the data fits the config.
fn check_data(config: &TrainConfig, train_set: &dyn Dataset) -> Result<Vec<i64>> {
    let class_counts = train_set.class_counts();
    ensure!(
        class_counts.len() as i64 == config.model.num_classes,
        "the data has {} classes, the model {}",
        class_counts.len(),
        config.model.num_classes
    );
    if let Some(empty) = class_counts.iter().position(|&n| n == 0) {
        bail!("class {empty} ({}) has no training images", train_set.class_names()[empty]);
    }
    ensure!(
        train_set.len() >= config.batch_size,
        "{} training images, fewer than one batch of {}",
        train_set.len(),
        config.batch_size
    );
    ensure!(
        train_set.channels() as i64 == config.model.in_channels,
        "the images have {} channels, the model expects {}",
        train_set.channels(),
        config.model.in_channels
    );
    Ok(class_counts)
}

/// The views and evaluation transform of a run, sized from its first training image.
pub fn recipe(config: &TrainConfig, train_set: &dyn Dataset) -> Result<Recipe> {
    Recipe::for_dataset(config.data.dataset, &train_set.image(0)?, config.cl_views, &config.randaugment, config.cutout)
}

/// The loader settings of a run: 8-bit batches in pinned memory for a GPU.
pub fn loader_config(config: &TrainConfig, device: Device) -> LoaderConfig {
    let mut loader_config = LoaderConfig::new(config.batch_size, config.seed, config.data.dataset.normalization());
    if let Some(workers) = config.workers {
        loader_config.workers = workers;
    }
    if device.is_cuda() {
        loader_config.normalize_in_workers = false;
        loader_config.pin_memory_for = Some(device);
    }
    loader_config
}

/// The trainable parameters by name, in name order.
fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut parameters: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    parameters.sort_by(|a, b| a.0.cmp(&b.0));
    parameters
}

/// NCHW values in NHWC memory order, which cuDNN's tensor-core convolutions prefer, and
/// oneDNN's on CPU. Convolution weights in this order make every activation NHWC, even
/// for 1-channel images, whose NHWC and NCHW layouts coincide.
fn to_channels_last(images: &Tensor) -> Tensor {
    images.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Checks that the losses of the steps in `window` (the steps before `step`) are finite on
/// every rank, and learns whether any rank was asked to `stop`. Returns the epoch's running
/// sums (`sums`: ce, contrastive, correct, samples) added over the ranks, and that flag.
fn check_window(
    window: &mut Vec<Tensor>,
    sums: &Tensor,
    stop: bool,
    group: Option<&Group>,
    (epoch, step): (usize, usize),
    run: &RunDir,
) -> Result<(EpochSums, bool)> {
    let first_step = step - window.len();
    let mut parts: Vec<Tensor> = window.drain(..).map(|loss| loss.to_kind(Kind::Double).view([1])).collect();
    parts.push(sums.shallow_clone());
    parts.push(Tensor::from(if stop { 1.0 } else { 0.0 }).to_device(sums.device()).view([1]));
    let all = Tensor::cat(&parts, 0);
    if let Some(group) = group {
        group.all_reduce_sum(&all)?;
    }
    let all = Vec::<f64>::try_from(all.to_device(Device::Cpu))?;
    let (losses, rest) = all.split_at(all.len() - 5);
    if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
        bail!(
            "epoch {}, step {}: the training loss is {}; stopped without saving ({} is unchanged). \
             A lower learning rate or a check of the data may help.",
            epoch + 1,
            first_step + bad + 1,
            losses[bad],
            run.last().display()
        );
    }
    let sums = EpochSums { ce: rest[0], contrastive: rest[1], correct: rest[2], samples: rest[3] as usize };
    Ok((sums, rest[4] > 0.0))
}

fn log_epoch(run: &RunDir, events: &mut EventWriter, record: &EpochRecord) -> Result<()> {
    run.append_metrics(record)?;
    let step = record.epoch as i64 + 1;
    let eval = &record.eval;
    let mut scalars = vec![
        ("train/ce", Some(record.train_ce)),
        ("train/contrastive", Some(record.train_contrastive)),
        ("train/accuracy", Some(record.train_accuracy)),
        ("train/lr", Some(record.lr)),
        ("val/top1", Some(eval.top1)),
        ("val/many", eval.many),
        ("val/medium", eval.medium),
        ("val/few", eval.few),
    ];
    scalars.retain(|(_, v)| v.is_some());
    for (tag, value) in scalars {
        events.scalar(tag, step, value.unwrap_or_default())?;
    }
    events.flush()
}

/// Writes a checkpoint of the model, the optimizer and `state` to each of `paths`;
/// `metadata` holds what every checkpoint of the run shares (format, config, class names).
fn save(
    paths: &[PathBuf],
    metadata: &HashMap<String, String>,
    state: &TrainState,
    vs: &nn::VarStore,
    optimizer: &Sgd,
) -> Result<()> {
    let mut metadata = metadata.clone();
    metadata.insert("state".into(), serde_json::to_string(state)?);
    let checkpoint = Checkpoint {
        weights: vs.variables().into_iter().collect(),
        optimizer: optimizer.buffers().iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect(),
        metadata,
    };
    let bytes = checkpoint::encode(&checkpoint)?;
    paths.iter().try_for_each(|path| checkpoint::write_atomic(path, &bytes))
}

fn saved_state(saved: &Checkpoint, path: &Path) -> Result<TrainState> {
    let text =
        saved.metadata.get("state").with_context(|| format!("{} is not a bcl training checkpoint", path.display()))?;
    serde_json::from_str(text).with_context(|| format!("{} has a damaged training state", path.display()))
}

/// A trained model, ready to evaluate.
pub struct LoadedModel {
    pub config: TrainConfig,
    pub model: BclModel,
    /// Class names saved with a bcl checkpoint; `class k` for plain weights.
    pub class_names: Vec<String>,
    /// Owns the weights `model` uses.
    pub vs: nn::VarStore,
}

/// The model of a checkpoint: its config from the checkpoint's metadata (or `fallback`, for
/// plain weights such as the reference's), its weights loaded on `device`.
pub fn load_model(path: &Path, fallback: Option<&TrainConfig>, device: Device) -> Result<LoadedModel> {
    let saved = checkpoint::load(path)?;
    let config = match (saved.metadata.get("config"), fallback) {
        (_, Some(config)) => config.clone(),
        (Some(text), None) => TrainConfig::from_toml(text, &format!("the config in {}", path.display()))?,
        (None, None) => bail!("{} holds weights only; say which model it is with --preset", path.display()),
    };
    let vs = nn::VarStore::new(device);
    let model = BclModel::new(&vs.root(), &config.model);
    checkpoint::copy_weights(&vs.variables(), &saved.weights, path)?;
    let class_names = crate::predict::class_names(saved.metadata.get("class_names"), config.model.num_classes)?;
    Ok(LoadedModel { config, model, class_names, vs })
}

/// The losses of one step.
struct StepLosses {
    /// The (logit-adjusted) cross-entropy of view 0.
    ce: Tensor,
    /// The contrastive loss's value and what to call `backward` on (the same tensor on one
    /// process; see [`distributed::gathered_loss`] for several). None for `la` and `ce`.
    contrastive: Option<(Tensor, Tensor)>,
    /// View 0's logits.
    logits: Tensor,
}

fn step_losses(
    config: &TrainConfig,
    model: &BclModel,
    images: &Tensor,
    labels: &Tensor,
    counts: &Tensor,
    group: Option<&Group>,
    sync: Option<&Rc<norm::SumOverRanks>>,
) -> Result<StepLosses> {
    let b = labels.size()[0];
    let bn_group = config.bn_group_size.map_or(b, |g| g as i64);
    let classification = |logits: &Tensor| match config.loss {
        LossKind::Ce => cross_entropy(logits, labels),
        _ => logit_adjusted_cross_entropy(logits, labels, counts, config.logit_adjustment),
    };
    match config.loss {
        LossKind::Bcl | LossKind::Supcon => {
            let out = forward(sync, || forward_in_groups(model, images, b, bn_group))?;
            let logits = out.logits.narrow(0, 0, b);
            let (averaging, complement) = match config.loss {
                LossKind::Bcl => (config.class_averaging, config.class_complement),
                _ => (false, false),
            };
            let loss = |views: &Tensor, view_labels: &Tensor, anchors: &Tensor| {
                balanced_contrastive_loss_of_anchors(
                    views,
                    view_labels,
                    anchors,
                    &out.prototypes,
                    config.model.num_classes,
                    config.temperature,
                    averaging,
                    complement,
                )
            };
            let (z1, z2) = (out.features.narrow(0, b, b), out.features.narrow(0, 2 * b, b));
            let contrastive = distributed::gathered_loss(group, &z1, &z2, labels, loss)?;
            Ok(StepLosses { ce: classification(&logits), contrastive: Some(contrastive), logits })
        }
        LossKind::La | LossKind::Ce => {
            let view0 = images.narrow(0, 0, b);
            let logits = forward(sync, || {
                let parts: Vec<Tensor> =
                    groups(b, bn_group).map(|(start, n)| model.logits_t(&view0.narrow(0, start, n), true)).collect();
                Tensor::cat(&parts, 0)
            })?;
            Ok(StepLosses { ce: classification(&logits), contrastive: None, logits })
        }
    }
}

/// Runs the training forward pass `f`, with BatchNorm statistics summed over the ranks by
/// `sync` (SyncBatchNorm) when given.
fn forward<T>(sync: Option<&Rc<norm::SumOverRanks>>, f: impl FnOnce() -> T) -> Result<T> {
    match sync {
        Some(sum) => norm::with_statistics_over_ranks(Rc::clone(sum), f),
        None => Ok(f()),
    }
}

/// (first sample, samples) of each BatchNorm group of a batch of `b`.
fn groups(b: i64, group: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..b).step_by(group.max(1) as usize).map(move |start| (start, group.min(b - start)))
}

/// The model's training outputs for `images` (3 views × `b` samples, view-major), with
/// BatchNorm statistics over groups of `group` samples (all their views) at a time, put
/// back in the batch's order: what ranks with `group` samples each compute together.
fn forward_in_groups(model: &BclModel, images: &Tensor, b: i64, group: i64) -> BclOutput {
    if group >= b {
        return model.forward_t(images, true);
    }
    let views = images.size()[0] / b;
    let outputs: Vec<(i64, BclOutput)> = groups(b, group)
        .map(|(start, n)| {
            let rows: Vec<Tensor> = (0..views).map(|v| images.narrow(0, v * b + start, n)).collect();
            (n, model.forward_t(&Tensor::cat(&rows, 0), true))
        })
        .collect();
    // View v of group g is rows v·n .. (v+1)·n of that group's output.
    let reassemble = |part: fn(&BclOutput) -> &Tensor| {
        let rows: Vec<Tensor> =
            (0..views).flat_map(|v| outputs.iter().map(move |(n, out)| part(out).narrow(0, v * n, *n))).collect();
        Tensor::cat(&rows, 0)
    };
    BclOutput {
        features: reassemble(|o| &o.features),
        logits: reassemble(|o| &o.logits),
        prototypes: outputs[0].1.prototypes.shallow_clone(),
    }
}

/// Top-1, per-class and Many/Medium/Few accuracy of `model` on `dataset` (evaluation
/// transform, classifier logits only).
pub fn evaluate(
    model: &BclModel,
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    loader_config: &LoaderConfig,
    device: Device,
    train_counts: &[i64],
) -> Result<Evaluation> {
    let (mut predictions, mut labels) = (Vec::with_capacity(dataset.len()), Vec::with_capacity(dataset.len()));
    for batch in loader::eval_batches(dataset, recipe, loader_config) {
        let batch = batch.context("evaluation data")?;
        let predicted = tch::no_grad(|| model.logits(&batch.input(device)).argmax(1, false));
        predictions.extend(Vec::<i64>::try_from(&predicted.to_device(Device::Cpu))?);
        labels.extend(Vec::<i64>::try_from(&batch.labels)?);
    }
    Ok(metrics::evaluate(&predictions, &labels, train_counts))
}
