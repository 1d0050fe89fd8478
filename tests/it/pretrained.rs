//! Starting from pretrained weights: torchvision's own ResNets (seeded random weights, built
//! by tests/support/torchvision_reference.py) load through `--init`'s loader and give
//! torchvision's features; the loader's report and errors; the fine-tuning controls train
//! what they say and resume exactly.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bcl::augment::RecipeStyle;
use bcl::checkpoint::{self, Checkpoint};
use bcl::config::{ClassifierInit, Tune};
use bcl::init::{self, InitSource};
use bcl::loss::LossKind;
use bcl::model::{self, Arch, ModelConfig};
use bcl::run::RunDir;
use bcl::train::{TrainOptions, train};
use tch::{Device, Kind, Tensor};

use super::common::{bcl, path, stderr, stdout};
use super::train::{assert_same_tensors, config, options, run, saved_tensors, synthetic_cifar};

/// The side of the reference models' input: small, so that the deepest net runs fast.
const SIZE: i64 = 64;

/// torchvision's models and their features, made once into target/ (kept between runs).
fn reference_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/torchvision-reference");
        let archs: Vec<String> = torchvision_archs().map(Arch::name).collect();
        if archs.iter().all(|a| dir.join(format!("{a}.features.safetensors")).is_file()) {
            return dir;
        }
        let status = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/support/torchvision_reference.py"))
            .arg(&dir)
            .arg(SIZE.to_string())
            .args(&archs)
            .status()
            .expect("the venv's python (scripts/setup.sh installs torchvision there)");
        assert!(status.success(), "torchvision_reference.py failed");
        dir
    })
}

/// The architectures torchvision has: every ImageNet ResNet.
fn torchvision_archs() -> impl Iterator<Item = Arch> {
    Arch::all().iter().copied().filter(|&a| a != Arch::Resnet32 && !a.name().starts_with("vit_"))
}

fn weights_of(arch: Arch) -> PathBuf {
    reference_dir().join(format!("{}.safetensors", arch.name()))
}

/// Every torchvision architecture: its state_dict (1000-class fc included) loads into bcl's
/// encoder by name, every encoder tensor, and bcl's pooled features on the same input equal
/// torchvision's (evaluation mode) to 1e-4 relative; parameter counts agree.
#[test]
fn every_torchvision_resnet_loads_by_name_and_gives_torchvisions_features() {
    for arch in torchvision_archs() {
        let name = arch.name();
        let (vs, model) = model::create(&ModelConfig::for_arch(arch, 3, 37), Device::Cpu, Some(0));
        let report = init::load(InitSource::of(&weights_of(arch)).unwrap(), arch, 37, &vs.variables()).unwrap();
        let summary = report.summary();
        println!("{name}: {summary}");
        assert!(summary.starts_with(&format!("init: {0} of {0} encoder tensors", report.encoder_total)), "{summary}");
        assert!(summary.ends_with("(fc.weight, fc.bias dropped: 1000 classes, the data has 37)"), "{summary}");

        let reference = checkpoint::load(&reference_dir().join(format!("{name}.features.safetensors"))).unwrap();
        let theirs = &reference.weights["features"];
        let ours = tch::no_grad(|| model.encode(&reference.weights["input"], false));
        let scale = theirs.abs().max().double_value(&[]);
        let relative = (&ours - theirs).abs().max().double_value(&[]) / scale;
        println!("{name}: features {:?}, max |bcl − torchvision| / max |torchvision| = {relative:.1e}", ours.size());
        assert!(scale > 0.0 && relative <= 1e-4, "{name}: relative difference {relative:e}");
        assert_eq!(arch.parameter_count(), reference.weights["parameters"].int64_value(&[]), "{name}");
        assert_eq!(arch.spec().feature_dim, ours.size()[1], "{name}");
        // The comparison sees a wrong weight: the stem's convolution 1% off.
        let stem = &vs.variables()["encoder.conv1.weight"];
        tch::no_grad(|| stem.shallow_clone().copy_(&(stem * 1.01)));
        let off = tch::no_grad(|| model.encode(&reference.weights["input"], false));
        assert!((&off - theirs).abs().max().double_value(&[]) / scale > 1e-4, "{name}: the check can fail");
    }
}

