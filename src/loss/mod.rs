//! The losses of BCL (SPEC section 2) and how a step composes them. A leaf: it knows tensors
//! and its own settings, not the run.
//!
//! - [`LossConfig`]: the `[loss]` table of a run's config, tagged by `kind`;
//! - [`Objective`]: a config with the data's class counts, the one place the classifier's
//!   and the contrastive loss are weighted and added;
//! - the balanced contrastive loss as a configured value, and the (logit-adjusted)
//!   cross-entropy as pure functions of tensors.
//!
//! A new loss is one file here plus one arm in [`LossConfig`] and the matches the compiler
//! then asks for.
mod balanced_contrastive;
mod config;
mod cross_entropy;
mod objective;

pub use balanced_contrastive::BalancedContrastiveLoss;
pub use config::{BclSettings, LossChanges, LossConfig, LossKind};
pub use cross_entropy::{cross_entropy, log_prior, logit_adjusted_cross_entropy};
pub use objective::{Losses, Objective};
