//! End-to-end training on a small synthetic long-tailed set with a learnable signal: the
//! class is the cell size of a checkerboard (1 to 10 pixels), which survives crops, flips
//! and AutoAugment. Every loss runs, the numbers stay finite, and BCL learns well above
//! chance.
use std::path::Path;

use bcl::data::DatasetKind;
use bcl::schedule::{Decay, LrSchedule};
use bcl::train::{LossKind, TrainConfig, train};
use tch::Device;

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

fn config(root: &Path, loss: LossKind) -> TrainConfig {
    let mut config = TrainConfig::preset("cifar10-lt", root.to_path_buf()).unwrap();
    config.data.imb_factor = Some(4.0);
    config.loss = loss;
    config.epochs = 5;
    config.batch_size = 16;
    config.schedule = LrSchedule { base_lr: 0.05, warmup_epochs: 0, decay: Decay::Cosine };
    config.workers = Some(2);
    config
}

#[test]
fn training_learns_and_reports_long_tailed_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let batches = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    write_split(dir.path(), &batches, 50, 1);
    write_split(dir.path(), &["test_batch.bin"], 25, 2);
    assert_eq!(DatasetKind::Cifar10.eval_split(), bcl::data::Split::Test);

    let mut epochs = Vec::new();
    train(&config(dir.path(), LossKind::Bcl), Device::Cpu, |r| epochs.push(r.clone())).unwrap();
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

    for loss in [LossKind::Ce, LossKind::La, LossKind::Supcon] {
        let mut c = config(dir.path(), loss);
        c.epochs = 1;
        let mut records = Vec::new();
        train(&c, Device::Cpu, |r| records.push(r.clone())).unwrap();
        let r = &records[0];
        assert!(r.train_ce.is_finite(), "{loss:?}: {r:?}");
        assert_eq!(r.train_contrastive > 0.0, loss == LossKind::Supcon, "{loss:?}: {r:?}");
    }
}
