//! Bad inputs as a careless user or an attacker gives them (issue 31's campaign): each is
//! refused with one line naming the file and the problem, exit status 1 (2 for clap's
//! argument errors), never a panic, a hang or a silently wrong result.

use std::path::{Path, PathBuf};
use std::process::Output;

use bcl::checkpoint;
use bcl::run::RunDir;

use crate::common::{bcl, path, stderr, stdout};

/// `bcl args` fails with exit `code` and a message holding `expected`, in one line (clap's
/// usage hint aside); prints the command and its message for the record.
fn refused(args: &[&str], code: i32, expected: &str) -> Output {
    refused_in_lines(args, code, expected, 1)
}

/// [`refused`] in `lines` lines: `predict` names each bad image, then sums up.
fn refused_in_lines(args: &[&str], code: i32, expected: &str, lines: usize) -> Output {
    let o = bcl(args);
    let message = stderr(&o);
    println!("$ bcl {}\n{}(exit {:?})", args.join(" "), message, o.status.code());
    assert_eq!(o.status.code(), Some(code), "{}{message}", stdout(&o));
    assert!(message.contains(expected), "{expected:?} in {message}");
    let clap_hints = ["Usage:", "For more information", "  tip:"];
    let count = message.lines().filter(|l| !l.is_empty() && !clap_hints.iter().any(|h| l.starts_with(h))).count();
    assert_eq!(count, lines, "{lines} line(s): {message}");
    assert!(!message.contains("panicked") && !message.contains("stack backtrace"), "{message}");
    o
}

/// A 16×16 PNG at `file` (its folder made).
fn png(file: &Path, side: u32, shade: u8) {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(side, side, |x, y| image::Luma([shade ^ (x * 16 + y) as u8])).save(file).unwrap();
}

/// Three class folders (a, b, c) of `per_class` 16×16 PNGs under `root`.
fn class_folders(root: &Path, names: [&str; 3], per_class: usize) {
    for (k, name) in names.iter().enumerate() {
        for i in 0..per_class {
            png(&root.join(name).join(format!("{i}.png")), 16, (k * 70 + i) as u8);
        }
    }
}

