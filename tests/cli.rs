//! The `bcl` binary as a user runs it.
use std::process::{Command, Output};

fn bcl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("bcl runs")
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
    assert!(
        text.contains("libtorch_cuda loaded"),
        "libtorch_cuda.so must be linked in:\n{text}"
    );
    assert!(text.contains("CPU threads"), "{text}");
    assert!(text.contains("Fashion-MNIST /"), "{text}");
}

#[test]
fn overfit_batch_drives_the_loss_down() {
    let out = bcl(&[
        "overfit-batch",
        "--steps",
        "15",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let summary = text
        .lines()
        .find(|l| l.starts_with("total loss"))
        .expect("summary line");
    let numbers: Vec<f64> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (first, last) = (numbers[0], numbers[1]);
    assert!(last < 0.6 * first, "loss must fall: {summary}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, expected) in [
        (
            vec!["overfit-batch", "--device", "tpu"],
            "unknown device \"tpu\"",
        ),
        (vec!["overfit-batch", "--device", "cuda:3"], "device cuda:3"),
        (
            vec!["overfit-batch", "--root", "/nonexistent/fmnist"],
            "/nonexistent/fmnist",
        ),
        (
            vec!["overfit-batch", "--batch-size", "1"],
            "at least 2 images",
        ),
    ] {
        let out = bcl(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{args:?}: {err:?} must contain {expected:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}
