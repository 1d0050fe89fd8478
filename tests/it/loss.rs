//! The losses against independent golden values (tests/golden/make_golden.py: PyTorch,
//! float64 autograd, loops written from the SPEC), a finite-difference gradient check, and
//! edge cases.
use std::collections::HashMap;

use bcl::loss::{BalancedContrastiveLoss, cross_entropy, logit_adjusted_cross_entropy};
use tch::{Kind, Tensor};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/bcl_loss.safetensors");

struct Case {
    z1: Tensor,
    z2: Tensor,
    prototypes: Tensor,
    labels: Tensor,
    temperature: f64,
    num_classes: i64,
    t: HashMap<String, Tensor>,
    prefix: String,
}

impl Case {
    fn get(&self, key: &str) -> &Tensor {
        &self.t[&format!("{}{key}", self.prefix)]
    }
}

fn golden_cases() -> Vec<Case> {
    let t: HashMap<String, Tensor> = Tensor::read_safetensors(GOLDEN).expect("golden file").into_iter().collect();
    let count = (0..).take_while(|k| t.contains_key(&format!("case{k}.loss"))).count();
    assert!(count >= 4, "the golden file must hold at least 4 cases, has {count}");
    (0..count)
        .map(|k| {
            let p = format!("case{k}.");
            let get = |n: &str| t[&format!("{p}{n}")].shallow_clone();
            Case {
                z1: get("z1"),
                z2: get("z2"),
                prototypes: get("prototypes"),
                labels: get("labels"),
                temperature: get("temperature").double_value(&[]),
                num_classes: get("prototypes").size()[0],
                t: t.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(),
                prefix: p,
            }
        })
        .collect()
}

