//! A run's configuration: plain serde structs, the benchmark presets of SPEC section 3,
//! TOML overrides and the checks that reject bad numbers before training starts.
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::augment::randaugment::RandAugment;
use crate::augment::{ClViews, IMAGENET_CROP_SIZE, InputSpec, Recipe, RecipeStyle, check_crop_size, sampled_sizes};
use crate::data::sampler::SamplerKind;
use crate::data::{DEFAULT_HOLDOUT, DataConfig, DatasetKind, Normalization, Split};
use crate::init::InitSource;
use crate::loss::{BclSettings, LossChanges, LossConfig, LossKind};
use crate::model::{Arch, ENCODER_PREFIX, ModelConfig, is_adapter, lift_adapter_dim};
use crate::schedule::{Decay, LrSchedule};

/// Mixed precision (`--amp`); [`crate::amp::resolve`] says what a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Amp {
    /// bfloat16 where it is faster: GPUs, and CPUs with AMX; float32 elsewhere.
    Auto,
    /// float32.
    Off,
    /// float16 autocast with dynamic loss scaling.
    Fp16,
    /// bfloat16 autocast (float32's range: no loss scaling).
    Bf16,
}

/// How the classifier starts (`--init-classifier`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifierInit {
    /// At random (SPEC section 1).
    #[default]
    Random,
    /// Each class's weight the mean of its training images' encoder features (evaluation
    /// transform): what fine-tuners start a new head from.
    ClassMean,
}

/// What of the encoder trains (`--tune`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tune {
    /// All of it, as from scratch.
    #[default]
    Full,
    /// None of it (linear probe, cRT): only the heads train.
    Head,
    /// Only AdaptFormer adapters added to a ViT's blocks (LIFT), and the heads.
    Adapter,
}

/// How a pretrained encoder is fine-tuned (SPEC section 6); the defaults train everything
/// alike, as from scratch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FineTuneToml")]
pub struct FineTune {
    /// What of the encoder trains. A frozen encoder gets no gradients (none are computed or
    /// stored), keeps its BatchNorm statistics as loaded, and stays out of the checkpoints,
    /// which name its `--init` file instead.
    pub tune: Tune,
    /// The encoder's learning rate as a share of the heads' (`--encoder-lr-scale 0.1`).
    pub encoder_lr_scale: f64,
    /// The encoder's BatchNorm layers normalise with their running statistics and keep them.
    pub freeze_bn: bool,
    pub init_classifier: ClassifierInit,
}

impl Default for FineTune {
    fn default() -> Self {
        Self { tune: Tune::Full, encoder_lr_scale: 1.0, freeze_bn: false, init_classifier: ClassifierInit::Random }
    }
}

/// [`FineTune`] as configs have written it: before `tune`, `freeze_encoder = true` said
/// `tune = "head"`; such configs and checkpoints still load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FineTuneToml {
    tune: Option<Tune>,
    #[serde(default)]
    freeze_encoder: bool,
    #[serde(default = "one")]
    encoder_lr_scale: f64,
    #[serde(default)]
    freeze_bn: bool,
    #[serde(default)]
    init_classifier: ClassifierInit,
}

fn one() -> f64 {
    1.0
}

impl From<FineTuneToml> for FineTune {
    fn from(file: FineTuneToml) -> Self {
        let legacy = if file.freeze_encoder { Tune::Head } else { Tune::Full };
        Self {
            tune: file.tune.unwrap_or(legacy),
            encoder_lr_scale: file.encoder_lr_scale,
            freeze_bn: file.freeze_bn,
            init_classifier: file.init_classifier,
        }
    }
}

