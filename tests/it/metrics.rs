//! The evaluation metrics on hand-made logits and samples with known answers.
use bcl::evaluation::score_logits;
use bcl::metrics::{Scored, confusion, evaluate, expected_calibration_error, precision};
use tch::Tensor;

fn sample(label: i64, predicted: i64, confidence: f64) -> Scored {
    Scored { label, predicted, in_top5: true, confidence, log_prob_label: 0.0 }
}

#[test]
fn logits_give_prediction_top5_confidence_and_log_likelihood() {
    // 7 classes. Sample 0: label 2 is the most probable. Sample 1: label 6 is 6th of 7.
    let logits = Tensor::from_slice(&[
        0.0f32, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, //
        6.0, 5.0, 4.0, 3.0, 2.0, 0.0, 1.0,
    ])
    .view([2, 7]);
    let labels = Tensor::from_slice(&[2i64, 6]);
    let scored = score_logits(&logits, &labels).unwrap();
    let z0 = 3f64.exp() + 1f64.exp() + 5.0;
    assert_eq!((scored[0].predicted, scored[0].in_top5), (2, true));
    assert!((scored[0].confidence - 3f64.exp() / z0).abs() < 1e-9);
    assert!((scored[0].log_prob_label - (3.0 - z0.ln())).abs() < 1e-9);
    let z1: f64 = [6.0f64, 5.0, 4.0, 3.0, 2.0, 0.0, 1.0].iter().map(|v| v.exp()).sum();
    assert_eq!((scored[1].predicted, scored[1].in_top5), (0, false));
    assert!((scored[1].log_prob_label - (1.0 - z1.ln())).abs() < 1e-9);

    let eval = evaluate(&scored, &[500, 500, 50, 50, 5, 5, 5]);
    assert_eq!((eval.top1, eval.top5), (0.5, Some(0.5)));
    assert!((eval.nll.unwrap() + (scored[0].log_prob_label + scored[1].log_prob_label) / 2.0).abs() < 1e-12);
    // Class 2 (medium) right, class 6 (few) wrong; no many-shot class was tested.
    assert_eq!((eval.many, eval.medium, eval.few), (None, Some(1.0), Some(0.0)));
}

#[test]
fn expected_calibration_error_over_15_bins() {
    // Bin (0.8667, 0.9333]: 4 samples at 0.9, 3 right: |3 − 3.6| = 0.6.
    // Bin (0.2667, 0.3333]: 2 samples at 0.3, both wrong: |0 − 0.6| = 0.6.
    // Bin (0.9333, 1]: 1 sample at 1.0 (the upper edge is in the last bin), right: 0.
    let mut scored = vec![sample(0, 0, 0.9), sample(0, 0, 0.9), sample(1, 1, 0.9), sample(1, 0, 0.9)];
    scored.extend([sample(0, 1, 0.3), sample(1, 0, 0.3), sample(1, 1, 1.0)]);
    assert!((expected_calibration_error(&scored) - 1.2 / 7.0).abs() < 1e-12);
    // Perfect calibration: confidence 1 and always right.
    assert_eq!(expected_calibration_error(&[sample(0, 0, 1.0), sample(1, 1, 1.0)]), 0.0);
    // Confidence 0.5 in 2 classes, right half the time: calibrated.
    assert!(expected_calibration_error(&[sample(0, 0, 0.5), sample(1, 0, 0.5)]).abs() < 1e-12);
}

#[test]
fn confusion_matrix_and_precision() {
    let scored = [sample(0, 0, 0.9), sample(0, 1, 0.9), sample(1, 1, 0.9), sample(2, 1, 0.9), sample(2, 2, 0.9)];
    let matrix = confusion(&scored, 4);
    assert_eq!(matrix, vec![vec![1, 1, 0, 0], vec![0, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 0, 0, 0]]);
    // Class 1 was predicted 3 times, once rightly; nothing was predicted as class 3.
    assert_eq!(precision(&matrix), vec![Some(1.0), Some(1.0 / 3.0), Some(1.0), None]);
    let eval = evaluate(&scored, &[200, 30, 10, 1]);
    assert_eq!(eval.per_class, vec![0.5, 1.0, 0.5, 0.0]);
    assert!((eval.top1 - 0.6).abs() < 1e-12);
}

/// A run folder with `config` and one logged epoch whose evaluation has top-1 `top1`.
fn fake_run(root: &std::path::Path, name: &str, config: &bcl::config::TrainConfig, top1: f64) -> std::path::PathBuf {
    let run = bcl::run::RunDir::create(&root.join(name), config).unwrap();
    run.write_class_counts(&["a".into(), "b, the rare".into()], &[500, 10]).unwrap();
    let eval = bcl::metrics::Evaluation {
        top1,
        top5: Some(1.0),
        per_class: vec![top1, top1 / 2.0],
        many: Some(top1),
        medium: None,
        few: Some(top1 / 2.0),
        ece: Some(0.05),
        nll: Some(0.3),
    };
    let record = bcl::metrics::EpochRecord {
        epoch: 0,
        lr: 0.1,
        train_ce: 1.0,
        train_contrastive: 0.0,
        train_accuracy: 0.5,
        eval,
        seconds: 1.0,
        samples_per_second: 1.0,
    };
    run.append_metrics(&record).unwrap();
    run.path
}

