//! The BCL model: parameter counts, names (the reference's state_dict keys), shapes,
//! initialisation, and where gradients flow.
use bcl::model::{Arch, BclModel, ClassifierKind, ModelConfig, count_parameters};
use tch::{Device, Kind, Tensor, nn};

fn build(config: &ModelConfig) -> (nn::VarStore, BclModel) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = BclModel::new(&vs.root(), config);
    (vs, model)
}

fn encoder_parameters(config: &ModelConfig) -> i64 {
    let (vs, _) = build(config);
    count_parameters(&vs, |name| name.starts_with("encoder."))
}

#[test]
fn resnet50_and_resnext50_have_torchvisions_parameter_counts() {
    assert_eq!(encoder_parameters(&ModelConfig::imagenet(Arch::Resnet50, 1000)), 23_508_032);
    assert_eq!(encoder_parameters(&ModelConfig::imagenet(Arch::Resnext50_32x4d, 1000)), 22_979_904);
}

/// resnet32's count worked out from its layout: a 3×3 stem to 16 channels, then 3 stages
/// of 5 BasicBlocks (two 3×3 convs without bias, two BatchNorms of weight + bias each) and
/// parameter-free shortcuts.
#[test]
fn resnet32_parameter_count_matches_its_layout() {
    let conv3x3 = |c_in: i64, c_out: i64| c_in * c_out * 9;
    let bn = |c: i64| 2 * c;
    let block = |c_in: i64, c_out: i64| conv3x3(c_in, c_out) + bn(c_out) + conv3x3(c_out, c_out) + bn(c_out);
    for in_channels in [1, 3] {
        let mut expected = conv3x3(in_channels, 16) + bn(16);
        let mut c_in = 16;
        for width in [16, 32, 64] {
            for _ in 0..5 {
                expected += block(c_in, width);
                c_in = width;
            }
        }
        assert_eq!(encoder_parameters(&ModelConfig::cifar(in_channels, 10)), expected);
    }
    // The widely quoted 0.46M for CIFAR-10's resnet32 (3 channels, with a 64 × 10 linear).
    assert_eq!(encoder_parameters(&ModelConfig::cifar(3, 10)) + 64 * 10 + 10, 464_154);
}

#[test]
fn parameter_names_and_shapes_follow_the_reference_state_dict() {
    let mut config = ModelConfig::imagenet(Arch::Resnet50, 1000);
    config.head_hidden_dim = 2048;
    config.feature_dim = 1024;
    let (vs, _) = build(&config);
    let vars = vs.variables();
    let expect = [
        ("encoder.conv1.weight", vec![64, 3, 7, 7]),
        ("encoder.bn1.running_mean", vec![64]),
        ("encoder.layer1.0.conv1.weight", vec![64, 64, 1, 1]),
        ("encoder.layer1.0.downsample.0.weight", vec![256, 64, 1, 1]),
        ("encoder.layer1.0.downsample.1.running_var", vec![256]),
        ("encoder.layer4.2.conv3.weight", vec![2048, 512, 1, 1]),
        ("head.0.weight", vec![2048, 2048]),
        ("head.1.running_mean", vec![2048]),
        ("head.3.bias", vec![1024]),
        ("fc.weight", vec![2048, 1000]),
        ("head_fc.0.weight", vec![2048, 2048]),
        ("head_fc.3.weight", vec![1024, 2048]),
    ];
    for (name, shape) in expect {
        let var = vars.get(name).unwrap_or_else(|| panic!("missing variable {name}"));
        assert_eq!(var.size(), shape, "shape of {name}");
    }
    assert!(!vars.contains_key("fc.bias"), "the cosine classifier has no bias");
    assert!(vars.keys().all(|k| !k.contains("module.")));

    let (vs, _) = build(&ModelConfig::imagenet(Arch::Resnext50_32x4d, 10));
    // Grouped 3×3: 32 groups of 4 channels in the first stage (width 128).
    assert_eq!(vs.variables()["encoder.layer1.0.conv2.weight"].size(), vec![128, 4, 3, 3]);
}

#[test]
fn linear_classifier_has_weight_and_bias() {
    let mut config = ModelConfig::cifar(3, 100);
    config.classifier = ClassifierKind::Linear;
    let (vs, _) = build(&config);
    let vars = vs.variables();
    assert_eq!(vars["fc.weight"].size(), vec![100, 64]);
    assert_eq!(vars["fc.bias"].size(), vec![100]);
}

#[test]
fn tau_norm_scales_each_class_weight_by_its_norm_to_the_power_p() {
    let mut config = ModelConfig::cifar(3, 10);
    config.classifier = ClassifierKind::Linear;
    let (vs, model) = build(&config);
    let before = vs.variables()["fc.weight"].copy();
    assert!(model.classifier().tau_normalize(0.5));
    let after = &vs.variables()["fc.weight"];
    // p = 0.5: each row's norm becomes the square root of what it was.
    let expected = row_norms(&before, 1).sqrt();
    assert!((row_norms(after, 1) - expected).abs().max().double_value(&[]) < 1e-5);
    assert!(model.classifier().tau_normalize(1.0));
    assert!(all_close_to(&row_norms(&vs.variables()["fc.weight"], 1), 1.0, 1e-5));
    // The cosine classifier normalises its weights itself: nothing to do.
    let (_, cosine) = build(&ModelConfig::cifar(3, 10));
    assert!(!cosine.classifier().tau_normalize(1.0));
}