/// Everything a run needs, as saved with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// The order of an epoch's samples: shuffled (the presets), class-balanced or
    /// square-root sampling.
    #[serde(default = "shuffle")]
    pub sampler: SamplerKind,
    pub schedule: LrSchedule,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// CIFAR-style or ImageNet-style views; `auto` goes by the dataset.
    #[serde(default)]
    pub recipe_style: RecipeStyle,
    /// Side of the images the model trains on. ImageNet-style: the crops (default 224; 112
    /// or 160 train ~4× or ~2× faster, at some accuracy). CIFAR-style: the images' own
    /// size, which prediction resizes other inputs to (set from the data by `--dataset`;
    /// by default 28 for MNIST-like data, 32 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    pub cl_views: ClViews,
    pub randaugment: String,
    pub cutout: bool,
    pub seed: u64,
    /// Loader threads; none means one per core.
    pub workers: Option<usize>,
    /// Mixed precision: what the run used (a new run's config says what its device took).
    pub amp: Amp,
    /// NHWC activations (faster convolutions: cuDNN's tensor cores, oneDNN on CPU).
    pub channels_last: bool,
    /// BatchNorm statistics over groups of this many samples (with their views) instead of
    /// the whole batch. N processes, each normalising its batch / N samples, amount to
    /// groups of batch / N: set it so to reproduce an N-GPU run on one. None: whole batch.
    #[serde(default)]
    pub bn_group_size: Option<usize>,
    /// In a data-parallel run, BatchNorm statistics over every process's samples
    /// (SyncBatchNorm): training then follows one process with the global batch, at the
    /// cost of two small all-reduces per BatchNorm layer and step. Off: per process, as
    /// PyTorch's DDP without SyncBatchNorm. No effect on a run without a launcher.
    #[serde(default)]
    pub sync_batch_norm: bool,
    /// Pretrained weights the model starts from (`--init`); none: from scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSource>,
    /// The input's channel mean and std when not the data set's: those of the `--init`
    /// weights, which were trained with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<Normalization>,
    #[serde(default)]
    pub finetune: FineTune,
}

/// The benchmark recipes of SPEC section 3 (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// BCL on Fashion-MNIST-LT (ρ = 100), sized for `make demo` on a 2-core machine.
    FashionMnistLt,
    /// The paper's CIFAR-10-LT recipe (ρ = 100).
    Cifar10Lt,
    /// The paper's CIFAR-100-LT recipe (ρ = 100).
    Cifar100Lt,
    /// ImageNet-LT, ResNeXt-50.
    ImagenetLt,
    /// iNaturalist 2018, ResNet-50.
    Inat2018,
    /// Places-LT, an ImageNet ResNet-152 fine-tuned (SPEC section 6): needs `--init`.
    PlacesLt,
    /// LIFT (SPEC section 6) on CIFAR-100-LT (ρ = 100): a pretrained ViT-B/16 (OpenAI CLIP's
    /// by default) with AdaptFormer adapters, cosine head, LA, 10 epochs. Needs `--init`.
    LiftCifar100Lt,
    /// LIFT on ImageNet-LT.
    LiftImagenetLt,
    /// LIFT on iNaturalist 2018 (20 epochs).
    LiftInat2018,
    /// LIFT on Places-LT.
    LiftPlacesLt,
}

impl Tune {
    /// The name `--tune` takes.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }
}

impl Preset {
    /// The name `--preset` takes, such as `cifar10-lt`.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }

    /// The dataset the preset trains on.
    pub fn dataset(self) -> DatasetKind {
        match self {
            Preset::FashionMnistLt => DatasetKind::FashionMnist,
            Preset::Cifar10Lt => DatasetKind::Cifar10,
            Preset::Cifar100Lt => DatasetKind::Cifar100,
            Preset::ImagenetLt => DatasetKind::ImagenetLt,
            Preset::Inat2018 => DatasetKind::Inat2018,
            Preset::PlacesLt | Preset::LiftPlacesLt => DatasetKind::PlacesLt,
            Preset::LiftCifar100Lt => DatasetKind::Cifar100,
            Preset::LiftImagenetLt => DatasetKind::ImagenetLt,
            Preset::LiftInat2018 => DatasetKind::Inat2018,
        }
    }

    pub fn all() -> &'static [Preset] {
        <Preset as clap::ValueEnum>::value_variants()
    }
}

