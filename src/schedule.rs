//! Per-epoch learning rate (SPEC section 3): linear warm-up, then cosine or step decay.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Decay {
    /// lr · ½ · (1 + cos(π (e − w + 1) / (E − w + 1))) after warm-up.
    Cosine,
    /// lr · 0.1^k, k = the number of milestones (0-based epochs) reached.
    Step { milestones: Vec<usize> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub warmup_epochs: usize,
    pub decay: Decay,
}

impl LrSchedule {
    /// Learning rate of 0-based `epoch` out of `epochs`.
    pub fn lr(&self, epoch: usize, epochs: usize) -> f64 {
        let w = self.warmup_epochs;
        if epoch < w {
            return self.base_lr * (epoch + 1) as f64 / w as f64;
        }
        match &self.decay {
            Decay::Cosine => {
                let progress = (epoch - w + 1) as f64 / (epochs.saturating_sub(w) + 1) as f64;
                self.base_lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Decay::Step { milestones } => {
                let reached = milestones.iter().filter(|&&m| epoch >= m).count();
                self.base_lr * 0.1f64.powi(reached as i32)
            }
        }
    }
}
