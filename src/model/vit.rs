//! Vision Transformers with timm's layout and parameter names (`patch_embed.proj`,
//! `cls_token`, `pos_embed`, `blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`,
//! `norm`), so that timm's weights load by name. Pre-norm blocks with libtorch's
//! scaled-dot-product attention; the features are the class token after the final norm.
//! The OpenAI CLIP image tower adds `norm_pre`, QuickGELU, LayerNorm eps 1e-5 and the
//! 768 → 512 projection (`head`, as timm converts CLIP's `proj`). Other image sizes take the
//! position embeddings resampled bicubically (antialiased), as timm's
//! `resample_abs_pos_embed` does.
//!
//! [`Vit::add_adapters`] gives each block an AdaptFormer adapter (LIFT's light fine-tuning).
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// The name of the adapters' variables in a block: `blocks.i.adaptformer.*`.
pub const ADAPTER: &str = "adaptformer";

/// What tells the ViTs apart.
#[derive(Debug, Clone, Copy)]
pub(super) struct VitLayout {
    pub patch: i64,
    pub dim: i64,
    pub depth: usize,
    pub heads: i64,
    /// The image side the position embeddings are laid out for.
    pub image_size: i64,
    /// OpenAI CLIP's tower: `norm_pre`, QuickGELU, eps 1e-5, a projection to `Some(width)`.
    pub clip_projection: Option<i64>,
}

impl VitLayout {
    pub const fn timm(dim: i64, heads: i64) -> Self {
        Self { patch: 16, dim, depth: 12, heads, image_size: 224, clip_projection: None }
    }

    pub const fn clip(dim: i64, heads: i64, projection: i64) -> Self {
        Self { clip_projection: Some(projection), ..Self::timm(dim, heads) }
    }

    /// Width d of the features: the projection's for CLIP, the embedding's otherwise.
    pub const fn feature_dim(&self) -> i64 {
        match self.clip_projection {
            Some(width) => width,
            None => self.dim,
        }
    }
}

/// timm's initialisation of linear layers: N(0, 0.02) (timm truncates at ±2σ), bias 0.
fn linear(vs: nn::Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        bs_init: bias.then_some(nn::Init::Const(0.0)),
        bias,
    };
    nn::linear(vs, c_in, c_out, config)
}

fn layer_norm(vs: nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(vs, vec![dim], nn::LayerNormConfig { eps, ..Default::default() })
}

/// AdaptFormer (Chen et al. 2022) as LIFT uses it: a bottleneck MLP beside a block's MLP
/// branch, reading the branch's input: scale · up(relu(down(norm(x)))). The up-projection
/// starts at zero, so a model with new adapters computes what the backbone alone does.
#[derive(Debug)]
struct AdaptFormer {
    norm: nn::LayerNorm,
    down_proj: nn::Linear,
    up_proj: nn::Linear,
    scale: Tensor,
}

impl AdaptFormer {
    fn new(vs: nn::Path, dim: i64, width: i64) -> Self {
        // PyTorch's kaiming_normal_(a = √5): std = √(2 / (1 + 5)) / √fan_in.
        let down = nn::LinearConfig {
            ws_init: nn::Init::Randn { mean: 0.0, stdev: (1.0 / 3.0f64).sqrt() / (dim as f64).sqrt() },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let up = nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true };
        Self {
            norm: layer_norm(&vs / "norm", dim, 1e-5),
            down_proj: nn::linear(&vs / "down_proj", dim, width, down),
            up_proj: nn::linear(&vs / "up_proj", width, dim, up),
            scale: vs.var("scale", &[1], nn::Init::Const(1.0)),
        }
    }
}

impl Module for AdaptFormer {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.norm).apply(&self.down_proj).relu().apply(&self.up_proj) * &self.scale
    }
}

/// One pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)) (+ the
/// adapter's output on x).
#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
    quick_gelu: bool,
    adapter: Option<AdaptFormer>,
}

impl Block {
    fn new(vs: nn::Path, layout: &VitLayout, eps: f64) -> Self {
        let d = layout.dim;
        Self {
            norm1: layer_norm(&vs / "norm1", d, eps),
            qkv: linear(&vs / "attn" / "qkv", d, 3 * d, true),
            proj: linear(&vs / "attn" / "proj", d, d, true),
            norm2: layer_norm(&vs / "norm2", d, eps),
            fc1: linear(&vs / "mlp" / "fc1", d, 4 * d, true),
            fc2: linear(&vs / "mlp" / "fc2", 4 * d, d, true),
            heads: layout.heads,
            quick_gelu: layout.clip_projection.is_some(),
            adapter: None,
        }
    }

