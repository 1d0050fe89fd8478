//! Run configuration: presets, TOML overrides, validation, and mixed precision helpers.
use bcl::amp::{self, LossScaler};
use bcl::config::{Amp, Preset, TrainConfig, Tune};
use bcl::loss::{LossConfig, LossKind};
use bcl::schedule::Decay;
use tch::{Device, Kind, Tensor};

#[test]
fn every_preset_is_valid_and_round_trips_through_toml() {
    for &preset in Preset::all() {
        let name = &preset.name();
        let config = TrainConfig::preset(preset, "/data".into());
        config.validate().unwrap();
        let text = config.to_toml().unwrap();
        assert_eq!(TrainConfig::from_toml(&text, name).unwrap(), config, "{name}");
    }
}

/// A config written before `--tune` (last stop's frozen transfer runs, kept in results/)
/// still loads: `freeze_encoder = true` is `tune = "head"`.
#[test]
fn configs_from_before_tune_still_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("results/transfer/bcl-frozen-seed0/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("freeze_encoder = true"));
    let config = TrainConfig::from_toml(&text, &path.display().to_string()).unwrap();
    assert_eq!(config.finetune.tune, Tune::Head);
    assert!(TrainConfig::from_toml(&config.to_toml().unwrap(), "written").unwrap().finetune.tune == Tune::Head);
}

/// The loss is one `[loss]` table tagged by `kind`; configs saved before it (`loss = "bcl"`
/// and six top-level keys, as results/ holds) read as the same loss, irrelevant keys dropped.
#[test]
fn the_loss_table_changes_by_key_and_old_configs_read_as_the_same_loss() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("results/transfer/bcl-frozen-seed0/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("loss = \"bcl\"") && text.contains("beta = 0.6"), "a config from before [loss]");
    let old = TrainConfig::from_toml(&text, "old").unwrap();
    assert_eq!(old.loss, LossConfig::bcl(0.1, 2.0, 0.6));
    let la = TrainConfig::from_toml(&text.replace("loss = \"bcl\"", "loss = \"la\""), "old la").unwrap();
    assert_eq!(la.loss, LossConfig::La { logit_adjustment: 1.0 });
    assert!(old.to_toml().unwrap().contains("[loss]\nkind = \"bcl\""));
    // An old run's config.toml as a --config file reads the same way.
    let old_la = text.replace("loss = \"bcl\"", "loss = \"la\"");
    let base = TrainConfig::preset(Preset::Cifar10Lt, "/data".into());
    assert_eq!(base.with_overrides(&old_la, "old.toml").unwrap().loss, LossConfig::La { logit_adjustment: 1.0 });

    let cifar = TrainConfig::preset(Preset::Cifar10Lt, "/data".into());
    let supcon = cifar.with_overrides("[loss]\nkind = \"supcon\"\nbeta = 0.5", "o.toml").unwrap();
    let expected = LossConfig::Supcon { temperature: 0.1, alpha: 2.0, beta: 0.5, logit_adjustment: 1.0 };
    assert_eq!(supcon.loss, expected);
    assert_eq!(cifar.with_overrides("loss = \"supcon\"\nbeta = 0.5", "old-style.toml").unwrap().loss, expected);
    // LIFT trains LA; `kind = "bcl"` brings the ImageNet recipe's BCL settings.
    let lift = TrainConfig::preset(Preset::LiftCifar100Lt, "/data".into());
    assert_eq!(lift.loss.kind(), LossKind::La);
    let bcl = lift.with_overrides("[loss]\nkind = \"bcl\"", "o.toml").unwrap();
    assert_eq!(bcl.loss, LossConfig::bcl(0.07, 1.0, 0.35));
    assert_eq!(bcl.with_overrides("[loss]\nkind = \"la\"", "o.toml").unwrap().loss, lift.loss);
}

#[test]
fn overrides_change_only_the_keys_given() {
    let base = TrainConfig::preset(Preset::Cifar100Lt, "/data".into());
    let text = "epochs = 10\nloss = \"ce\"\n[schedule]\nbase_lr = 0.05\n[schedule.decay]\nkind = \"cosine\"\n";
    let config = base.with_overrides(text, "o.toml").unwrap();
    assert_eq!((config.epochs, config.loss.kind(), config.schedule.base_lr), (10, LossKind::Ce, 0.05));
    assert_eq!(config.schedule.decay, Decay::Cosine, "a table with `kind` replaces the whole table");
    assert_eq!(config.schedule.warmup_epochs, base.schedule.warmup_epochs);
    assert_eq!(config.model, base.model);
    assert_eq!(base.with_overrides("", "empty.toml").unwrap(), base);
}

