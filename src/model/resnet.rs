//! ResNet encoders without their final linear layer, with torchvision's layout, parameter
//! names and initialisation, so that weights move between PyTorch and `bcl` by name.
//!
//! - `resnet32`: the CIFAR ResNet of He et al. (2016), 3 stages of 5 BasicBlocks, widths
//!   16/32/64, with the parameter-free shortcut ("option A": subsample, pad channels with
//!   zeros) used by the long-tailed CIFAR literature.
//! - `resnet50`, `resnext50_32x4d`: torchvision's Bottleneck networks (stride on the 3×3).
use tch::nn::{self, ModuleT};
use tch::{Tensor, nn::init};

use super::norm::BatchNorm;

/// Kaiming-normal, fan-out, ReLU gain: torchvision's convolution initialisation.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: init::NormalOrUniform::Normal,
    fan: init::FanInOut::FanOut,
    non_linearity: init::NonLinearity::ReLU,
};

fn conv2d(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let config =
        nn::ConvConfig { stride, padding: kernel / 2, groups, bias: false, ws_init: CONV_INIT, ..Default::default() };
    nn::conv2d(vs, c_in, c_out, kernel, config)
}

fn batch_norm2d(vs: nn::Path, channels: i64) -> BatchNorm {
    BatchNorm::new(vs, channels, 2)
}

/// CIFAR BasicBlock: two 3×3 convolutions; the shortcut subsamples and zero-pads channels.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    /// Channels added on each side of the shortcut when the block widens (option A).
    shortcut_pad: Option<i64>,
    stride: i64,
}

impl BasicBlock {
    fn new(vs: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let widens = stride != 1 || c_in != c_out;
        Self {
            conv1: conv2d(&vs / "conv1", c_in, c_out, 3, stride, 1),
            bn1: batch_norm2d(&vs / "bn1", c_out),
            conv2: conv2d(&vs / "conv2", c_out, c_out, 3, 1, 1),
            bn2: batch_norm2d(&vs / "bn2", c_out),
            shortcut_pad: widens.then_some((c_out - c_in) / 2),
            stride,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match self.shortcut_pad {
            Some(pad) => {
                xs.slice(2, 0, None, self.stride).slice(3, 0, None, self.stride).constant_pad_nd([0, 0, 0, 0, pad, pad])
            }
            None => xs.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

/// torchvision Bottleneck (ResNet v1.5): 1×1, 3×3 (strided, grouped), 1×1 ×4.
#[derive(Debug)]
struct Bottleneck {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    conv3: nn::Conv2D,
    bn3: BatchNorm,
    downsample: Option<(nn::Conv2D, BatchNorm)>,
}

const BOTTLENECK_EXPANSION: i64 = 4;

impl Bottleneck {
    fn new(vs: nn::Path, c_in: i64, planes: i64, stride: i64, groups: i64, width_per_group: i64) -> Self {
        let width = planes * width_per_group / 64 * groups;
        let c_out = planes * BOTTLENECK_EXPANSION;
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            (conv2d(&vs / "downsample" / "0", c_in, c_out, 1, stride, 1), batch_norm2d(&vs / "downsample" / "1", c_out))
        });
        Self {
            conv1: conv2d(&vs / "conv1", c_in, width, 1, 1, 1),
            bn1: batch_norm2d(&vs / "bn1", width),
            conv2: conv2d(&vs / "conv2", width, width, 3, stride, groups),
            bn2: batch_norm2d(&vs / "bn2", width),
            conv3: conv2d(&vs / "conv3", width, c_out, 1, 1, 1),
            bn3: batch_norm2d(&vs / "bn3", c_out),
            downsample,
        }
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train).relu();
        let out = out.apply(&self.conv3).apply_t(&self.bn3, train);
        let identity = match &self.downsample {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// A ResNet up to its global average pool: images (N × c × H × W) to features (N × d).
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    /// ImageNet networks downsample their 7×7 stem with a 3×3 max-pool; CIFAR ones do not.
    stem_max_pool: bool,
    layers: Vec<Vec<Box<dyn ModuleT>>>,
    feature_dim: i64,
}

impl ResNet {
    /// Width d of the features this encoder returns.
    pub fn feature_dim(&self) -> i64 {
        self.feature_dim
    }

    /// A CIFAR ResNet of 3 stages of `blocks_per_stage` BasicBlocks (resnet32: 5).
    pub(super) fn cifar(vs: nn::Path, in_channels: i64, blocks_per_stage: usize) -> Self {
        let mut c_in = 16;
        let mut layers = Vec::new();
        for (stage, (width, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate() {
            let layer_vs = &vs / format!("layer{}", stage + 1);
            let blocks = (0..blocks_per_stage)
                .map(|i| {
                    let block_stride = if i == 0 { stride } else { 1 };
                    let block = BasicBlock::new(&layer_vs / i, c_in, width, block_stride);
                    c_in = width;
                    Box::new(block) as Box<dyn ModuleT>
                })
                .collect();
            layers.push(blocks);
        }
        Self {
            conv1: conv2d(&vs / "conv1", in_channels, 16, 3, 1, 1),
            bn1: batch_norm2d(&vs / "bn1", 16),
            stem_max_pool: false,
            layers,
            feature_dim: c_in,
        }
    }

    /// torchvision's Bottleneck ResNet with `depths` blocks per stage (ResNeXt: `groups`,
    /// `width_per_group`; wide ResNets: width_per_group 128).
    pub(super) fn bottleneck(
        vs: nn::Path,
        in_channels: i64,
        depths: [usize; 4],
        groups: i64,
        width_per_group: i64,
    ) -> Self {
        let mut c_in = 64;
        let mut layers = Vec::new();
        for (stage, depth) in depths.into_iter().enumerate() {
            let planes = 64 << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let layer_vs = &vs / format!("layer{}", stage + 1);
            let blocks = (0..depth)
                .map(|i| {
                    let block_stride = if i == 0 { stride } else { 1 };
                    let block = Bottleneck::new(&layer_vs / i, c_in, planes, block_stride, groups, width_per_group);
                    c_in = planes * BOTTLENECK_EXPANSION;
                    Box::new(block) as Box<dyn ModuleT>
                })
                .collect();
            layers.push(blocks);
        }
        let stem = nn::ConvConfig { stride: 2, padding: 3, bias: false, ws_init: CONV_INIT, ..Default::default() };
        Self {
            conv1: nn::conv2d(&vs / "conv1", in_channels, 64, 7, stem),
            bn1: batch_norm2d(&vs / "bn1", 64),
            stem_max_pool: true,
            layers,
            feature_dim: c_in,
        }
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut out = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        if self.stem_max_pool {
            out = out.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for block in self.layers.iter().flatten() {
            out = block.forward_t(&out, train);
        }
        out.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
