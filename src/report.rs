//! The files an evaluation leaves in a folder: `eval.json` (every metric), `per_class.csv`
//! (each class's training images, group, accuracy and precision), `confusion.csv` (up to
//! [`MAX_CONFUSION_CLASSES`] classes) and the pictures: `per_class_accuracy.png` (each
//! class's accuracy against its training images), `confusion.png` (up to
//! [`MAX_PLOTTED_CONFUSION_CLASSES`] classes), `reliability.png` (calibration) and
//! `training_curves.png` (from the run's `metrics.jsonl`).
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::data::Split;
use crate::fs::{csv_field, write_atomic};
use crate::metrics::{self, ECE_BINS, EpochRecord, Evaluation, Scored, ShotGroup};
use crate::plot::{self, HeatMap};

/// The confusion matrix is written as a CSV for at most this many classes (a bigger one
/// is mostly zeros, and huge).
pub const MAX_CONFUSION_CLASSES: usize = 1000;

/// The confusion matrix is drawn for at most this many classes (beyond, a cell is a
/// pixel or less).
pub const MAX_PLOTTED_CONFUSION_CLASSES: usize = 100;

/// What a report is of: a checkpoint's model on a split of its data.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The checkpoint scored; its file name goes into `eval.json` (a model card checks it).
    pub checkpoint: &'a Path,
    pub split: Split,
}

/// Writes the report of `eval` (of the samples `scored` of `scope`) into `folder`; returns
/// the paths written.
pub fn write(
    folder: &Path,
    scope: Scope,
    class_names: &[String],
    train_counts: &[i64],
    eval: &Evaluation,
    scored: &[Scored],
    history: &[EpochRecord],
) -> Result<Vec<PathBuf>> {
    let split = scope.split;
    let mut written = Vec::new();
    let confusion = metrics::confusion(scored, train_counts.len());
    let precision = metrics::precision(&confusion);
    let path = folder.join("eval.json");
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&summary(scope, class_names, train_counts, eval, scored, &precision))?,
    )?;
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

    let split = split.folder_name();
    let path = folder.join("per_class_accuracy.png");
    plot::per_class_accuracy(class_names, train_counts, &eval.per_class, split, &path)?;
    written.push(path);

    if class_names.len() <= MAX_PLOTTED_CONFUSION_CLASSES {
        let recall: Vec<Vec<f64>> = confusion
            .iter()
            .map(|row| {
                let total = row.iter().sum::<u64>().max(1) as f64;
                row.iter().map(|&n| n as f64 / total).collect()
            })
            .collect();
        let spec = HeatMap {
            title: format!("Confusion ({split}): each true class's share predicted as each class"),
            x_desc: "predicted class",
            y_desc: "true class",
            class_names,
            range: (0.0, 1.0),
        };
        let path = folder.join("confusion.png");
        plot::heat_map(&recall, &spec, &path)?;
        written.push(path);
    }

    let path = folder.join("reliability.png");
    plot::reliability_diagram(&metrics::calibration_bins(scored), eval.ece.unwrap_or_default(), split, &path)?;
    written.push(path);

    if !history.is_empty() {
        let path = folder.join("training_curves.png");
        plot::training_curves(history, split, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Everything `eval.json` holds.
fn summary(
    scope: Scope,
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
        "split": scope.split.folder_name(),
        "checkpoint": scope.checkpoint.file_name().map(|n| n.to_string_lossy()),
        "images": scored.len(),
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
