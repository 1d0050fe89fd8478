//! Evaluation metrics of long-tailed recognition (SPEC section 5): top-1 on the balanced
//! test set, each class's accuracy, and Many-, Medium- and Few-shot accuracy, each the mean
//! of its classes' accuracies; and the record of one training epoch.
use serde::{Deserialize, Serialize};

use crate::plot;

/// Classes grouped by training images, as in the long-tailed literature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShotGroup {
    /// More than 100 training images.
    Many,
    /// 20 to 100.
    Medium,
    /// Fewer than 20.
    Few,
}

impl ShotGroup {
    pub const ALL: [ShotGroup; 3] = [ShotGroup::Many, ShotGroup::Medium, ShotGroup::Few];

    /// The group of a class with `train_images` training images.
    pub fn of(train_images: i64) -> Self {
        match train_images {
            n if n > 100 => ShotGroup::Many,
            n if n >= 20 => ShotGroup::Medium,
            _ => ShotGroup::Few,
        }
    }

    /// `many-shot (>100)` and the like.
    pub fn describe(self) -> &'static str {
        match self {
            ShotGroup::Many => "many-shot (>100)",
            ShotGroup::Medium => "medium-shot (20-100)",
            ShotGroup::Few => "few-shot (<20)",
        }
    }

    /// The group's colour in every plot: blue, orange, red.
    pub fn color(self) -> [u8; 3] {
        match self {
            ShotGroup::Many => plot::BLUE,
            ShotGroup::Medium => plot::ORANGE,
            ShotGroup::Few => plot::RED,
        }
    }

    pub fn color_name(self) -> &'static str {
        match self {
            ShotGroup::Many => "blue",
            ShotGroup::Medium => "orange",
            ShotGroup::Few => "red",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub top1: f64,
    pub per_class: Vec<f64>,
    /// `None` when no class falls in the group.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
}

/// Metrics of `predictions` against `labels`, grouped by `train_counts` (images per class
/// in the training set).
pub fn evaluate(predictions: &[i64], labels: &[i64], train_counts: &[i64]) -> Evaluation {
    let num_classes = train_counts.len();
    let (mut correct, mut total) = (vec![0usize; num_classes], vec![0usize; num_classes]);
    for (&p, &l) in predictions.iter().zip(labels) {
        total[l as usize] += 1;
        correct[l as usize] += usize::from(p == l);
    }
    let per_class: Vec<f64> =
        correct.iter().zip(&total).map(|(&c, &t)| if t == 0 { 0.0 } else { c as f64 / t as f64 }).collect();
    let mean_of = |group: ShotGroup| {
        let tested: Vec<f64> = (0..num_classes)
            .filter(|&c| total[c] > 0 && ShotGroup::of(train_counts[c]) == group)
            .map(|c| per_class[c])
            .collect();
        (!tested.is_empty()).then(|| tested.iter().sum::<f64>() / tested.len() as f64)
    };
    Evaluation {
        top1: correct.iter().sum::<usize>() as f64 / labels.len().max(1) as f64,
        many: mean_of(ShotGroup::Many),
        medium: mean_of(ShotGroup::Medium),
        few: mean_of(ShotGroup::Few),
        per_class,
    }
}

/// One epoch's figures: a line of a run's `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    /// Mean (logit-adjusted) cross-entropy of the epoch's steps.
    pub train_ce: f64,
    /// Mean contrastive loss (0 for `la` and `ce`).
    pub train_contrastive: f64,
    /// Top-1 of view 0's logits during training.
    pub train_accuracy: f64,
    pub eval: Evaluation,
    pub seconds: f64,
    /// Training samples (3 views each) per second.
    pub samples_per_second: f64,
}
