//! The BCL model (SPEC section 1): an encoder and two branches on its features.
//!
//! The one door for backbones: a new architecture is a file here (its layers under
//! torchvision's or timm's parameter names), a variant of [`Arch`] and its entry in
//! [`Arch::spec`]; every command builds models through [`create`].
pub mod norm;
mod resnet;
mod two_branch;
mod vit;

use resnet::Layout;
pub use resnet::ResNet;
pub use two_branch::{BclModel, BclOutput, Classifier};
use vit::ADAPTER;
pub use vit::Vit;
use vit::VitLayout;

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use crate::augment::RecipeStyle;

/// Encoder architecture, by torchvision's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// CIFAR ResNet-32, d = 64.
    #[value(name = "resnet32")]
    Resnet32,
    /// torchvision ResNet-18, d = 512.
    #[value(name = "resnet18")]
    Resnet18,
    /// torchvision ResNet-34, d = 512.
    #[value(name = "resnet34")]
    Resnet34,
    /// torchvision ResNet-50, d = 2048.
    #[value(name = "resnet50")]
    Resnet50,
    /// torchvision ResNet-101, d = 2048.
    #[value(name = "resnet101")]
    Resnet101,
    /// torchvision ResNet-152, d = 2048 (Places-LT's backbone).
    #[value(name = "resnet152")]
    Resnet152,
    /// torchvision ResNeXt-50 32×4d, d = 2048.
    #[value(name = "resnext50_32x4d")]
    #[serde(rename = "resnext50_32x4d")]
    Resnext50_32x4d,
    /// torchvision ResNeXt-101 32×8d, d = 2048.
    #[value(name = "resnext101_32x8d")]
    #[serde(rename = "resnext101_32x8d")]
    Resnext101_32x8d,
    /// torchvision Wide ResNet-50-2, d = 2048.
    #[value(name = "wide_resnet50_2")]
    #[serde(rename = "wide_resnet50_2")]
    WideResnet50_2,
    /// timm ViT-Tiny/16, d = 192.
    #[value(name = "vit_tiny_patch16_224")]
    #[serde(rename = "vit_tiny_patch16_224")]
    VitTinyPatch16_224,
    /// timm ViT-Small/16, d = 384.
    #[value(name = "vit_small_patch16_224")]
    #[serde(rename = "vit_small_patch16_224")]
    VitSmallPatch16_224,
    /// timm ViT-Base/16, d = 768.
    #[value(name = "vit_base_patch16_224")]
    #[serde(rename = "vit_base_patch16_224")]
    VitBasePatch16_224,
    /// OpenAI CLIP's ViT-B/16 image tower (timm's `vit_base_patch16_clip_quickgelu_224`),
    /// d = 512 after its projection.
    #[value(name = "vit_base_patch16_clip_224")]
    #[serde(rename = "vit_base_patch16_clip_224")]
    VitBasePatch16Clip224,
}

/// ImageNet's channel mean and standard deviation: what torchvision's and timm's ResNet
/// weights were trained with.
pub const IMAGENET_MEAN_STD: ([f64; 3], [f64; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

/// The mean and std of timm's ImageNet-21k ViT weights (augreg): 0.5 everywhere.
pub const INCEPTION_MEAN_STD: ([f64; 3], [f64; 3]) = ([0.5; 3], [0.5; 3]);

/// The mean and std OpenAI's CLIP was trained with.
pub const OPENAI_CLIP_MEAN_STD: ([f64; 3], [f64; 3]) =
    ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]);

/// A ViT's transformer blocks: how many, and the width d of their tokens (an adapter's
/// bottleneck is at most that).
#[derive(Debug, Clone, Copy)]
pub struct Blocks {
    pub count: usize,
    pub width: i64,
}

/// What an architecture is: the registry entry a new backbone adds.
#[derive(Debug, Clone, Copy)]
pub struct ArchSpec {
    /// Width d of the encoder's features.
    pub feature_dim: i64,
    /// The views it is made for: CIFAR-style (small images at their own size) or
    /// ImageNet-style crops.
    pub style: RecipeStyle,
    /// The channel mean and std its published weights expect; none where no one publishes
    /// weights (resnet32).
    pub weights_mean_std: Option<([f64; 3], [f64; 3])>,
    /// The licence of its published weights, for the model card of a model started from
    /// them (SPEC section 6).
    pub weights_licence: Option<&'static str>,
    /// Image sides must be a multiple of this (a ViT's patch; 1 for ResNets).
    pub size_multiple: usize,
    /// The transformer blocks, each of which takes an adapter (`--tune adapter`); none for
    /// ResNets.
    pub blocks: Option<Blocks>,
    build: fn(nn::Path, i64) -> Encoder,
}