fn row_norms(t: &Tensor, dim: i64) -> Tensor {
    t.norm_scalaropt_dim(2, [dim].as_slice(), false)
}

fn all_close_to(t: &Tensor, value: f64, tolerance: f64) -> bool {
    (t - value).abs().max().double_value(&[]) <= tolerance
}

#[test]
fn forward_shapes_and_unit_norms() {
    tch::manual_seed(0);
    for (config, image_size) in [
        (ModelConfig::cifar(1, 10), 28),
        (ModelConfig::cifar(3, 100), 32),
        (ModelConfig::imagenet(Arch::Resnet50, 20), 64),
        (ModelConfig::imagenet(Arch::Resnext50_32x4d, 20), 64),
    ] {
        let (_, model) = build(&config);
        let b = 2;
        let images = Tensor::randn([3 * b, config.in_channels, image_size, image_size], (Kind::Float, Device::Cpu));
        let out = model.forward_t(&images, true);
        assert_eq!(out.features.size(), vec![3 * b, config.feature_dim], "{:?}", config.arch);
        assert_eq!(out.logits.size(), vec![3 * b, config.num_classes]);
        assert_eq!(out.prototypes.size(), vec![config.num_classes, config.feature_dim]);
        assert!(all_close_to(&row_norms(&out.features, 1), 1.0, 1e-5));
        assert!(all_close_to(&row_norms(&out.prototypes, 1), 1.0, 1e-5));
        // Cosine logits are bounded by the scale s.
        assert!(out.logits.abs().max().double_value(&[]) <= config.cosine_scale + 1e-4);
        // Evaluation mode uses the running statistics and gives the classifier logits only.
        let eval_logits = model.logits(&images);
        assert_eq!(eval_logits.size(), vec![3 * b, config.num_classes]);
    }
}

#[test]
fn initialisation_follows_torchvision() {
    tch::manual_seed(1);
    let config = ModelConfig::imagenet(Arch::Resnet50, 50);
    let (vs, _) = build(&config);
    let vars = vs.variables();
    for (name, t) in &vars {
        if name.ends_with("running_var") || (name.contains(".bn") && name.ends_with(".weight")) {
            assert!(all_close_to(t, 1.0, 0.0), "{name} must start at 1");
        }
        if name.ends_with("running_mean") || (name.contains(".bn") && name.ends_with(".bias")) {
            assert!(all_close_to(t, 0.0, 0.0), "{name} must start at 0");
        }
    }
    assert!(all_close_to(&vars["head.1.weight"], 1.0, 0.0), "BatchNorm1d weight starts at 1");
    // Kaiming-normal, fan-out: std = √(2 / (out_channels · k · k)).
    let w = &vars["encoder.layer4.0.conv2.weight"]; // 512 × 512 × 3 × 3
    let expected_std = (2.0 / (512.0 * 9.0f64)).sqrt();
    let std = w.std(true).double_value(&[]);
    assert!((std / expected_std - 1.0).abs() < 0.02, "conv std {std} vs {expected_std}");
    // PyTorch's Linear: U(−1/√fan_in, 1/√fan_in), so max |w| ≈ 1/√2048.
    let bound = 1.0 / 2048f64.sqrt();
    let max = vars["head.0.weight"].abs().max().double_value(&[]);
    assert!(max <= bound && max > 0.99 * bound, "linear init max {max} vs bound {bound}");
    // Cosine classifier: every class column has unit norm.
    let norms = row_norms(&vars["fc.weight"], 0);
    assert!(all_close_to(&norms, 1.0, 1e-5), "fc column norms {norms}");
}

#[test]
fn prototypes_send_gradients_into_the_classifier_weights() {
    let config = ModelConfig::cifar(1, 10);
    let (vs, model) = build(&config);
    let images = Tensor::randn([6, 1, 28, 28], (Kind::Float, Device::Cpu));
    let out = model.forward_t(&images, true);
    (out.prototypes * Tensor::randn([10, 128], (Kind::Float, Device::Cpu))).sum(Kind::Float).backward();
    let vars = vs.variables();
    assert!(vars["fc.weight"].grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert!(vars["head_fc.0.weight"].grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // The encoder does not take part in the prototypes.
    assert!(!vars["encoder.conv1.weight"].grad().defined());
}

#[test]
fn cifar_shortcut_keeps_the_identity_path() {
    // With every convolution zeroed, a BasicBlock's output is relu(shortcut): the encoder
    // of a non-negative input must then still carry signal through to its features.
    let config = ModelConfig::cifar(3, 10);
    let (vs, model) = build(&config);
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            if name.starts_with("encoder.layer") && name.ends_with("conv1.weight") {
                let _ = t.shallow_clone().zero_();
            }
        }
    });
    let images = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let h = model.encode(&images, false);
    assert_eq!(h.size(), vec![2, 64]);
    assert!(h.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}
