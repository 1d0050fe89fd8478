//! Training and evaluation of the BCL model (SPEC sections 2, 3, 5).
//!
//! One step is one forward pass over the 3B images of views 0, 1, 2; the loss is
//! α · LA-CE(view-0 logits) + β · BCL(views 1–2 features, class prototypes).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::augment::{ClViews, Recipe};
use crate::data::long_tail::Profile;
use crate::data::{DataConfig, Dataset, DatasetKind};
use crate::loader::{self, LoaderConfig};
use crate::loss::{balanced_contrastive_loss, cross_entropy, logit_adjusted_cross_entropy};
use crate::metrics::{self, Evaluation};
use crate::model::{Arch, BclModel, ModelConfig};
use crate::schedule::{Decay, LrSchedule};

/// The training objective (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// α · LA-CE + β · BCL (class-averaging and class-complement as configured).
    Bcl,
    /// α · LA-CE + β · SupCon (BCL with both switches off).
    Supcon,
    /// Logit-adjusted cross-entropy on view 0 only.
    La,
    /// Plain cross-entropy on view 0 only.
    Ce,
}

/// Everything a run needs, as saved with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: LossKind,
    pub class_averaging: bool,
    pub class_complement: bool,
    /// τ of the contrastive loss.
    pub temperature: f64,
    /// Weight α of the (logit-adjusted) cross-entropy.
    pub alpha: f64,
    /// Weight β of the contrastive loss.
    pub beta: f64,
    /// τ of the logit adjustment.
    pub logit_adjustment: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub schedule: LrSchedule,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub cl_views: ClViews,
    pub randaugment: String,
    pub cutout: bool,
    pub seed: u64,
    /// Loader threads; none means one per core.
    pub workers: Option<usize>,
}

/// Preset names, for `--preset` and error messages.
pub const PRESETS: [&str; 5] = ["fashion-mnist-lt", "cifar10-lt", "cifar100-lt", "imagenet-lt", "inat2018"];

impl TrainConfig {
    /// The recipe of SPEC section 3 for `name`, reading its data from `root`.
    pub fn preset(name: &str, root: PathBuf) -> Result<Self> {
        // The CIFAR-LT recipe; the other presets change what differs.
        let base = |dataset, imb_factor, model| Self {
            data: DataConfig { dataset, root: root.clone(), imb_factor, profile: Profile::Exp, subset_seed: 0 },
            model,
            loss: LossKind::Bcl,
            class_averaging: true,
            class_complement: true,
            temperature: 0.1,
            alpha: 2.0,
            beta: 0.6,
            logit_adjustment: 1.0,
            epochs: 200,
            batch_size: 256,
            schedule: LrSchedule { base_lr: 0.15, warmup_epochs: 5, decay: Decay::Step { milestones: vec![160, 180] } },
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            cl_views: ClViews::SimSim,
            randaugment: "rand-n2-m10-mstd0.5".into(),
            cutout: false,
            seed: 0,
            workers: None,
        };
        let imagenet_like = |dataset, arch, classes, epochs, base_lr, weight_decay| Self {
            temperature: 0.07,
            alpha: 1.0,
            beta: 0.35,
            epochs,
            schedule: LrSchedule { base_lr, warmup_epochs: 0, decay: Decay::Cosine },
            weight_decay,
            ..base(dataset, None, ModelConfig::imagenet(arch, classes))
        };
        Ok(match name {
            // Sized for `make demo` on a 2-core machine (under 10 minutes): 4 cosine epochs.
            "fashion-mnist-lt" => Self {
                epochs: 4,
                batch_size: 128,
                schedule: LrSchedule { base_lr: 0.1, warmup_epochs: 1, decay: Decay::Cosine },
                ..base(DatasetKind::FashionMnist, Some(100.0), ModelConfig::cifar(1, 10))
            },
            "cifar10-lt" => base(DatasetKind::Cifar10, Some(100.0), ModelConfig::cifar(3, 10)),
            "cifar100-lt" => base(DatasetKind::Cifar100, Some(100.0), ModelConfig::cifar(3, 100)),
            "imagenet-lt" => imagenet_like(DatasetKind::ImagenetLt, Arch::Resnext50_32x4d, 1000, 90, 0.1, 5e-4),
            "inat2018" => imagenet_like(DatasetKind::Inat2018, Arch::Resnet50, 8142, 100, 0.2, 1e-4),
            other => bail!("unknown preset {other:?}; presets: {}", PRESETS.join(", ")),
        })
    }
}

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