    fn attention(&self, x: &Tensor) -> Tensor {
        let (b, n, d) = x.size3().expect("tokens are batch × count × width");
        let qkv = x.apply(&self.qkv).reshape([b, n, 3, self.heads, d / self.heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, None, false);
        out.transpose(1, 2).reshape([b, n, d]).apply(&self.proj)
    }

    fn mlp(&self, x: &Tensor) -> Tensor {
        let hidden = x.apply(&self.fc1);
        // OpenAI CLIP's QuickGELU, x · σ(1.702 x); timm's exact (erf) GELU otherwise.
        let hidden = if self.quick_gelu { &hidden * (&hidden * 1.702).sigmoid() } else { hidden.gelu("none") };
        hidden.apply(&self.fc2)
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + self.attention(&x.apply(&self.norm1));
        let out = &x + self.mlp(&x.apply(&self.norm2));
        match &self.adapter {
            Some(adapter) => out + adapter.forward(&x),
            None => out,
        }
    }
}

/// A ViT up to its class token's features: images (N × c × H × W) to features (N × d).
#[derive(Debug)]
pub struct Vit {
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    pos_embed: Tensor,
    norm_pre: Option<nn::LayerNorm>,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    head: Option<nn::Linear>,
    layout: VitLayout,
}

impl Vit {
    pub(super) fn new(vs: nn::Path, in_channels: i64, layout: VitLayout) -> Self {
        let (d, p) = (layout.dim, layout.patch);
        let eps = if layout.clip_projection.is_some() { 1e-5 } else { 1e-6 };
        let grid = layout.image_size / p;
        // CLIP's patch embedding has no bias (timm: `bias=not pre_norm`).
        let patch = nn::ConvConfig { stride: p, bias: layout.clip_projection.is_none(), ..Default::default() };
        Self {
            patch_embed: nn::conv2d(&vs / "patch_embed" / "proj", in_channels, d, p, patch),
            cls_token: vs.var("cls_token", &[1, 1, d], nn::Init::Randn { mean: 0.0, stdev: 1e-6 }),
            pos_embed: vs.var("pos_embed", &[1, 1 + grid * grid, d], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
            norm_pre: layout.clip_projection.map(|_| layer_norm(&vs / "norm_pre", d, eps)),
            blocks: (0..layout.depth).map(|i| Block::new(&vs / "blocks" / i, &layout, eps)).collect(),
            norm: layer_norm(&vs / "norm", d, eps),
            head: layout.clip_projection.map(|width| linear(&vs / "head", d, width, true)),
            layout,
        }
    }

    pub fn feature_dim(&self) -> i64 {
        self.layout.feature_dim()
    }

    /// Gives every block an AdaptFormer adapter of bottleneck `width`, its variables under
    /// `vs` (the encoder's path) as `blocks.i.adaptformer.*`.
    pub fn add_adapters(&mut self, vs: nn::Path, width: i64) {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.adapter = Some(AdaptFormer::new(&vs / "blocks" / i / ADAPTER, self.layout.dim, width));
        }
    }

    /// The position embeddings for a `rows` × `cols` grid of patches: as stored for the
    /// layout's own grid, else the patch part resampled bicubically with antialiasing.
    fn pos_embed_for(&self, rows: i64, cols: i64) -> Tensor {
        let grid = self.layout.image_size / self.layout.patch;
        if (rows, cols) == (grid, grid) {
            return self.pos_embed.shallow_clone();
        }
        let d = self.layout.dim;
        let class_pos = self.pos_embed.narrow(1, 0, 1);
        let patches = self.pos_embed.narrow(1, 1, grid * grid).reshape([1, grid, grid, d]).permute([0, 3, 1, 2]);
        let resampled = patches.to_kind(Kind::Float).internal_upsample_bicubic2d_aa([rows, cols], false, None, None);
        let resampled = resampled.permute([0, 2, 3, 1]).reshape([1, rows * cols, d]).to_kind(self.pos_embed.kind());
        Tensor::cat(&[class_pos, resampled], 1)
    }
}

impl ModuleT for Vit {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let patches = xs.apply(&self.patch_embed);
        let (b, d, rows, cols) = patches.size4().expect("a patch grid");
        let tokens = patches.flatten(2, 3).transpose(1, 2);
        let cls = self.cls_token.expand([b, 1, d], true).to_kind(tokens.kind());
        let mut x = Tensor::cat(&[cls, tokens], 1) + self.pos_embed_for(rows, cols);
        if let Some(norm_pre) = &self.norm_pre {
            x = x.apply(norm_pre);
        }
        for block in &self.blocks {
            x = block.forward(&x);
        }
        let features = x.apply(&self.norm).select(1, 0);
        match &self.head {
            Some(head) => features.apply(head),
            None => features,
        }
    }
}