/// Wrapped keys (timm's `state_dict.` sub-dict, DataParallel's `module.`) and half-precision
/// files load; the model stays float32.
#[test]
fn wrapped_and_half_precision_state_dicts_load_into_a_float32_model() {
    let dir = tempfile::tempdir().unwrap();
    let original = checkpoint::load(&weights_of(Arch::Resnet18)).unwrap();
    for (prefix, kind) in [("state_dict.module.", Kind::Half), ("model.", Kind::BFloat16)] {
        let weights = original.weights.iter().map(|(k, t)| (format!("{prefix}{k}"), t.to_kind(kind))).collect();
        let file = dir.path().join(format!("{}.safetensors", prefix.replace('.', "_")));
        checkpoint::save(&file, &Checkpoint { weights, ..Default::default() }).unwrap();
        let (vs, _) = model::create(&ModelConfig::for_arch(Arch::Resnet18, 3, 5), Device::Cpu, Some(0));
        let report = init::load(InitSource::of(&file).unwrap(), Arch::Resnet18, 5, &vs.variables()).unwrap();
        assert!(report.summary().starts_with("init: 100 of 100 encoder tensors"), "{}", report.summary());
        let conv = &vs.variables()["encoder.conv1.weight"];
        assert_eq!(conv.kind(), Kind::Float, "{prefix}");
        let expected = original.weights["conv1.weight"].to_kind(kind).to_kind(Kind::Float);
        assert!(conv.equal(&expected), "{prefix}");
    }
}

