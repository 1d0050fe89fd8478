//! Long-tailed subsets of balanced datasets (SPEC section 4), as in the LDAM / BCL CIFAR-LT
//! protocol: class i keeps ⌊n_max · ρ^(−i/(C−1))⌋ images ("exp") or, for "step", n_max for
//! the first half of the classes and ⌊n_max/ρ⌋ for the rest. Images are picked per class by
//! a seeded shuffle; the test set stays balanced.
use anyhow::{Result, ensure};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Exp,
    Step,
}

/// Images kept per class for `num_classes` classes, imbalance factor `rho` ≥ 1.
pub fn class_counts(profile: Profile, n_max: usize, num_classes: usize, rho: f64) -> Vec<usize> {
    let ratio = 1.0 / rho;
    (0..num_classes)
        .map(|i| match profile {
            Profile::Exp if num_classes > 1 => {
                (n_max as f64 * ratio.powf(i as f64 / (num_classes - 1) as f64)).floor() as usize
            }
            Profile::Exp => n_max,
            Profile::Step if i < num_classes / 2 => n_max,
            Profile::Step => (n_max as f64 * ratio).floor() as usize,
        })
        .collect()
}

/// Indices (into `labels`) of a subset holding `counts[c]` samples of each class c, chosen
/// by a shuffle seeded with `seed`; sorted by class, then by shuffle order.
pub fn subset_indices(labels: &[i64], counts: &[usize], seed: u64) -> Result<Vec<usize>> {
    let mut by_class = super::indices_by_class(labels, counts.len());
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut indices = Vec::with_capacity(counts.iter().sum());
    for (class, (members, &want)) in by_class.iter_mut().zip(counts).enumerate() {
        ensure!(
            want <= members.len(),
            "class {class} has {} images, the long-tailed profile asks for {want}",
            members.len()
        );
        members.shuffle(&mut rng);
        indices.extend_from_slice(&members[..want]);
    }
    Ok(indices)
}

/// The imbalance factor of a set of class counts: largest / smallest non-empty class.
pub fn imbalance_factor(counts: &[i64]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
    if min == 0 { 0.0 } else { max as f64 / min as f64 }
}
