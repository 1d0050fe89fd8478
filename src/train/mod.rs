//! Training of the BCL model (SPEC sections 2 and 3), in the shape of torchvision's
//! reference scripts: [`Trainer::new`] sets a run up (or resumes it), [`Trainer::run_epoch`]
//! takes an epoch's steps, [`Trainer::finish_epoch`] evaluates, logs and checkpoints, and
//! [`train`] is the loop over epochs.
//!
//! Training writes into a run folder ([`RunDir`]): a checkpoint after every epoch (and
//! when asked to stop), so that a resumed run continues exactly where the checkpoint left
//! off: the loader's batches and augmentations depend only on (seed, epoch, position), and
//! the checkpoint holds the weights, the momentum buffers and the epoch's running sums.
//! On the CPU the result is bit for bit that of a run never stopped; on a GPU it is the
//! same run but not bit-exact (cuDNN's benchmark picks algorithms per process, and some
//! CUDA backward kernels add in a nondeterministic order).
mod lifecycle;
mod state;
mod step;
mod window;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use tch::{Device, Kind, Tensor, nn};

pub use self::lifecycle::{Continuation, FinalScores, Prepared, resume, score_end, start};
pub use self::state::{Checkpointer, EpochSums, TrainState, progress, saved_state_of};
use self::step::LossStep;
use self::window::StepWindow;
use crate::amp::{self, LossScaler};
use crate::c10d;
use crate::config::{Amp, ClassifierInit, TrainConfig, Tune};
use crate::data::{Dataset, Split};
use crate::distributed::Group;
use crate::evaluation::EvalData;
use crate::geometry;
use crate::init;
use crate::loader::{self, Batch, DeviceNormalization, LoaderConfig};
use crate::metrics::{self, EpochRecord, Scored};
use crate::model::{self, BclModel, ENCODER_PREFIX, norm};
use crate::optim::{Sgd, trainable};
use crate::run::RunDir;
use crate::tensorboard::EventWriter;