/// A file of another architecture, a file of nothing bcl knows, and a pickle: one line each,
/// naming the file.
#[test]
fn init_errors_name_the_file_and_what_does_not_fit() {
    let (vs, _) = model::create(&ModelConfig::for_arch(Arch::Resnet18, 3, 5), Device::Cpu, Some(0));
    let resnet50 = weights_of(Arch::Resnet50);
    let error = init::load(InitSource::of(&resnet50).unwrap(), Arch::Resnet18, 5, &vs.variables()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!("--init {}: layer1.0.conv1.weight has shape [64, 64, 1, 1]", resnet50.display()))
    );
    assert!(message.contains("[64, 64, 3, 3] in a resnet18 model"), "{message}");

    // A shallower ResNet of the same blocks: every tensor fits, but layers would stay random.
    let (deeper, _) = model::create(&ModelConfig::for_arch(Arch::Resnet101, 3, 5), Device::Cpu, Some(0));
    let error = init::load(InitSource::of(&resnet50).unwrap(), Arch::Resnet101, 5, &deeper.variables()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("not a resnet101 encoder: the file has 0 encoder tensors the model lacks (none) and lacks")
    );
    assert!(message.contains("encoder.layer3.10.bn1.bias"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.safetensors");
    let weights = [("backbone.stem.weight".to_string(), Tensor::zeros([4], (Kind::Float, Device::Cpu)))].into();
    checkpoint::save(&other, &Checkpoint { weights, ..Default::default() }).unwrap();
    let error = init::load(InitSource::of(&other).unwrap(), Arch::Resnet18, 5, &vs.variables()).unwrap_err();
    assert_eq!(
        format!("{error:#}"),
        format!(
            "--init {}: 0 of 100 encoder tensors: is this a resnet18 state_dict? its keys look like \
             encoder.backbone.stem.weight",
            other.display()
        )
    );

    let pickle = dir.path().join("resnet18-f37072fd.pth");
    std::fs::write(&pickle, b"PK\x03\x04 not really").unwrap();
    let error = init::load(InitSource::of(&pickle).unwrap(), Arch::Resnet18, 5, &vs.variables()).unwrap_err();
    assert!(format!("{error:#}").contains("python scripts/pt_to_safetensors.py"), "{error:#}");
    let o = bcl(&["train", "--arch", "resnet18", "--init", path(dir.path()), "--max-steps", "0"]);
    assert_eq!(o.status.code(), Some(1));
    let expected = format!("error: --init {} is not a regular file (a folder, FIFO or device)", dir.path().display());
    assert_eq!(stderr(&o).trim(), expected);
}

/// `bcl models` lists every architecture with torchvision's parameter counts, and
/// `bcl train --arch … --init … --max-steps 0` writes the initialised model, the report and
/// the file's sha256, which `bcl export` then reads.
#[test]
fn models_lists_the_registry_and_init_writes_an_initialised_run() {
    let o = bcl(&["models"]);
    assert!(o.status.success());
    let rows: Vec<Vec<String>> =
        stdout(&o).lines().map(|l| l.split_whitespace().take(3).map(String::from).collect()).collect();
    for arch in Arch::all() {
        let row = rows.iter().find(|r| r[0] == arch.name()).expect("every architecture listed");
        assert_eq!(row[1], arch.spec().feature_dim.to_string());
    }
    assert!(rows.contains(&vec!["resnet50".into(), "2048".into(), "23508032".into()]), "{}", stdout(&o));

    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_cifar();
    let out = dir.path().join("run");
    let file = weights_of(Arch::Resnet18);
    let o = bcl(&[
        "train",
        "--preset",
        "cifar10-lt",
        "--root",
        path(data.path()),
        "--imb-factor",
        "4",
        "--arch",
        "resnet18",
        "--init",
        path(&file),
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        "0",
        "--device",
        "cpu",
        "--out",
        path(&out),
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let summary = format!(
        "init: 100 of 100 encoder tensors from {} (fc.weight, fc.bias dropped: 1000 classes, the data has 10)",
        file.display()
    );
    assert!(stdout(&o).contains(&summary), "{}", stdout(&o));
    assert!(stdout(&o).contains("input normalised as the --init weights were trained: mean [0.485, 0.456, 0.406]"));
    let details = std::fs::read_to_string(out.join("init.txt")).unwrap();
    assert!(details.starts_with(&summary) && details.contains("loaded (100):\n  encoder.bn1.bias\n"), "{details}");
    let sha = InitSource::of(&file).unwrap().sha256;
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains(&format!("sha256 = \"{sha}\"")), "{config}");
    // The run's `last` holds the loaded weights exactly.
    let last = checkpoint::load(&out.join("last.safetensors")).unwrap();
    let source = checkpoint::load(&file).unwrap();
    assert!(last.weights["encoder.layer4.1.bn2.running_var"].equal(&source.weights["layer4.1.bn2.running_var"]));
    let exported = dir.path().join("model.safetensors");
    let o = bcl(&["export", path(&out.join("last")), "--out", path(&exported)]);
    assert!(o.status.success() && stdout(&o).contains("input N×3×32×32"), "{}{}", stdout(&o), stderr(&o));
}

/// `--tune head` trains the heads only (no encoder gradients or momentum), a class-mean
/// classifier starts at the features' means, `--freeze-bn` keeps the encoder's statistics,
/// and such runs resume to the weights of an uninterrupted one.
#[test]
fn fine_tuning_controls_train_what_they_say_and_resume_exactly() {
    let data = synthetic_cifar();
    let mut pretrain = config(data.path(), LossKind::La);
    pretrain.epochs = 1;
    let (_, pretrained) = run(&pretrain, data.path(), "pretrained");
    let init_file = pretrained.best();
    let start = checkpoint::load(&init_file).unwrap().weights;

    let mut c = config(data.path(), LossKind::Bcl);
    c.epochs = 2;
    c.init = Some(InitSource::of(&init_file).unwrap());
    c.finetune.tune = Tune::Head;
    c.finetune.init_classifier = ClassifierInit::ClassMean;
    let (_, frozen) = run(&c, data.path(), "frozen");
    // The checkpoint holds what trained, and names the file the encoder comes from.
    let saved = checkpoint::load(&frozen.last()).unwrap();
    assert!(saved.optimizer.keys().all(|k| !k.starts_with("encoder.")) && !saved.optimizer.is_empty());
    assert!(saved.weights.keys().all(|k| !k.starts_with("encoder.")) && !saved.weights.is_empty());
    assert!(saved.weights.iter().all(|(key, tensor)| !tensor.equal(&start[key])), "the heads trained");
    assert!(saved.metadata["base"].contains(&c.init.as_ref().unwrap().sha256));
    // Loading it for prediction takes the encoder from that file.
    let loaded = bcl::predict::load_model(&frozen.last(), None, Device::Cpu).unwrap();
    let variables = loaded.vs.variables();
    assert!(start.iter().filter(|(k, _)| k.starts_with("encoder.")).all(|(k, t)| variables[k].equal(t)));
    let loaded = format!("loaded ({})", start.len());
    assert!(std::fs::read_to_string(frozen.path.join("init.txt")).unwrap().contains(&loaded), "all of it");

    // Stopped after epoch 1 and resumed: the same weights and momentum as straight through.
    let parts = RunDir::create(&data.path().join("parts"), &c).unwrap();
    let first = TrainOptions { max_steps: Some(c.data.train_set().unwrap().len() / c.batch_size), ..options(false) };
    assert!(train(&c, &parts, &first, |_| {}).unwrap().stopped_at.is_some());
    assert!(train(&c, &parts, &options(true), |_| {}).unwrap().stopped_at.is_none());
    assert_same_tensors(&saved_tensors(&frozen.last()), &saved_tensors(&parts.last()));

    let mut bn = config(data.path(), LossKind::La);
    (bn.epochs, bn.init, bn.finetune.freeze_bn) = (1, c.init.clone(), true);
    bn.finetune.encoder_lr_scale = 0.1;
    let (_, bn_run) = run(&bn, data.path(), "freeze-bn");
    let saved = checkpoint::load(&bn_run.last()).unwrap().weights;
    for (key, tensor) in saved.iter().filter(|(k, _)| k.starts_with("encoder.")) {
        let statistic = key.ends_with("running_mean") || key.ends_with("running_var");
        assert_eq!(tensor.equal(&start[key]), statistic, "{key}: statistics kept, weights trained");
    }
}

/// The places-lt preset reads OLTR's three lists under --root (generated JPEGs here),
/// refuses to start without --init (naming torchvision's file and the conversion), and
/// fine-tunes torchvision's ResNet-152 from it (a step here; the preset's class-mean
/// classifier is tested with the fine-tuning controls).
#[test]
fn places_lt_needs_init_and_fine_tunes_a_resnet152_from_its_lists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (list, per_class) in [("train", 1), ("val", 1), ("test", 1)] {
        let mut lines = String::new();
        for class in 0..365 {
            let file = format!("data_256/{list}/c{class:03}.jpg");
            std::fs::create_dir_all(root.join(format!("data_256/{list}"))).unwrap();
            let image =
                image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, class as u8]));
            image.save(root.join(&file)).unwrap();
            lines += &format!("{file} {class}\n").repeat(per_class);
        }
        std::fs::write(root.join(format!("Places_LT_{list}.txt")), lines).unwrap();
    }
    let o = bcl(&["train", "--preset", "places-lt", "--root", path(root), "--device", "cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("resnet152-394f9c45.pth") && stderr(&o).contains("--init"), "{}", stderr(&o));

    let r152 = weights_of(Arch::Resnet152);
    let run = root.join("run");
    let mut train = vec!["train", "--preset", "places-lt", "--root", path(root), "--init", path(&r152)];
    train.extend(["--image-size", "32", "--batch-size", "2", "--max-steps", "1", "--init-classifier", "random"]);
    let o = bcl(&[&train[..], &["--device", "cpu", "--out", path(&run)]].concat());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("init: 775 of 775 encoder tensors") && out.contains("the data has 365)"), "{out}");
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let preset = bcl(&["config", "show", "--preset", "places-lt", "--root", path(root), "--init", path(&r152)]);
    assert!(stdout(&preset).contains("init_classifier = \"class-mean\""), "{}", stdout(&preset));
    for line in ["arch = \"resnet152\"", "base_lr = 0.02", "epochs = 30", "encoder_lr_scale = 0.1"] {
        assert!(config.contains(line), "{line} in {config}");
    }
}

