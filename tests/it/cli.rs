//! The `bcl` binary as a user runs it.

use std::path::Path;
use std::process::Command;

use crate::common::{bcl, path, stderr, stdout, tiny_fashion_mnist};

/// Runs without LD_LIBRARY_PATH (RUNPATH) and has libtorch_cuda linked in (so a GPU is
/// used when present); libtorch is the pinned 2.11.0.
#[test]
fn doctor_reports_libtorch_cuda_linking_and_data() {
    let out = bcl(&["doctor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("libtorch     2.11.0"), "{text}");
    assert!(text.contains("libtorch_cuda loaded"), "libtorch_cuda.so must be linked in:\n{text}");
    // setup.sh installs the CUDA headers, so build.rs compiles the NCCL process group in.
    assert!(text.contains("c10d NCCL process group built in"), "{text}");
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
        (vec!["overfit-batch", "--device", "tpu"], "invalid value 'tpu' for '--device <DEVICE>': expected auto, cpu"),
        (vec!["overfit-batch", "--device", "cuda:3"], "invalid value 'cuda:3' for '--device <DEVICE>'"),
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
    assert_eq!(image::open(&png).unwrap().width(), 900);
    // Without --out it writes nothing, wherever it runs.
    let o = Command::new(env!("CARGO_BIN_EXE_bcl")).args(["data", "stats"]).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success() && !stdout(&o).contains("wrote"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only counts.png");
}

/// `bcl data subset` against LDAM-DRW's own code (tests/support/ldam_subset.py, numpy from
/// the venv) on the labels of `labels_file`, with `classes` classes.
fn assert_subset_is_ldams(args: &[&str], labels_file: &Path, classes: usize, rho: &str) -> Vec<usize> {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("kept.txt");
    let out = bcl(&[args, &["--imb-factor", rho, "--out", path(&out_file)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Vec<usize> = std::fs::read_to_string(&out_file).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let numpy = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/support/ldam_subset.py"))
        .args([path(labels_file), &classes.to_string(), rho, "0"])
        .output()
        .expect("the venv's python (scripts/setup.sh installs numpy there)");
    assert!(numpy.status.success(), "{}", stderr(&numpy));
    let theirs: Vec<usize> = stdout(&numpy).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ours, theirs, "{args:?}: the kept indices, in order");
    ours
}

#[test]
fn data_subset_keeps_the_images_ldams_code_keeps() {
    let (fashion, _) = bcl::data::fashion_mnist_dir();
    let kept = assert_subset_is_ldams(
        &["data", "subset", "--dataset", "fashion-mnist"],
        &fashion.join("train-labels-idx1-ubyte.gz"),
        10,
        "100",
    );
    assert_eq!(kept.len(), 14_886);

    // Classes of different sizes, as in real MNIST: each keeps min(its size, its quota).
    let dir = tempfile::tempdir().unwrap();
    let sizes = [40usize, 20, 25, 30, 29, 35, 28, 27, 26, 40];
    let labels: Vec<u8> = (0..40).flat_map(|i| (0..10u8).filter(move |&c| i < sizes[c as usize])).collect();
    let idx = |magic: u8, dims: &[u32], payload: Vec<u8>| {
        let mut bytes = vec![0, 0, 8, magic];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.extend(payload);
        bytes
    };
    let n = labels.len() as u32;
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), idx(3, &[n, 28, 28], vec![7; 784 * n as usize]))
        .unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), idx(1, &[n], labels.clone())).unwrap();
    let root = path(dir.path());
    let args = ["data", "subset", "--dataset", "mnist", "--root", root];
    assert_subset_is_ldams(&args, &dir.path().join("train-labels-idx1-ubyte"), 10, "2");
    // n_max = 300 / 10 = 30: class 1 (20 images) falls short of its quota of ⌊30 · 0.5^(1/9)⌋ = 27.
    let out = bcl(&[
        "data",
        "stats",
        "--dataset",
        "mnist",
        "--root",
        root,
        "--imb-factor",
        "2",
        "--out",
        &format!("{root}/c.png"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1: the profile asks for 27 images, the class has 20: keeps all 20"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_user_error_is_one_line_and_exit_code_1_without_a_backtrace() {
    let out = Command::new(env!("CARGO_BIN_EXE_bcl"))
        .args(["train", "--preset", "cifar10-lt", "--root", "/nonexistent/cifar"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: ") && err.contains("/nonexistent/cifar"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
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
    for class in ["cats", "dogs"] {
        std::fs::create_dir(folder.path().join(class)).unwrap();
        image::RgbImage::new(40, 30).save(folder.path().join(class).join("a.png")).unwrap();
    }
    let root = folder.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["data", "stats", "--dataset", "cifar10"], "--root is required"),
        (vec!["data", "stats", "--dataset", "cifar10", "--root", "/nonexistent/c"], "/nonexistent/c"),
        (vec!["data", "stats", "--imb-factor", "0.5"], "imbalance factor 0.5"),
        (
            vec!["data", "preview", "--dataset", "folder", "--root", root, "--randaugment", "rand-x", "--out", "p.png"],
            "rand-x",
        ),
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

#[test]
fn train_eval_and_predict_on_a_tiny_long_tailed_fashion_mnist() {
    let data = tiny_fashion_mnist(60, 20);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let common = ["--root", path(data.path()), "--imb-factor", "10", "--batch-size", "16", "--device", "cpu"];
    let mut args = vec!["train", "--epochs", "2", "--out", path(&run)];
    args.extend(common);
    let o = bcl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("test top-1") && text.contains("Ankle boot"), "{text}");
    for file in
        ["config.toml", "class_counts.csv", "metrics.jsonl", "last.safetensors", "best.safetensors", "per_class.csv"]
    {
        assert!(run.join(file).is_file(), "{file} missing: {text}");
    }
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 2);

    // Training again into the same folder is refused; resuming a finished run does nothing.
    let o = bcl(&args);
    assert!(!o.status.success() && stderr(&o).contains("already holds a run"), "{}", stderr(&o));
    let o = bcl(&["train", "--resume", path(&run), "--device", "cpu"]);
    assert!(o.status.success() && stdout(&o).contains("already finished all 2 epochs"), "{}", stdout(&o));

    let report = out.path().join("report");
    let o = bcl(&["eval", "--checkpoint", &format!("{}/best", path(&run)), "--out", path(&report), "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("test top-1") && text.contains("Trouser"), "{text}");
    assert!(text.contains("top-5") && text.contains("ECE") && text.contains("NLL"), "{text}");
    // Post-hoc corrections, beside the plain result: logit adjustment with τ = 0 is the plain
    // model; τ-norm does nothing to the cosine classifier and says so.
    let o = bcl(&[
        "eval",
        "--checkpoint",
        &format!("{}/best", path(&run)),
        "--out",
        path(&report),
        "--device",
        "cpu",
        "--logit-adjust",
        "0",
        "--tau-norm",
        "1",
    ]);
    let text = stdout(&o);
    assert!(o.status.success() && text.contains("cosine classifier normalises"), "{text}{}", stderr(&o));
    let row = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split_whitespace().rev().take(6).collect::<Vec<_>>()
    };
    assert_eq!(row("plain"), row("logit-adjusted, τ = 0"), "{text}");
    let csv = std::fs::read_to_string(report.join("per_class.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "{csv}");
    assert!(csv.starts_with("class,name,train_images,group,test_accuracy,precision\n"), "{csv}");
    let confusion = std::fs::read_to_string(report.join("confusion.csv")).unwrap();
    let rows: Vec<&str> = confusion.lines().collect();
    assert_eq!((rows.len(), rows[1].split(',').count()), (11, 11), "{confusion}");
    let total: u64 = rows[1..].iter().flat_map(|r| r.split(',').skip(1)).map(|n| n.parse::<u64>().unwrap()).sum();
    assert_eq!(total, 200, "every test image once");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("eval.json")).unwrap()).unwrap();
    assert_eq!((&summary["split"], &summary["images"]), (&"test".into(), &200.into()));
    assert!(summary["top5"].as_f64().unwrap() >= summary["top1"].as_f64().unwrap());
    assert!(summary["ece"].as_f64().is_some() && summary["groups"]["few"] == "few-shot (<20)", "{summary}");
    for png in ["per_class_accuracy.png", "confusion.png", "reliability.png", "training_curves.png"] {
        assert!(image::open(report.join(png)).is_ok(), "{png}");
        assert!(image::open(run.join(png)).is_ok(), "training writes {png} too");
    }

    // A test image as a PNG, classified with probabilities that sum to at most 1.
    let images = bcl::data::idx::read_idx(&data.path().join("t10k-images-idx3-ubyte")).unwrap();
    let png = out.path().join("item.png");
    image::GrayImage::from_raw(28, 28, images.data[..784].to_vec()).unwrap().save(&png).unwrap();
    let o = bcl(&["predict", "--checkpoint", path(&run), "--top-k", "3", "--device", "cpu", path(&png)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let probabilities: Vec<f64> =
        stdout(&o).lines().skip(1).map(|l| l.trim().split('%').next().unwrap().trim().parse().unwrap()).collect();
    assert_eq!(probabilities.len(), 3, "{}", stdout(&o));
    assert!(probabilities.windows(2).all(|w| w[0] >= w[1]) && probabilities.iter().sum::<f64>() <= 100.01);
}

#[test]
fn training_and_evaluation_reject_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let pickle = file("model.pth", b"PK\x03\x04 a torch.save zip");
    let garbage = file("weights.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}");
    let unknown_key = file("typo.toml", b"epochz = 3\n");
    let nan_lr = file("nan.toml", b"[schedule]\nbase_lr = nan\n");
    let not_a_run = dir.path().join("empty");
    std::fs::create_dir(&not_a_run).unwrap();
    for (args, expected) in [
        (vec!["train", "--preset", "cifar1000-lt"], "unknown preset \"cifar1000-lt\""),
        (vec!["train", "--preset", "cifar10-lt"], "--root is required"),
        (vec!["train", "--loss", "focal"], "invalid value 'focal'"),
        (vec!["train", "--lr=-1"], "must be positive"),
        (vec!["train", "--lr", "NaN"], "not a finite number"),
        (vec!["train", "--config", &unknown_key], "unknown field `epochz`"),
        (vec!["train", "--config", &nan_lr], "schedule.base_lr = NaN"),
        (vec!["train", "--resume", "/nonexistent/run"], "run folder /nonexistent/run does not exist"),
        (vec!["train", "--resume", path(&not_a_run)], "not a bcl run folder"),
        (vec!["train", "--resume", path(&not_a_run), "--lr", "0.1"], "cannot be used with '--lr <LR>'"),
        // The preset has a default; given with --resume, it is refused rather than ignored.
        (vec!["train", "--resume", path(&not_a_run), "--preset", "cifar100-lt", "--epochs", "2"], "with '--preset"),
        (vec!["train", "--auto-resume"], "--out <OUT>"),
        (vec!["train", "--stop-signal", "KILL"], "not a signal a run can stop on"),
        (vec!["eval", "--checkpoint", &pickle], "PyTorch pickle checkpoint"),
        (vec!["eval", "--checkpoint", &garbage], "not a valid safetensors file"),
        (vec!["eval", "--checkpoint", "/nonexistent/best"], "/nonexistent/best.safetensors"),
    ] {
        let out = bcl(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = stderr(&out);
        assert!(err.contains(expected) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A checkpoint that cannot be written (here: a file-size limit below its size, as a full
/// disk would) is a clear error, and the previous `last` stays whole and loadable.
#[test]
fn a_checkpoint_that_cannot_be_written_leaves_the_previous_one_intact() {
    use std::os::unix::process::CommandExt;
    let data = tiny_fashion_mnist(30, 10);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let common = ["--root", path(data.path()), "--imb-factor", "5", "--batch-size", "16", "--device", "cpu"];
    let mut args = vec!["train", "--epochs", "1", "--out", path(&run)];
    args.extend(common);
    assert!(bcl(&args).status.success());
    // Two more epochs: rewrite the config, then resume under the size limit.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap().replace("epochs = 1", "epochs = 3");
    std::fs::write(run.join("config.toml"), config).unwrap();
    let before = std::fs::read(run.join("last.safetensors")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bcl"));
    command.args(["train", "--resume", path(&run), "--device", "cpu"]);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
    let o = command.output().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("last.safetensors: File too large") && err.contains("is unchanged"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(run.join("last.safetensors")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let o = bcl(&["eval", "--checkpoint", path(&run.join("last")), "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// SIGTERM and SIGINT checkpoint the step reached and exit successfully, saying how to
/// continue; the run then resumes from there.
#[test]
fn stop_signals_save_and_exit_with_128_plus_the_signal() {
    use std::process::Stdio;
    let data = tiny_fashion_mnist(30, 10);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bcl"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let root = path(data.path());
    let first =
        ["train", "--root", root, "--imb-factor", "5", "--batch-size", "8", "--epochs", "500", "--device", "cpu"];
    let mut args = first.to_vec();
    args.extend(["--out", path(&run)]);
    for (signal, resume) in [(libc::SIGTERM, false), (libc::SIGINT, true), (libc::SIGUSR1, true)] {
        let child = if resume { spawn(&["train", "--resume", path(&run), "--device", "cpu"]) } else { spawn(&args) };
        // Signal once the run has begun training (after a first epoch when starting anew).
        let began = std::time::Instant::now();
        while !run.join("last.safetensors").exists() || began.elapsed().as_millis() < 1500 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(began.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        }
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let o = child.wait_with_output().unwrap();
        let text = stdout(&o);
        assert_eq!(o.status.code(), Some(128 + signal), "signal {signal}: {}\n{}", text, stderr(&o));
        assert!(text.contains("stopped at epoch") && text.contains("Continue with: bcl train --resume"), "{text}");
    }
    let saved = bcl::checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert!(saved.metadata["state"].contains("\"epoch\":"), "{}", saved.metadata["state"]);
}

/// The requeue pattern of batch schedulers: the same command line every time. The first
/// start trains; a later one continues the run; a changed command is refused.
#[test]
fn auto_resume_continues_the_run_its_folder_holds() {
    let data = tiny_fashion_mnist(10, 5);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let args = |epochs: &str, lr: &str| {
        let (root, run) = (path(data.path()).to_string(), path(&run).to_string());
        let fixed = ["train", "--root", &root, "--imb-factor", "2", "--batch-size", "8", "--device", "cpu"];
        let mut all: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        all.extend(
            ["--epochs", epochs, "--lr", lr, "--out", &run, "--auto-resume", "--max-steps", "3"].map(String::from),
        );
        all
    };
    let bcl_owned = |args: Vec<String>| bcl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let first = bcl_owned(args("2", "0.05"));
    assert!(first.status.success() && stdout(&first).starts_with("run "), "{}", stderr(&first));
    let again = bcl_owned(args("2", "0.05"));
    assert!(again.status.success() && stdout(&again).starts_with("resuming "), "{}{}", stdout(&again), stderr(&again));
    let progress = bcl::train::progress(&bcl::run::RunDir::open(&run).unwrap()).unwrap().unwrap();
    assert_eq!((progress.epoch, progress.step), (0, 6), "3 steps, then 3 more");
    let changed = bcl_owned(args("2", "0.1"));
    assert!(!changed.status.success() && stderr(&changed).contains("schedule differ"), "{}", stderr(&changed));
}

/// A finished run given more epochs continues; its schedule is recomputed for them, as
/// timm does; it cannot be cut below what it trained.
#[test]
fn a_finished_run_can_be_extended_with_more_epochs() {
    let data = tiny_fashion_mnist(10, 5);
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let root = path(data.path());
    let first = ["train", "--root", root, "--imb-factor", "2", "--batch-size", "8", "--epochs", "2", "--device", "cpu"];
    let o = bcl(&[&first[..], &["--out", path(&run)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bcl(&["train", "--resume", path(&run), "--epochs", "3", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = bcl::run::RunDir::open(&run).unwrap();
    let config = dir.config().unwrap();
    assert_eq!(config.epochs, 3, "the run folder's config says 3 epochs now");
    let records = dir.read_metrics().unwrap();
    assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(records[2].lr, config.schedule.lr(2, 3), "epoch 3's lr is the 3-epoch schedule's");
    let o = bcl(&["train", "--resume", path(&run), "--epochs", "1", "--device", "cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has trained 3 epochs already"), "{}", stderr(&o));
}

/// The paper's sensitivity study from the command line: `--temperature` and `--beta` land in
/// the config; values that cannot train are refused.
#[test]
fn temperature_and_beta_flags_set_the_contrastive_loss() {
    let idx = tiny_fashion_mnist(4, 2);
    let root = ["--root", path(idx.path())];
    let o = bcl(&[&["config", "show", "--temperature", "0.07", "--beta", "0.35"][..], &root].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let config: toml::Table = toml::from_str(&stdout(&o)).unwrap();
    let loss = config["loss"].as_table().unwrap();
    assert_eq!((loss["temperature"].as_float(), loss["beta"].as_float()), (Some(0.07), Some(0.35)));
    let o = bcl(&[&["config", "show", "--temperature", "0"][..], &root].concat());
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("loss.temperature = 0 must be a positive number"), "{err}");
    let o = bcl(&[&["config", "show", "--loss", "la", "--beta", "0.5"][..], &root].concat());
    assert!(!o.status.success() && stderr(&o).contains("the la loss has no beta to set"), "{}", stderr(&o));
}
