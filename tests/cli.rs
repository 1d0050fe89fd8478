//! The `bcl` binary as a user runs it.
use std::process::{Command, Output};

fn bcl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bcl")).args(args).env_remove("LD_LIBRARY_PATH").output().expect("bcl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs without LD_LIBRARY_PATH (RUNPATH) and has libtorch_cuda linked in (so a GPU is
/// used when present); libtorch is the pinned 2.11.0.
#[test]
fn doctor_reports_libtorch_cuda_linking_and_data() {
    let out = bcl(&["doctor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("libtorch     2.11.0"), "{text}");
    assert!(text.contains("libtorch_cuda loaded"), "libtorch_cuda.so must be linked in:\n{text}");
    assert!(text.contains("CPU threads"), "{text}");
    assert!(text.contains("Fashion-MNIST /"), "{text}");
}

#[test]
fn overfit_batch_drives_the_loss_down() {
    let out = bcl(&["overfit-batch", "--steps", "15", "--batch-size", "16", "--device", "cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let summary = text.lines().find(|l| l.starts_with("total loss")).expect("summary line");
    let numbers: Vec<f64> = summary.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (first, last) = (numbers[0], numbers[1]);
    assert!(last < 0.6 * first, "loss must fall: {summary}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, expected) in [
        (vec!["overfit-batch", "--device", "tpu"], "unknown device \"tpu\""),
        (vec!["overfit-batch", "--device", "cuda:3"], "device cuda:3"),
        (vec!["overfit-batch", "--root", "/nonexistent/fmnist"], "/nonexistent/fmnist"),
        (vec!["overfit-batch", "--batch-size", "1"], "at least 2 images"),
    ] {
        let out = bcl(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err:?} must contain {expected:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn data_stats_prints_the_long_tailed_counts_and_writes_a_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("counts.png");
    let out = bcl(&["data", "stats", "--imb-factor", "100", "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("14886 images, 10 classes, imbalance factor 100.0"), "{text}");
    assert!(text.contains("Ankle boot           60"), "{text}");
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (800, 400));
}

#[test]
fn data_preview_writes_a_grid_of_views() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("preview.png");
    let out = bcl(&["data", "preview", "--imb-factor", "10", "--samples", "5", "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(&png).unwrap();
    // 4 columns (image, views 0–2) and 5 rows of 96-pixel cells with 2-pixel borders.
    assert_eq!((img.width(), img.height()), (4 * 98 + 2, 5 * 98 + 2));
}

#[test]
fn data_commands_reject_bad_input_clearly() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("cats")).unwrap();
    image::RgbImage::new(40, 30).save(folder.path().join("cats/a.png")).unwrap();
    let root = folder.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["data", "stats", "--dataset", "cifar10"], "--root is required"),
        (vec!["data", "stats", "--dataset", "cifar10", "--root", "/nonexistent/c"], "/nonexistent/c"),
        (vec!["data", "stats", "--imb-factor", "0.5"], "imbalance factor 0.5"),
        (vec!["data", "preview", "--dataset", "folder", "--root", root, "--randaugment", "rand-x"], "rand-x"),
        (vec!["data", "bench", "--dataset", "folder", "--root", root], "fewer than one batch"),
    ] {
        let out = bcl(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(err.contains(expected) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_output_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["data", "stats", "--out", "/dev/null"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before bcl prints
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