/// Trains as `config` says on `device`, calling `on_epoch` after each epoch's evaluation.
pub fn train(config: &TrainConfig, device: Device, mut on_epoch: impl FnMut(&EpochRecord)) -> Result<BclModel> {
    tch::manual_seed(config.seed as i64);
    let train_set = config.data.train_set()?;
    let test_set = config.data.eval_set(config.data.dataset.eval_split())?;
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
    let recipe = Arc::new(Recipe::for_dataset(
        config.data.dataset,
        &train_set.image(0)?,
        config.cl_views,
        &config.randaugment,
        config.cutout,
    )?);
    let mut loader_config = LoaderConfig::new(config.batch_size, config.seed, config.data.dataset.normalization());
    if let Some(workers) = config.workers {
        loader_config.workers = workers;
    }
    if device.is_cuda() {
        loader_config.normalize_in_workers = false;
        loader_config.pin_memory_for = Some(device);
    }

    let vs = nn::VarStore::new(device);
    let model = BclModel::new(&vs.root(), &config.model);
    let mut optimizer =
        nn::Sgd { momentum: config.momentum, dampening: 0.0, wd: config.weight_decay, nesterov: config.nesterov }
            .build(&vs, config.schedule.base_lr)?;
    let counts = Tensor::from_slice(&class_counts).to_device(device);

    for epoch in 0..config.epochs {
        let start = Instant::now();
        let lr = config.schedule.lr(epoch, config.epochs);
        optimizer.set_lr(lr);
        // Sums stay on the device: no host synchronisation inside the epoch.
        let zero = || Tensor::zeros([], (Kind::Double, device));
        let (mut ce_sum, mut cl_sum, mut correct) = (zero(), zero(), zero());
        let mut samples = 0usize;
        for batch in loader::train_epoch(train_set.clone(), recipe.clone(), &loader_config, epoch as u64) {
            let batch = batch?;
            let images = batch.input(device);
            let labels = batch.labels.to_device(device);
            let (ce, contrastive, logits) = step_losses(config, &model, &images, &labels, &counts);
            let total = match &contrastive {
                Some(cl) => &ce * config.alpha + cl * config.beta,
                None => ce.shallow_clone(),
            };
            optimizer.backward_step(&total);
            tch::no_grad(|| {
                ce_sum += ce.detach().to_kind(Kind::Double);
                if let Some(cl) = &contrastive {
                    cl_sum += cl.detach().to_kind(Kind::Double);
                }
                correct += logits.argmax(1, false).eq_tensor(&labels).sum(Kind::Double);
            });
            samples += batch.indices.len();
        }
        let steps = (samples / config.batch_size).max(1) as f64;
        let (train_ce, train_contrastive) = (ce_sum.double_value(&[]) / steps, cl_sum.double_value(&[]) / steps);
        if !train_ce.is_finite() || !train_contrastive.is_finite() {
            bail!("epoch {epoch}: the loss is not finite (cross-entropy {train_ce}, contrastive {train_contrastive})");
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let eval = evaluate(&model, test_set.clone(), recipe.clone(), &loader_config, device, &class_counts)?;
        on_epoch(&EpochRecord {
            epoch,
            lr,
            train_ce,
            train_contrastive,
            train_accuracy: correct.double_value(&[]) / samples.max(1) as f64,
            eval,
            seconds: start.elapsed().as_secs_f64(),
            samples_per_second: samples as f64 / train_seconds,
        });
    }
    Ok(model)
}

/// The classification loss, the contrastive loss (none for `la`/`ce`) and view 0's logits.
fn step_losses(
    config: &TrainConfig,
    model: &BclModel,
    images: &Tensor,
    labels: &Tensor,
    counts: &Tensor,
) -> (Tensor, Option<Tensor>, Tensor) {
    let b = labels.size()[0];
    let classification = |logits: &Tensor| match config.loss {
        LossKind::Ce => cross_entropy(logits, labels),
        _ => logit_adjusted_cross_entropy(logits, labels, counts, config.logit_adjustment),
    };
    match config.loss {
        LossKind::Bcl | LossKind::Supcon => {
            let out = model.forward_t(images, true);
            let logits = out.logits.narrow(0, 0, b);
            let (averaging, complement) = match config.loss {
                LossKind::Bcl => (config.class_averaging, config.class_complement),
                _ => (false, false),
            };
            let contrastive = balanced_contrastive_loss(
                &out.features.narrow(0, b, b),
                &out.features.narrow(0, 2 * b, b),
                &out.prototypes,
                labels,
                config.model.num_classes,
                config.temperature,
                averaging,
                complement,
            );
            (classification(&logits), Some(contrastive), logits)
        }
        LossKind::La | LossKind::Ce => {
            let logits = model.logits_t(&images.narrow(0, 0, b), true);
            (classification(&logits), None, logits)
        }
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