impl Arch {
    /// The registry: one entry per architecture.
    pub fn spec(self) -> ArchSpec {
        let cifar = |build| ArchSpec {
            feature_dim: 64,
            style: RecipeStyle::Cifar,
            weights_mean_std: None,
            weights_licence: None,
            size_multiple: 1,
            blocks: None,
            build,
        };
        let torchvision = |feature_dim, build| ArchSpec {
            feature_dim,
            style: RecipeStyle::Imagenet,
            weights_mean_std: Some(IMAGENET_MEAN_STD),
            weights_licence: Some("BSD-3-Clause (torchvision's weights)"),
            size_multiple: 1,
            blocks: None,
            build,
        };
        let vit = |layout: VitLayout, mean_std, licence, build| ArchSpec {
            feature_dim: layout.feature_dim(),
            style: RecipeStyle::Imagenet,
            weights_mean_std: Some(mean_std),
            weights_licence: Some(licence),
            size_multiple: layout.patch as usize,
            blocks: Some(Blocks { count: layout.depth, width: layout.dim }),
            build,
        };
        match self {
            Arch::Resnet32 => cifar(|vs, c| Encoder::ResNet(ResNet::cifar(vs, c, 5))),
            Arch::Resnet18 => torchvision(512, |vs, c| resnet(vs, c, Layout::basic([2, 2, 2, 2]))),
            Arch::Resnet34 => torchvision(512, |vs, c| resnet(vs, c, Layout::basic([3, 4, 6, 3]))),
            Arch::Resnet50 => torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 4, 6, 3], 1, 64))),
            Arch::Resnet101 => torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 4, 23, 3], 1, 64))),
            Arch::Resnet152 => torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 8, 36, 3], 1, 64))),
            Arch::Resnext50_32x4d => torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 4, 6, 3], 32, 4))),
            Arch::Resnext101_32x8d => {
                torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 4, 23, 3], 32, 8)))
            }
            Arch::WideResnet50_2 => torchvision(2048, |vs, c| resnet(vs, c, Layout::bottleneck([3, 4, 6, 3], 1, 128))),
            Arch::VitTinyPatch16_224 => {
                vit(VIT_TINY, INCEPTION_MEAN_STD, TIMM_LICENCE, |vs, c| Encoder::Vit(Vit::new(vs, c, VIT_TINY)))
            }
            Arch::VitSmallPatch16_224 => {
                vit(VIT_SMALL, INCEPTION_MEAN_STD, TIMM_LICENCE, |vs, c| Encoder::Vit(Vit::new(vs, c, VIT_SMALL)))
            }
            Arch::VitBasePatch16_224 => {
                vit(VIT_BASE, INCEPTION_MEAN_STD, TIMM_LICENCE, |vs, c| Encoder::Vit(Vit::new(vs, c, VIT_BASE)))
            }
            Arch::VitBasePatch16Clip224 => {
                vit(CLIP_BASE, OPENAI_CLIP_MEAN_STD, CLIP_LICENCE, |vs, c| Encoder::Vit(Vit::new(vs, c, CLIP_BASE)))
            }
        }
    }

    /// The encoder for images with `in_channels` channels, its variables under `vs`.
    pub fn build(self, vs: nn::Path, in_channels: i64) -> Encoder {
        (self.spec().build)(vs, in_channels)
    }

    /// The name `--arch` takes and `bcl models` lists, such as `resnet50`.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }

    pub fn all() -> &'static [Arch] {
        <Arch as clap::ValueEnum>::value_variants()
    }

    /// Trainable parameters of the encoder for 3-channel images (torchvision's count
    /// without `fc`), by building it on the CPU.
    pub fn parameter_count(self) -> i64 {
        // Its initialisation draws from the global generator: under the lock `create` holds.
        let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let vs = nn::VarStore::new(Device::Cpu);
        self.build(vs.root() / "encoder", 3);
        count_parameters(&vs, |_| true)
    }
}

const TIMM_LICENCE: &str = "Apache-2.0 (timm's ImageNet-21k ViT weights)";
/// SPEC section 6: say so wherever CLIP is offered.
const CLIP_LICENCE: &str = "MIT (OpenAI CLIP); OpenAI's CLIP model card puts deployed use of the model out of scope";
const VIT_TINY: VitLayout = VitLayout::timm(192, 3);
const VIT_SMALL: VitLayout = VitLayout::timm(384, 6);
const VIT_BASE: VitLayout = VitLayout::timm(768, 12);
const CLIP_BASE: VitLayout = VitLayout::clip(768, 12, 512);

/// torchvision's ImageNet ResNet of `layout`.
fn resnet(vs: nn::Path, in_channels: i64, layout: Layout) -> Encoder {
    Encoder::ResNet(ResNet::imagenet(vs, in_channels, layout))
}

/// An encoder: images (N × c × H × W) to features (N × d).
#[derive(Debug)]
pub enum Encoder {
    ResNet(ResNet),
    Vit(Vit),
}

impl Encoder {
    /// Adds an AdaptFormer adapter of bottleneck `width` to every transformer block. A
    /// ResNet has none to take one ([`ArchSpec::blocks`]; `TrainConfig::validate` refuses
    /// adapters there).
    pub fn add_adapters(&mut self, vs: nn::Path, width: i64) {
        match self {
            Encoder::ResNet(_) => {}
            Encoder::Vit(vit) => vit.add_adapters(vs, width),
        }
    }

