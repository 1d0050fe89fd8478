//! Long-tailed subsets of balanced datasets (SPEC section 4), exactly as the LDAM-DRW /
//! BCL CIFAR-LT code picks them, so that results compare with the literature's: with
//! n_max = N / C (the balanced set's images per class), class i keeps
//! ⌊n_max · ρ^(−i/(C−1))⌋ images ("exp") or, for "step", ⌊n_max⌋ for the first half of the
//! classes and ⌊n_max/ρ⌋ for the rest; which images is numpy's legacy `RandomState`
//! shuffle, seeded once, class by class. The test set stays balanced.
use serde::{Deserialize, Serialize};

use super::numpy_random::Mt19937;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Exp,
    Step,
}

/// The images each of `num_classes` classes keeps for imbalance factor `rho` ≥ 1, where
/// the balanced set has `n_max` images per class (LDAM's `img_max = len(data) / C`, a float).
pub fn class_counts(profile: Profile, n_max: f64, num_classes: usize, rho: f64) -> Vec<usize> {
    let ratio = 1.0 / rho;
    (0..num_classes)
        .map(|i| match profile {
            Profile::Exp if num_classes > 1 => {
                (n_max * ratio.powf(i as f64 / (num_classes - 1) as f64)).floor() as usize
            }
            Profile::Exp => n_max.floor() as usize,
            Profile::Step if i < num_classes / 2 => n_max.floor() as usize,
            Profile::Step => (n_max * ratio).floor() as usize,
        })
        .collect()
}

/// The indices (into `labels`) of the subset with `quotas[c]` samples of each class c, in
/// LDAM-DRW's order: `np.random.seed(seed)` once, then for each class in label order its
/// indices in file order, shuffled by `np.random.shuffle`, the first `quotas[c]` kept. A
/// class with fewer samples than its quota keeps them all (real MNIST's classes differ in
/// size), as that code does.
pub fn subset_indices(labels: &[i64], quotas: &[usize], seed: u32) -> Vec<usize> {
    let mut rng = Mt19937::new(seed);
    let mut indices = Vec::with_capacity(quotas.iter().sum());
    for (mut members, &quota) in super::indices_by_class(labels, quotas.len()).into_iter().zip(quotas) {
        rng.shuffle(&mut members);
        indices.extend_from_slice(&members[..quota.min(members.len())]);
    }
    indices
}

/// The imbalance factor of a set of class counts: largest / smallest non-empty class.
pub fn imbalance_factor(counts: &[i64]) -> f64 {
    let max = counts.iter().copied().max().unwrap_or(0);
    let min = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
    if min == 0 { 0.0 } else { max as f64 / min as f64 }
}
