//! The order in which an epoch visits the samples.
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Every sample once per epoch, in a seeded random order.
    Shuffle,
    /// As many draws as samples; each picks a class uniformly, then one of its samples.
    ClassBalanced,
}

/// The sample indices of epoch `epoch`, reproducible from `(seed, epoch)`.
pub fn epoch_order(kind: SamplerKind, labels: &[i64], num_classes: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    match kind {
        SamplerKind::Shuffle => {
            let mut order: Vec<usize> = (0..labels.len()).collect();
            order.shuffle(&mut rng);
            order
        }
        SamplerKind::ClassBalanced => {
            let by_class = super::indices_by_class(labels, num_classes);
            let present: Vec<&Vec<usize>> = by_class.iter().filter(|m| !m.is_empty()).collect();
            (0..labels.len())
                .map(|_| {
                    let members = present[rng.random_range(0..present.len())];
                    members[rng.random_range(0..members.len())]
                })
                .collect()
        }
    }
}
