//! A user's own data in one line: `--dataset folder|list|<benchmark> --root DIR` on any
//! preset, for `train`, `eval` and `config show`.

use std::path::Path;

use bcl::config::TrainConfig;
use bcl::data::{DataConfig, DatasetKind, Split};

use crate::common::{bcl, path, stderr, stdout, tiny_fashion_mnist};

/// Writes the images of `classes` (with at most `per_class[k]` images each) of Fashion-MNIST
/// `split` under `folder/<class name>/`, as grayscale PNGs; returns the file paths by class.
fn write_class_folders(idx: &Path, split: Split, per_class: &[usize], folder: &Path) -> Vec<Vec<String>> {
    let data = DataConfig::new(DatasetKind::FashionMnist, idx.to_path_buf()).open(split).unwrap();
    let mut written = vec![Vec::new(); per_class.len()];
    for i in 0..data.len() {
        let label = data.labels()[i] as usize;
        if label >= per_class.len() || written[label].len() == per_class[label] {
            continue;
        }
        let name = data.class_names()[label].replace('/', "-");
        let file = format!("{name}/{}.png", written[label].len());
        std::fs::create_dir_all(folder.join(&name)).unwrap();
        let image = data.image(i).unwrap();
        image::GrayImage::from_raw(28, 28, image.pixels).unwrap().save(folder.join(&file)).unwrap();
        written[label].push(file);
    }
    written
}

fn config_show(args: &[&str]) -> (toml::Table, String) {
    let mut all = vec!["config", "show"];
    all.extend(args);
    let o = bcl(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    (toml::from_str(&stdout(&o)).unwrap(), stderr(&o))
}

fn key<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let mut parts = dotted.split('.');
    let first = table.get(parts.next()?)?;
    parts.try_fold(first, |value, part| value.get(part))
}

