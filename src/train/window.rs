//! The steps between two waits for the device. Losses and running sums stay on the device
//! while a window fills; at its end one exchange adds them over the ranks, checks that
//! every loss was finite, and counts the ranks asked to stop, so that all stop together.
use std::path::Path;

use anyhow::{Result, bail};
use tch::{Device, Kind, Tensor};

use super::state::EpochSums;
use super::step::StepLosses;
use crate::distributed::Group;

/// Steps between synchronisations (each waits for the device and for the other ranks):
/// windows end at the epoch's multiples of STEPS, so that a resumed epoch's windows (and
/// the TensorBoard points of its steps) fall where an uninterrupted epoch's do.
pub const STEPS: usize = 10;

/// What a synchronisation learned.
pub struct Synced {
    /// The epoch's running sums over every rank.
    pub sums: EpochSums,
    /// Whether any rank was asked to stop.
    pub stop: bool,
}

pub struct StepWindow {
    /// The total loss of each step since the last synchronisation.
    losses: Vec<Tensor>,
    /// (ce, contrastive, correct, samples) of the epoch so far, this rank's share.
    sums: Tensor,
    world_size: f64,
}

impl StepWindow {
    /// A window continuing an epoch's `sums` (those of a resumed epoch, or zeros).
    pub fn new(sums: &EpochSums, device: Device, world_size: usize) -> Self {
        let EpochSums { ce, contrastive, correct, samples } = *sums;
        let sums = Tensor::from_slice(&[ce, contrastive, correct, samples as f64]).to_device(device);
        Self { losses: Vec::with_capacity(STEPS), sums, world_size: world_size as f64 }
    }

    /// Adds a step of `samples` samples. Each rank adds its share of the mean losses
    /// (losses / world size), so that the ranks' sums add up to the sums of one process.
    pub fn record(&mut self, step: &StepLosses, labels: &Tensor, samples: usize) {
        let losses = &step.losses;
        tch::no_grad(|| {
            let ce = losses.classification.to_kind(Kind::Float);
            let contrastive = losses.contrastive.as_ref().map_or(ce.zeros_like(), |(value, _)| value.detach());
            let correct = step.logits.argmax(1, false).eq_tensor(labels).sum(Kind::Float);
            let samples = correct.full_like(samples as f64);
            let shares = [&ce.detach() / self.world_size, contrastive.to_kind(Kind::Float) / self.world_size];
            self.sums += Tensor::stack(&[&shares[0], &shares[1], &correct, &samples], 0).to_kind(Kind::Double);
        });
        self.losses.push(losses.total.detach());
    }

    /// Synchronises with the device and the other ranks: adds the sums and losses over the
    /// ranks, fails if a loss of the window (the steps before `step` of `epoch`) is not
    /// finite on any rank, and votes on stopping (`stop`: this rank was asked to).
    /// `last` names the checkpoint a failure leaves as it was.
    pub fn sync(
        &mut self,
        stop: bool,
        group: Option<&Group>,
        (epoch, step): (usize, usize),
        last: &Path,
    ) -> Result<Synced> {
        let first_step = step - self.losses.len();
        let mut parts: Vec<Tensor> = self.losses.drain(..).map(|loss| loss.to_kind(Kind::Double).view([1])).collect();
        parts.push(self.sums.shallow_clone());
        parts.push(Tensor::from(if stop { 1.0 } else { 0.0 }).to_device(self.sums.device()).view([1]));
        let all = Tensor::cat(&parts, 0);
        if let Some(group) = group {
            group.all_reduce_sum(&all)?;
        }
        let all = Vec::<f64>::try_from(all.to_device(Device::Cpu))?;
        let (losses, rest) = all.split_at(all.len() - 5);
        if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
            bail!(
                "epoch {}, step {}: the training loss is {}; stopped without saving ({} is unchanged). \
                 A lower learning rate or a check of the data may help.",
                epoch + 1,
                first_step + bad + 1,
                losses[bad],
                last.display()
            );
        }
        let sums = EpochSums { ce: rest[0], contrastive: rest[1], correct: rest[2], samples: rest[3] as usize };
        Ok(Synced { sums, stop: rest[4] > 0.0 })
    }
}