#[test]
fn bad_configs_are_refused_with_the_key_and_file() {
    let base = TrainConfig::preset(Preset::Cifar10Lt, "/data".into());
    for (text, expected) in [
        ("epochz = 3", "unknown field `epochz`"),
        ("epochs = -3", "o.toml does not fit the config"),
        ("temperature = 0.0", "loss.temperature = 0 must be a positive number"),
        ("[loss]\nkind = \"la\"\ntemperature = 0.2", "the la loss has no temperature to set"),
        ("[loss]\ngamma = 1.0", "unknown field `gamma`"),
        ("momentum = 1.5", "momentum = 1.5 must be in [0, 1)"),
        ("alpha = nan", "alpha = NaN and beta = 0.6 must be finite"),
        ("[data]\nimb_factor = 0.5", "data.imb_factor = 0.5 must be a number ≥ 1"),
        ("batch_size = 1", "batch_size = 1 must be at least 2"),
        ("[schedule.decay]\nkind = \"linear\"", "o.toml does not fit the config"),
        ("epochs = ", "o.toml is not valid TOML"),
    ] {
        let err = format!("{:#}", base.with_overrides(text, "o.toml").unwrap_err());
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

/// libtorch's autocast, called through its C++ symbols: inside the region a matmul runs in
/// the chosen precision on the CPU; outside (and after it) in float32.
#[test]
fn autocast_runs_matmuls_in_the_chosen_precision_and_restores_float32() {
    let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
    assert_eq!(amp::autocast(Device::Cpu, Some(Kind::BFloat16), || a.matmul(&a)).kind(), Kind::BFloat16);
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    assert_eq!(amp::autocast(Device::Cpu, None, || a.matmul(&a)).kind(), Kind::Float);
    assert_eq!(amp::autocast_kind(Amp::Fp16), Some(Kind::Half));
    assert_eq!(amp::autocast_kind(Amp::Off), None);
}

#[test]
fn precision_follows_the_device_and_full_precision_regions_nest_inside_autocast() {
    let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
    let inner = amp::autocast(Device::Cpu, Some(Kind::BFloat16), || {
        (amp::without_autocast(Device::Cpu, || a.matmul(&a)).kind(), a.matmul(&a).kind())
    });
    assert_eq!(inner, (Kind::Float, Kind::BFloat16), "off inside, back on after");
    assert_eq!(amp::resolve(Amp::Fp16, Device::Cpu), (Amp::Off, Some("float16 autocast is for GPUs")));
    assert_eq!(amp::resolve(Amp::Bf16, Device::Cuda(0)), (Amp::Bf16, None));
    assert_eq!(amp::resolve(Amp::Off, Device::Cpu), (Amp::Off, None));
    assert_eq!(amp::resolve(Amp::Auto, Device::Cuda(0)), (Amp::Bf16, None));
    let flags = amp::cpu_flags();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let auto_cpu = amp::resolve(Amp::Auto, Device::Cpu).0;
    assert_eq!(auto_cpu == Amp::Bf16, has("amx_bf16"), "auto: bf16 on a CPU with AMX only");
    let bf16_cpu = amp::resolve(Amp::Bf16, Device::Cpu).0;
    assert_eq!(
        bf16_cpu == Amp::Bf16,
        has("avx512_bf16") || has("amx_bf16") || has("bf16"),
        "bf16 where the CPU has it"
    );
}

#[test]
fn the_loss_scaler_skips_overflowing_steps_and_unscales_the_rest() {
    let p = Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let parameters = vec![("p".to_string(), p.shallow_clone())];
    let mut scaler = LossScaler::default();
    (&p * 65536.0 * 2.0).sum(Kind::Float).backward();
    assert!(scaler.unscale(&parameters));
    assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), [2.0; 3], "gradients are unscaled");
    assert_eq!(scaler.clean_steps, 1);

    let mut grad = p.grad();
    let _ = grad.fill_(f64::INFINITY);
    assert!(!scaler.unscale(&parameters), "an overflow skips the step");
    assert_eq!((scaler.scale, scaler.clean_steps), (32768.0, 0));
}
