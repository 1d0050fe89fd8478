//! The files an evaluation leaves in a folder: `per_class.csv`, `per_class_accuracy.png`
//! (each class's test accuracy against its training images, log scale) and
//! `training_curves.png` (from the run's `metrics.jsonl`: accuracies above, losses below).
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::fs::{csv_field, write_atomic};
use crate::metrics::{EpochRecord, Evaluation};
use crate::plot::{Axes, BLUE, GREEN, ORANGE, PURPLE, RED, Series, xy_chart};

/// Writes the report into `folder`; returns the paths written.
pub fn write(
    folder: &Path,
    class_names: &[String],
    train_counts: &[i64],
    eval: &Evaluation,
    history: &[EpochRecord],
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut csv = String::from("class,name,train_images,test_accuracy\n");
    for (class, ((name, n), acc)) in class_names.iter().zip(train_counts).zip(&eval.per_class).enumerate() {
        csv += &format!("{class},{},{n},{acc:.6}\n", csv_field(name));
    }
    let path = folder.join("per_class.csv");
    write_atomic(&path, csv.as_bytes())?;
    written.push(path);

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
