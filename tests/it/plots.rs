//! Every chart of `bcl::plot` drawn from hand-made data, the small and the degenerate cases
//! included: a PNG of the stated size comes out, with text (dark pixels) and colour on it.
use bcl::metrics::{CalibrationBin, EpochRecord, Evaluation};
use bcl::plot::{self, HeatMap};

/// The PNG at `path`: its size, and whether it has dark (text, axes) and coloured pixels.
fn look(path: &std::path::Path) -> ((u32, u32), bool, bool) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let dark = image.pixels().any(|p| p.0.iter().all(|&c| c < 60));
    let coloured = image.pixels().any(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60);
    (image.dimensions(), dark, coloured)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|c| format!("class {c}")).collect()
}

fn record(epoch: usize) -> EpochRecord {
    let eval = Evaluation {
        top1: 0.1 * epoch as f64,
        top5: Some(0.5),
        per_class: vec![0.5; 3],
        many: Some(0.6),
        medium: None,
        few: Some(0.2),
        ece: Some(0.1),
        nll: Some(1.0),
    };
    EpochRecord {
        epoch,
        lr: 0.1 / (1 + epoch) as f64,
        train_ce: 2.0 / (1 + epoch) as f64,
        train_contrastive: 5.0,
        train_accuracy: 0.3,
        eval,
        seconds: 1.0,
        samples_per_second: 10.0,
    }
}

#[test]
fn every_chart_draws_with_text_and_colour() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    for epochs in [1, 12] {
        let history: Vec<EpochRecord> = (0..epochs).map(record).collect();
        plot::training_curves(&history, "val", &at("curves.png")).unwrap();
        assert_eq!(look(&at("curves.png")), ((900, 820), true, true), "{epochs} epochs");
    }
    for classes in [1, 10, 150] {
        let counts: Vec<i64> = (0..classes as i64).map(|c| 5000 / (c + 1)).collect();
        let accuracy: Vec<f64> = (0..classes).map(|c| c as f64 / classes as f64).collect();
        plot::per_class_accuracy(&names(classes), &counts, &accuracy, "test", &at("per_class.png")).unwrap();
        assert_eq!(look(&at("per_class.png")), ((900, 580), true, true), "{classes} classes");
        plot::class_counts(&names(classes), &counts, &at("counts.png")).unwrap();
        let (size, dark, coloured) = look(&at("counts.png"));
        assert!(size.0 == 900 && dark && coloured, "{classes} classes");
        for range in [(0.0, 1.0), (-1.0, 1.0)] {
            let matrix: Vec<Vec<f64>> = (0..classes)
                .map(|i| (0..classes).map(|j| if i == j { 1.0 } else { range.0 / 2.0 }).collect())
                .collect();
            let class_names = names(classes);
            let spec = HeatMap { title: "t".into(), x_desc: "x", y_desc: "y", class_names: &class_names, range };
            plot::heat_map(&matrix, &spec, &at("heat.png")).unwrap();
            let (_, dark, coloured) = look(&at("heat.png"));
            assert!(dark && coloured, "{classes} classes, {range:?}");
        }
    }
    let mut bins = [CalibrationBin::default(); 15];
    bins[14] = CalibrationBin { samples: 10, correct: 8, confidence_sum: 9.7 };
    bins[7] = CalibrationBin { samples: 4, correct: 3, confidence_sum: 2.0 };
    plot::reliability_diagram(&bins, 0.05, "test", &at("reliability.png")).unwrap();
    assert_eq!(look(&at("reliability.png")), ((720, 680), true, true));
}

/// The bins of the reliability diagram are the ones the ECE is computed from.
#[test]
fn calibration_bins_hold_what_the_ece_sums() {
    use bcl::metrics::{Scored, calibration_bins, expected_calibration_error};
    let sample =
        |label, predicted, confidence| Scored { label, predicted, in_top5: true, confidence, log_prob_label: 0.0 };
    let scored = [sample(0, 0, 0.95), sample(1, 0, 0.95), sample(1, 1, 0.30), sample(2, 2, 1.0)];
    let bins = calibration_bins(&scored);
    assert_eq!((bins[14].samples, bins[14].correct), (3, 2));
    assert!((bins[14].confidence_sum - 2.9).abs() < 1e-12);
    assert_eq!(bins[4], CalibrationBin { samples: 1, correct: 1, confidence_sum: 0.30 });
    assert_eq!(bins.iter().map(|b| b.samples).sum::<usize>(), 4);
    assert_eq!(bins[14].accuracy(), Some(2.0 / 3.0));
    assert_eq!(bins[0].mean_confidence(), None);
    assert!((expected_calibration_error(&scored) - (0.9f64 + 0.7) / 4.0).abs() < 1e-12);
}
