//! The forward pass of one training step: over the 3B images of views 0, 1, 2 when the
//! objective has a contrastive term (view 0's logits, views 1–2's features), else over view
//! 0's B; the objective (`loss::Objective`) then weighs and adds the losses.
use std::rc::Rc;

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::amp;
use crate::config::TrainConfig;
use crate::distributed::{self, Group};
use crate::loss::{Losses, Objective};
use crate::model::{BclModel, BclOutput, norm};

/// The losses of one step and view 0's logits.
pub struct StepLosses {
    pub losses: Losses,
    pub logits: Tensor,
}

/// How a run's steps compute their losses: the objective, and BatchNorm's grouping of the
/// forward pass. Fixed for the run.
pub struct LossStep {
    objective: Objective,
    /// BatchNorm statistics over groups of this many samples; None: the whole batch.
    bn_group_size: Option<usize>,
}

impl LossStep {
    pub fn new(config: &TrainConfig, class_counts: Tensor) -> Self {
        Self { objective: Objective::new(&config.loss, class_counts), bn_group_size: config.bn_group_size }
    }

    /// The losses of `model` on `images` (the objective's views × B, view-major) with B
    /// `labels`. With a `group`, the contrastive loss sees every rank's features; with
    /// `sync`, BatchNorm statistics are summed over the ranks (SyncBatchNorm).
    pub fn losses(
        &self,
        model: &BclModel,
        images: &Tensor,
        labels: &Tensor,
        group: Option<&Group>,
        sync: Option<&Rc<norm::SumOverRanks>>,
    ) -> Result<StepLosses> {
        let b = labels.size()[0];
        let bn_group = self.bn_group_size.map_or(b, |g| g as i64);
        match self.objective.contrastive() {
            Some(contrastive) => {
                let out = forward(sync, || forward_in_groups(model, images, b, bn_group))?;
                let (features, prototypes) = (float32(&out.features), float32(&out.prototypes));
                let logits = float32(&out.logits.narrow(0, 0, b));
                // The similarity matmul would run in 16 bits under autocast.
                amp::without_autocast(images.device(), || {
                    let loss = |views: &Tensor, view_labels: &Tensor, anchors: &Tensor| {
                        contrastive.forward(views, view_labels, anchors, &prototypes)
                    };
                    let (z1, z2) = (features.narrow(0, b, b), features.narrow(0, 2 * b, b));
                    let contrastive = distributed::gathered_loss(group, &z1, &z2, labels, loss)?;
                    Ok(StepLosses { losses: self.objective.losses(&logits, labels, Some(contrastive)), logits })
                })
            }
            None => {
                let view0 = images.narrow(0, 0, b);
                let logits = float32(&forward(sync, || {
                    let parts: Vec<Tensor> = groups(b, bn_group)
                        .map(|(start, n)| model.logits_t(&view0.narrow(0, start, n), true))
                        .collect();
                    Tensor::cat(&parts, 0)
                })?);
                Ok(StepLosses { losses: self.objective.losses(&logits, labels, None), logits })
            }
        }
    }
}

/// `t` in float32: the losses are computed in full precision under autocast too, since
/// the exponentials of similarities up to 1/τ lose several percent in bfloat16. A no-op
/// without autocast.
fn float32(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Float)
}

/// Runs the training forward pass `f`, with BatchNorm statistics summed over the ranks by
/// `sync` (SyncBatchNorm) when given.
fn forward<T>(sync: Option<&Rc<norm::SumOverRanks>>, f: impl FnOnce() -> T) -> Result<T> {
    match sync {
        Some(sum) => norm::with_statistics_over_ranks(Rc::clone(sum), f),
        None => Ok(f()),
    }
}

/// (first sample, samples) of each BatchNorm group of a batch of `b`.
fn groups(b: i64, group: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..b).step_by(group.max(1) as usize).map(move |start| (start, group.min(b - start)))
}

/// The model's training outputs for `images` (3 views × `b` samples, view-major), with
/// BatchNorm statistics over groups of `group` samples (all their views) at a time, put
/// back in the batch's order: what ranks with `group` samples each compute together.
fn forward_in_groups(model: &BclModel, images: &Tensor, b: i64, group: i64) -> BclOutput {
    if group >= b {
        return model.forward_t(images, true);
    }
    let views = images.size()[0] / b;
    let outputs: Vec<(i64, BclOutput)> = groups(b, group)
        .map(|(start, n)| {
            let rows: Vec<Tensor> = (0..views).map(|v| images.narrow(0, v * b + start, n)).collect();
            (n, model.forward_t(&Tensor::cat(&rows, 0), true))
        })
        .collect();
    // View v of group g is rows v·n .. (v+1)·n of that group's output.
    let reassemble = |part: fn(&BclOutput) -> &Tensor| {
        let rows: Vec<Tensor> =
            (0..views).flat_map(|v| outputs.iter().map(move |(n, out)| part(out).narrow(0, v * n, *n))).collect();
        Tensor::cat(&rows, 0)
    };
    BclOutput {
        features: reassemble(|o| &o.features),
        logits: reassemble(|o| &o.logits),
        prototypes: outputs[0].1.prototypes.shallow_clone(),
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::config::Preset;

    /// Under bfloat16 autocast the network computes in bfloat16, the losses in float32.
    #[test]
    fn losses_are_float32_under_bf16_autocast() {
        let config = TrainConfig::preset(Preset::Cifar10Lt, "/data".into());
        let (_vs, model) = crate::model::create(&config.model, Device::Cpu, None);
        let step = LossStep::new(&config, Tensor::from_slice(&[500i64, 300, 200, 100, 50, 30, 20, 10, 5, 5]));
        let images = Tensor::randn([12, 3, 32, 32], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 1, 9, 9]);
        let (features, losses) = amp::autocast(Device::Cpu, Some(Kind::BFloat16), || {
            let features = model.forward_t(&images, true).features.kind();
            (features, step.losses(&model, &images, &labels, None, None).unwrap())
        });
        assert_eq!(features, Kind::BFloat16, "the network runs in bfloat16");
        let (value, surrogate) = losses.losses.contrastive.as_ref().unwrap();
        for (name, t) in [
            ("ce", &losses.losses.classification),
            ("contrastive", value),
            ("surrogate", surrogate),
            ("total", &losses.losses.total),
            ("logits", &losses.logits),
        ] {
            assert_eq!(t.kind(), Kind::Float, "{name}");
            assert!(t.isfinite().all().int64_value(&[]) == 1, "{name}");
        }
    }
}
