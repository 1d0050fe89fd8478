//! Evaluating a model on a dataset: the evaluation transform, the classifier's softmax per
//! sample, then the metrics of [`crate::metrics`]. [`EvalData`] is a run's data as every
//! scorer opens it (training, the end of a run, `eval`, `features`).
use std::sync::Arc;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::augment::Recipe;
use crate::config::TrainConfig;
use crate::data::{Dataset, Split};
use crate::loader::{self, DeviceNormalization, LoaderConfig};
use crate::metrics::{self, Evaluation, Scored};
use crate::model::BclModel;

/// One split of a run's data under the evaluation transform, with the training set whose
/// class counts group the classes into many, medium and few shots.
pub struct EvalData {
    pub train_set: Arc<dyn Dataset>,
    /// Training images per class.
    pub counts: Vec<i64>,
    pub split: Split,
    /// The images of `split` (the training set itself for [`Split::Train`]).
    pub data: Arc<dyn Dataset>,
    pub recipe: Arc<Recipe>,
    pub loader: LoaderConfig,
    pub device: Device,
}

impl EvalData {
    /// Opens `config`'s training set and its `split`.
    pub fn open(config: &TrainConfig, split: Split, device: Device) -> Result<Self> {
        Self::with_train_set(config, config.data.train_set()?, split, device)
    }

    /// `split` of `config`'s data, whose training set `train_set` is open already.
    pub fn with_train_set(
        config: &TrainConfig,
        train_set: Arc<dyn Dataset>,
        split: Split,
        device: Device,
    ) -> Result<Self> {
        let data = match split {
            Split::Train => train_set.clone(),
            Split::Val | Split::Test => config.data.eval_set(split, train_set.as_ref())?,
        };
        Ok(Self {
            counts: train_set.class_counts(),
            train_set,
            split,
            data,
            recipe: Arc::new(config.recipe()?),
            loader: LoaderConfig::for_run(config, device),
            device,
        })
    }

    /// The class names, in the model's order.
    pub fn class_names(&self) -> &[String] {
        self.train_set.class_names()
    }

    /// Every sample of the split scored by `model` ([`score`]).
    pub fn score(&self, model: &BclModel, logit_bias: Option<&Tensor>) -> Result<Vec<Scored>> {
        score(model, self.data.clone(), self.recipe.clone(), &self.loader, self.device, logit_bias)
    }

    /// The metrics of `model` on the split.
    pub fn evaluate(&self, model: &BclModel) -> Result<Evaluation> {
        Ok(metrics::evaluate(&self.score(model, None)?, &self.counts))
    }
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