/// What training reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A line about how the run was set up (what `--init` loaded).
    Note(&'a str),
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
    /// The evaluation after the epoch is running.
    Evaluating {
        epoch: usize,
    },
    Epoch(&'a EpochRecord),
}

/// How a call to [`train`] ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Set when training stopped early on request: the epoch and step it saved at.
    pub stopped_at: Option<(usize, usize)>,
    /// The records of the epochs this call finished.
    pub records: Vec<EpochRecord>,
    /// The samples as the last evaluation scored them (for the confusion matrix).
    pub last_scores: Vec<Scored>,
    /// The epoch of `best` and its top-1 on the selection split, when there is one.
    pub best: Option<(usize, f64)>,
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

impl TrainOptions {
    /// A new run on `device` in one process, until it finishes.
    pub fn new(device: Device) -> Self {
        Self { device, resume: false, stop: Arc::default(), max_steps: None, group: None }
    }
}

/// Trains as `config` says, writing checkpoints, metrics and TensorBoard logs into `run`.
pub fn train(
    config: &TrainConfig,
    run: &RunDir,
    options: &TrainOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<Outcome> {
    let primary = options.group.as_ref().is_none_or(|group| group.is_primary());
    let _lock = if primary { Some(run.lock()?) } else { None };
    let mut trainer = Trainer::new(config, run, options)?;
    trainer.notes.iter().for_each(|note| on_progress(Progress::Note(note)));
    let mut outcome = Outcome::default();
    if options.max_steps == Some(0) {
        // The model as initialised, to inspect or export.
        trainer.save_last()?;
        outcome.stopped_at = Some((trainer.state.epoch, trainer.state.step));
        return Ok(outcome);
    }
    while trainer.state.epoch < config.epochs {
        let Some(steps) = trainer.run_epoch(&mut on_progress)? else {
            outcome.stopped_at = Some((trainer.state.epoch, trainer.state.step));
            return Ok(outcome);
        };
        outcome.records.extend(trainer.finish_epoch(steps, &mut on_progress)?);
        outcome.last_scores = std::mem::take(&mut trainer.last_scores);
        outcome.best = trainer.state.best_epoch.zip(trainer.state.best_top1);
        if trainer.any_rank_asked_to_stop()? && trainer.state.epoch < config.epochs {
            outcome.stopped_at = Some((trainer.state.epoch, 0));
            return Ok(outcome);
        }
    }
    Ok(outcome)
}

/// An epoch whose steps all ran, for [`Trainer::finish_epoch`].
pub struct EpochSteps {
    epoch: usize,
    lr: f64,
    /// The epoch's sums over every rank.
    sums: EpochSums,
    /// Samples already counted when this call started the epoch (a resumed epoch).
    first_samples: usize,
    start: Instant,
    train_seconds: f64,
}

/// A run in progress: data, model, optimizer and where it stands.
pub struct Trainer<'a> {
    config: &'a TrainConfig,
    run: &'a RunDir,
    options: &'a TrainOptions,
    /// The training set, and the split evaluated after every epoch (`best` is picked on it).
    data: EvalData,
    /// Steps in every epoch (the TensorBoard step of an epoch's end is a multiple of it).
    steps_per_epoch: usize,
    /// The training batches' loader (this rank's share of each batch).
    loader_config: LoaderConfig,
    /// Normalises the loader's 8-bit batches on the device (GPU training).
    normalization: DeviceNormalization,
    vs: nn::VarStore,
    model: BclModel,
    parameters: Vec<(String, Tensor)>,
    optimizer: Sgd,
    loss_step: LossStep,
    autocast_kind: Option<Kind>,
    /// SyncBatchNorm: training forward passes take their statistics over every rank's
    /// samples (at world size 1 too, where they are plain BatchNorm's, computed its way).
    sync_batch_norm: Option<Rc<norm::SumOverRanks>>,
    checkpointer: Checkpointer,
    /// TensorBoard, on the primary process only.
    events: Option<EventWriter>,
    pub state: TrainState,
    /// What setting the run up did that the user should hear of (the `--init` summary).
    notes: Vec<String>,
    steps_taken: usize,
    /// The samples as the last evaluation scored them.
    last_scores: Vec<Scored>,
}

impl<'a> Trainer<'a> {
    /// Sets a run up: data, recipe, model and optimizer; continues the run folder's `last`
    /// checkpoint when `options.resume` is set.
    pub fn new(config: &'a TrainConfig, run: &'a RunDir, options: &'a TrainOptions) -> Result<Self> {
        let device = options.device;
        let group = options.group.as_deref();
        let (is_primary, world) = group.map_or((true, 1), |g| (g.is_primary(), g.world_size()));
        ensure!(
            config.batch_size.is_multiple_of(world) && config.batch_size / world > 1,
            "batch_size = {} cannot be shared out over {world} processes (at least 2 samples each, evenly)",
            config.batch_size
        );
        let data = EvalData::open(config, config.data.selection_split(), device)?;
        check_data(config, data.train_set.as_ref())?;
        // The loader drops each epoch's last partial batch.
        let steps_per_epoch = data.train_set.len() / config.batch_size;
        let mut loader_config = data.loader.clone();
        if let Some(group) = group {
            (loader_config.rank, loader_config.world_size) = (group.rank(), world);
        }
        let (vs, model, parameters, mut optimizer) = model_to_train(config, device);
        let mut state = TrainState::default();
        let mut notes = Vec::new();
        if options.resume {
            state = state::restore(config, &run.last(), &vs, &mut optimizer, &parameters)?;
        } else if is_primary {
            run.write_class_counts(data.class_names(), &data.counts)?;
            run.write_holdout(&config.data)?;
            let start = StartingPoint { config, run, vs: &vs, model: &model, device };
            notes = start.apply(&data)?;
        }
        if config.channels_last {
            convolutions_to_channels_last(&vs);
        }
        if let Some(group) = group {
            start_from_primary(group, &vs, &mut state)?;
        }
        let events = match is_primary {
            true => Some(open_events(run, &state, options.resume, steps_per_epoch)?),
            false => None,
        };
        if device.is_cuda() {
            tch::Cuda::cudnn_set_benchmark(true);
            if config.amp == Amp::Fp16 && state.loss_scaler.is_none() {
                state.loss_scaler = Some(LossScaler::default());
            }
        }
        Ok(Self {
            notes,
            checkpointer: Checkpointer::new(config, data.class_names())?,
            loss_step: LossStep::new(config, Tensor::from_slice(&data.counts).to_device(device)),
            autocast_kind: amp::autocast_kind(amp::resolve(config.amp, device).0),
            config,
            run,
            options,
            data,
            steps_per_epoch,
            normalization: DeviceNormalization::new(&loader_config.normalization, device),
            loader_config,
            vs,
            model,
            parameters,
            optimizer,
            sync_batch_norm: sync_batch_norm(config, options),
            events,
            state,
            steps_taken: 0,
            last_scores: Vec::new(),
        })
    }

    /// Writes `last` (on the primary process): weights, optimizer and where the run stands.
    fn save_last(&self) -> Result<()> {
        if self.is_primary() {
            self.checkpointer.save(&self.run.last(), &self.state, &self.vs, Some(&self.optimizer))?;
        }
        Ok(())
    }

    fn group(&self) -> Option<&'a Group> {
        self.options.group.as_deref()
    }

    /// Whether this process evaluates and writes the run folder (rank 0).
    fn is_primary(&self) -> bool {
        self.group().is_none_or(Group::is_primary)
    }

    /// Takes the steps of the current epoch, from where it stands. Returns `None` when it
    /// stopped early (asked to, or at `max_steps`) after saving `last`.
    pub fn run_epoch(&mut self, on_progress: &mut impl FnMut(Progress)) -> Result<Option<EpochSteps>> {
        let (epoch, device) = (self.state.epoch, self.options.device);
        let start = Instant::now();
        let lr = self.config.schedule.lr(epoch, self.config.epochs);
        let batches = loader::train_epoch(
            self.data.train_set.clone(),
            self.data.recipe.clone(),
            &self.loader_config,
            epoch as u64,
            self.state.step,
        );
        let steps = self.state.step + batches.num_batches();
        on_progress(Progress::EpochStart { epoch, step: self.state.step, steps });
        let world_size = self.group().map_or(1, Group::world_size);
        let mut window = StepWindow::new(&self.state.sums, device, world_size);
        let (first_step, first_samples) = (self.state.step, self.state.sums.samples);
        let mut window_start = (self.state.step, self.state.sums.clone());
        for batch in batches {
            self.step(&batch?, lr, &mut window)?;
            let at_max_steps = self.options.max_steps.is_some_and(|max| self.steps_taken >= max);
            let requested = self.options.stop.load(Ordering::SeqCst);
            let mut stop = at_max_steps;
            let window_ends = self.state.step.is_multiple_of(window::STEPS);
            if window_ends || at_max_steps || (requested && self.group().is_none()) {
                let synced = window.sync(requested, self.group(), (epoch, self.state.step), &self.run.last())?;
                (self.state.sums, stop) = (synced.sums, stop || synced.stop);
                if window_ends {
                    self.log_steps(epoch, &mut window_start)?;
                }
                let sums = &self.state.sums;
                on_progress(Progress::Steps {
                    epoch,
                    step: self.state.step,
                    ce: sums.ce / self.state.step as f64,
                    contrastive: sums.contrastive / self.state.step as f64,
                    samples_per_second: ((self.state.step - first_step) * self.config.batch_size) as f64
                        / start.elapsed().as_secs_f64(),
                });
            }
            if stop {
                self.save_last()?;
                return Ok(None);
            }
        }
        self.state.sums = window.sync(false, self.group(), (epoch, self.state.step), &self.run.last())?.sums;
        self.log_steps(epoch, &mut window_start)?;
        let sums = self.state.sums.clone();
        Ok(Some(EpochSteps { epoch, lr, sums, first_samples, start, train_seconds: start.elapsed().as_secs_f64() }))
    }

    /// The TensorBoard step of `step` of `epoch`: steps taken since the run began.
    fn tensorboard_step(&self, epoch: usize, step: usize) -> i64 {
        (epoch * self.steps_per_epoch + step) as i64
    }

    /// Logs the mean losses of the steps since `since` (a step of `epoch` and the epoch's
    /// sums there) to TensorBoard, at the current step, and moves `since` to it.
    fn log_steps(&mut self, epoch: usize, since: &mut (usize, EpochSums)) -> Result<()> {
        let steps = (self.state.step - since.0) as f64;
        let at = self.tensorboard_step(epoch, self.state.step);
        if let Some(events) = self.events.as_mut().filter(|_| steps > 0.0) {
            let (now, then) = (&self.state.sums, &since.1);
            events.scalar("train_steps/ce", at, (now.ce - then.ce) / steps)?;
            events.scalar("train_steps/contrastive", at, (now.contrastive - then.contrastive) / steps)?;
        }
        *since = (self.state.step, self.state.sums.clone());
        Ok(())
    }

    /// One optimisation step on `batch`, its losses recorded in `window`.
    fn step(&mut self, batch: &Batch, lr: f64, window: &mut StepWindow) -> Result<()> {
        let device = self.options.device;
        let mut images = batch.input(device, &self.normalization);
        if self.config.channels_last {
            images = to_channels_last(&images);
        }
        let labels = batch.labels_on(device);
        let group = self.group();
        let losses = amp::autocast(device, self.autocast_kind, || {
            self.loss_step.losses(&self.model, &images, &labels, group, self.sync_batch_norm.as_ref())
        })?;
        let total = &losses.losses.total;
        crate::optim::clear_gradients(&self.parameters);
        // Fails only when a collective inside the backward pass does (SyncBatchNorm).
        match &self.state.loss_scaler {
            Some(scaler) => (total * scaler.scale).f_backward(),
            None => total.f_backward(),
        }?;
        if let Some(group) = group {
            group.average_gradients(&self.parameters)?;
        }
        if self.state.loss_scaler.as_mut().is_none_or(|scaler| scaler.unscale(&self.parameters)) {
            self.optimizer.step(&self.parameters, lr);
        }
        window.record(&losses, &labels, batch.indices.len());
        self.state.step += 1;
        self.steps_taken += 1;
        Ok(())
    }

    /// Ends an epoch: on the primary process, evaluates, logs the epoch, and writes `last`
    /// (and `best` when the top-1 on the selection split improved). Returns the epoch's
    /// record there.
    pub fn finish_epoch(
        &mut self,
        steps: EpochSteps,
        on_progress: &mut impl FnMut(Progress),
    ) -> Result<Option<EpochRecord>> {
        let EpochSteps { epoch, lr, sums, first_samples, start, train_seconds } = steps;
        let taken = self.state.step.max(1) as f64;
        let next = TrainState { epoch: epoch + 1, step: 0, sums: EpochSums::default(), ..self.state.clone() };
        let end_of_epoch = self.tensorboard_step(epoch + 1, 0);
        let Some(events) = self.events.as_mut() else {
            self.state = next;
            return Ok(None);
        };
        on_progress(Progress::Evaluating { epoch });
        self.last_scores = self.data.score(&self.model, None)?;
        let eval = metrics::evaluate(&self.last_scores, &self.data.counts);
        let record = EpochRecord {
            epoch,
            lr,
            train_ce: sums.ce / taken,
            train_contrastive: sums.contrastive / taken,
            train_accuracy: sums.correct / sums.samples.max(1) as f64,
            eval,
            seconds: start.elapsed().as_secs_f64(),
            samples_per_second: (sums.samples - first_samples) as f64 / train_seconds,
        };
        log_epoch(self.run, events, &record, self.data.split, end_of_epoch)?;
        let improved = self.state.best_top1.is_none_or(|best| record.eval.top1 > best);
        self.state = next;
        if improved {
            (self.state.best_top1, self.state.best_epoch) = (Some(record.eval.top1), Some(epoch));
        }
        self.checkpointer.save(&self.run.last(), &self.state, &self.vs, Some(&self.optimizer))?;
        if improved {
            self.checkpointer.save(&self.run.best(), &self.state, &self.vs, None)?;
        }
        on_progress(Progress::Epoch(&record));
        Ok(Some(record))
    }

    /// Whether any rank was asked to stop (every rank learns the same answer).
    pub fn any_rank_asked_to_stop(&self) -> Result<bool> {
        let asked = self.options.stop.load(Ordering::SeqCst);
        let Some(group) = self.group() else { return Ok(asked) };
        let flags = Tensor::from(asked as i64);
        group.all_reduce_sum(&flags)?;
        Ok(flags.int64_value(&[]) > 0)
    }
}

