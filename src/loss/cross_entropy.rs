//! Cross-entropy and its logit-adjusted form (Menon et al., 2021), the classifier branch's loss.
use tch::{Kind, Tensor};

/// Mean cross-entropy of `logits` (B × C) against integer `labels` (B), in float32 at least.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let logits = at_least_float32(logits);
    logits.log_softmax(-1, logits.kind()).nll_loss(labels)
}

/// Logit-adjusted cross-entropy: `cross_entropy(logits + tau · log π, labels)` where
/// π_k = n_k / Σ n is the training prior from `class_counts` (C, every count positive).
///
/// The adjustment raises the logits of head classes during training only, so the
/// classifier learns to give tail classes a larger margin; prediction uses raw logits.
pub fn logit_adjusted_cross_entropy(logits: &Tensor, labels: &Tensor, class_counts: &Tensor, tau: f64) -> Tensor {
    let logits = at_least_float32(logits);
    let log_prior = log_prior(class_counts, logits.kind()).to_device(logits.device());
    cross_entropy(&(logits + log_prior * tau), labels)
}

/// log π_k = log(n_k / Σ n) of `class_counts`, in `kind`. Post-hoc logit adjustment
/// subtracts τ · log π from a plainly trained model's logits.
pub fn log_prior(class_counts: &Tensor, kind: Kind) -> Tensor {
    let counts = class_counts.to_kind(kind);
    (&counts / counts.sum(kind)).log()
}

/// `t` in float32, or as it is in float64: under float16 autocast the class counts of
/// ImageNet-LT (115,846 images) or iNaturalist (437,513) would overflow float16's 65,504,
/// and log-softmax in a 16-bit type loses precision.
fn at_least_float32(t: &Tensor) -> Tensor {
    if t.kind() == Kind::Double { t.shallow_clone() } else { t.to_kind(Kind::Float) }
}