/// LIFT's recipe (Shi et al., ICML 2024) on `data` with `classes` classes: OpenAI CLIP's
/// ViT-B/16, frozen, with AdaptFormer adapters of LIFT's width; a cosine head (scale 25)
/// from the class means; LA loss; SGD lr 0.01, wd 5e-4, batch 128, cosine, `epochs`; 224 px
/// crops and flips (no RandAugment). BCL's settings stay `base`'s, for `--loss bcl`.
fn lift(base: TrainConfig, data: DataConfig, classes: i64, epochs: usize) -> TrainConfig {
    let model = ModelConfig { cosine_scale: 25.0, ..ModelConfig::imagenet(Arch::VitBasePatch16Clip224, classes) };
    let config = TrainConfig {
        data,
        model,
        loss: LossConfig::La { logit_adjustment: 1.0 },
        epochs,
        batch_size: 128,
        schedule: LrSchedule { base_lr: 0.01, warmup_epochs: 0, decay: Decay::Cosine },
        weight_decay: 5e-4,
        recipe_style: RecipeStyle::Imagenet,
        randaugment: "rand-n0".into(),
        finetune: FineTune { init_classifier: ClassifierInit::ClassMean, ..FineTune::default() },
        ..base
    };
    config.with_adapters(None)
}

impl TrainConfig {
    /// This config tuning AdaptFormer adapters (`--tune adapter`) of bottleneck `width`, by
    /// default LIFT's for the model's class count ([`lift_adapter_dim`]).
    pub fn with_adapters(mut self, width: Option<i64>) -> Self {
        let lift = |blocks| lift_adapter_dim(self.model.num_classes, blocks);
        // An encoder without blocks keeps the width asked for, for `validate` to refuse.
        let default = self.model.arch.spec().blocks.map_or(1, lift);
        self.finetune.tune = Tune::Adapter;
        self.model.adapter_dim = Some(width.unwrap_or(default));
        self
    }

    /// The recipe of SPEC section 3 for `preset`, reading its data from `root`.
    pub fn preset(preset: Preset, root: PathBuf) -> Self {
        let data = |imb_factor| DataConfig { imb_factor, ..DataConfig::new(preset.dataset(), root.clone()) };
        // The CIFAR-LT recipe; the other presets change what differs.
        let cifar_lt = |data, model| Self {
            data,
            model,
            loss: LossConfig::Bcl(paper_bcl(RecipeStyle::Cifar)),
            epochs: 200,
            batch_size: 256,
            sampler: SamplerKind::Shuffle,
            schedule: LrSchedule { base_lr: 0.15, warmup_epochs: 5, decay: Decay::Step { milestones: vec![160, 180] } },
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            recipe_style: RecipeStyle::Auto,
            image_size: None,
            cl_views: ClViews::SimSim,
            randaugment: "rand-n2-m10-mstd0.5".into(),
            cutout: false,
            seed: 0,
            workers: None,
            amp: Amp::Auto,
            channels_last: true,
            bn_group_size: None,
            sync_batch_norm: false,
            init: None,
            normalization: None,
            finetune: FineTune::default(),
        };
        let imagenet_lt = Self {
            loss: LossConfig::Bcl(paper_bcl(RecipeStyle::Imagenet)),
            epochs: 90,
            schedule: LrSchedule { base_lr: 0.1, warmup_epochs: 0, decay: Decay::Cosine },
            ..cifar_lt(data(None), ModelConfig::imagenet(Arch::Resnext50_32x4d, 1000))
        };
        match preset {
            Preset::FashionMnistLt => Self {
                epochs: 4,
                batch_size: 128,
                schedule: LrSchedule { base_lr: 0.1, warmup_epochs: 1, decay: Decay::Cosine },
                ..cifar_lt(data(Some(100.0)), ModelConfig::cifar(1, 10))
            },
            Preset::Cifar10Lt => cifar_lt(data(Some(100.0)), ModelConfig::cifar(3, 10)),
            Preset::Cifar100Lt => cifar_lt(data(Some(100.0)), ModelConfig::cifar(3, 100)),
            Preset::Inat2018 => Self {
                model: ModelConfig::imagenet(Arch::Resnet50, 8142),
                epochs: 100,
                schedule: LrSchedule { base_lr: 0.2, ..imagenet_lt.schedule.clone() },
                weight_decay: 1e-4,
                ..imagenet_lt
            },
            // PaCo's recipe (30 epochs, lr 0.02) with the pretrained encoder at a tenth of the
            // heads' rate, as OLTR and decoupling fine-tune it, the classifier from class means.
            Preset::PlacesLt => Self {
                model: ModelConfig::imagenet(Arch::Resnet152, 365),
                epochs: 30,
                batch_size: 128,
                schedule: LrSchedule { base_lr: 0.02, ..imagenet_lt.schedule.clone() },
                finetune: FineTune {
                    encoder_lr_scale: 0.1,
                    init_classifier: ClassifierInit::ClassMean,
                    ..FineTune::default()
                },
                ..imagenet_lt
            },
            Preset::ImagenetLt => imagenet_lt,
            Preset::LiftCifar100Lt => lift(imagenet_lt, data(Some(100.0)), 100, 10),
            Preset::LiftImagenetLt => lift(imagenet_lt, data(None), 1000, 10),
            Preset::LiftInat2018 => lift(imagenet_lt, data(None), 8142, 20),
            Preset::LiftPlacesLt => lift(imagenet_lt, data(None), 365, 10),
        }
    }