/// Every rank starts from rank 0's weights, as DDP does (broadcast in name order on every
/// rank); rank 0 alone carries a resumed epoch's running sums, as the ranks' shares add up.
fn start_from_primary(group: &Group, vs: &nn::VarStore, state: &mut TrainState) -> Result<()> {
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    tch::no_grad(|| variables.values().try_for_each(|t| group.broadcast(t)))?;
    if !group.is_primary() {
        state.sums = EpochSums::default();
    }
    Ok(())
}

/// A new model for `config` with its trainable parameters and their optimizer, the
/// encoder frozen, BN-frozen or at a scaled learning rate as `config.finetune` says.
fn model_to_train(config: &TrainConfig, device: Device) -> (nn::VarStore, BclModel, Vec<(String, Tensor)>, Sgd) {
    let (vs, mut model) = model::create(&config.model, device, Some(config.seed));
    let finetune = &config.finetune;
    if finetune.tune != Tune::Full || finetune.freeze_bn {
        model.freeze_encoder_statistics();
    }
    // No gradients are computed for them, so none are stored, and the optimizer never sees them.
    for (_, variable) in vs.variables().into_iter().filter(|(name, _)| config.keeps_from_init(name)) {
        let _ = variable.set_requires_grad(false);
    }
    let parameters = trainable(&vs);
    let optimizer = Sgd::new(config.momentum, config.weight_decay, config.nesterov)
        .with_lr_scale(ENCODER_PREFIX, finetune.encoder_lr_scale);
    (vs, model, parameters, optimizer)
}

