//! End-to-end training on a small synthetic long-tailed set with a learnable signal: the
//! class is the cell size of a checkerboard (1 to 10 pixels), which survives crops, flips
//! and AutoAugment. Every loss runs, the numbers stay finite, BCL learns well above
//! chance; runs resume exactly, refuse bad numbers and leave their checkpoints intact.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bcl::checkpoint;
use bcl::config::{Preset, TrainConfig};
use bcl::data::{DatasetKind, Split};
use bcl::loss::{LossChanges, LossKind};
use bcl::metrics::EpochRecord;
use bcl::run::RunDir;
use bcl::schedule::{Decay, LrSchedule};
use bcl::train::{Outcome, Progress, TrainOptions, train};
use tch::{Device, Tensor};

const CLASSES: usize = 10;

/// CIFAR-10 binary records: class k is a checkerboard of (k + 1)-pixel cells at a random
/// offset, plus noise.
fn write_split(dir: &Path, names: &[&str], per_class: usize, seed: u64) {
    let mut state = seed;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 58) as u8
    };
    let mut records = Vec::new();
    for i in 0..per_class * CLASSES {
        let class = i % CLASSES;
        records.push(class as u8);
        let cell = class + 1;
        let (dy, dx) = (noise() as usize % cell, noise() as usize % cell);
        for _channel in 0..3 {
            for row in 0..32 {
                for col in 0..32 {
                    let base = if ((row + dy) / cell + (col + dx) / cell).is_multiple_of(2) { 200 } else { 30 };
                    records.push(base + noise());
                }
            }
        }
    }
    let chunk = records.len() / names.len() / 3073 * 3073;
    for (k, name) in names.iter().enumerate() {
        let end = if k + 1 == names.len() { records.len() } else { (k + 1) * chunk };
        std::fs::write(dir.join(name), &records[k * chunk..end]).unwrap();
    }
}

pub fn config(root: &Path, loss: LossKind) -> TrainConfig {
    let mut config = TrainConfig::preset(Preset::Cifar10Lt, root.to_path_buf());
    config.data.imb_factor = Some(4.0);
    config.loss = config.changed_loss(&LossChanges { kind: Some(loss), ..LossChanges::default() }).unwrap();
    config.epochs = 5;
    config.batch_size = 16;
    config.schedule = LrSchedule { base_lr: 0.05, warmup_epochs: 0, decay: Decay::Cosine };
    config.workers = Some(2);
    config
}

pub fn synthetic_cifar() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let batches = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    write_split(dir.path(), &batches, 50, 1);
    write_split(dir.path(), &["test_batch.bin"], 25, 2);
    dir
}

pub fn options(resume: bool) -> TrainOptions {
    TrainOptions { device: Device::Cpu, resume, stop: Arc::new(AtomicBool::new(false)), max_steps: None, group: None }
}

/// Trains `config` in a new run folder under `parent`; returns the records and the folder.
pub fn run(config: &TrainConfig, parent: &Path, name: &str) -> (Vec<EpochRecord>, RunDir) {
    let run = RunDir::create(&parent.join(name), config).unwrap();
    let outcome = train(config, &run, &options(false), |_| {}).unwrap();
    assert!(outcome.stopped_at.is_none());
    (outcome.records, run)
}

/// The weights and momentum buffers of a checkpoint, as one list of (name, tensor).
pub fn saved_tensors(path: &Path) -> Vec<(String, Tensor)> {
    let saved = checkpoint::load(path).unwrap();
    let optimizer = saved.optimizer.into_iter().map(|(k, t)| (format!("optimizer/{k}"), t));
    saved.weights.into_iter().chain(optimizer).collect()
}

pub fn assert_same_tensors(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    let differ: Vec<(&String, f64)> = a
        .iter()
        .zip(b)
        .filter(|(a, b)| a.0 != b.0 || !a.1.equal(&b.1))
        .map(|(a, b)| (&a.0, (&a.1 - &b.1).abs().max().double_value(&[])))
        .collect();
    assert!(differ.is_empty(), "{} of {} tensors differ: {:?}…", differ.len(), a.len(), &differ[..differ.len().min(5)]);
}

