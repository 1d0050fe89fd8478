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
    assert_eq!((eval.top1, eval.top5), (0.5, 0.5));
    assert!((eval.nll + (scored[0].log_prob_label + scored[1].log_prob_label) / 2.0).abs() < 1e-12);
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
