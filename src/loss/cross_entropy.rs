//! Cross-entropy and its logit-adjusted form (Menon et al., 2021), the classifier branch's loss.
use tch::Tensor;

/// Mean cross-entropy of `logits` (B × C) against integer `labels` (B).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.log_softmax(-1, logits.kind()).nll_loss(labels)
}

/// Logit-adjusted cross-entropy: `cross_entropy(logits + tau · log π, labels)` where
/// π_k = n_k / Σ n is the training prior from `class_counts` (C, every count positive).
///
/// The adjustment raises the logits of head classes during training only, so the
/// classifier learns to give tail classes a larger margin; prediction uses raw logits.
pub fn logit_adjusted_cross_entropy(logits: &Tensor, labels: &Tensor, class_counts: &Tensor, tau: f64) -> Tensor {
    let counts = class_counts.to_device(logits.device()).to_kind(logits.kind());
    let log_prior = (&counts / counts.sum(logits.kind())).log();
    cross_entropy(&(logits + log_prior * tau), labels)
}
