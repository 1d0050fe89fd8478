//! Long-tailed subsets: the counts of the LDAM-DRW / BCL profiles, and the very images that
//! code keeps (numpy's legacy MT19937 shuffle), checked against numpy itself.
use std::io::Read;

use bcl::data::long_tail::{Profile, class_counts, imbalance_factor, subset_indices};

/// Written by tests/golden/make_lt_split.py with numpy's `RandomState`.
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/lt_split.txt.gz");

#[test]
fn long_tailed_counts_follow_the_profiles() {
    let fashion = class_counts(Profile::Exp, 6000.0, 10, 100.0);
    assert_eq!(fashion, vec![6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]);
    assert_eq!(fashion.iter().sum::<usize>(), 14_886);
    // CIFAR-100-LT at ρ = 100 keeps 10,847 images (the number in the LDAM/BCL papers).
    assert_eq!(class_counts(Profile::Exp, 500.0, 100, 100.0).iter().sum::<usize>(), 10_847);
    assert_eq!(class_counts(Profile::Exp, 5000.0, 10, 100.0).iter().sum::<usize>(), 12_406);
    assert_eq!(class_counts(Profile::Step, 500.0, 5, 10.0), vec![500, 500, 50, 50, 50]);
    assert_eq!(class_counts(Profile::Exp, 500.0, 10, 1.0), vec![500; 10]);
    let counts: Vec<i64> = fashion.iter().map(|&c| c as i64).collect();
    assert_eq!(imbalance_factor(&counts), 100.0);
}

#[test]
fn subsets_are_seeded_and_classes_smaller_than_their_quota_keep_everything() {
    let labels: Vec<i64> = (0..3000).map(|i| i % 3).collect();
    let counts = class_counts(Profile::Exp, 1000.0, 3, 10.0);
    let a = subset_indices(&labels, &counts, 1);
    assert_eq!(a, subset_indices(&labels, &counts, 1), "same seed, same subset");
    assert_ne!(a, subset_indices(&labels, &counts, 2), "another seed, another subset");
    for (class, &want) in counts.iter().enumerate() {
        assert_eq!(a.iter().filter(|&&i| labels[i] == class as i64).count(), want);
    }
    let mut unique = a.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), a.len(), "no sample twice");
    // As in real MNIST, where classes hold 5,421 to 6,742 training images: min(size, quota).
    let uneven: Vec<i64> = [800usize, 1200, 1000].iter().enumerate().flat_map(|(c, &n)| vec![c as i64; n]).collect();
    let kept = subset_indices(&uneven, &[901, 1001, 10], 0);
    let per_class: Vec<usize> = (0..3).map(|c| kept.iter().filter(|&&i| uneven[i] == c).count()).collect();
    assert_eq!(per_class, [800, 1001, 10]);
}

/// The golden file: per case `C RHO SEED ; counts ; kept indices`, for label vectors
/// `label[i] = ((7919 i + 12345) mod 50000) / (50000 / C)`.
#[test]
fn the_subset_is_the_one_ldam_and_bcl_keep_index_for_index() {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(GOLDEN).unwrap()).read_to_string(&mut text).unwrap();
    let numbers = |s: &str| s.split_whitespace().map(|t| t.parse::<usize>().unwrap()).collect::<Vec<_>>();
    let cases: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(cases.len(), 12, "CIFAR-10 and CIFAR-100 sizes × ρ 100, 50, 10 × seeds 0, 1");
    for case in cases {
        let fields: Vec<&str> = case.split(';').collect();
        let (head, want_counts, want) = (numbers(fields[0]), numbers(fields[1]), numbers(fields[2]));
        let (classes, rho, seed, n) = (head[0], head[1], head[2], 50_000);
        let labels: Vec<i64> = (0..n).map(|i| (((7919 * i + 12345) % n) / (n / classes)) as i64).collect();
        let counts = class_counts(Profile::Exp, (n / classes) as f64, classes, rho as f64);
        assert_eq!(counts, want_counts, "C={classes} rho={rho}");
        assert_eq!(subset_indices(&labels, &counts, seed as u32), want, "C={classes} rho={rho} seed={seed}");
    }
}
