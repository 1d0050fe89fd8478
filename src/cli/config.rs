//! The flags that make a run's config (shared by `train` and `config show`), and
//! `bcl config show`: the resolved TOML, without training.
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use bcl::augment::RecipeStyle;
use bcl::checkpoint;
use bcl::config::{Amp, ClassifierInit, Preset, TrainConfig, Tune};
use bcl::data::sampler::SamplerKind;
use bcl::data::{DataConfig, DatasetKind, Normalization};
use bcl::init::InitSource;
use bcl::loss::{LossChanges, LossKind};
use bcl::model::{Arch, ModelConfig};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the config a `bcl train` with these flags would use, as TOML (what the run's
    /// config.toml would hold), without training.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    #[command(flatten)]
    length: RunLength,
}

pub fn exec(command: &ConfigCommand) -> Result<()> {
    let ConfigCommand::Show(args) = command;
    let (config, decisions) = args.settings.resolve(&args.length)?;
    for line in decisions {
        eprintln!("{line}");
    }
    print!("{}", config.to_toml()?);
    Ok(())
}

/// A preset, changed by a TOML file, then by other data (`--dataset`), then by the flags.
#[derive(Args)]
pub struct ConfigArgs {
    /// The benchmark recipe to start from.
    #[arg(long, default_value = "fashion-mnist-lt", value_parser = super::PresetParser)]
    pub preset: Preset,
    /// TOML file of config keys to change after the preset (see a run's config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train on this data instead of the preset's (with --root): a folder per class
    /// (`folder`), `path label` lists (`list`) or a benchmark. Class count, names and
    /// channels come from the data; a folder or list is used as it is (no long-tailed
    /// subset unless --imb-factor), balanced benchmarks get the preset's subset.
    #[arg(long, value_enum, requires = "root")]
    pub dataset: Option<DatasetKind>,
    /// Dataset folder (default for Fashion-MNIST: $BCL_FASHION_MNIST, else Debian's location).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// `--dataset folder` without test/ or val/: the share of each class's images held out
    /// for evaluation (default 0.2; stratified, seeded, listed in split.csv).
    #[arg(long, requires = "dataset")]
    pub holdout: Option<f64>,
    /// Leave out image files whose header cannot be read (a warning names them) instead of
    /// refusing the data.
    #[arg(long)]
    pub skip_bad: bool,
    /// `--dataset list`: the training list, `path label` per line, paths relative to --root.
    #[arg(long, requires = "dataset")]
    pub train_list: Option<PathBuf>,
    /// `--dataset list`: the validation list (optional).
    #[arg(long, requires = "dataset")]
    pub val_list: Option<PathBuf>,
    /// `--dataset list`: the test list (evaluation; without it, the val list).
    #[arg(long, requires = "dataset")]
    pub test_list: Option<PathBuf>,
    /// The encoder (`bcl models` lists them): torchvision's ResNets, or the CIFAR resnet32.
    /// Its views follow it (ImageNet-style crops for torchvision's) unless --recipe says.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// The views: cifar (small same-size images, resnet32) or imagenet (crops, 224 px unless
    /// --image-size; ResNet-50).
    /// Default: the preset's, or with --dataset folder|list what the images call for.
    #[arg(long, value_enum)]
    pub recipe: Option<RecipeStyle>,
    /// Side of the imagenet recipe's crops (default 224; 112 or 160 train ~4× or ~2×
    /// faster, at some accuracy); evaluation resizes to 8/7 of it and crops the centre.
    #[arg(long)]
    pub image_size: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// How an epoch draws its samples: shuffle (every sample once), class-balanced (each
    /// class equally often) or square-root (classes ∝ √ their size).
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerKind>,
    /// Base learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// Temperature τ of the contrastive loss (the paper's sensitivity study: 0.07 or 0.1).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Weight β of the contrastive loss (the paper's sensitivity study: 0.35 or 0.6).
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f64>,
    #[arg(long)]
    pub no_class_averaging: bool,
    #[arg(long)]
    pub no_class_complement: bool,
    /// Imbalance factor ρ of a long-tailed subset of the training data.
    #[arg(long, allow_negative_numbers = true)]
    pub imb_factor: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Mixed precision: auto (the presets': bf16 on GPUs and on CPUs with AMX, float32 on
    /// other CPUs, where bf16 measured slower), bf16, fp16 (GPUs, with loss scaling) or off.
    #[arg(long, value_enum)]
    pub amp: Option<Amp>,
    /// Start from these weights (safetensors): a torchvision or timm state_dict of --arch,
    /// or a bcl checkpoint or export. The encoder loads; a classifier for other classes is
    /// dropped; init.txt in the run folder lists every key. The input is normalised as the
    /// weights were trained (ImageNet's mean/std for torchvision's).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// The encoder's learning rate as a share of the heads' (e.g. 0.1 for a pretrained one).
    #[arg(long, allow_negative_numbers = true)]
    pub encoder_lr_scale: Option<f64>,
    /// What of the encoder trains: full (all of it), head (none: linear probe, cRT) or
    /// adapter (AdaptFormer adapters added to a ViT's blocks, as LIFT). A frozen encoder gets
    /// no gradients, keeps its BatchNorm statistics, and stays out of the checkpoints,
    /// which name the --init file instead.
    #[arg(long, value_enum)]
    pub tune: Option<Tune>,
    /// Bottleneck width of the adapters (default LIFT's: 2^⌊log2(classes / 2·blocks)⌋).
    #[arg(long, allow_negative_numbers = true)]
    pub adapter_dim: Option<i64>,
    /// The encoder's BatchNorm layers keep their running statistics (normalise with them).
    #[arg(long)]
    pub freeze_bn: bool,
    /// How the classifier starts: random, or class-mean (each class's mean encoder feature
    /// over the training images).
    #[arg(long, value_enum)]
    pub init_classifier: Option<ClassifierInit>,
}

/// The flags a resumed run takes too; the others ([`ConfigArgs`]) make a new run's config.
#[derive(Args)]
pub struct RunLength {
    /// Epochs to train (a resumed run: extended to this many, the schedule recomputed).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Loader threads (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// `--image-size` sets ImageNet-style crops; data that gets the cifar recipe (`style`) trains
/// on its images' own size, so the flag is refused there rather than ignored.
pub fn check_image_size_flag(image_size: Option<usize>, style: RecipeStyle) -> Result<()> {
    ensure!(
        image_size.is_none() || style == RecipeStyle::Imagenet,
        "--image-size sets the crops of the imagenet recipe, and this data gets the cifar recipe, which trains on \
         the images' own size: add --recipe imagenet for crops, or leave --image-size out"
    );
    Ok(())
}

/// Loader threads past four per core decode no faster, and thousands exhaust the machine:
/// more are cut to that, with a line saying so.
fn cap_workers(config: &mut TrainConfig) -> Option<String> {
    let cap = 4 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked = config.workers.filter(|&w| w > cap)?;
    config.workers = Some(cap);
    Some(format!("--workers {asked}: {cap} loader threads (four per core); more would load no faster"))
}

impl ConfigArgs {
    /// The ids of these flags, which make a new run's config: what `--resume` conflicts with
    /// (each by name, so that clap's error names the one given rather than all of them).
    pub fn ids() -> Vec<clap::Id> {
        let flags = <Self as Args>::augment_args(clap::Command::new("settings"));
        flags.get_arguments().map(|arg| arg.get_id().clone()).collect()
    }

