//! Checkpoint files: round trips, the reference's weight files, and files that must be
//! refused without being unpickled.
use std::collections::{BTreeMap, HashMap};

use bcl::checkpoint::{self, Checkpoint};
use bcl::config::{Preset, TrainConfig};
use bcl::predict::load_model;
use tch::{Device, Kind, Tensor, nn};

fn fashion_config() -> TrainConfig {
    TrainConfig::preset(Preset::FashionMnistLt, "/data".into())
}

/// A model's weights as the reference's `torch.save(model.state_dict())` names them after
/// `DataParallel`: `module.` prefixes and BatchNorm `num_batches_tracked` counters.
fn reference_style_weights(config: &TrainConfig) -> (BTreeMap<String, Tensor>, HashMap<String, Tensor>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = bcl::model::BclModel::new(&vs.root(), &config.model);
    let variables = vs.variables();
    let mut weights: BTreeMap<String, Tensor> =
        variables.iter().map(|(k, t)| (format!("module.{k}"), t.detach().copy())).collect();
    for key in variables.keys().filter(|k| k.ends_with("running_mean")) {
        let counter = key.replace("running_mean", "num_batches_tracked");
        weights.insert(format!("module.{counter}"), Tensor::from(7i64));
    }
    (weights, variables)
}

#[test]
fn reference_format_weights_load_into_the_model() {
    let config = fashion_config();
    let (weights, variables) = reference_style_weights(&config);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.safetensors");
    checkpoint::save(&path, &Checkpoint { weights, ..Default::default() }).unwrap();

    let err = load_model(&path, None, Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("holds weights only; say which model it is with --preset"), "{err}");
    let loaded = load_model(&path, Some(&config), Device::Cpu).unwrap();
    let loaded_vars = loaded.vs.variables();
    for (key, tensor) in &variables {
        assert!(loaded_vars[key].equal(tensor), "{key}");
    }
    assert_eq!(loaded.class_names[9], "class 9");
}

#[test]
fn weights_of_another_shape_or_model_are_refused_by_name() {
    let config = fashion_config();
    let (weights, _) = reference_style_weights(&config);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let saved = Checkpoint { weights, ..Default::default() };
    checkpoint::save(&path, &saved).unwrap();

    let mut other = config.clone();
    other.model.num_classes = 100;
    let err = load_model(&path, Some(&other), Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("tensor \"fc.weight\" has shape [64, 10], the model expects [64, 100]"), "{err}");

    let mut fewer = saved.weights;
    fewer.remove("module.fc.weight");
    fewer.insert("module.extra.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)));
    checkpoint::save(&path, &Checkpoint { weights: fewer, ..Default::default() }).unwrap();
    let err = load_model(&path, Some(&config), Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("1 of its tensors are missing (fc.weight), 1 are not in the model (extra.weight)"), "{err}");
}

#[test]
fn pickles_are_refused_before_reading_whatever_their_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("a.safetensors", &b"\x80\x02}q\x00(X\x05\x00\x00\x00epochq\x01K\x05u."[..]),
        ("b.safetensors", &b"PK\x03\x04\x14\x00\x00\x00"[..]),
        ("c.pt", &b"anything"[..]),
        ("d.pth", &b""[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = checkpoint::load(&path).err().unwrap().to_string();
        assert!(err.contains("PyTorch pickle checkpoint") && err.contains("pt_to_safetensors.py"), "{name}: {err}");
    }
}

#[test]
fn a_checkpoint_round_trips_with_its_metadata_and_optimizer_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let weights = BTreeMap::from([("w".to_string(), Tensor::from_slice(&[1.5f32, -2.0]).view([2, 1]))]);
    let optimizer = BTreeMap::from([("w".to_string(), Tensor::from_slice(&[0.25f32, 0.5]).view([2, 1]))]);
    let metadata = HashMap::from([("state".to_string(), "{\"epoch\":3}".to_string())]);
    checkpoint::save(&path, &Checkpoint { weights, optimizer, metadata }).unwrap();
    let back = checkpoint::load(&path).unwrap();
    assert_eq!(back.weights["w"].size(), [2, 1]);
    assert_eq!(Vec::<f32>::try_from(back.weights["w"].view([-1])).unwrap(), [1.5, -2.0]);
    assert_eq!(Vec::<f32>::try_from(back.optimizer["w"].view([-1])).unwrap(), [0.25, 0.5]);
    assert_eq!(back.metadata["state"], "{\"epoch\":3}");
    // Nothing but the file itself is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