    /// What the model takes as input: decided here alone, from what the preset, the data
    /// ([`Self::on_data`] records a CIFAR-style data set's image size) and the weights set.
    /// ImageNet-style: crops of `image_size` (default 224); CIFAR-style: `image_size`, or
    /// the benchmark's own (28 for MNIST-like data, 32 otherwise).
    pub fn input(&self) -> InputSpec {
        let kind = self.data.dataset;
        let style = self.recipe_style.or_by_kind(kind);
        let size = match (style, self.image_size, kind) {
            (_, Some(size), _) => size,
            (RecipeStyle::Imagenet, None, _) => IMAGENET_CROP_SIZE,
            (_, None, DatasetKind::Mnist | DatasetKind::FashionMnist) => 28,
            (_, None, _) => 32,
        };
        let normalization = self.normalization.clone().unwrap_or_else(|| kind.normalization());
        InputSpec { style, size, channels: self.model.in_channels, normalization }
    }

    /// The views and evaluation transform of this run, making [`Self::input`]'s images.
    pub fn recipe(&self) -> Result<Recipe> {
        Recipe::for_input(&self.input(), self.cl_views, &self.randaugment, self.cutout)
    }

    /// This recipe trained on other data (`--dataset`). What the data decide replaces what
    /// the preset says: the class count and channels; the long-tailed subset (`data`'s own
    /// ρ where it sets one; else a balanced benchmark gets the preset's ρ, or 100, and a
    /// user's folder or list, ImageNet-LT and iNaturalist, long-tailed already, are used as
    /// they are); and, under `recipe_style
    /// = auto`, the views: CIFAR-style (resnet32) for small square images of one size,
    /// ImageNet-style (a ResNet-50-class encoder) otherwise. Returns the config with a line
    /// per decision, for the user.
    pub fn on_data(&self, data: DataConfig) -> Result<(Self, Vec<String>)> {
        let mut config = self.clone();
        // A ρ the caller gives with the data (`--imb-factor`) applies to any data.
        let preset_rho = || data.dataset.is_balanced().then(|| self.data.imb_factor.unwrap_or(100.0));
        let imb_factor = data.imb_factor.or_else(preset_rho);
        config.data = DataConfig { imb_factor, profile: self.data.profile, subset_seed: self.data.subset_seed, ..data };
        let mut decisions = Vec::new();
        let root = &config.data.root;
        let split_folders = ["train", "val", "test"].iter().any(|s| root.join(s).is_dir());
        if config.data.dataset == DatasetKind::Folder && !split_folders {
            let fraction = *config.data.holdout.get_or_insert(DEFAULT_HOLDOUT);
            if let Some((_, held)) = config.data.holdout_split()? {
                decisions.push(format!(
                    "no test/ or val/ folder: {:.0}% of each class's images ({} in all, seed {}) held out as the test \
                     split, listed in the run folder's split.csv",
                    100.0 * fraction,
                    held.paths.len(),
                    config.data.subset_seed
                ));
            }
        }
        let full = config.data.open(Split::Train)?;
        decisions.insert(
            0,
            format!(
                "{} classes, {} training images{}",
                full.num_classes(),
                full.len(),
                match imb_factor {
                    Some(rho) => format!(", long-tailed subset ρ = {rho}"),
                    None => " used as they are".into(),
                }
            ),
        );
        let style = self.recipe_style.for_data(config.data.dataset, full.as_ref())?;
        let sizes = sampled_sizes(full.as_ref())?;
        let side = sizes[0].0;
        if self.recipe_style == RecipeStyle::Auto {
            let crops = match style {
                RecipeStyle::Imagenet => format!(" ({} px crops)", self.image_size.unwrap_or(IMAGENET_CROP_SIZE)),
                _ => String::new(),
            };
            let (smallest, largest) =
                (sizes.iter().min_by_key(|(w, h)| w * h), sizes.iter().max_by_key(|(w, h)| w * h));
            let images = match (smallest, largest) {
                (Some(a), Some(b)) if a != b => format!("images of several sizes, {}×{} to {}×{}", a.0, a.1, b.0, b.1),
                _ => format!("{}×{} images", sizes[0].0, sizes[0].1),
            };
            decisions.push(format!("{style:?}-style views{crops} for {images} (change with --recipe)"));
        }
        if style == RecipeStyle::Cifar {
            config.image_size = Some(side);
        }
        let (channels, classes) = (full.channels() as i64, full.num_classes() as i64);
        config.recipe_style = style;
        // The preset's encoder if it is made for these images; else the default for them.
        config.model = if config.model.arch.spec().style == style {
            ModelConfig { in_channels: channels, num_classes: classes, ..config.model }
        } else {
            let arch = if style == RecipeStyle::Cifar { Arch::Resnet32 } else { Arch::Resnet50 };
            ModelConfig::for_arch(arch, channels, classes)
        };
        if config.model.arch != self.model.arch {
            decisions.push(format!("model {:?} for {style:?}-style images", config.model.arch));
        }
        if config.finetune.tune == Tune::Adapter && classes != self.model.num_classes {
            config = config.with_adapters(None);
            decisions.push(format!(
                "adapters of width {} for {classes} classes (LIFT's rule; change with --adapter-dim)",
                config.model.adapter_dim.unwrap_or_default()
            ));
        }
        config.validate()?;
        Ok((config, decisions))
    }
}

