//! Evaluation metrics of long-tailed recognition (SPEC section 5): top-1 and top-5 on the
//! balanced test set, each class's accuracy (recall) and precision, Many-, Medium- and
//! Few-shot accuracy (each the mean of its classes' accuracies), calibration (expected
//! calibration error over 15 bins, NLL), the confusion matrix; and the record of one
//! training epoch.
use serde::{Deserialize, Serialize};

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
        Self::ALL.into_iter().find(|g| g.train_images().contains(&train_images)).unwrap_or(ShotGroup::Few)
    }

    /// The training images a class of the group has.
    pub fn train_images(self) -> std::ops::RangeInclusive<i64> {
        match self {
            ShotGroup::Many => 101..=i64::MAX,
            ShotGroup::Medium => 20..=100,
            ShotGroup::Few => 0..=19,
        }
    }

    /// `many`, `medium` or `few`.
    pub fn name(self) -> &'static str {
        match self {
            ShotGroup::Many => "many",
            ShotGroup::Medium => "medium",
            ShotGroup::Few => "few",
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
}

/// What evaluation keeps of one test sample's softmax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub label: i64,
    /// The most probable class.
    pub predicted: i64,
    /// Whether the label is among the 5 most probable classes.
    pub in_top5: bool,
    /// The probability of the predicted class.
    pub confidence: f64,
    /// log p(label): the sample's negative log-likelihood, negated.
    pub log_prob_label: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub top1: f64,
    /// Top-5 accuracy (top-k for fewer than 5 classes, where it is 1); none in records
    /// written before bcl measured it.
    #[serde(default)]
    pub top5: Option<f64>,
    /// Each class's accuracy (its recall).
    pub per_class: Vec<f64>,
    /// `None` when no class falls in the group.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    /// Expected calibration error: over 15 equal-width confidence bins, the gap between
    /// accuracy and mean confidence, weighted by the bin's share of samples.
    #[serde(default)]
    pub ece: Option<f64>,
    /// Mean negative log-likelihood of the labels.
    #[serde(default)]
    pub nll: Option<f64>,
}

/// Confidence bins of the expected calibration error (as Guo et al. 2017).
pub const ECE_BINS: usize = 15;

/// Metrics of the `scored` test samples, grouped by `train_counts` (images per class in the
/// training set).
pub fn evaluate(scored: &[Scored], train_counts: &[i64]) -> Evaluation {
    let num_classes = train_counts.len();
    let (mut correct, mut total) = (vec![0usize; num_classes], vec![0usize; num_classes]);
    for s in scored {
        total[s.label as usize] += 1;
        correct[s.label as usize] += usize::from(s.predicted == s.label);
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
    let n = scored.len().max(1) as f64;
    Evaluation {
        top1: correct.iter().sum::<usize>() as f64 / n,
        top5: Some(scored.iter().filter(|s| s.in_top5).count() as f64 / n),
        many: mean_of(ShotGroup::Many),
        medium: mean_of(ShotGroup::Medium),
        few: mean_of(ShotGroup::Few),
        per_class,
        ece: Some(expected_calibration_error(scored)),
        nll: Some(-scored.iter().map(|s| s.log_prob_label).sum::<f64>() / n),
    }
}

/// One confidence bin of the calibration measures: its samples, how many were right, and
/// the sum of their confidences.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CalibrationBin {
    pub samples: usize,
    pub correct: usize,
    pub confidence_sum: f64,
}

impl CalibrationBin {
    /// The bin's accuracy; none when it is empty.
    pub fn accuracy(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.correct as f64 / self.samples as f64)
    }

    /// The bin's mean confidence; none when it is empty.
    pub fn mean_confidence(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.confidence_sum / self.samples as f64)
    }
}

/// `scored` by confidence into [`ECE_BINS`] equal-width bins (lower, upper].
pub fn calibration_bins(scored: &[Scored]) -> [CalibrationBin; ECE_BINS] {
    let mut bins = [CalibrationBin::default(); ECE_BINS];
    for s in scored {
        let bin = &mut bins[((s.confidence * ECE_BINS as f64).ceil() as usize).clamp(1, ECE_BINS) - 1];
        bin.samples += 1;
        bin.correct += usize::from(s.predicted == s.label);
        bin.confidence_sum += s.confidence;
    }
    bins
}

/// The expected calibration error of `scored` over [`ECE_BINS`] bins (lower, upper].
pub fn expected_calibration_error(scored: &[Scored]) -> f64 {
    let n = scored.len().max(1) as f64;
    calibration_bins(scored).iter().map(|b| (b.correct as f64 - b.confidence_sum).abs() / n).sum()
}

/// The confusion matrix: `counts[label][predicted]`, `num_classes` × `num_classes`.
pub fn confusion(scored: &[Scored], num_classes: usize) -> Vec<Vec<u64>> {
    let mut counts = vec![vec![0u64; num_classes]; num_classes];
    for s in scored {
        counts[s.label as usize][s.predicted as usize] += 1;
    }
    counts
}

/// Each class's precision from a confusion matrix: the share of the samples predicted as
/// the class that are of it (`None` when nothing was predicted as it).
pub fn precision(confusion: &[Vec<u64>]) -> Vec<Option<f64>> {
    (0..confusion.len())
        .map(|c| {
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            (predicted > 0).then(|| confusion[c][c] as f64 / predicted as f64)
        })
        .collect()
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