/// timm's ViTs with seeded random weights (tests/support/timm_reference.py).
fn timm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/timm-reference");
        let names = ["vit_tiny_patch16_224", "vit_base_patch16_224", "vit_base_patch16_clip_quickgelu_224"];
        if names.iter().all(|n| dir.join(format!("{n}.features.safetensors")).is_file()) {
            return dir;
        }
        let status = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/support/timm_reference.py"))
            .arg(&dir)
            .arg("64")
            .args(names)
            .status()
            .expect("the venv's python (scripts/setup.sh installs timm there)");
        assert!(status.success(), "timm_reference.py failed");
        dir
    })
}

/// The largest |a − b| over the largest |b|.
fn relative_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
}

/// timm's ViT-Tiny, ViT-B/16 and CLIP ViT-B/16 under timm's names, and open_clip's own
/// ViT-B-16 under OpenAI's names (converted by --init as timm converts it), give their
/// models' features to 1e-4;
/// ViT-Tiny at 64 px with its 224 px position embeddings resampled as timm resamples them.
#[test]
fn timm_and_clip_vits_load_by_name_and_give_timms_features() {
    let clip = "vit_base_patch16_clip_quickgelu_224";
    let cases = [
        (Arch::VitTinyPatch16_224, "vit_tiny_patch16_224", "vit_tiny_patch16_224.safetensors", "features"),
        (Arch::VitBasePatch16_224, "vit_base_patch16_224", "vit_base_patch16_224.safetensors", "features"),
        (Arch::VitBasePatch16Clip224, clip, "vit_base_patch16_clip_quickgelu_224.safetensors", "features"),
        // open_clip's own ViT-B-16 under OpenAI's names, converted by --init.
        (
            Arch::VitBasePatch16Clip224,
            clip,
            "vit_base_patch16_clip_quickgelu_224.openai.safetensors",
            "features_openai",
        ),
    ];
    for (arch, timm_name, file, features) in cases {
        let (vs, model) = model::create(&ModelConfig::for_arch(arch, 3, 10), Device::Cpu, Some(0));
        let report = init::load(InitSource::of(&timm_dir().join(file)).unwrap(), arch, 10, &vs.variables()).unwrap();
        println!("{timm_name}: {}", report.summary());
        assert!(report.summary().starts_with(&format!("init: {0} of {0} encoder tensors", report.encoder_total)));
        let reference = checkpoint::load(&timm_dir().join(format!("{timm_name}.features.safetensors"))).unwrap();
        let ours = tch::no_grad(|| model.encode(&reference.weights["input"], false));
        let relative = relative_difference(&ours, &reference.weights[features]);
        println!("{timm_name} ({file}): features {:?}, relative difference {relative:.1e}", ours.size());
        assert!(relative <= 1e-4, "{timm_name}: {relative:e}");
        assert_eq!(arch.parameter_count(), reference.weights["parameters"].int64_value(&[]), "{timm_name}");
        if let Some(small) = reference.weights.get("input_small") {
            let ours = tch::no_grad(|| model.encode(small, false));
            let relative = relative_difference(&ours, &reference.weights["features_small"]);
            println!("{timm_name} at 64 px, position embeddings resampled: relative difference {relative:.1e}");
            assert!(relative <= 1e-4, "{timm_name} at 64 px: {relative:e}");
        }
        // The comparison sees a wrong weight: the final norm's scale 1% off.
        let norm = &vs.variables()["encoder.norm.weight"];
        tch::no_grad(|| norm.shallow_clone().copy_(&(norm * 1.01)));
        let off = tch::no_grad(|| model.encode(&reference.weights["input"], false));
        assert!(relative_difference(&off, &reference.weights[features]) > 1e-4, "{timm_name}: the check can fail");
    }
    let o = bcl(&[
        "config",
        "show",
        "--arch",
        "vit_tiny_patch16_224",
        "--image-size",
        "40",
        "--preset",
        "imagenet-lt",
        "--root",
        "/tmp",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("image_size = 40 is not a multiple of vit_tiny_patch16_224's patch size 16"),
        "{}",
        stderr(&o)
    );
    // A ViT-Tiny file into ViT-B/16 (another width), into a ResNet, and a ResNet's into a ViT.
    let (vs, _) = model::create(&ModelConfig::for_arch(Arch::VitBasePatch16_224, 3, 10), Device::Cpu, Some(0));
    let tiny = timm_dir().join("vit_tiny_patch16_224.safetensors");
    let error = init::load(InitSource::of(&tiny).unwrap(), Arch::VitBasePatch16_224, 10, &vs.variables()).unwrap_err();
    let expected = "blocks.0.attn.proj.bias has shape [192] there, [768] in a vit_base_patch16_224 model";
    assert!(format!("{error:#}").contains(expected), "{error:#}");
    let (vs, _) = model::create(&ModelConfig::for_arch(Arch::Resnet18, 3, 10), Device::Cpu, Some(0));
    let error = init::load(InitSource::of(&tiny).unwrap(), Arch::Resnet18, 10, &vs.variables()).unwrap_err();
    assert!(format!("{error:#}").contains("0 of 100 encoder tensors: is this a resnet18 state_dict?"), "{error:#}");
    let (vs, _) = model::create(&ModelConfig::for_arch(Arch::VitTinyPatch16_224, 3, 10), Device::Cpu, Some(0));
    let error =
        init::load(InitSource::of(&weights_of(Arch::Resnet18)).unwrap(), Arch::VitTinyPatch16_224, 10, &vs.variables())
            .unwrap_err();
    assert!(format!("{error:#}").contains("is this a vit_tiny_patch16_224 state_dict?"), "{error:#}");
}

/// `--tune adapter` on timm's ViT-Tiny: the new adapters leave the backbone's features as
/// they are at step 0; only the adapters and heads train (BCL on top here), and the
/// checkpoints hold those alone, naming the --init file by sha256; the run resumes exactly;
/// prediction and export take the encoder from that file, and refuse it once it changed.
#[test]
fn adapters_start_as_the_backbone_train_alone_and_resume_exactly() {
    let arch = Arch::VitTinyPatch16_224;
    let data = synthetic_cifar();
    let file = data.path().join("vit_tiny.safetensors");
    std::fs::copy(timm_dir().join("vit_tiny_patch16_224.safetensors"), &file).unwrap();
    let timm = checkpoint::load(&file).unwrap().weights;

    let model_config = ModelConfig { adapter_dim: Some(8), ..ModelConfig::for_arch(arch, 3, 10) };
    let (vs, model) = model::create(&model_config, Device::Cpu, Some(0));
    let report = init::load(InitSource::of(&file).unwrap(), arch, 10, &vs.variables()).unwrap();
    println!("{}", report.summary());
    assert!(report.summary().starts_with("init: 150 of 150 encoder tensors"), "{}", report.summary());
    assert!(report.summary().contains("84 adapter tensors new"), "{}", report.summary());
    let reference = checkpoint::load(&timm_dir().join("vit_tiny_patch16_224.features.safetensors")).unwrap();
    let ours = tch::no_grad(|| model.encode(&reference.weights["input"], false));
    let relative = relative_difference(&ours, &reference.weights["features"]);
    println!("ViT-Tiny with new adapters: relative difference to timm {relative:.1e}");
    assert!(relative <= 1e-4, "{relative:e}");

    let mut c = config(data.path(), LossKind::Bcl);
    (c.epochs, c.recipe_style, c.image_size) = (2, RecipeStyle::Imagenet, Some(32));
    c.model = ModelConfig::for_arch(arch, 3, 10);
    c.init = Some(InitSource::of(&file).unwrap());
    c.finetune.init_classifier = ClassifierInit::ClassMean;
    let c = c.with_adapters(Some(8));
    c.validate().unwrap();
    let (records, adapted) = run(&c, data.path(), "adapter");
    assert!(records.iter().all(|r| r.train_ce.is_finite() && r.train_contrastive > 0.0), "{records:?}");
    let saved = checkpoint::load(&adapted.last()).unwrap();
    let encoder: Vec<&String> = saved.weights.keys().filter(|k| k.starts_with("encoder.")).collect();
    assert_eq!(encoder.len(), 84, "the encoder's adapters alone: {encoder:?}");
    assert!(encoder.iter().all(|k| k.contains(".adaptformer.")));
    assert!(saved.optimizer.keys().filter(|k| k.starts_with("encoder.")).all(|k| k.contains(".adaptformer.")));
    let up = &saved.weights["encoder.blocks.11.adaptformer.up_proj.weight"];
    assert!(up.abs().max().double_value(&[]) > 0.0, "the adapters trained");
    assert!(saved.metadata["base"].contains(&c.init.as_ref().unwrap().sha256));

    // Stopped after epoch 1 and resumed: the same tensors as straight through.
    let parts = RunDir::create(&data.path().join("parts"), &c).unwrap();
    let first = TrainOptions { max_steps: Some(c.data.train_set().unwrap().len() / c.batch_size), ..options(false) };
    assert!(train(&c, &parts, &first, |_| {}).unwrap().stopped_at.is_some());
    assert!(train(&c, &parts, &options(true), |_| {}).unwrap().stopped_at.is_none());
    assert_same_tensors(&saved_tensors(&adapted.last()), &saved_tensors(&parts.last()));

    // Export writes the whole model: the backbone as the file has it, the adapters trained.
    let exported = data.path().join("whole.safetensors");
    let o = bcl(&["export", path(&adapted.path.join("best")), "--out", path(&exported)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let whole = checkpoint::load(&exported).unwrap().weights;
    assert!(whole["encoder.blocks.0.attn.qkv.weight"].equal(&timm["blocks.0.attn.qkv.weight"]));
    assert!(whole.contains_key("encoder.blocks.0.adaptformer.down_proj.weight"));

    // The backbone file changed since: refused, naming it.
    std::fs::copy(weights_of(Arch::Resnet18), &file).unwrap();
    let error = bcl::predict::load_model(&adapted.best(), None, Device::Cpu).err().unwrap();
    assert!(format!("{error:#}").contains("has changed since the run was configured"), "{error:#}");

    // LIFT's recipe, here from timm's ImageNet-21k ViT-B/16 instead of CLIP's.
    let vit_b = timm_dir().join("vit_base_patch16_224.safetensors");
    let lift = ["config", "show", "--preset", "lift-cifar100-lt", "--root", "/tmp", "--arch", "vit_base_patch16_224"];
    let o = bcl(&[&lift[..], &["--init", path(&vit_b)]].concat());
    let shown = stdout(&o);
    for line in ["arch = \"vit_base_patch16_224\"", "cosine_scale = 25.0", "adapter_dim = 4", "tune = \"adapter\""] {
        assert!(shown.contains(line), "{line} in {shown}{}", stderr(&o));
    }
    for line in [
        "[loss]\nkind = \"la\"",
        "epochs = 10",
        "batch_size = 128",
        "base_lr = 0.01",
        "init_classifier = \"class-mean\"",
    ] {
        assert!(shown.contains(line), "{line} in {shown}");
    }

    // Adapters need a ViT, and --adapter-dim needs adapters.
    let show = |extra: &[&str]| {
        let o = bcl(&[&["config", "show", "--preset", "cifar10-lt", "--root", "/tmp"], extra].concat());
        assert_eq!(o.status.code(), Some(1));
        stderr(&o)
    };
    let resnet = show(&["--arch", "resnet18", "--tune", "adapter", "--init", path(&weights_of(Arch::Resnet18))]);
    assert!(resnet.contains("resnet18 has none: use a vit_* --arch"), "{resnet}");
    let width = show(&["--adapter-dim", "8"]);
    assert!(width.contains("adapters train only under finetune.tune = \"adapter\""), "{width}");
    let no_init = show(&["--arch", "vit_tiny_patch16_224", "--tune", "adapter"]);
    assert!(no_init.contains("--tune adapter keeps the encoder as it starts"), "{no_init}");
}