#[test]
fn a_class_folder_trains_evaluates_and_predicts_in_one_line() {
    let idx = tiny_fashion_mnist(20, 10);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shoes");
    // Own data is long-tailed already: 20, 8 and 3 images in three classes.
    write_class_folders(idx.path(), Split::Train, &[20, 8, 3], &data.join("train"));
    let test_files = write_class_folders(idx.path(), Split::Test, &[10, 10, 10], &data.join("test"));

    // On the CIFAR-10-LT preset (ρ = 100, 10 classes): the data decide classes and views.
    let (config, decisions) = config_show(&["--preset", "cifar10-lt", "--dataset", "folder", "--root", path(&data)]);
    assert!(decisions.contains("3 classes, 31 training images used as they are"), "{decisions}");
    assert!(decisions.contains("Cifar-style views for 28×28 images"), "{decisions}");
    assert_eq!(key(&config, "model.num_classes").unwrap().as_integer(), Some(3));
    assert_eq!(key(&config, "model.in_channels").unwrap().as_integer(), Some(3));
    assert_eq!(key(&config, "data.dataset").unwrap().as_str(), Some("folder"));
    assert!(key(&config, "data.imb_factor").is_none(), "own data gets no long-tailed subset: {config}");
    assert_eq!(key(&config, "recipe_style").unwrap().as_str(), Some("cifar"));
    assert_eq!(key(&config, "image_size").unwrap().as_integer(), Some(28));
    let (config, _) =
        config_show(&["--dataset", "folder", "--root", path(&data), "--imb-factor", "5", "--recipe", "imagenet"]);
    assert_eq!(key(&config, "data.imb_factor").unwrap().as_float(), Some(5.0));
    assert_eq!(key(&config, "model.arch").unwrap().as_str(), Some("resnet50"));

    let run = dir.path().join("run");
    let common = ["--dataset", "folder", "--root", path(&data), "--device", "cpu"];
    let mut args = vec!["train", "--preset", "cifar10-lt", "--epochs", "1", "--batch-size", "8", "--out", path(&run)];
    args.extend(common);
    let o = bcl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("3 classes, 31 training images") && text.contains("T-shirt-top"), "{text}");
    assert_eq!(std::fs::read_to_string(run.join("per_class.csv")).unwrap().lines().count(), 4);

    let o = bcl(&["eval", "--checkpoint", path(&run.join("best")), "--out", path(&dir.path().join("e"))]);
    assert!(o.status.success() && stdout(&o).contains("30 images"), "{}{}", stdout(&o), stderr(&o));
    let mut eval = vec!["eval", "--checkpoint", path(&run)];
    eval.extend(common);
    let o = bcl(&eval);
    assert!(o.status.success(), "{}", stderr(&o));
    // Evaluating on data with other classes is refused, naming both counts.
    let four = dir.path().join("four");
    write_class_folders(idx.path(), Split::Train, &[2, 2, 2, 2], &four);
    let o = bcl(&["eval", "--checkpoint", path(&run), "--dataset", "folder", "--root", path(&four)]);
    assert!(!o.status.success() && stderr(&o).contains("has 4 classes") && stderr(&o).contains("trained on 3"));

    let image = data.join("test").join(&test_files[1][0]);
    let o = bcl(&["predict", "--checkpoint", path(&run), "--device", "cpu", path(&image)]);
    assert!(o.status.success() && stdout(&o).contains('%'), "{}{}", stdout(&o), stderr(&o));

    // A folder, recursively, in batches, to CSV and JSON Lines; a damaged image is named and
    // makes the exit code 1 unless --skip-bad.
    let test = data.join("test");
    std::fs::write(test.join("Trouser/damaged.png"), b"not a png").unwrap();
    let csv = dir.path().join("predictions.csv");
    let predict = |out: &Path, extra: &[&str]| {
        let mut args =
            vec!["predict", "--checkpoint", path(&run), "--batch-size", "7", "--top-k", "2", "--out", path(out)];
        args.extend(extra);
        args.push(path(&test));
        bcl(&args)
    };
    let o = predict(&csv, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("damaged.png") && stderr(&o).contains("1 of 31 images could not be read"));
    let o = predict(&csv, &["--skip-bad"]);
    assert!(o.status.success() && stdout(&o).contains("30 images"), "{}{}", stdout(&o), stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!((rows.len(), rows[0]), (31, "path,class_1,probability_1,class_2,probability_2"));
    let jsonl = dir.path().join("predictions.jsonl");
    assert!(predict(&jsonl, &["--skip-bad"]).status.success());
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["top_k"].as_array().unwrap().len(), 2);
    assert!(first["path"].as_str().unwrap().ends_with(".png") && first["top_k"][0]["probability"].as_f64().is_some());
    // Batched and one by one agree.
    let single = dir.path().join("single.csv");
    let o = bcl(&[
        "predict",
        "--checkpoint",
        path(&run),
        "--batch-size",
        "1",
        "--top-k",
        "2",
        "--out",
        path(&single),
        "--skip-bad",
        path(&test),
    ]);
    assert!(o.status.success());
    let close = |a: &str, b: &str| {
        a.split(',').zip(b.split(',')).all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() < 1e-4,
            _ => x == y,
        })
    };
    let batched = std::fs::read_to_string(&csv).unwrap();
    let one_by_one = std::fs::read_to_string(&single).unwrap();
    assert!(batched.lines().zip(one_by_one.lines()).all(|(a, b)| close(a, b)), "{batched}\n{one_by_one}");
}

#[test]
fn lists_and_torchvision_layouts_are_found_and_bad_ones_named() {
    let idx = tiny_fashion_mnist(4, 2);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let files = write_class_folders(idx.path(), Split::Train, &[4, 3, 2], &root.join("images"));
    let lines = |classes: &[usize]| -> String {
        classes.iter().flat_map(|&k| files[k].iter().map(move |f| format!("images/{f} {k}\n"))).collect()
    };
    std::fs::write(root.join("train.txt"), lines(&[0, 1, 2])).unwrap();
    std::fs::write(root.join("test.txt"), lines(&[0, 2])).unwrap();
    let list = ["--dataset", "list", "--root", path(root), "--train-list", "train.txt", "--test-list", "test.txt"];
    let (config, decisions) = config_show(&list);
    assert!(decisions.contains("3 classes, 9 training images"), "{decisions}");
    assert_eq!(key(&config, "data.train_list").unwrap().as_str(), Some("train.txt"));
    assert_eq!(key(&config, "model.num_classes").unwrap().as_integer(), Some(3));

    // A label with no images, a missing file, a missing list: each named.
    std::fs::write(root.join("gap.txt"), lines(&[0, 2])).unwrap();
    let o = bcl(&["config", "show", "--dataset", "list", "--root", path(root), "--train-list", "gap.txt"]);
    assert!(stderr(&o).contains("gap.txt: class 1 has no images"), "{}", stderr(&o));
    std::fs::write(root.join("missing.txt"), "images/nope.png 0\n").unwrap();
    let o = bcl(&["config", "show", "--dataset", "list", "--root", path(root), "--train-list", "missing.txt"]);
    assert!(stderr(&o).contains("missing.txt, line 1") && stderr(&o).contains("nope.png does not exist"));
    let o = bcl(&["config", "show", "--dataset", "list", "--root", path(root)]);
    assert!(stderr(&o).contains("--train-list"), "{}", stderr(&o));
    let lonely = root.join("lonely");
    std::fs::create_dir_all(lonely.join("only")).unwrap();
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&lonely)]);
    assert!(!o.status.success() && stderr(&o).contains("only one class folder"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "one line, no backtrace: {}", stderr(&o));

    // torchvision's download layout: ROOT/FashionMNIST/raw/.
    let torchvision = root.join("tv");
    std::fs::create_dir_all(torchvision.join("FashionMNIST")).unwrap();
    std::os::unix::fs::symlink(idx.path(), torchvision.join("FashionMNIST/raw")).unwrap();
    let (config, _) = config_show(&["--dataset", "fashion-mnist", "--root", path(&torchvision)]);
    assert_eq!(key(&config, "data.imb_factor").unwrap().as_float(), Some(100.0), "a balanced benchmark");
    let full = DataConfig::new(DatasetKind::FashionMnist, torchvision).open(Split::Train).unwrap();
    assert_eq!(full.len(), 40);
}

