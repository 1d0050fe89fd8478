//! The BCL model (SPEC section 1): a ResNet encoder and two branches on its features.
pub mod norm;
mod resnet;
mod two_branch;

pub use resnet::ResNet;
pub use two_branch::{BclModel, BclOutput, Classifier};

use serde::{Deserialize, Serialize};
use tch::nn;

/// Encoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// CIFAR ResNet-32, d = 64.
    #[value(name = "resnet32")]
    Resnet32,
    /// torchvision ResNet-50, d = 2048.
    #[value(name = "resnet50")]
    Resnet50,
    /// torchvision ResNeXt-50 32×4d, d = 2048.
    #[value(name = "resnext50_32x4d")]
    #[serde(rename = "resnext50_32x4d")]
    Resnext50_32x4d,
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
}

impl ModelConfig {
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
        }
    }
}

/// Number of trainable parameters in `vs` whose name passes `keep` (buffers such as
/// BatchNorm running statistics are not parameters).
pub fn count_parameters(vs: &nn::VarStore, keep: impl Fn(&str) -> bool) -> i64 {
    vs.variables().iter().filter(|(name, t)| t.requires_grad() && keep(name)).map(|(_, t)| t.numel() as i64).sum()
}