    /// Width d of the features this encoder returns.
    pub fn feature_dim(&self) -> i64 {
        match self {
            Encoder::ResNet(resnet) => resnet.feature_dim(),
            Encoder::Vit(vit) => vit.feature_dim(),
        }
    }
}

impl ModuleT for Encoder {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Encoder::ResNet(resnet) => resnet.forward_t(xs, train),
            Encoder::Vit(vit) => vit.forward_t(xs, train),
        }
    }
}

/// The prefix of the encoder's variables (`encoder.layer1.0.conv1.weight`).
pub const ENCODER_PREFIX: &str = "encoder.";

/// Whether the variable `key` belongs to an adapter (`encoder.blocks.3.adaptformer.scale`).
pub fn is_adapter(key: &str) -> bool {
    key.split('.').any(|part| part == ADAPTER)
}

/// Held while a model is initialised from libtorch's global random generator.
static INIT: Mutex<()> = Mutex::new(());

/// The model `config` describes, its variables on `device` (timm's `create_model`): every
/// command builds its model here. With `seed`, initialised from libtorch's generator seeded
/// with it; without, from the generator as it stands (weights about to be loaded, or a
/// caller that seeded it). The generator is global: the lock keeps models built in other
/// threads (tests run in parallel) from drawing between the seeding and the initialisation.
pub fn create(config: &ModelConfig, device: Device, seed: Option<u64>) -> (nn::VarStore, BclModel) {
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(seed) = seed {
        tch::manual_seed(seed as i64);
    }
    let vs = nn::VarStore::new(device);
    let model = BclModel::new(&vs.root(), config);
    (vs, model)
}

/// Classifier of the classification branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierKind {
    /// Cosine classifier: s · cos(h, w_k), weight d × C.
    Cosine,
    /// Plain Linear(d, C) with bias.
    Linear,
}

/// Everything that decides the model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// 1 for grayscale data (MNIST, Fashion-MNIST), 3 for colour.
    pub in_channels: i64,
    pub num_classes: i64,
    /// Hidden width d_h of the `head` and `head_fc` MLPs.
    pub head_hidden_dim: i64,
    /// Width D of the contrastive features and prototypes.
    pub feature_dim: i64,
    pub classifier: ClassifierKind,
    /// Scale s of the cosine classifier's logits.
    pub cosine_scale: f64,
    /// Bottleneck width of the AdaptFormer adapter in each transformer block; none: no
    /// adapters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_dim: Option<i64>,
}

impl ModelConfig {
    /// The BCL model around `arch`: [`Self::cifar`]'s heads for CIFAR-style encoders,
    /// [`Self::imagenet`]'s otherwise.
    pub fn for_arch(arch: Arch, in_channels: i64, num_classes: i64) -> Self {
        match arch.spec().style {
            RecipeStyle::Cifar => Self { arch, ..Self::cifar(in_channels, num_classes) },
            RecipeStyle::Imagenet | RecipeStyle::Auto => Self { in_channels, ..Self::imagenet(arch, num_classes) },
        }
    }

    /// The CIFAR-style model of SPEC section 3: resnet32, head 512 → 128, cosine classifier.
    pub fn cifar(in_channels: i64, num_classes: i64) -> Self {
        Self {
            arch: Arch::Resnet32,
            in_channels,
            num_classes,
            head_hidden_dim: 512,
            feature_dim: 128,
            classifier: ClassifierKind::Cosine,
            cosine_scale: 30.0,
            adapter_dim: None,
        }
    }

    /// The ImageNet-LT / iNaturalist model: `arch`, head 2048 → 1024, cosine classifier.
    pub fn imagenet(arch: Arch, num_classes: i64) -> Self {
        Self {
            arch,
            in_channels: 3,
            num_classes,
            head_hidden_dim: 2048,
            feature_dim: 1024,
            classifier: ClassifierKind::Cosine,
            cosine_scale: 30.0,
            adapter_dim: None,
        }
    }
}

/// LIFT's adapter width for `num_classes` classes and `blocks`, 2^⌊log2(C / 2L)⌋ (at least
/// 1, at most the blocks' width): the adapters then hold about as many parameters as the
/// classifier (CIFAR-100 on a 12-block ViT: 4; ImageNet-LT: 32; iNaturalist 2018: 256).
pub fn lift_adapter_dim(num_classes: i64, blocks: Blocks) -> i64 {
    let ratio = num_classes as f64 / (2 * blocks.count.max(1)) as f64;
    (1i64 << (ratio.log2().floor().clamp(0.0, 30.0) as i64)).min(blocks.width)
}

/// Number of trainable parameters in `vs` whose name passes `keep` (buffers such as
/// BatchNorm running statistics are not parameters).
pub fn count_parameters(vs: &nn::VarStore, keep: impl Fn(&str) -> bool) -> i64 {
    vs.variables().iter().filter(|(name, t)| t.requires_grad() && keep(name)).map(|(_, t)| t.numel() as i64).sum()
}
