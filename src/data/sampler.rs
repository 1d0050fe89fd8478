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
    /// As many draws as samples; each picks a class with probability ∝ √(its samples),
    /// then one of its samples (square-root sampling, Mahajan et al. 2018).
    SquareRoot,
}

impl SamplerKind {
    /// The power q of class-aware sampling: class c is drawn with probability ∝ n_c^q
    /// (q = 1 is plain shuffling, in expectation).
    fn class_power(self) -> f64 {
        match self {
            SamplerKind::Shuffle => 1.0,
            SamplerKind::ClassBalanced => 0.0,
            SamplerKind::SquareRoot => 0.5,
        }
    }
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
        SamplerKind::ClassBalanced | SamplerKind::SquareRoot => {
            let by_class = super::indices_by_class(labels, num_classes);
            let present: Vec<&Vec<usize>> = by_class.iter().filter(|m| !m.is_empty()).collect();
            let cumulative: Vec<f64> = present
                .iter()
                .scan(0.0, |sum, members| {
                    *sum += (members.len() as f64).powf(kind.class_power());
                    Some(*sum)
                })
                .collect();
            let total = cumulative.last().copied().unwrap_or_default();
            (0..labels.len())
                .map(|_| {
                    let u = rng.random_range(0.0..total);
                    let members = present[cumulative.partition_point(|&c| c <= u).min(present.len() - 1)];
                    members[rng.random_range(0..members.len())]
                })
                .collect()
        }
    }
}
