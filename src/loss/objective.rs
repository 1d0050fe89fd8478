//! The objective of a training step: which losses, their weights, and how they add up.
//! The only place the classifier's and the contrastive loss are composed.
use tch::{Kind, Tensor};

use super::{BalancedContrastiveLoss, BclSettings, LossConfig, cross_entropy, logit_adjusted_cross_entropy};

/// The losses of one step.
pub struct Losses {
    /// The (logit-adjusted) cross-entropy of view 0.
    pub classification: Tensor,
    /// The contrastive loss's value and what to differentiate (the same tensor on one
    /// process; `distributed::gathered_loss` makes them differ). None for `la` and `ce`.
    pub contrastive: Option<(Tensor, Tensor)>,
    /// α · classification + β · contrastive, in float32: what training differentiates.
    pub total: Tensor,
}

/// The contrastive term of an objective: the loss and the weights of the sum.
#[derive(Debug, Clone, Copy)]
struct ContrastiveTerm {
    loss: BalancedContrastiveLoss,
    alpha: f64,
    beta: f64,
}

/// A run's objective, fixed for the run: a [`LossConfig`] with the training data's class
/// counts (the prior of the logit adjustment).
pub struct Objective {
    config: LossConfig,
    contrastive: Option<ContrastiveTerm>,
    /// Training images per class, on the device of the logits.
    class_counts: Tensor,
}

impl Objective {
    pub fn new(config: &LossConfig, class_counts: Tensor) -> Self {
        let classes = class_counts.size()[0];
        let term = |loss, alpha, beta| Some(ContrastiveTerm { loss, alpha, beta });
        let contrastive = match *config {
            LossConfig::Bcl(BclSettings { temperature, alpha, beta, class_averaging, class_complement, .. }) => term(
                BalancedContrastiveLoss {
                    class_averaging,
                    class_complement,
                    ..BalancedContrastiveLoss::bcl(classes, temperature)
                },
                alpha,
                beta,
            ),
            LossConfig::Supcon { temperature, alpha, beta, .. } => {
                term(BalancedContrastiveLoss::supcon(classes, temperature), alpha, beta)
            }
            LossConfig::La { .. } | LossConfig::Ce => None,
        };
        Self { config: config.clone(), contrastive, class_counts }
    }

    /// The contrastive loss, for the views 1 and 2 of a step; None when the objective has
    /// no contrastive term (the step then needs view 0 only).
    pub fn contrastive(&self) -> Option<&BalancedContrastiveLoss> {
        self.contrastive.as_ref().map(|term| &term.loss)
    }

    /// The step's losses from view 0's `logits`, the `labels`, and the contrastive loss's
    /// (value, what to differentiate) when [`Self::contrastive`] is some.
    pub fn losses(&self, logits: &Tensor, labels: &Tensor, contrastive: Option<(Tensor, Tensor)>) -> Losses {
        let classification = self.classification(logits, labels);
        let float = classification.to_kind(Kind::Float);
        let total = match (&self.contrastive, &contrastive) {
            (Some(ContrastiveTerm { alpha, beta, .. }), Some((_, surrogate))) => {
                &float * *alpha + surrogate.to_kind(Kind::Float) * *beta
            }
            (None, None) => float,
            (Some(_), None) | (None, Some(_)) => {
                panic!("the step computed a contrastive loss exactly when the objective has one")
            }
        };
        Losses { classification, contrastive, total }
    }

    /// Cross-entropy for `ce`, logit-adjusted cross-entropy for every other loss.
    fn classification(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        match self.config {
            LossConfig::Ce => cross_entropy(logits, labels),
            LossConfig::Bcl(BclSettings { logit_adjustment, .. })
            | LossConfig::Supcon { logit_adjustment, .. }
            | LossConfig::La { logit_adjustment } => {
                logit_adjusted_cross_entropy(logits, labels, &self.class_counts, logit_adjustment)
            }
        }
    }
}