#[test]
fn training_learns_and_reports_long_tailed_metrics() {
    let dir = synthetic_cifar();
    let split = |kind| bcl::data::DataConfig::new(kind, dir.path().to_path_buf()).eval_split();
    assert_eq!((split(DatasetKind::Cifar10), split(DatasetKind::Inat2018)), (Split::Test, Split::Val));

    let (epochs, run_dir) = run(&config(dir.path(), LossKind::Bcl), dir.path(), "bcl");
    assert_eq!(epochs.len(), 5);
    for r in &epochs {
        assert!(r.train_ce.is_finite() && r.train_contrastive > 0.0, "{r:?}");
        assert_eq!(r.eval.per_class.len(), 10);
    }
    let last = &epochs[4];
    // Chance is 10%; the long tail (50 down to 12 images) makes the last classes hardest.
    assert!(last.eval.top1 > 0.3, "BCL must learn the cell sizes: {:?}", last.eval);
    assert!(last.train_ce < epochs[0].train_ce, "the loss falls");
    assert!(last.lr < epochs[0].lr, "cosine decay");
    assert!(last.eval.many.is_none() && last.eval.medium.is_some() && last.eval.few.is_some());

    // The run folder: config, class counts, a metrics line per epoch, checkpoints.
    assert_eq!(run_dir.config().unwrap(), config(dir.path(), LossKind::Bcl));
    assert_eq!(run_dir.read_metrics().unwrap().len(), 5);
    let best_epoch = (0..5).max_by(|&a, &b| epochs[a].eval.top1.total_cmp(&epochs[b].eval.top1)).unwrap();
    let best = checkpoint::load(&run_dir.best()).unwrap();
    assert!(best.metadata["state"].contains(&format!("\"best_epoch\":{best_epoch}")), "{}", best.metadata["state"]);
    assert!(std::fs::read_to_string(run_dir.path.join("class_counts.csv")).unwrap().starts_with("class,name,"));
    assert_tensorboard_reads(&run_dir, &epochs);

    for loss in [LossKind::Ce, LossKind::La, LossKind::Supcon] {
        let mut c = config(dir.path(), loss);
        c.epochs = 1;
        let (records, _) = run(&c, dir.path(), &format!("{loss:?}"));
        let r = &records[0];
        assert!(r.train_ce.is_finite(), "{loss:?}: {r:?}");
        assert_eq!(r.train_contrastive > 0.0, loss == LossKind::Supcon, "{loss:?}: {r:?}");
    }
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let dir = synthetic_cifar();
    let mut c = config(dir.path(), LossKind::Bcl);
    c.epochs = 3;
    let (_, whole) = run(&c, dir.path(), "whole");

    // Stopped after epoch 1 (between epochs) and again in the middle of epoch 2.
    let parts = RunDir::create(&dir.path().join("parts"), &c).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let stopping =
        TrainOptions { device: Device::Cpu, resume: false, stop: flag.clone(), max_steps: None, group: None };
    let outcome = train(&c, &parts, &stopping, |p| {
        if let Progress::Evaluating { .. } = p {
            flag.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(outcome.stopped_at, Some((1, 0)));

    let flag = Arc::new(AtomicBool::new(false));
    let mid = TrainOptions { device: Device::Cpu, resume: true, stop: flag.clone(), max_steps: None, group: None };
    let mut seen = 0;
    let outcome: Outcome = train(&c, &parts, &mid, |p| {
        if let Progress::EpochStart { .. } = p {
            seen += 1;
        }
        if seen == 2 {
            // Asked to stop during epoch 3: it saves at the next step.
            flag.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    let (epoch, step) = outcome.stopped_at.expect("stopped in epoch 3");
    assert_eq!((epoch, step), (2, 1));
    let mid_epoch_3 = std::fs::read(parts.last()).unwrap();

    let outcome = train(&c, &parts, &options(true), |_| {}).unwrap();
    assert!(outcome.stopped_at.is_none());
    assert_eq!(outcome.records.len(), 1);
    assert_same_tensors(&saved_tensors(&whole.last()), &saved_tensors(&parts.last()));
    let epochs = |r: &RunDir| r.read_metrics().unwrap().iter().map(|m| m.train_ce).collect::<Vec<_>>();
    assert_eq!(epochs(&whole), epochs(&parts), "the resumed epoch's means include the steps before the stop");

    // A crash after epoch 3 was logged but before its checkpoint: `last` is still the one
    // from inside epoch 3. The resumed run logs epoch 3 again; TensorBoard's own reader
    // shows each epoch once (the restart purges what came after the checkpoint).
    std::fs::write(parts.last(), &mid_epoch_3).unwrap();
    assert_eq!(train(&c, &parts, &options(true), |_| {}).unwrap().records.len(), 1);
    assert_eq!(epochs(&whole), epochs(&parts));
    assert_tensorboard_reads(&parts, &parts.read_metrics().unwrap());
    // The per-step losses too, up to the step the last resume started from (whose window
    // lacks the step before it).
    let steps_per_epoch = (c.data.train_set().unwrap().len() / c.batch_size) as i64;
    let before_resume = |points: &Vec<(i64, f64)>| -> Vec<(i64, f64)> {
        points.iter().copied().filter(|p| p.0 <= 2 * steps_per_epoch).collect()
    };
    let (whole_steps, parts_steps) = (tensorboard_scalars(&whole), tensorboard_scalars(&parts));
    let (a, b) = (before_resume(&whole_steps["train_steps/ce"]), before_resume(&parts_steps["train_steps/ce"]));
    assert!(
        a.len() > 2 && a.len() == b.len() && a.iter().zip(&b).all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-9),
        "{a:?} vs {b:?}"
    );

    // Resuming a finished run trains nothing.
    assert!(train(&c, &parts, &options(true), |_| {}).unwrap().records.is_empty());
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_epoch_and_step_and_keeps_the_checkpoint() {
    let dir = synthetic_cifar();
    let c = config(dir.path(), LossKind::Bcl);
    let run_dir = RunDir::create(&dir.path().join("nan"), &c).unwrap();
    // A checkpoint 3 steps in.
    let first = TrainOptions { max_steps: Some(3), ..options(false) };
    assert!(train(&c, &run_dir, &first, |_| {}).unwrap().stopped_at.is_some());
    let before = std::fs::read(run_dir.last()).unwrap();

    // A learning rate of 1e6 blows the loss up within a few steps.
    let mut huge = c.clone();
    huge.schedule.base_lr = 1e6;
    let err = train(&huge, &run_dir, &options(true), |_| {}).unwrap_err().to_string();
    assert!(err.starts_with("epoch 1, step "), "{err}");
    assert!(err.contains("the training loss is"), "{err}");
    assert_eq!(std::fs::read(run_dir.last()).unwrap(), before, "the last good checkpoint is unchanged");

    // A NaN planted in the weights is caught as the checkpoint loads, naming the tensor.
    let mut saved = checkpoint::load(&run_dir.last()).unwrap();
    let _ = saved.weights.get_mut("fc.weight").unwrap().fill_(f64::NAN);
    checkpoint::save(&run_dir.last(), &saved).unwrap();
    let planted = std::fs::read(run_dir.last()).unwrap();
    let err = format!("{:#}", train(&c, &run_dir, &options(true), |_| {}).unwrap_err());
    assert!(err.contains("tensor fc.weight holds NaN or infinite values"), "{err}");
    assert_eq!(std::fs::read(run_dir.last()).unwrap(), planted);
}

/// A run folder's scalars as TensorBoard's own event reader (the PyPI package, in the
/// project's venv) reads them: tag → [(step, value)].
fn tensorboard_scalars(run_dir: &RunDir) -> BTreeMap<String, Vec<(i64, f64)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/support/read_tensorboard.py"))
        .arg(&run_dir.path)
        .output()
        .expect("the venv's python (scripts/setup.sh installs tensorboard there)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every epoch's scalars read back at the step that ends it, and the mean losses of every
/// 10 steps of an epoch (and of its last steps) at their steps, each step once.
fn assert_tensorboard_reads(run_dir: &RunDir, epochs: &[EpochRecord]) {
    let scalars = tensorboard_scalars(run_dir);
    let config = run_dir.config().unwrap();
    let steps_per_epoch = config.data.train_set().unwrap().len() / config.batch_size;
    type Field = fn(&EpochRecord) -> f64;
    let fields: [(&str, Field); 2] = [("test/top1", |r| r.eval.top1), ("train/ce", |r| r.train_ce)];
    for (tag, value) in fields {
        let read = scalars.get(tag).unwrap_or_else(|| panic!("no {tag} in {scalars:?}"));
        assert_eq!(read.len(), epochs.len(), "{tag}");
        for ((step, v), r) in read.iter().zip(epochs) {
            assert_eq!(*step as usize, (r.epoch + 1) * steps_per_epoch);
            assert!((v - value(r)).abs() < 1e-6, "{tag} at step {step}: {v} vs {}", value(r));
        }
    }
    for tag in ["train/contrastive", "train/accuracy", "train/lr", "test/top5", "test/medium", "test/few", "test/ece"] {
        assert_eq!(scalars.get(tag).map(Vec::len), Some(epochs.len()), "{tag}");
    }
    let expected: Vec<i64> = (0..epochs.len())
        .flat_map(|e| {
            (1..=steps_per_epoch).filter(|s| s % 10 == 0 || *s == steps_per_epoch).map(move |s| e * steps_per_epoch + s)
        })
        .map(|s| s as i64)
        .collect();
    for tag in ["train_steps/ce", "train_steps/contrastive"] {
        let steps: Vec<i64> = scalars[tag].iter().map(|p| p.0).collect();
        assert_eq!(steps, expected, "{tag}");
    }
}