/// A fresh leaf copy of `t` in `kind` that collects gradients (the golden tensors stay untouched).
fn leaf(t: &Tensor, kind: Kind) -> Tensor {
    t.detach().to_kind(kind).copy().set_requires_grad(true)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

/// BCL loss and input gradients for `case` computed in `kind`.
fn bcl_with_grads(case: &Case, kind: Kind) -> (Tensor, Tensor, Tensor, Tensor) {
    let z1 = leaf(&case.z1, kind);
    let z2 = leaf(&case.z2, kind);
    let p = leaf(&case.prototypes, kind);
    let loss = BalancedContrastiveLoss {
        num_classes: case.num_classes,
        temperature: case.temperature,
        class_averaging: true,
        class_complement: true,
    }
    .forward_views(&z1, &z2, &case.labels, &p);
    loss.backward();
    (loss, z1.grad(), z2.grad(), p.grad())
}

fn check_bcl(kind: Kind, tolerance: f64) {
    for (k, case) in golden_cases().iter().enumerate() {
        let (loss, g1, g2, gp) = bcl_with_grads(case, kind);
        assert_eq!(loss.kind(), kind);
        for (name, ours, golden) in [
            ("loss", &loss, case.get("loss")),
            ("grad_z1", &g1, case.get("grad_z1")),
            ("grad_z2", &g2, case.get("grad_z2")),
            ("grad_prototypes", &gp, case.get("grad_prototypes")),
        ] {
            let diff = max_abs_diff(ours, golden);
            assert!(diff <= tolerance, "case{k} {name} ({kind:?}): differs from golden by {diff:e}");
        }
    }
}

#[test]
fn bcl_matches_golden_float64() {
    check_bcl(Kind::Double, 1e-9);
}

#[test]
fn bcl_matches_golden_float32() {
    check_bcl(Kind::Float, 1e-5);
}

#[test]
fn ablation_variants_match_golden() {
    for (k, case) in golden_cases().iter().enumerate() {
        for (key, averaging, complement) in [
            ("loss_supcon", false, false),
            ("loss_no_class_averaging", false, true),
            ("loss_no_class_complement", true, false),
        ] {
            let loss = BalancedContrastiveLoss {
                num_classes: case.num_classes,
                temperature: case.temperature,
                class_averaging: averaging,
                class_complement: complement,
            }
            .forward_views(&case.z1, &case.z2, &case.labels, &case.prototypes);
            let diff = max_abs_diff(&loss, case.get(key));
            assert!(diff <= 1e-9, "case{k} {key}: differs from golden by {diff:e}");
        }
    }
}

#[test]
fn logit_adjusted_ce_matches_golden() {
    for (k, case) in golden_cases().iter().enumerate() {
        for (kind, tolerance) in [(Kind::Double, 1e-9), (Kind::Float, 1e-5)] {
            let logits = leaf(case.get("logits"), kind);
            let loss = logit_adjusted_cross_entropy(&logits, &case.labels, case.get("class_counts"), 1.0);
            loss.backward();
            let diff = max_abs_diff(&loss, case.get("la_loss"));
            assert!(diff <= tolerance, "case{k} LA-CE ({kind:?}): differs by {diff:e}");
            let diff = max_abs_diff(&logits.grad(), case.get("grad_logits"));
            assert!(diff <= tolerance, "case{k} LA-CE gradient ({kind:?}): differs by {diff:e}");
        }
    }
}

#[test]
fn logit_adjustment_changes_the_loss_and_vanishes_for_a_uniform_prior() {
    let case = &golden_cases()[3];
    let logits = case.get("logits");
    let plain = cross_entropy(logits, &case.labels).double_value(&[]);
    let adjusted = logit_adjusted_cross_entropy(logits, &case.labels, case.get("class_counts"), 1.0).double_value(&[]);
    assert!((plain - adjusted).abs() > 1e-3, "a long-tailed prior must change the loss");
    let uniform = Tensor::full([case.num_classes], 7, (Kind::Int64, tch::Device::Cpu));
    let with_uniform = logit_adjusted_cross_entropy(logits, &case.labels, &uniform, 1.0).double_value(&[]);
    assert!((plain - with_uniform).abs() < 1e-12, "a uniform prior shifts all logits equally");
}

/// Central differences of the float64 loss against autograd, for every input entry.
#[test]
fn bcl_gradient_matches_finite_differences() {
    let case = &golden_cases()[1];
    let (_, g1, g2, gp) = bcl_with_grads(case, Kind::Double);
    let loss_at = |z1: &Tensor, z2: &Tensor, p: &Tensor| {
        BalancedContrastiveLoss {
            num_classes: case.num_classes,
            temperature: case.temperature,
            class_averaging: true,
            class_complement: true,
        }
        .forward_views(z1, z2, &case.labels, p)
        .double_value(&[])
    };
    let h = 1e-6;
    for (which, analytic) in [(0, &g1), (1, &g2), (2, &gp)] {
        let base = [&case.z1, &case.z2, &case.prototypes][which];
        let numel = base.numel() as i64;
        for idx in 0..numel {
            let mut inputs = [case.z1.copy(), case.z2.copy(), case.prototypes.copy()];
            let flat = |t: &Tensor| t.view([-1]);
            let _ = flat(&inputs[which]).get(idx).g_add_scalar_(h);
            let plus = loss_at(&inputs[0], &inputs[1], &inputs[2]);
            let _ = flat(&inputs[which]).get(idx).g_add_scalar_(-2.0 * h);
            let minus = loss_at(&inputs[0], &inputs[1], &inputs[2]);
            inputs[which] = base.copy();
            let numeric = (plus - minus) / (2.0 * h);
            let exact = analytic.view([-1]).double_value(&[idx]);
            assert!(
                (numeric - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                "input {which}, entry {idx}: finite difference {numeric} vs autograd {exact}"
            );
        }
    }
}

fn unit_rows(rows: i64, dim: i64) -> Tensor {
    let x = Tensor::randn([rows, dim], (Kind::Float, tch::Device::Cpu));
    &x / x.norm_scalaropt_dim(2, [1].as_slice(), true)
}

/// Most of 1000 classes absent and one class seen once: loss and gradients stay finite.
#[test]
fn bcl_is_finite_with_most_classes_absent() {
    tch::manual_seed(7);
    let num_classes = 1000;
    let labels = Tensor::from_slice(&[5i64, 5, 5, 999]);
    let z1 = unit_rows(4, 32).set_requires_grad(true);
    let z2 = unit_rows(4, 32).set_requires_grad(true);
    let p = unit_rows(num_classes, 32).set_requires_grad(true);
    for (averaging, complement) in [(true, true), (false, false), (true, false), (false, true)] {
        // A very low temperature makes exp() overflow without the row-maximum shift.
        let loss = BalancedContrastiveLoss {
            num_classes,
            temperature: 0.01,
            class_averaging: averaging,
            class_complement: complement,
        }
        .forward_views(&z1, &z2, &labels, &p);
        let grads = Tensor::run_backward(&[&loss], &[&z1, &z2, &p], false, false);
        assert!(loss.double_value(&[]).is_finite(), "loss not finite ({averaging}, {complement})");
        // Without class-complement the prototypes take no part and get no gradient.
        for g in grads.iter().filter(|g| g.defined()) {
            assert!(bool::try_from(g.isfinite().all()).unwrap(), "gradient not finite ({averaging}, {complement})");
        }
    }
}

/// Identical views of well-separated classes aligned with their prototypes give a smaller
/// loss than random features: the loss measures what it should.
#[test]
fn bcl_prefers_class_aligned_features() {
    tch::manual_seed(3);
    let num_classes = 4;
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 0, 1]);
    let prototypes = Tensor::eye(num_classes, (Kind::Float, tch::Device::Cpu));
    let aligned = prototypes.index_select(0, &labels);
    let random = unit_rows(6, num_classes);
    let loss = |z: &Tensor| {
        BalancedContrastiveLoss { num_classes, temperature: 0.1, class_averaging: true, class_complement: true }
            .forward_views(z, z, &labels, &prototypes)
            .double_value(&[])
    };
    assert!(loss(&aligned) < loss(&random) - 1.0, "aligned {} vs random {}", loss(&aligned), loss(&random));
}

/// ImageNet-LT has 115,846 training images, iNaturalist 2018 437,513: more than float16's
/// largest number (65,504). The log-prior must not overflow with float16 logits (autocast).
#[test]
fn logit_adjustment_is_float32_and_finite_for_large_class_counts_and_float16_logits() {
    let counts: Vec<i64> = (0..8142).map(|k| if k < 1000 { 400 } else { 7 }).collect();
    assert!(counts.iter().sum::<i64>() > 437_000);
    let logits = Tensor::randn([4, 8142], (Kind::Float, tch::Device::Cpu)).to_kind(Kind::Half);
    let labels = Tensor::from_slice(&[0i64, 5, 1000, 8141]);
    let loss = logit_adjusted_cross_entropy(&logits, &labels, &Tensor::from_slice(&counts), 1.0);
    assert_eq!(loss.kind(), Kind::Float);
    assert!(loss.double_value(&[]).is_finite(), "{}", loss.double_value(&[]));
    assert_eq!(cross_entropy(&logits, &labels).kind(), Kind::Float);
}
