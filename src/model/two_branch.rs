//! The two-branch BCL model: one encoder, a classification branch (`fc`) and a contrastive
//! branch (`head`), plus `head_fc`, which maps each class's classifier weight to the class
//! prototype used by the contrastive loss. Parameter names equal the reference's
//! `state_dict` keys (without `module.`).
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::norm::BatchNorm;
use super::{ClassifierKind, Encoder, ModelConfig};

/// Linear → BatchNorm1d → ReLU → Linear, named `0`, `1`, `3` like `nn.Sequential`.
#[derive(Debug)]
struct ProjectionMlp {
    hidden: nn::Linear,
    norm: BatchNorm,
    out: nn::Linear,
}

/// PyTorch's nn.Linear initialisation: weight and bias U(−1/√fan_in, 1/√fan_in).
fn torch_linear(vs: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    let config = nn::LinearConfig {
        ws_init: nn::Init::Uniform { lo: -bound, up: bound },
        bs_init: Some(nn::Init::Uniform { lo: -bound, up: bound }),
        bias: true,
    };
    nn::linear(vs, c_in, c_out, config)
}

impl ProjectionMlp {
    fn new(vs: nn::Path, c_in: i64, hidden: i64, c_out: i64) -> Self {
        Self {
            hidden: torch_linear(&vs / "0", c_in, hidden),
            norm: BatchNorm::new(&vs / "1", hidden, 1),
            out: torch_linear(&vs / "3", hidden, c_out),
        }
    }
}

impl ModuleT for ProjectionMlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.hidden).apply_t(&self.norm, train).relu().apply(&self.out)
    }
}

/// Rows scaled to unit L2 norm (as torch.nn.functional.normalize, eps 1e-12).
pub(crate) fn normalize(xs: &Tensor, dim: i64) -> Tensor {
    let norm = xs.norm_scalaropt_dim(2, [dim].as_slice(), true).clamp_min(1e-12);
    xs / norm
}

/// The classification branch.
#[derive(Debug)]
pub enum Classifier {
    /// logits = s · normalize_rows(h) · normalize_columns(W); W is d × C (`fc.weight`).
    Cosine { weight: Tensor, scale: f64 },
    /// logits = h Wᵀ + b; W is C × d.
    Linear(nn::Linear),
}

impl Classifier {
    fn new(vs: nn::Path, kind: ClassifierKind, in_dim: i64, num_classes: i64, scale: f64) -> Self {
        match kind {
            ClassifierKind::Cosine => {
                // Uniform(−1, 1), then every column (one class) rescaled to unit norm.
                let weight = vs.var("weight", &[in_dim, num_classes], nn::Init::Uniform { lo: -1.0, up: 1.0 });
                tch::no_grad(|| {
                    let unit = normalize(&weight, 0);
                    weight.shallow_clone().copy_(&unit);
                });
                Classifier::Cosine { weight, scale }
            }
            ClassifierKind::Linear => Classifier::Linear(torch_linear(vs, in_dim, num_classes)),
        }
    }

    /// τ-normalisation (Kang et al. 2020): each class's weight vector divided by its norm to
    /// the power `p`, in place. Returns false for the cosine classifier, which normalises
    /// its weights anyway (τ-norm changes nothing there).
    pub fn tau_normalize(&self, p: f64) -> bool {
        let Classifier::Linear(linear) = self else { return false };
        tch::no_grad(|| {
            let norms = linear.ws.norm_scalaropt_dim(2, [1], true);
            linear.ws.shallow_clone().copy_(&(&linear.ws / norms.pow_tensor_scalar(p)));
        });
        true
    }

    /// The classifier's weight with one row per class (C × d): the input of `head_fc`.
    pub fn class_weights(&self) -> Tensor {
        match self {
            Classifier::Cosine { weight, .. } => weight.tr(),
            Classifier::Linear(linear) => linear.ws.shallow_clone(),
        }
    }
}

impl Module for Classifier {
    fn forward(&self, features: &Tensor) -> Tensor {
        match self {
            Classifier::Cosine { weight, scale } => normalize(features, 1).matmul(&normalize(weight, 0)) * *scale,
            Classifier::Linear(linear) => features.apply(linear),
        }
    }
}

/// What one forward pass of the BCL model returns.
#[derive(Debug)]
pub struct BclOutput {
    /// Contrastive features z, N × D, rows unit norm.
    pub features: Tensor,
    /// Classifier logits, N × C.
    pub logits: Tensor,
    /// Class prototypes, C × D, rows unit norm.
    pub prototypes: Tensor,
}

