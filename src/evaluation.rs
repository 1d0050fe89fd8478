//! Evaluating a model on a dataset: the evaluation transform, the classifier's logits,
//! then the metrics of [`crate::metrics`].
use std::sync::Arc;

use anyhow::{Context, Result};
use tch::Device;

use crate::augment::Recipe;
use crate::data::Dataset;
use crate::loader::{self, LoaderConfig};
use crate::metrics::{self, Evaluation};
use crate::model::BclModel;

/// Top-1, per-class and Many/Medium/Few accuracy of `model` on `dataset` (evaluation
/// transform, classifier logits only); `train_counts` are the training images per class.
pub fn evaluate(
    model: &BclModel,
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    loader_config: &LoaderConfig,
    device: Device,
    train_counts: &[i64],
) -> Result<Evaluation> {
    let (mut predictions, mut labels) = (Vec::with_capacity(dataset.len()), Vec::with_capacity(dataset.len()));
    for batch in loader::eval_batches(dataset, recipe, loader_config) {
        let batch = batch.context("evaluation data")?;
        let predicted = tch::no_grad(|| model.logits(&batch.input(device)).argmax(1, false));
        predictions.extend(Vec::<i64>::try_from(&predicted.to_device(Device::Cpu))?);
        labels.extend(Vec::<i64>::try_from(&batch.labels)?);
    }
    Ok(metrics::evaluate(&predictions, &labels, train_counts))
}