/// `--image-size` (or `image_size` in a config file) sets the crops of an ImageNet-style run,
/// for training, evaluation and prediction; a CIFAR-style run refuses a size other than its
/// images' instead of ignoring it.
#[test]
fn an_imagenet_style_run_trains_and_predicts_at_its_image_size() {
    let idx = tiny_fashion_mnist(8, 4);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    write_class_folders(idx.path(), Split::Train, &[4, 2], &data.join("train"));
    let test_files = write_class_folders(idx.path(), Split::Test, &[2, 2], &data.join("test"));
    let folder = ["--dataset", "folder", "--root", path(&data), "--recipe", "imagenet"];

    let file = dir.path().join("small.toml");
    std::fs::write(&file, "image_size = 48\n").unwrap();
    let mut args = vec!["--preset", "imagenet-lt", "--config", path(&file)];
    args.extend(folder);
    let (config, _) = config_show(&args);
    assert_eq!(key(&config, "image_size").unwrap().as_integer(), Some(48), "the file's size is kept: {config}");

    let run = dir.path().join("run");
    let mut train = vec!["train", "--preset", "imagenet-lt", "--image-size", "32", "--epochs", "1"];
    train.extend(["--batch-size", "3", "--device", "cpu", "--out", path(&run)]);
    train.extend(folder);
    let o = bcl(&train);
    assert!(o.status.success(), "{}", stderr(&o));
    // The run's recipe, prediction and export all work on 32 px crops.
    let saved = TrainConfig::from_toml(&std::fs::read_to_string(run.join("config.toml")).unwrap(), "config").unwrap();
    let recipe = saved.recipe().unwrap();
    assert_eq!((saved.image_size, recipe.size), (Some(32), 32));
    let image = data.join("test").join(&test_files[1][0]);
    let o = bcl(&["predict", "--checkpoint", path(&run), "--device", "cpu", path(&image)]);
    assert!(o.status.success() && stdout(&o).contains('%'), "{}{}", stdout(&o), stderr(&o));
    let exported = dir.path().join("model.safetensors");
    let o = bcl(&["export", path(&run), "--out", path(&exported)]);
    assert!(stdout(&o).contains("input N×3×32×32"), "{}{}", stdout(&o), stderr(&o));
    let o = bcl(&["train", "--resume", path(&run), "--image-size", "64"]);
    assert!(!o.status.success() && stderr(&o).contains("--image-size"), "a resumed run keeps its size");

    // Sizes that cannot be honoured are refused before anything runs: under 32 px, or on
    // images that get the cifar recipe (which trains on their own size).
    let o = bcl(&[&["config", "show", "--image-size", "16"][..], &folder].concat());
    assert!(stderr(&o).contains("image_size = 16") && stderr(&o).contains("at least 32"), "{}", stderr(&o));
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&data), "--image-size", "64"]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("--image-size sets the crops of the imagenet recipe"), "{err}");
}

/// Runs the venv's Python on `code` with `args` (sys.argv[1:]).
fn python(code: &str, args: &[&Path]) -> std::process::Output {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    std::process::Command::new(venv).arg("-c").arg(code).args(args).output().expect("the venv's python runs")
}