/// Encoder + contrastive head + classifier + prototype head.
#[derive(Debug)]
pub struct BclModel {
    pub config: ModelConfig,
    encoder: Encoder,
    head: ProjectionMlp,
    fc: Classifier,
    head_fc: ProjectionMlp,
    /// The encoder's BatchNorm layers use their running statistics in training too
    /// (a frozen or BN-frozen pretrained encoder).
    frozen_statistics: bool,
}

impl BclModel {
    /// Builds the model's variables at the root of `vs` (`encoder.*`, `head.*`, `fc.*`, `head_fc.*`).
    pub fn new(vs: &nn::Path, config: &ModelConfig) -> Self {
        let mut encoder = config.arch.build(vs / "encoder", config.in_channels);
        if let Some(width) = config.adapter_dim {
            encoder.add_adapters(vs / "encoder", width);
        }
        let d = encoder.feature_dim();
        let (hidden, out) = (config.head_hidden_dim, config.feature_dim);
        Self {
            head: ProjectionMlp::new(vs / "head", d, hidden, out),
            fc: Classifier::new(vs / "fc", config.classifier, d, config.num_classes, config.cosine_scale),
            head_fc: ProjectionMlp::new(vs / "head_fc", d, hidden, out),
            encoder,
            config: config.clone(),
            frozen_statistics: false,
        }
    }

    /// Keeps the encoder's BatchNorm statistics as they are: training forward passes
    /// normalise with the running ones and do not update them.
    pub fn freeze_encoder_statistics(&mut self) {
        self.frozen_statistics = true;
    }

    /// The encoder in training or evaluation mode, as `train` and the frozen statistics say.
    fn encoder_forward(&self, images: &Tensor, train: bool) -> Tensor {
        self.encoder.forward_t(images, train && !self.frozen_statistics)
    }

    /// Sets the classifier's class weights (C × d rows, e.g. class means of the features):
    /// a cosine classifier takes them as its columns, a linear one as its rows, bias 0.
    pub fn set_class_weights(&self, rows: &Tensor) {
        tch::no_grad(|| match &self.fc {
            Classifier::Cosine { weight, .. } => {
                weight.shallow_clone().copy_(&normalize(rows, 1).tr());
            }
            Classifier::Linear(linear) => {
                linear.ws.shallow_clone().copy_(rows);
                if let Some(bias) = &linear.bs {
                    let _ = bias.shallow_clone().zero_();
                }
            }
        });
    }

    /// One pass over a batch (for training, the 3B images of views 0, 1, 2 together, so
    /// that BatchNorm statistics are taken over all of them).
    pub fn forward_t(&self, images: &Tensor, train: bool) -> BclOutput {
        let h = self.encoder_forward(images, train);
        let features = normalize(&self.head.forward_t(&h, train), 1);
        let logits = self.fc.forward(&h);
        // Gradients reach the classifier weights through the prototypes too.
        let prototypes = normalize(&self.head_fc.forward_t(&self.fc.class_weights(), train), 1);
        BclOutput { features, logits, prototypes }
    }

    /// Classifier logits only, in evaluation mode: what evaluation and prediction use.
    pub fn logits(&self, images: &Tensor) -> Tensor {
        self.logits_t(images, false)
    }

    /// Classifier logits only (the `ce` and `la` baselines train this way).
    pub fn logits_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.fc.forward(&self.encoder_forward(images, train))
    }

    /// Evaluation-mode features of `images`: the encoder's h (N × d) and the contrastive
    /// z = normalize(head(h)) (N × D), what the feature-geometry analysis looks at.
    pub fn embed(&self, images: &Tensor) -> (Tensor, Tensor) {
        let h = self.encoder.forward_t(images, false);
        let z = normalize(&self.head.forward_t(&h, false), 1);
        (h, z)
    }

    /// Evaluation-mode class prototypes, normalize(head_fc(W)) (C × D).
    pub fn prototypes(&self) -> Tensor {
        normalize(&self.head_fc.forward_t(&self.fc.class_weights(), false), 1)
    }

    /// Encoder features h (N × d), without the heads.
    pub fn encode(&self, images: &Tensor, train: bool) -> Tensor {
        self.encoder_forward(images, train)
    }

    /// The classifier branch, e.g. to inspect its weights.
    pub fn classifier(&self) -> &Classifier {
        &self.fc
    }
}
