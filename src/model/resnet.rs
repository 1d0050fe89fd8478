//! ResNet encoders without their final linear layer, with torchvision's layout, parameter
//! names and initialisation, so that weights move between PyTorch and `bcl` by name.
//!
//! - `resnet32`: the CIFAR ResNet of He et al. (2016), 3 stages of 5 BasicBlocks, widths
//!   16/32/64, with the parameter-free shortcut ("option A": subsample, pad channels with
//!   zeros) used by the long-tailed CIFAR literature.
//! - torchvision's ImageNet ResNets: BasicBlock (`resnet18`, `resnet34`) and Bottleneck
//!   (`resnet50`/`101`/`152`, `resnext50_32x4d`, `resnext101_32x8d`, `wide_resnet50_2`;
//!   stride on the 3×3) networks, which [`Layout`] describes.
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
struct CifarBasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    /// Channels added on each side of the shortcut when the block widens (option A).
    shortcut_pad: Option<i64>,
    stride: i64,
}

impl CifarBasicBlock {
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

impl ModuleT for CifarBasicBlock {
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

/// torchvision's shortcut projection where a block changes shape: 1×1 conv (strided) + BatchNorm.
fn downsample(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Option<(nn::Conv2D, BatchNorm)> {
    (stride != 1 || c_in != c_out).then(|| {
        (conv2d(vs / "downsample" / "0", c_in, c_out, 1, stride, 1), batch_norm2d(vs / "downsample" / "1", c_out))
    })
}

fn shortcut(xs: &Tensor, downsample: &Option<(nn::Conv2D, BatchNorm)>, train: bool) -> Tensor {
    match downsample {
        Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
        None => xs.shallow_clone(),
    }
}

/// torchvision BasicBlock (resnet18/34): two 3×3 convolutions, a projection shortcut.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    downsample: Option<(nn::Conv2D, BatchNorm)>,
}

impl BasicBlock {
    fn new(vs: nn::Path, c_in: i64, planes: i64, stride: i64) -> Self {
        Self {
            conv1: conv2d(&vs / "conv1", c_in, planes, 3, stride, 1),
            bn1: batch_norm2d(&vs / "bn1", planes),
            conv2: conv2d(&vs / "conv2", planes, planes, 3, 1, 1),
            bn2: batch_norm2d(&vs / "bn2", planes),
            downsample: downsample(&vs, c_in, planes, stride),
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        (out + shortcut(xs, &self.downsample, train)).relu()
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
        // Built first, as before torchvision's other layers: the draws of a seeded
        // initialisation stay in the order earlier runs took them.
        let downsample = downsample(&vs, c_in, c_out, stride);
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
        (out + shortcut(xs, &self.downsample, train)).relu()
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
                    let block = CifarBasicBlock::new(&layer_vs / i, c_in, width, block_stride);
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

    /// torchvision's ImageNet ResNet of `layout`: a 7×7 stem and max-pool, then four stages.
    pub(super) fn imagenet(vs: nn::Path, in_channels: i64, layout: Layout) -> Self {
        let mut c_in = 64;
        let mut layers = Vec::new();
        for (stage, depth) in layout.depths.into_iter().enumerate() {
            let planes = 64 << stage;
            let stride = if stage == 0 { 1 } else { 2 };
            let layer_vs = &vs / format!("layer{}", stage + 1);
            let blocks = (0..depth)
                .map(|i| {
                    let (vs, block_stride) = (&layer_vs / i, if i == 0 { stride } else { 1 });
                    let (block, c_out): (Box<dyn ModuleT>, i64) = match layout.block {
                        Block::Basic => (Box::new(BasicBlock::new(vs, c_in, planes, block_stride)), planes),
                        Block::Bottleneck => {
                            let (groups, width) = (layout.groups, layout.width_per_group);
                            let block = Bottleneck::new(vs, c_in, planes, block_stride, groups, width);
                            (Box::new(block), planes * BOTTLENECK_EXPANSION)
                        }
                    };
                    c_in = c_out;
                    block
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

/// The residual block of an ImageNet ResNet.
#[derive(Debug, Clone, Copy)]
pub(super) enum Block {
    /// Two 3×3 convolutions (resnet18/34).
    Basic,
    /// 1×1, 3×3, 1×1 ×4 (resnet50 and deeper, ResNeXt, wide ResNets).
    Bottleneck,
}

/// What tells torchvision's ImageNet ResNets apart: the block, the blocks per stage, and the
/// Bottleneck's 3×3 groups and width per group (ResNeXt 32×4d: 32, 4; wide_resnet50_2: 1, 128).
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub block: Block,
    pub depths: [usize; 4],
    pub groups: i64,
    pub width_per_group: i64,
}

impl Layout {
    pub const fn basic(depths: [usize; 4]) -> Self {
        Self { block: Block::Basic, depths, groups: 1, width_per_group: 64 }
    }

    pub const fn bottleneck(depths: [usize; 4], groups: i64, width_per_group: i64) -> Self {
        Self { block: Block::Bottleneck, depths, groups, width_per_group }
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