impl TrainConfig {
    /// This config with the keys of a TOML document replaced, e.g. `epochs = 10` or
    /// `[schedule]\nbase_lr = 0.05`. Unknown keys are errors; a table that sets `kind`
    /// (such as `[schedule.decay]`) replaces the whole table.
    ///
    /// `[loss]` is the exception: its keys change the loss (`kind = "la"` keeps the
    /// logit adjustment; `beta = 0.5` alone changes β), as the `--loss` flags do.
    pub fn with_overrides(&self, toml_text: &str, source: &str) -> Result<Self> {
        let mut overrides: toml::Table =
            toml::from_str(toml_text).map_err(one_line).with_context(|| format!("{source} is not valid TOML"))?;
        let written_before_table = matches!(overrides.get("loss"), Some(toml::Value::String(_)));
        let mut loss_changes = take_loss_changes(&mut overrides).with_context(|| format!("in {source}"))?;
        if written_before_table {
            // An old run's config.toml as the overrides: it saved every setting for every loss.
            let kind = loss_changes.kind.unwrap_or(LossKind::Bcl);
            loss_changes = loss_changes.relevant_to(kind);
        }
        let mut merged = toml::Table::try_from(self).context("encoding the config as TOML")?;
        merge(&mut merged, overrides);
        let mut config: Self =
            merged.try_into().map_err(one_line).with_context(|| format!("{source} does not fit the config"))?;
        config.loss = config.changed_loss(&loss_changes).with_context(|| format!("in {source}"))?;
        config.validate().with_context(|| format!("in {source}"))?;
        Ok(config)
    }