/// An initialised run on `data` (`--max-steps 0`): a checkpoint to tamper with.
fn initialised_run(data: &Path, out: &Path) -> PathBuf {
    let o = bcl(&[
        "train",
        "--dataset",
        "folder",
        "--root",
        path(data),
        "--batch-size",
        "4",
        "--max-steps",
        "0",
        "--device",
        "cpu",
        "--out",
        path(out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("last.safetensors")
}

#[test]
fn crashes_and_hangs_are_one_line_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A list label far past the class count: refused before anything is sized by it.
    png(&root.join("img/0.png"), 16, 0);
    png(&root.join("img/1.png"), 16, 1);
    std::fs::write(root.join("huge.txt"), "img/0.png 0\nimg/1.png 99999999999\n").unwrap();
    let list = ["train", "--dataset", "list", "--root", path(root), "--device", "cpu"];
    refused(
        &[&list[..], &["--train-list", "huge.txt"]].concat(),
        1,
        "line 2: label 99999999999, but the list has 2 lines",
    );

    // IDX images of 0×0 pixels (a valid IDX header).
    let idx = root.join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    let mut images = vec![0, 0, 8, 3];
    [200u32, 0, 0].iter().for_each(|d| images.extend(d.to_be_bytes()));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(200u32.to_be_bytes());
    labels.extend([0u8; 200]);
    for split in ["train", "t10k"] {
        std::fs::write(idx.join(format!("{split}-images-idx3-ubyte")), &images).unwrap();
        std::fs::write(idx.join(format!("{split}-labels-idx1-ubyte")), &labels).unwrap();
    }
    refused(&["train", "--root", path(&idx), "--device", "cpu"], 1, "its images are 0×0 pixels");

    // Counts of 0 where at least 1 is needed: refused as the flag is read.
    refused(&["predict", "--checkpoint", "x", "--top-k", "0", "y.png"], 2, "must be at least 1");
    refused(&["predict", "--checkpoint", "x", "--batch-size", "0", "y.png"], 2, "must be at least 1");
    refused(&["overfit-batch", "--steps", "0"], 2, "must be at least 1");

    // A FIFO with no writer as an image, a list and a checkpoint: refused before any open.
    let fifo = root.join("pipe.png");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let data = root.join("three");
    class_folders(&data, ["a", "b", "c"], 4);
    let checkpoint = initialised_run(&data, &root.join("run"));
    refused_in_lines(&["predict", "--checkpoint", path(&checkpoint), path(&fifo)], 1, "is not a regular file", 2);
    refused(&[&list[..], &["--train-list", "pipe.png"]].concat(), 1, "list file");
    refused(&["eval", "--checkpoint", path(&fifo)], 1, "is not a regular file");
    // A FIFO as the file an export writes: refused, not blocked on (TorchScript, ONNX) nor
    // replaced (safetensors).
    let venv_python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    for format in ["safetensors", "torchscript", "onnx"] {
        let export = ["export", path(&checkpoint), "--format", format, "--out", path(&fifo), "--python"];
        refused(&[&export[..], &[path(&venv_python)]].concat(), 1, "pipe.png is not a regular file (a FIFO or device)");
    }
    std::fs::write(root.join("zero.txt"), "/dev/zero 0\nimg/0.png 1\n").unwrap();
    refused(&[&list[..], &["--train-list", "zero.txt"]].concat(), 1, "/dev/zero is not a regular file");

    // TorchScript to a place that cannot be written: libtorch's C++ frames left out.
    let o = refused(
        &["export", path(&checkpoint), "--format", "torchscript", "--out", "/proc/x.pt"],
        1,
        "cannot write /proc/x.pt",
    );
    assert!(!stderr(&o).contains("frame #"), "{}", stderr(&o));
}

#[test]
fn silently_wrong_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("three");
    class_folders(&data, ["cat", "dog", "eel"], 6);
    let last = initialised_run(&data, &root.join("run"));

    // A JPEG cut to 60%: refused by name, as PIL refuses it.
    let photo = root.join("photo.jpg");
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 90])).save(&photo).unwrap();
    let bytes = std::fs::read(&photo).unwrap();
    std::fs::write(&photo, &bytes[..bytes.len() * 6 / 10]).unwrap();
    refused_in_lines(&["predict", "--checkpoint", path(&last), path(&photo)], 1, "photo.jpg: the JPEG is truncated", 2);

    // An empty, a corrupt and a truncated image among class folders: all named when the data
    // opens (not when the sampler draws them, hours in); --skip-bad leaves them out.
    let flawed = root.join("flawed");
    class_folders(&flawed, ["a", "b", "c"], 4);
    std::fs::write(flawed.join("a/empty.png"), b"").unwrap();
    std::fs::write(flawed.join("b/noise.png"), b"not an image at all").unwrap();
    std::fs::copy(&photo, flawed.join("c/cut.jpg")).unwrap();
    let show = ["config", "show", "--dataset", "folder", "--root", path(&flawed)];
    let o = refused_in_lines(&show, 1, "3 of 15 images under", 5);
    for bad in
        ["a/empty.png: the file is empty", "b/noise.png: not an image format", "c/cut.jpg: the JPEG is truncated"]
    {
        assert!(stderr(&o).contains(bad), "{bad} in {}", stderr(&o));
    }
    let o = bcl(&[&show[..], &["--skip-bad"]].concat());
    assert!(o.status.success() && stderr(&o).contains("left out (--skip-bad)"), "{}", stderr(&o));
    assert!(stdout(&o).contains("skip_bad = true"), "the run's config keeps it for --resume");
    // A class whose every image is unreadable: named, not trained as an empty class.
    std::fs::write(flawed.join("a/empty2.png"), b"").unwrap();
    for i in 0..4 {
        std::fs::write(flawed.join(format!("a/{i}.png")), b"").unwrap();
    }
    let o = bcl(&[&show[..], &["--skip-bad"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("with its unreadable images left out (--skip-bad), class a has no image"));

    // A dangling link in a class folder is named, not dropped.
    let linked = root.join("linked");
    class_folders(&linked, ["a", "b", "c"], 3);
    std::os::unix::fs::symlink(root.join("gone.png"), linked.join("b/ghost.png")).unwrap();
    refused(&["config", "show", "--dataset", "folder", "--root", path(&linked)], 1, "ghost.png does not exist");

    // Non-finite weights; class names that do not fit the weights.
    let mut saved = checkpoint::load(&last).unwrap();
    let mut fc = saved.weights["fc.weight"].shallow_clone();
    saved.weights.insert("fc.weight".into(), fc.fill_diagonal_(f64::NAN, false));
    let nan = root.join("nan.safetensors");
    checkpoint::save(&nan, &saved).unwrap();
    refused(
        &["predict", "--checkpoint", path(&nan), path(&data.join("cat/0.png"))],
        1,
        "tensor fc.weight holds NaN or infinite values",
    );
    let mut saved = checkpoint::load(&last).unwrap();
    saved.metadata.insert("class_names".into(), r#"["a","b","c","d","e"]"#.into());
    let five = root.join("five.safetensors");
    checkpoint::save(&five, &saved).unwrap();
    refused(&["predict", "--checkpoint", path(&five), path(&data.join("cat/0.png"))], 1, "names 5 classes");

    // Other data with as many classes under other names.
    let other = root.join("other");
    class_folders(&other, ["ant", "bee", "cow"], 6);
    let eval = ["eval", "--checkpoint", path(&last), "--dataset", "folder", "--root", path(&other), "--device", "cpu"];
    refused(&eval, 1, "has the classes ant, bee, cow; the model was trained on cat, dog, eel");

    // A second process training in a run folder that one already trains in.
    let run = RunDir::open(&root.join("run")).unwrap();
    let held = run.lock().unwrap();
    let resume = ["train", "--resume", path(&run.path), "--epochs", "2"];
    refused(&resume, 1, &format!("is in use: bcl process {} trains in it", std::process::id()));
    drop(held);

    // ρ printed as it applies: --imb-factor on a folder trains (and says) a subset.
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&data), "--imb-factor", "3"]);
    assert!(stderr(&o).contains("long-tailed subset ρ = 3"), "{}", stderr(&o));
}

