//! The two losses of BCL (SPEC section 2), as pure functions of tensors.
mod balanced_contrastive;
mod cross_entropy;

pub use balanced_contrastive::{balanced_contrastive_loss, balanced_contrastive_loss_of_anchors};
pub use cross_entropy::{cross_entropy, logit_adjusted_cross_entropy};
