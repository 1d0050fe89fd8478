//! Evaluation metrics of long-tailed recognition (SPEC section 5): top-1 on the balanced
//! test set, each class's accuracy, and Many- (> 100 training images), Medium- (20–100)
//! and Few-shot (< 20) accuracy, each the mean of its classes' accuracies.
use serde::Serialize;

use crate::data::long_tail::shot_groups;

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    let mean_of = |classes: &[usize]| {
        let tested: Vec<f64> = classes.iter().filter(|&&c| total[c] > 0).map(|&c| per_class[c]).collect();
        (!tested.is_empty()).then(|| tested.iter().sum::<f64>() / tested.len() as f64)
    };
    let groups = shot_groups(train_counts);
    Evaluation {
        top1: correct.iter().sum::<usize>() as f64 / labels.len().max(1) as f64,
        many: mean_of(&groups.many),
        medium: mean_of(&groups.medium),
        few: mean_of(&groups.few),
        per_class,
    }
}