/// The TensorBoard log of `run`, without what was logged after the checkpoint `state`
/// (TensorBoard steps are steps taken; `resume`: the run continues it), and `metrics.jsonl`
/// without the epochs after it (a crash between the two trains them again).
fn open_events(run: &RunDir, state: &TrainState, resume: bool, steps_per_epoch: usize) -> Result<EventWriter> {
    run.truncate_metrics(state.epoch)?;
    let mut events = EventWriter::create(&run.path)?;
    if resume {
        events.purge_from((state.epoch * steps_per_epoch + state.step) as i64 + 1)?;
    }
    Ok(events)
}

/// SyncBatchNorm's sum over the ranks, when the config asks for it in a data-parallel run.
fn sync_batch_norm(config: &TrainConfig, options: &TrainOptions) -> Option<Rc<norm::SumOverRanks>> {
    options.group.as_ref().filter(|_| config.sync_batch_norm).map(|group| {
        let group = Arc::clone(group);
        Rc::new(move |t: &Tensor| c10d::sum_over_ranks(Arc::clone(&group), t)) as Rc<norm::SumOverRanks>
    })
}

/// Convolution weights in NHWC memory order, which makes every activation NHWC.
fn convolutions_to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut weight) in vs.variables().into_iter().filter(|(_, t)| t.dim() == 4) {
            weight.set_data(&to_channels_last(&weight));
        }
    });
}

