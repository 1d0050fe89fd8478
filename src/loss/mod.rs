//! The two losses of BCL (SPEC section 2): the balanced contrastive loss as a configured
//! value, and the (logit-adjusted) cross-entropy as pure functions of tensors.
mod balanced_contrastive;
mod cross_entropy;

pub use balanced_contrastive::BalancedContrastiveLoss;
pub use cross_entropy::{cross_entropy, log_prior, logit_adjusted_cross_entropy};
