//! Evaluating a model on a dataset: the evaluation transform, the classifier's softmax per
//! sample, then the metrics of [`crate::metrics`].
use std::sync::Arc;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::augment::Recipe;
use crate::data::Dataset;
use crate::loader::{self, DeviceNormalization, LoaderConfig};
use crate::metrics::{self, Evaluation, Scored};
use crate::model::BclModel;

/// The metrics of `model` on `dataset` (evaluation transform, classifier logits only);
/// `train_counts` are the training images per class.
pub fn evaluate(
    model: &BclModel,
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    loader_config: &LoaderConfig,
    device: Device,
    train_counts: &[i64],
) -> Result<Evaluation> {
    Ok(metrics::evaluate(&score(model, dataset, recipe, loader_config, device, None)?, train_counts))
}

/// What the metrics need of each sample of `dataset`: its label, prediction, whether the
/// label is in the top 5, the confidence and the label's log-probability; `logit_bias`
/// (1 × C) is added to the logits first (post-hoc logit adjustment).
pub fn score(
    model: &BclModel,
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    loader_config: &LoaderConfig,
    device: Device,
    logit_bias: Option<&Tensor>,
) -> Result<Vec<Scored>> {
    let logit_bias = logit_bias.map(|b| b.to_device(device));
    let normalization = DeviceNormalization::new(&loader_config.normalization, device);
    let mut scored = Vec::with_capacity(dataset.len());
    for batch in loader::eval_batches(dataset, recipe, loader_config) {
        let batch = batch.context("evaluation data")?;
        let mut logits = tch::no_grad(|| model.logits(&batch.input(device, &normalization)));
        if let Some(bias) = &logit_bias {
            logits = logits.to_kind(Kind::Float) + bias;
        }
        scored.extend(score_logits(&logits, &batch.labels)?);
    }
    Ok(scored)
}

/// The [`Scored`] rows of a batch of `logits` (N × C, any device) with their `labels`.
pub fn score_logits(logits: &Tensor, labels: &Tensor) -> Result<Vec<Scored>> {
    let log_probs = logits.to_device(Device::Cpu).to_kind(Kind::Double).log_softmax(1, Kind::Double);
    let labels = labels.to_device(Device::Cpu).to_kind(Kind::Int64);
    let (best, predicted) = log_probs.max_dim(1, false);
    let k = log_probs.size()[1].min(5);
    let top5 = log_probs.topk(k, 1, true, true).1.eq_tensor(&labels.unsqueeze(1)).any_dim(1, false);
    let of_label = log_probs.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
    let (labels, predicted) = (Vec::<i64>::try_from(&labels)?, Vec::<i64>::try_from(&predicted)?);
    let (best, of_label) = (Vec::<f64>::try_from(&best)?, Vec::<f64>::try_from(&of_label)?);
    let top5 = Vec::<bool>::try_from(&top5)?;
    Ok((0..labels.len())
        .map(|i| Scored {
            label: labels[i],
            predicted: predicted[i],
            in_top5: top5[i],
            confidence: best[i].exp(),
            log_prob_label: of_label[i],
        })
        .collect())
}