/// Where a new run's weights start: at random, from `--init`'s file, and/or with the
/// classifier at the class means of the features.
struct StartingPoint<'a> {
    config: &'a TrainConfig,
    run: &'a RunDir,
    vs: &'a nn::VarStore,
    model: &'a BclModel,
    device: Device,
}

impl StartingPoint<'_> {
    /// Loads and initialises as the config says; returns a line for the user about each.
    fn apply(&self, data: &EvalData) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(source) = &self.config.init {
            let found = source.reopen()?;
            let (arch, classes) = (self.config.model.arch, self.config.model.num_classes);
            let report = init::load(found, arch, classes, &self.vs.variables())?;
            self.run.write_text("init.txt", &report.details())?;
            notes.push(report.summary());
        }
        if self.config.finetune.init_classifier == ClassifierInit::ClassMean {
            let train_set = data.train_set.clone();
            let features = geometry::extract(self.model, train_set, data.recipe.clone(), &data.loader, self.device)?;
            let (c, d) = (data.counts.len() as i64, features.h.size()[1]);
            let sums = Tensor::zeros([c, d], (Kind::Float, Device::Cpu)).index_add(0, &features.labels, &features.h);
            let counts = Tensor::from_slice(&data.counts).to_kind(Kind::Float).view([c, 1]);
            self.model.set_class_weights(&(sums / counts).to_device(self.device));
            notes.push(format!("classifier: the class means of {} training images' features", data.train_set.len()));
        }
        Ok(notes)
    }
}

/// Class counts of the training set, after checking that the data fits the config.
fn check_data(config: &TrainConfig, train_set: &dyn Dataset) -> Result<()> {
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
    Ok(())
}

/// NCHW values in NHWC memory order, which cuDNN's tensor-core convolutions prefer, and
/// oneDNN's on CPU. Convolution weights in this order make every activation NHWC, even
/// for 1-channel images, whose NHWC and NCHW layouts coincide.
fn to_channels_last(images: &Tensor) -> Tensor {
    images.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Appends `record` to metrics.jsonl and its scalars to TensorBoard at `step` (the epoch's
/// last), the evaluation's under `test/` or `val/` as `split` says.
fn log_epoch(run: &RunDir, events: &mut EventWriter, record: &EpochRecord, split: Split, step: i64) -> Result<()> {
    run.append_metrics(record)?;
    let eval = &record.eval;
    let train = [
        ("train/ce", record.train_ce),
        ("train/contrastive", record.train_contrastive),
        ("train/accuracy", record.train_accuracy),
        ("train/lr", record.lr),
    ];
    for (tag, value) in train {
        events.scalar(tag, step, value)?;
    }
    let evaluated = [
        ("top1", Some(eval.top1)),
        ("top5", eval.top5),
        ("many", eval.many),
        ("medium", eval.medium),
        ("few", eval.few),
        ("ece", eval.ece),
    ];
    for (name, value) in evaluated {
        if let Some(value) = value {
            events.scalar(&format!("{}/{name}", split.folder_name()), step, value)?;
        }
    }
    events.flush()
}