#[test]
fn summarize_makes_a_row_per_config_with_mean_and_std_over_seeds() {
    use bcl::config::{Preset, TrainConfig};
    use bcl::loss::LossConfig;
    use bcl::summary::{RunResult, markdown_table, mean_std};
    let dir = tempfile::tempdir().unwrap();
    let mut config = TrainConfig::preset(Preset::FashionMnistLt, dir.path().to_path_buf());
    config.epochs = 1;
    let mut runs = Vec::new();
    for (seed, top1) in [(0, 0.80), (1, 0.84), (2, 0.82)] {
        let c = TrainConfig { seed, loss: LossConfig::La { logit_adjustment: 1.0 }, ..config.clone() };
        runs.push(fake_run(dir.path(), &format!("la{seed}"), &c, top1));
    }
    runs.push(fake_run(
        dir.path(),
        "bcl0",
        &TrainConfig { loss: LossConfig::bcl(0.1, 2.0, 0.6), ..config.clone() },
        0.9,
    ));
    let results: Vec<RunResult> = runs.iter().map(|r| RunResult::read(r).unwrap()).collect();
    let table = markdown_table(&results).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    // Mean 82.0, sample std 2.0; the rarest classes (both, as there are 2) at half of that.
    assert!(rows[2].starts_with("| loss.kind = \"la\" | 0, 1, 2 | 1 | 82.0 ± 2.0 | 100.0 ± 0.0 |"), "{table}");
    assert!(rows[2].contains("| 61.5 ± 1.5 | 5.0 ± 0.0 |"), "{table}");
    let bcl = "loss.alpha = 2.0, loss.beta = 0.6, loss.class_averaging = true, loss.class_complement = true, \
               loss.kind = \"bcl\", loss.temperature = 0.1";
    assert!(rows[3].starts_with(&format!("| {bcl} | 0 | 1 | 90.0 |")), "{table}");
    assert_eq!((mean_std(&[]), mean_std(&[0.5])), ("–".to_string(), "50.0".to_string()));

    // A key set in one config only (a run started from --init) names the rows too.
    let init = bcl::init::InitSource { path: "weights.safetensors".into(), sha256: "ab".into() };
    let started = TrainConfig { init: Some(init), ..config.clone() };
    let with_init = [fake_run(dir.path(), "init0", &started, 0.7), runs[3].clone()];
    let results: Vec<RunResult> = with_init.iter().map(|r| RunResult::read(r).unwrap()).collect();
    let table = markdown_table(&results).unwrap();
    assert!(table.contains("| init.path = \"weights.safetensors\", init.sha256 = \"ab\" | 0 |"), "{table}");
    assert!(table.contains("| init.path = unset, init.sha256 = unset | 0 |"), "{table}");
}

#[test]
fn geometry_measures_the_distance_to_a_regular_simplex() {
    use bcl::geometry::{Features, measure};
    // Three classes at 0°, 120° and 240°, two unit samples each, spread ±10° around their
    // class direction: the class means form a regular simplex (cosine −1/2).
    let mut rows = Vec::new();
    for class in 0..3 {
        for spread in [-10.0f64, 10.0] {
            let angle = (120.0 * class as f64 + spread).to_radians();
            rows.extend([angle.cos() as f32, angle.sin() as f32]);
        }
    }
    let z = Tensor::from_slice(&rows).view([6, 2]);
    let features = Features { h: z.copy(), z, labels: Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2]) };
    // Prototypes crowded together: all within 20° of each other.
    let prototypes = Tensor::from_slice(&[1.0f32, 0.0, 0.94, 0.34, 0.94, -0.34]).view([3, 2]);
    let g = measure(&features, &prototypes, &[100, 10, 1]).unwrap();
    assert_eq!((g.classes, g.simplex_cosine), (3, -0.5));
    assert!(g.class_means.max_deviation < 1e-6 && (g.class_means.mean_cosine + 0.5).abs() < 1e-6, "{g:?}");
    assert_eq!((g.class_means.pairs, g.class_means_head.pairs, g.class_means_tail.pairs), (3, 0, 1));
    // A class mean of two unit vectors 20° apart has norm cos 10°.
    assert!(g.class_mean_norms.iter().all(|n| (n - 10f64.to_radians().cos()).abs() < 1e-5));
    assert!(g.prototypes.mean_cosine > 0.7 && g.prototypes.max_deviation > 1.2, "{:?}", g.prototypes);
}
