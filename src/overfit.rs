//! Overfitting one batch: the classic check that model, losses and optimiser fit together.
//! A few SGD steps on one fixed batch of real images must drive both losses down.
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use tch::{Device, Kind, Tensor};

use crate::config::{Preset, TrainConfig};
use crate::data::{Dataset, InMemoryDataset, Normalization, mnist};
use crate::loss::Objective;
use crate::model;
use crate::optim::{Sgd, trainable};

/// Settings of [`overfit_batch`]; model, loss weights and temperature come from the preset.
#[derive(Debug, Clone)]
pub struct OverfitConfig {
    pub data_dir: PathBuf,
    pub batch_size: usize,
    pub steps: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub device: Device,
}

/// Losses after one step.
#[derive(Debug, Clone, Copy)]
pub struct StepRecord {
    pub step: usize,
    pub la_ce: f64,
    pub bcl: f64,
    pub total: f64,
    /// Top-1 accuracy of view 0's logits on the batch.
    pub accuracy: f64,
}

/// Trains the Fashion-MNIST BCL model (resnet32, 1 channel) for `steps` SGD steps on one
/// batch of `batch_size` training images and returns each step's losses.
///
/// Views: view 0 is the image; views 1 and 2 flip each image horizontally with p = 0.5.
pub fn overfit_batch(config: &OverfitConfig) -> Result<Vec<StepRecord>> {
    ensure!(config.batch_size >= 2, "the batch needs at least 2 images, got {}", config.batch_size);
    let train = mnist::load(&config.data_dir, true, mnist::fashion_names())?;
    ensure!(train.len() >= config.batch_size, "only {} training images", train.len());
    tch::manual_seed(config.seed as i64);

    // Model, input, losses and optimiser of the fashion-mnist-lt preset.
    let preset = TrainConfig::preset(Preset::FashionMnistLt, config.data_dir.clone());
    let (batch, labels) = sample_batch(&train, config.batch_size, config.device)?;
    let view0 = normalize(&batch, &preset);
    let view1 = normalize(&random_flip(&batch), &preset);
    let view2 = normalize(&random_flip(&batch), &preset);
    let images = Tensor::cat(&[view0, view1, view2], 0);
    let class_counts = Tensor::from_slice(&train.class_counts()).to_device(config.device);

    let (vs, model) = model::create(&preset.model, config.device, None);
    let objective = Objective::new(&preset.loss, class_counts);
    let contrastive = objective.contrastive().context("the preset's loss has a contrastive term")?;
    let mut optimizer = Sgd::new(preset.momentum, preset.weight_decay, preset.nesterov);
    let parameters = trainable(&vs);

    let b = config.batch_size as i64;
    let mut records = Vec::with_capacity(config.steps);
    for step in 0..config.steps {
        let out = model.forward_t(&images, true);
        let logits = out.logits.narrow(0, 0, b);
        let (z1, z2) = (out.features.narrow(0, b, b), out.features.narrow(0, 2 * b, b));
        let bcl = contrastive.forward_views(&z1, &z2, &labels, &out.prototypes);
        let losses = objective.losses(&logits, &labels, Some((bcl.shallow_clone(), bcl)));
        let record = StepRecord {
            step,
            la_ce: losses.classification.double_value(&[]),
            bcl: losses.contrastive.as_ref().map_or(0.0, |(value, _)| value.double_value(&[])),
            total: losses.total.double_value(&[]),
            accuracy: logits
                .argmax(1, false)
                .eq_tensor(&labels)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]),
        };
        if !record.total.is_finite() {
            bail!("loss is not finite at step {step}: LA-CE {}, BCL {}", record.la_ce, record.bcl);
        }
        crate::optim::clear_gradients(&parameters);
        losses.total.backward();
        optimizer.step(&parameters, config.learning_rate);
        records.push(record);
    }
    Ok(records)
}

/// `batch_size` distinct training images drawn by tch's seeded generator, as floats in [0, 1].
fn sample_batch(train: &InMemoryDataset, batch_size: usize, device: Device) -> Result<(Tensor, Tensor)> {
    let picks = Tensor::randperm(train.len() as i64, (Kind::Int64, Device::Cpu)).narrow(0, 0, batch_size as i64);
    let picks: Vec<i64> = Vec::<i64>::try_from(&picks).expect("randperm gives int64");
    let mut pixels = Vec::with_capacity(batch_size * train.height * train.width);
    let mut labels = Vec::with_capacity(batch_size);
    for &i in &picks {
        pixels.extend_from_slice(&train.image(i as usize)?.pixels);
        labels.push(train.labels[i as usize]);
    }
    let shape = [batch_size as i64, 1, train.height as i64, train.width as i64];
    let images = Tensor::from_slice(&pixels).reshape(shape).to_kind(Kind::Float) / 255.0;
    Ok((images.to_device(device), Tensor::from_slice(&labels).to_device(device)))
}

fn random_flip(images: &Tensor) -> Tensor {
    let flip = Tensor::rand([images.size()[0], 1, 1, 1], (Kind::Float, images.device())).lt(0.5);
    images.flip([3]).where_self(&flip, images)
}

fn normalize(images: &Tensor, preset: &TrainConfig) -> Tensor {
    let Normalization { mean, std } = preset.input().normalization;
    (images - mean[0]) / std[0]
}