    /// The config these flags make, with a line for each thing the data decided.
    pub fn resolve(&self, length: &RunLength) -> Result<(TrainConfig, Vec<String>)> {
        let mut config = TrainConfig::preset(self.preset, self.root_for(self.preset.dataset()));
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            config = config.with_overrides(&text, &path.display().to_string())?;
        }
        if let Some(arch) = self.arch {
            // The preset's (or --config's) heads, classifier and adapters stay with an encoder
            // made for the same views; another kind of encoder gets its own defaults.
            config.model = if arch.spec().style == config.model.arch.spec().style {
                ModelConfig { arch, ..config.model }
            } else {
                ModelConfig::for_arch(arch, config.model.in_channels, config.model.num_classes)
            };
            config.recipe_style = arch.spec().style;
            if config.finetune.tune == Tune::Adapter {
                // The preset's adapter width was LIFT's for its encoder's blocks.
                config = config.with_adapters(None);
            }
        }
        config.recipe_style = self.recipe.unwrap_or(config.recipe_style);
        config.data.skip_bad |= self.skip_bad;
        config.image_size = self.image_size.or(config.image_size);
        let mut decisions = Vec::new();
        if let Some(kind) = self.dataset {
            let data = DataConfig {
                train_list: self.train_list.clone(),
                val_list: self.val_list.clone(),
                test_list: self.test_list.clone(),
                holdout: self.holdout,
                imb_factor: self.imb_factor,
                skip_bad: self.skip_bad,
                ..DataConfig::new(kind, self.root_for(kind))
            };
            (config, decisions) = config.on_data(data)?;
        }
        ensure!(
            !config.data.root.as_os_str().is_empty(),
            "--root is required for --preset {} (or data.root in --config)",
            self.preset.name()
        );
        check_image_size_flag(self.image_size, config.recipe_style.or_by_kind(config.data.dataset))?;
        self.apply_flags(&mut config);
        config.epochs = length.epochs.unwrap_or(config.epochs);
        config.workers = length.workers.or(config.workers);
        config.loss = config.changed_loss(&self.loss_changes()).context("the loss options")?;
        decisions.extend(cap_workers(&mut config));
        decisions.extend(self.apply_init(&mut config)?);
        ensure!(
            config.finetune.tune == Tune::Full || config.init.is_some(),
            "--tune {} keeps the encoder as it starts: start it from pretrained weights with --init FILE (see \
             `bcl models` and the README's \"Starting from pretrained weights\")",
            config.finetune.tune.name()
        );
        ensure!(
            config.data.dataset != DatasetKind::PlacesLt || config.init.is_some(),
            "Places-LT starts from an ImageNet ResNet-152, as every published result does: download torchvision's \
             resnet152-394f9c45.pth (PaCo's resnet152-b121ed2d.pth is the same model), convert it with python \
             scripts/pt_to_safetensors.py resnet152-394f9c45.pth resnet152.safetensors, and add --init \
             resnet152.safetensors"
        );
        config.validate().context("the options")?;
        Ok((config, decisions))
    }