#[test]
fn exported_weights_load_strictly_in_pytorch_and_torchscript_matches() {
    let idx = tiny_fashion_mnist(12, 2);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = bcl(&[
        "train",
        "--root",
        path(idx.path()),
        "--imb-factor",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        path(&run),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // best is for deployment: weights only; last keeps the momentum to resume from.
    let best = bcl::checkpoint::load(&run.join("best.safetensors")).unwrap();
    let last = bcl::checkpoint::load(&run.join("last.safetensors")).unwrap();
    assert!(best.optimizer.is_empty() && !last.optimizer.is_empty());

    let weights = dir.path().join("model.safetensors");
    let script = dir.path().join("model.pt");
    for (format, file) in [("safetensors", &weights), ("torchscript", &script)] {
        let o = bcl(&["export", path(&run.join("best")), "--format", format, "--out", path(file)]);
        assert!(o.status.success() && stdout(&o).contains("input N×1×28×28"), "{}{}", stdout(&o), stderr(&o));
    }
    // A batch of 3 normalised images, and bcl's logits for it.
    let loaded = bcl::predict::load_model(&run.join("best.safetensors"), None, tch::Device::Cpu).unwrap();
    tch::manual_seed(7);
    let x = tch::Tensor::randn([3, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
    let expected = tch::no_grad(|| loaded.model.logits(&x));
    let (input, from_weights, from_script) =
        (dir.path().join("x.npy"), dir.path().join("a.npy"), dir.path().join("b.npy"));
    x.write_npy(&input).unwrap();

    let loader = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/load_in_pytorch.py");
    let o = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .args([path(&loader), path(&weights), "--input", path(&input), "--logits", path(&from_weights)])
        .output()
        .unwrap();
    assert!(o.status.success() && stdout(&o).contains("strictly"), "{}{}", stdout(&o), stderr(&o));
    let code = "import sys, numpy as np, torch\n\
                m = torch.jit.load(sys.argv[1])\n\
                np.save(sys.argv[3], m(torch.from_numpy(np.load(sys.argv[2]))).detach().numpy())";
    let o = python(code, &[&script, &input, &from_script]);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in [&from_weights, &from_script] {
        let got = tch::Tensor::read_npy(file).unwrap();
        let error = (got - &expected).abs().max().double_value(&[]);
        assert!(error <= 1e-4, "{}: logits differ from bcl's by {error}", file.display());
    }
    // A Triton model repository: config.pbtxt as Triton's own protobuf reads it, the
    // TorchScript module with bcl's logits, the labels; a model card beside every export.
    let repo = dir.path().join("repo");
    let o = bcl(&["export", path(&run.join("best")), "--format", "triton", "--out", path(&repo), "--name", "tiny"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let code = "import sys, os, importlib.util, numpy as np, torch, tritonclient\n\
                from google.protobuf import text_format\n\
                path = os.path.join(os.path.dirname(tritonclient.__file__), 'grpc', 'model_config_pb2.py')\n\
                spec = importlib.util.spec_from_file_location('model_config_pb2', path)\n\
                mc = importlib.util.module_from_spec(spec); spec.loader.exec_module(mc)\n\
                model = sys.argv[1]\n\
                c = text_format.Parse(open(os.path.join(model, 'config.pbtxt')).read(), mc.ModelConfig())\n\
                i, o = c.input[0], c.output[0]\n\
                print(c.name, c.platform, c.max_batch_size, i.name, mc.DataType.Name(i.data_type), list(i.dims), \
                      o.name, list(o.dims), o.label_filename)\n\
                m = torch.jit.load(os.path.join(model, '1', 'model.pt'))\n\
                np.save(sys.argv[3], m(torch.from_numpy(np.load(sys.argv[2]))).detach().numpy())";
    let from_triton = dir.path().join("c.npy");
    let o = python(code, &[&repo.join("tiny"), &input, &from_triton]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected_config = "tiny pytorch_libtorch 64 INPUT__0 TYPE_FP32 [1, 28, 28] OUTPUT__0 [10] labels.txt";
    assert_eq!(stdout(&o).trim(), expected_config);
    let labels = std::fs::read_to_string(repo.join("tiny/labels.txt")).unwrap();
    assert_eq!(labels.lines().collect::<Vec<_>>(), loaded.class_names);
    for folder in [dir.path().to_path_buf(), repo.join("tiny")] {
        let card = std::fs::read_to_string(folder.join("README.md")).unwrap();
        for part in
            ["library_name: bcl", "## Metrics", "| top-1 | top-5 | many | medium | few | ECE |", "On the `test`"]
        {
            assert!(card.contains(part), "{part} in {card}");
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["label_names"], serde_json::json!(loaded.class_names));
        assert_eq!(config["pretrained_cfg"]["input_size"], serde_json::json!([1, 28, 28]));
        assert_eq!(config["bcl"]["class_counts"].as_array().unwrap().len(), 10);
    }
    // ONNX through PyTorch's exporter: onnxruntime's logits at another batch size than the
    // traced one, for resnet32 and for a torchvision resnet50 (an initialised run of it).
    let r50 = dir.path().join("r50");
    let flags = "--imb-factor 3 --arch resnet50 --image-size 32 --batch-size 8 --max-steps 0 --device cpu";
    let o =
        bcl(&[&["train", "--root", path(idx.path()), "--out", path(&r50)], &flags.split(' ').collect::<Vec<_>>()[..]]
            .concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let venv_python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    for (checkpoint, side) in [(run.join("best"), 28), (r50.join("last"), 32)] {
        let onnx = checkpoint.with_extension("onnx");
        let args = ["export", path(&checkpoint), "--format", "onnx", "--out", path(&onnx), "--python"];
        let o = bcl(&[&args[..], &[path(&venv_python)]].concat());
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        let loaded =
            bcl::predict::load_model(&checkpoint.with_extension("safetensors"), None, tch::Device::Cpu).unwrap();
        let x = tch::Tensor::randn([3, 1, side, side], (tch::Kind::Float, tch::Device::Cpu));
        let expected = tch::no_grad(|| loaded.model.logits(&x));
        let (input, output) = (dir.path().join("onnx_x.npy"), dir.path().join("onnx_logits.npy"));
        x.write_npy(&input).unwrap();
        let code = "import sys, numpy as np, onnxruntime\n\
                    s = onnxruntime.InferenceSession(sys.argv[1])\n\
                    np.save(sys.argv[3], s.run(['logits'], {'input': np.load(sys.argv[2])})[0])";
        let o = python(code, &[&onnx, &input, &output]);
        assert!(o.status.success(), "{}", stderr(&o));
        let error = (tch::Tensor::read_npy(&output).unwrap() - &expected).abs().max().double_value(&[]);
        println!("{}: onnxruntime's logits differ from bcl's by {error:.1e}", loaded.config.model.arch.name());
        assert!(error <= 1e-4, "{}: onnxruntime's logits differ from bcl's by {error}", onnx.display());
    }

    // A folder with someone else's README.md: refused before anything is written.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("README.md"), "# my project\n").unwrap();
    let o = bcl(&["export", path(&run.join("best")), "--out", path(&foreign.join("m.safetensors"))]);
    assert!(!o.status.success() && stderr(&o).contains("exists and is not bcl's"), "{}", stderr(&o));
    assert!(!foreign.join("m.safetensors").exists());
    let got = tch::Tensor::read_npy(&from_triton).unwrap();
    assert!((got - &expected).abs().max().double_value(&[]) <= 1e-4, "Triton's model.pt: other logits");

    // The exported file is also a model bcl reads.
    let o = bcl(&["eval", "--checkpoint", path(&weights), "--out", path(&dir.path().join("e")), "--device", "cpu"]);
    assert!(o.status.success() && stdout(&o).contains("test top-1"), "{}{}", stdout(&o), stderr(&o));

    // The features and their geometry, from the same checkpoint.
    let features = dir.path().join("features.safetensors");
    let o = bcl(&["features", "--checkpoint", path(&run), "--split", "train", "--out", path(&features)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = bcl::checkpoint::load(&features).unwrap();
    let (h, z) = (&saved.weights["h"], &saved.weights["z"]);
    let n = saved.weights["labels"].size()[0];
    assert_eq!((h.size(), z.size()), (vec![n, 64], vec![n, 128]));
    assert!(((z.norm_scalaropt_dim(2, [1i64].as_slice(), false) - 1.0).abs().max().double_value(&[])) < 1e-4);
    let report = dir.path().join("geometry");
    let o = bcl(&["geometry", "--checkpoint", path(&run), "--out", path(&report)]);
    assert!(o.status.success() && stdout(&o).contains("−1/(C−1) = -0.1111"), "{}{}", stdout(&o), stderr(&o));
    let geometry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("geometry.json")).unwrap()).unwrap();
    assert_eq!(geometry["class_means"]["pairs"], 45);
    assert!(image::open(report.join("class_mean_cosines.png")).is_ok());
}

/// With a val split besides test, `best` is picked on val after every epoch, and the end of
/// the run scores both `best` and `last` on test; without one, the report says that best
/// was picked on test.
#[test]
fn best_is_picked_on_val_where_there_is_one_and_reported_on_test() {
    let idx = tiny_fashion_mnist(20, 10);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("three");
    write_class_folders(idx.path(), Split::Train, &[20, 8, 3], &data.join("train"));
    write_class_folders(idx.path(), Split::Test, &[4, 4, 4], &data.join("val"));
    write_class_folders(idx.path(), Split::Test, &[10, 10, 10], &data.join("test"));
    let run = dir.path().join("run");
    let args = ["train", "--dataset", "folder", "--root", path(&data), "--epochs", "2", "--batch-size", "8"];
    let o = bcl(&[&args[..], &["--device", "cpu", "--out", path(&run)]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("val-top1"), "the epochs are evaluated on val: {text}");
    let best = text.lines().find(|l| l.starts_with("best: epoch ")).unwrap_or_else(|| panic!("{text}"));
    assert!(best.contains("val top-1") && best.contains("test top-1") && best.contains("picked on val"), "{best}");
    let last = text.lines().find(|l| l.starts_with("last: epoch 2, val top-1")).unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("test top-1") && last.contains("test top-1"), "{text}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!((&summary["split"], &summary["images"]), (&"test".into(), &30.into()), "the report is on test");
    let records = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    let per_class = first["eval"]["per_class"].as_array().unwrap().len();
    assert_eq!(per_class, 3);

    std::fs::remove_dir_all(data.join("val")).unwrap();
    let o = bcl(&[&args[..], &["--device", "cpu", "--out", path(&dir.path().join("no-val"))]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("test-top1") && text.contains("picked on test: the data has no validation split"), "{text}");
}

/// A class folder without test/ or val/: 20% of each class (at least one of every class
/// with two or more images, none of a single-image class) is held out, seeded, said in one
/// line and listed in split.csv; the run and `bcl eval` evaluate on exactly those images.
#[test]
fn a_folder_without_a_test_split_holds_out_a_stratified_share() {
    let idx = tiny_fashion_mnist(20, 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("flat");
    write_class_folders(idx.path(), Split::Train, &[20, 6, 2, 1], &data);
    let run = dir.path().join("run");
    let args = ["train", "--dataset", "folder", "--root", path(&data), "--batch-size", "4", "--epochs", "1"];
    let o = bcl(&[&args[..], &["--device", "cpu", "--out", path(&run)]].concat());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let line = "no test/ or val/ folder: 20% of each class's images (6 in all, seed 0) held out as the test split";
    assert!(stdout(&o).contains(line), "{}", stdout(&o));
    assert!(stdout(&o).contains("4 classes, 23 training images"), "{}", stdout(&o));
    // 20 → 4 held out, 6 → 1, 2 → 1, 1 → 0.
    let split = std::fs::read_to_string(run.join("split.csv")).unwrap();
    let held: Vec<&str> = split.lines().filter(|l| l.ends_with(",test")).collect();
    let in_class = |class: &str| held.iter().filter(|l| l.contains(&format!("/{class}/"))).count();
    let names = ["T-shirt-top", "Trouser", "Pullover", "Dress"];
    assert_eq!(names.map(in_class), [4, 1, 1, 0], "{split}");
    assert_eq!(split.lines().count(), 1 + 29);
    let o = bcl(&["eval", "--checkpoint", path(&run.join("last")), "--device", "cpu"]);
    assert!(o.status.success() && stdout(&o).contains("(6 images)"), "{}{}", stdout(&o), stderr(&o));
    // The same seed draws the same images; another share is refused where test/ exists.
    let again = dir.path().join("again");
    assert!(
        bcl(&[&args[..], &["--device", "cpu", "--max-steps", "0", "--out", path(&again)]].concat()).status.success()
    );
    assert_eq!(std::fs::read_to_string(again.join("split.csv")).unwrap(), split);
    std::fs::create_dir_all(data.join("test")).unwrap();
    let o = bcl(&["config", "show", "--dataset", "folder", "--root", path(&data), "--holdout", "0.3"]);
    assert!(stderr(&o).contains("has a test/ folder already"), "{}", stderr(&o));
}