#[test]
fn unclear_messages_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = root.join("three");
    class_folders(&data, ["a", "b", "c"], 4);

    // A list starting with a byte-order mark reads as one without.
    std::fs::write(root.join("bom.txt"), "\u{feff}three/a/0.png 0\nthree/b/0.png 1\nthree/c/0.png 2\n").unwrap();
    let o = bcl(&["config", "show", "--dataset", "list", "--root", path(root), "--train-list", "bom.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // --resume of a file; a negative learning rate; a folder as --out of a file.
    std::fs::write(root.join("afile.txt"), "").unwrap();
    refused(&["train", "--resume", path(&root.join("afile.txt"))], 1, "afile.txt is a file, not a run folder");
    refused(&["config", "show", "--lr", "-0.1"], 1, "schedule.base_lr = -0.1 must be positive");
    let last = initialised_run(&data, &root.join("run"));
    refused(&["features", "--checkpoint", path(&last), "--out", path(root)], 1, "is a folder");
    assert!(
        !root.join("..partial").exists()
            && std::fs::read_dir(root)
                .unwrap()
                .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".partial") })
    );

    // --resume with a preset: refused, not ignored.
    refused(&["train", "--resume", path(&root.join("run")), "--preset", "cifar100-lt"], 2, "cannot be used with");

    // summarize of a run whose metrics are not JSON.
    std::fs::write(root.join("run/metrics.jsonl"), "not json\n").unwrap();
    refused(&["summarize", path(&root.join("run"))], 1, "metrics.jsonl, line 1: not an epoch record of bcl");

    // A root with test/ alone.
    let only_test = root.join("only-test");
    class_folders(&only_test.join("test"), ["a", "b", "c"], 2);
    refused(&["config", "show", "--dataset", "folder", "--root", path(&only_test)], 1, "has test/ but no train/");

    // One 1×1 image among 16×16 ones: the decision names the sizes, not the first file's.
    png(&data.join("a/!tiny.png"), 1, 0);
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&data)]);
    assert!(stderr(&o).contains("images of several sizes, 1×1 to 16×16"), "{}", stderr(&o));

    // Thousands of loader threads: capped, and said.
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&data), "--workers", "10000"]);
    assert!(stderr(&o).contains("--workers 10000:"), "{}", stderr(&o));
}