    /// The data folder: --root, or Fashion-MNIST's default folder for that dataset.
    fn root_for(&self, kind: DatasetKind) -> PathBuf {
        match (&self.root, kind) {
            (Some(root), _) => root.clone(),
            (None, DatasetKind::FashionMnist) => bcl::data::fashion_mnist_dir().0,
            (None, _) => PathBuf::new(),
        }
    }

    fn apply_flags(&self, config: &mut TrainConfig) {
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        config.sampler = self.sampler.unwrap_or(config.sampler);
        config.schedule.base_lr = self.lr.unwrap_or(config.schedule.base_lr);
        if self.imb_factor.is_some() {
            config.data.imb_factor = self.imb_factor;
        }
        config.seed = self.seed.unwrap_or(config.seed);
        config.amp = self.amp.unwrap_or(config.amp);
        let finetune = &mut config.finetune;
        finetune.encoder_lr_scale = self.encoder_lr_scale.unwrap_or(finetune.encoder_lr_scale);
        finetune.freeze_bn |= self.freeze_bn;
        finetune.init_classifier = self.init_classifier.unwrap_or(finetune.init_classifier);
        match self.tune.unwrap_or(finetune.tune) {
            Tune::Adapter => *config = config.clone().with_adapters(self.adapter_dim.or(config.model.adapter_dim)),
            // An --adapter-dim without adapters stays, for `validate` to refuse.
            tune => (config.finetune.tune, config.model.adapter_dim) = (tune, self.adapter_dim),
        }
    }

    /// What `--loss`, `--temperature`, `--beta` and `--no-class-*` change.
    fn loss_changes(&self) -> LossChanges {
        LossChanges {
            kind: self.loss,
            temperature: self.temperature,
            beta: self.beta,
            class_averaging: self.no_class_averaging.then_some(false),
            class_complement: self.no_class_complement.then_some(false),
            ..LossChanges::default()
        }
    }

    /// `--init`: the file and its sha256 into the config, and the input normalised as the
    /// weights were trained: a bcl file's own config says how; torchvision's and timm's
    /// ResNets, ImageNet's mean/std.
    fn apply_init(&self, config: &mut TrainConfig) -> Result<Vec<String>> {
        let Some(path) = &self.init else { return Ok(Vec::new()) };
        config.init = Some(InitSource::of(path)?);
        let saved = checkpoint::metadata(path)?;
        let trained_with = match saved.get("config") {
            Some(text) => {
                Some(TrainConfig::from_toml(text, &format!("the config in {}", path.display()))?.input().normalization)
            }
            None => config
                .model
                .arch
                .spec()
                .weights_mean_std
                .map(|(mean, std)| Normalization { mean: mean.to_vec(), std: std.to_vec() }),
        };
        let mut notes = Vec::new();
        if let Some(normalization) = trained_with.filter(|n| *n != config.input().normalization) {
            notes.push(format!(
                "input normalised as the --init weights were trained: mean {:?}, std {:?}",
                normalization.mean, normalization.std
            ));
            config.normalization = Some(normalization);
        }
        if config.data.dataset == DatasetKind::ImagenetLt {
            notes.push(format!("warning: ImageNet-LT is defined from scratch; ImageNet-1k weights have seen its training images, so results with --init {} do not compare with the benchmark's", path.display()));
        }
        Ok(notes)
    }

    /// A run folder's name when none is given: the preset, and the config file's or the
    /// dataset's.
    pub fn run_name(&self) -> String {
        let preset = self.preset.name();
        match (self.config.as_ref().and_then(|p| p.file_stem()), self.dataset) {
            (Some(stem), _) => format!("{preset}-{}", stem.to_string_lossy()),
            (None, Some(kind)) => format!("{preset}-{}", kind.name()),
            (None, None) => preset,
        }
    }
}