    /// This config's loss with `changes` made; a switch to a contrastive loss takes the
    /// settings it lacks from the paper's BCL for this config's kind of data.
    pub fn changed_loss(&self, changes: &LossChanges) -> Result<LossConfig> {
        self.loss.changed(changes, &paper_bcl(self.recipe_style.or_by_kind(self.data.dataset)))
    }

    /// The config as a TOML document (what `config.toml` of a run holds).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("encoding the config as TOML")
    }

    /// Reads a whole config written by [`Self::to_toml`].
    /// A config saved before the `[loss]` table (`loss = "bcl"` and its settings at the top)
    /// reads as the same loss.
    pub fn from_toml(toml_text: &str, source: &str) -> Result<Self> {
        let invalid = || format!("{source} is not a valid bcl config");
        let mut table: toml::Table = toml::from_str(toml_text).map_err(one_line).with_context(invalid)?;
        let legacy = match table.get("loss") {
            Some(toml::Value::String(_)) => Some(take_loss_changes(&mut table).with_context(invalid)?),
            _ => None,
        };
        if legacy.is_some() {
            table.insert("loss".into(), toml::Value::try_from(LossConfig::Ce).context("encoding a loss")?);
        }
        let mut config: Self = table.try_into().map_err(one_line).with_context(invalid)?;
        if let Some(changes) = legacy {
            let kind = changes.kind.unwrap_or(LossKind::Bcl);
            config.loss = config.changed_loss(&changes.relevant_to(kind)).with_context(invalid)?;
        }
        config.validate().with_context(|| format!("in {source}"))?;
        Ok(config)
    }

    /// Rejects values that cannot train: non-finite or out-of-range numbers.
    /// Whether the variable `key` stays as the `--init` file has it for the whole run: the
    /// encoder's under `--tune head`, all of it but the adapters under `--tune adapter`.
    /// Checkpoints leave these out and name the file (`predict::load_weights`).
    pub fn keeps_from_init(&self, key: &str) -> bool {
        if !key.starts_with(ENCODER_PREFIX) {
            return false;
        }
        match self.finetune.tune {
            Tune::Full => false,
            Tune::Head => true,
            Tune::Adapter => !is_adapter(key),
        }
    }

    /// `--tune adapter` and the model's adapters go together, on an encoder with blocks.
    fn check_tune(&self) -> Result<()> {
        let (arch, adapter_dim) = (self.model.arch, self.model.adapter_dim);
        match (self.finetune.tune, adapter_dim) {
            (Tune::Adapter, Some(width)) => {
                let Some(blocks) = arch.spec().blocks else {
                    bail!(
                        "--tune adapter adds adapters to a ViT's transformer blocks, and {} has none: use a vit_* \
                         --arch, or --tune full or head",
                        arch.name()
                    )
                };
                ensure!(
                    (1..=blocks.width).contains(&width),
                    "model.adapter_dim = {width} must be from 1 to {}, the width of {}'s blocks (an adapter is a \
                     bottleneck)",
                    blocks.width,
                    arch.name()
                );
            }
            (Tune::Adapter, None) => bail!("finetune.tune = \"adapter\" needs model.adapter_dim, the adapters' width"),
            (Tune::Full | Tune::Head, Some(_)) => {
                bail!("model.adapter_dim is set, and adapters train only under finetune.tune = \"adapter\"")
            }
            (Tune::Full | Tune::Head, None) => {}
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        let finite = |name: &str, v: f64| -> Result<()> {
            ensure!(v.is_finite(), "{name} = {v} is not a finite number");
            Ok(())
        };
        for (name, v) in [
            ("schedule.base_lr", self.schedule.base_lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
            ("model.cosine_scale", self.model.cosine_scale),
            ("finetune.encoder_lr_scale", self.finetune.encoder_lr_scale),
        ] {
            finite(name, v)?;
        }
        ensure!(self.epochs > 0, "epochs must be positive");
        ensure!(self.batch_size > 1, "batch_size = {} must be at least 2 (BatchNorm)", self.batch_size);
        ensure!(self.schedule.base_lr > 0.0, "schedule.base_lr = {} must be positive", self.schedule.base_lr);
        self.loss.validate()?;
        ensure!((0.0..1.0).contains(&self.momentum), "momentum = {} must be in [0, 1)", self.momentum);
        ensure!(self.weight_decay >= 0.0, "weight_decay = {} must not be negative", self.weight_decay);
        if let Some(rho) = self.data.imb_factor {
            ensure!(rho.is_finite() && rho >= 1.0, "data.imb_factor = {rho} must be a number ≥ 1");
        }
        RandAugment::parse(&self.randaugment)?;
        if let (RecipeStyle::Imagenet, Some(size)) = (self.recipe_style.or_by_kind(self.data.dataset), self.image_size)
        {
            check_crop_size(size)?;
        }
        self.check_tune()?;
        ensure!(
            self.finetune.encoder_lr_scale >= 0.0,
            "finetune.encoder_lr_scale = {} must not be negative",
            self.finetune.encoder_lr_scale
        );
        if let Some(normalization) = &self.normalization {
            let channels = self.model.in_channels as usize;
            ensure!(
                normalization.mean.len() == channels
                    && normalization.std.len() == channels
                    && normalization.std.iter().chain(&normalization.mean).all(|v| v.is_finite())
                    && normalization.std.iter().all(|&s| s > 0.0),
                "normalization: mean and std need one finite value per channel ({channels}), std positive; got \
                 mean {:?}, std {:?}",
                normalization.mean,
                normalization.std
            );
        }
        let (spec, side) = (self.model.arch.spec(), self.input().size);
        ensure!(
            side.is_multiple_of(spec.size_multiple),
            "image_size = {side} is not a multiple of {}'s patch size {}",
            self.model.arch.name(),
            spec.size_multiple
        );
        ensure!(self.workers != Some(0), "workers must be positive");
        ensure!(self.bn_group_size != Some(0), "bn_group_size must be positive");
        ensure!(
            !(self.sync_batch_norm && self.bn_group_size.is_some()),
            "sync_batch_norm (statistics over all processes) and bn_group_size (over groups) contradict each other: \
             set one"
        );
        Ok(())
    }
}

/// BCL with the settings of SPEC section 3 for `style`-style data: the CIFAR-LT recipe's
/// (τ 0.1, α 2, β 0.6) or ImageNet-LT's and iNaturalist's (τ 0.07, α 1, β 0.35).
fn paper_bcl(style: RecipeStyle) -> BclSettings {
    match style {
        RecipeStyle::Auto | RecipeStyle::Cifar => BclSettings::paper(0.1, 2.0, 0.6),
        RecipeStyle::Imagenet => BclSettings::paper(0.07, 1.0, 0.35),
    }
}

/// The loss settings of a config TOML as changes, taken out of it: its `[loss]` table of
/// changes, or `loss = "kind"` with the keys that were top-level before the table.
fn take_loss_changes(table: &mut toml::Table) -> Result<LossChanges> {
    let mut changes = toml::Table::new();
    match table.remove("loss") {
        Some(toml::Value::Table(loss)) => changes = loss,
        Some(kind) => {
            changes.insert("kind".into(), kind);
        }
        None => {}
    }
    for key in ["temperature", "alpha", "beta", "logit_adjustment", "class_averaging", "class_complement"] {
        if let Some(value) = table.remove(key) {
            changes.insert(key.into(), value);
        }
    }
    changes.try_into().map_err(one_line).context("[loss]")
}

/// A TOML error in one line: toml's runs over several (an excerpt of the file with a caret,
/// then the key), which a user's terminal shows as a block.
fn one_line(error: toml::de::Error) -> anyhow::Error {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.contains('|')).collect();
    anyhow::anyhow!(lines.join("; "))
}

fn shuffle() -> SamplerKind {
    SamplerKind::Shuffle
}

/// Overwrites `base`'s keys with `overrides`', recursing into tables that both have.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) if !over.contains_key("kind") => {
                merge(inner, over)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
