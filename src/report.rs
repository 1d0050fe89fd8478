//! The files an evaluation leaves in a folder: `eval.json` (every metric), `per_class.csv`
//! (each class's training images, group, accuracy and precision), `confusion.csv` (up to
//! [`MAX_CONFUSION_CLASSES`] classes), `per_class_accuracy.png` (each class's test accuracy
//! against its training images, log scale) and `training_curves.png` (from the run's
//! `metrics.jsonl`: accuracies above, losses below).
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::fs::{csv_field, write_atomic};
use crate::metrics::{self, ECE_BINS, EpochRecord, Evaluation, Scored, ShotGroup};
use crate::plot::{Axes, BLUE, GREEN, ORANGE, PURPLE, RED, Series, xy_chart};

/// The confusion matrix is written as a CSV for at most this many classes (a bigger one
/// is mostly zeros, and huge).
pub const MAX_CONFUSION_CLASSES: usize = 1000;

/// Writes the report of `eval` (of the test samples `scored`) into `folder`; returns the
/// paths written.
pub fn write(
    folder: &Path,
    class_names: &[String],
    train_counts: &[i64],
    eval: &Evaluation,
    scored: &[Scored],
    history: &[EpochRecord],
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let confusion = metrics::confusion(scored, train_counts.len());
    let precision = metrics::precision(&confusion);
    let path = folder.join("eval.json");
    write_atomic(&path, &serde_json::to_vec_pretty(&summary(class_names, train_counts, eval, scored, &precision))?)?;
    written.push(path);

    let mut csv = String::from("class,name,train_images,group,test_accuracy,precision\n");
    for (class, name) in class_names.iter().enumerate() {
        let (n, group) = (train_counts[class], ShotGroup::of(train_counts[class]).name());
        let precision = precision[class].map_or(String::new(), |p| format!("{p:.6}"));
        csv += &format!("{class},{},{n},{group},{:.6},{precision}\n", csv_field(name), eval.per_class[class]);
    }
    let path = folder.join("per_class.csv");
    write_atomic(&path, csv.as_bytes())?;
    written.push(path);

    if class_names.len() <= MAX_CONFUSION_CLASSES {
        let mut csv = String::from("true \\ predicted");
        class_names.iter().for_each(|name| csv += &format!(",{}", csv_field(name)));
        for (name, row) in class_names.iter().zip(&confusion) {
            csv += &format!("\n{}", csv_field(name));
            row.iter().for_each(|n| csv += &format!(",{n}"));
        }
        csv.push('\n');
        let path = folder.join("confusion.csv");
        write_atomic(&path, csv.as_bytes())?;
        written.push(path);
    }

    let points: Vec<(f64, f64)> = train_counts.iter().zip(&eval.per_class).map(|(&n, &acc)| (n as f64, acc)).collect();
    let max_count = train_counts.iter().copied().max().unwrap_or(1) as f64;
    let min_count = train_counts.iter().copied().min().unwrap_or(1).max(1) as f64;
    let axes = Axes { x: (min_count / 1.5, max_count * 1.5), y: (0.0, 1.0), log_x: true };
    let path = folder.join("per_class_accuracy.png");
    xy_chart(&[(axes, vec![Series { points, color: BLUE, lines: false }])], &path)?;
    written.push(path);

    if !history.is_empty() {
        let curve = |field: &dyn Fn(&EpochRecord) -> Option<f64>, color| Series {
            points: history.iter().filter_map(|m| Some((m.epoch as f64 + 1.0, field(m)?))).collect(),
            color,
            lines: true,
        };
        let accuracies = vec![
            curve(&|m| Some(m.train_accuracy), ORANGE),
            curve(&|m| Some(m.eval.top1), BLUE),
            curve(&|m| m.eval.many, GREEN),
            curve(&|m| m.eval.medium, PURPLE),
            curve(&|m| m.eval.few, RED),
        ];
        let losses = vec![curve(&|m| Some(m.train_ce), ORANGE), curve(&|m| Some(m.train_contrastive), BLUE)];
        let epochs = history.len().max(2) as f64;
        let max_loss = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1e-6, f64::max);
        let path = folder.join("training_curves.png");
        xy_chart(
            &[
                (Axes { x: (1.0, epochs), y: (0.0, 1.0), log_x: false }, accuracies),
                (Axes { x: (1.0, epochs), y: (0.0, max_loss * 1.05), log_x: false }, losses),
            ],
            &path,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// What the colours of the plots mean, for printing beside their paths.
pub const LEGEND: &str = "per_class_accuracy.png: x = training images per class (log), y = test accuracy; \
    training_curves.png: top = accuracy by epoch (orange train, blue test top-1, green many, purple medium, red few), \
    bottom = losses (orange cross-entropy, blue contrastive)";

/// Everything `eval.json` holds.
fn summary(
    class_names: &[String],
    train_counts: &[i64],
    eval: &Evaluation,
    scored: &[Scored],
    precision: &[Option<f64>],
) -> serde_json::Value {
    let per_class: Vec<serde_json::Value> = (0..class_names.len())
        .map(|c| {
            serde_json::json!({
                "class": c,
                "name": class_names[c],
                "train_images": train_counts[c],
                "group": ShotGroup::of(train_counts[c]).name(),
                "accuracy": eval.per_class[c],
                "precision": precision[c],
            })
        })
        .collect();
    serde_json::json!({
        "test_images": scored.len(),
        "top1": eval.top1,
        "top5": eval.top5,
        "many": eval.many,
        "medium": eval.medium,
        "few": eval.few,
        "groups": ShotGroup::ALL.map(|g| (g.name(), g.describe())).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "ece": eval.ece,
        "ece_bins": ECE_BINS,
        "nll": eval.nll,
        "per_class": per_class,
    })
}
