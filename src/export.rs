//! A trained model for other tools: its weights as a plain PyTorch `state_dict`
//! (`load_state_dict(strict=True)` takes it; `scripts/load_in_pytorch.py` builds the model),
//! or a TorchScript module of the classifier (`torch.jit.load`).
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, Checkpoint};
use crate::predict::LoadedModel;

/// The `format` of an exported weights file's metadata.
pub const WEIGHTS_FORMAT: &str = "bcl-weights";

/// Writes `loaded`'s weights as PyTorch's `state_dict` has them: the reference's key names,
/// every BatchNorm's `num_batches_tracked` counter (bcl keeps none: 0), no optimizer state.
/// The config and class names go into the metadata, so that `bcl eval` and `predict` read
/// the file as they read a checkpoint.
pub fn write_state_dict(loaded: &LoadedModel, path: &Path) -> Result<()> {
    let mut weights: BTreeMap<String, Tensor> = loaded.vs.variables().into_iter().collect();
    let counters: Vec<String> = weights
        .keys()
        .filter_map(|key| key.strip_suffix(".running_mean"))
        .map(|norm| format!("{norm}.num_batches_tracked"))
        .collect();
    for key in counters {
        weights.insert(key, Tensor::scalar_tensor(0, (Kind::Int64, Device::Cpu)));
    }
    let metadata = HashMap::from([
        ("format".to_string(), WEIGHTS_FORMAT.to_string()),
        ("config".to_string(), loaded.config.to_toml()?),
        ("class_names".to_string(), serde_json::to_string(&loaded.class_names)?),
    ]);
    checkpoint::save(path, &Checkpoint { weights, optimizer: BTreeMap::new(), metadata })
}

/// Writes a TorchScript module whose `forward` maps a normalised N × C × H × W float32
/// batch to the classifier's logits (traced on the CPU, evaluation mode).
pub fn write_torchscript(loaded: &LoadedModel, path: &Path) -> Result<()> {
    let input = loaded.config.input();
    let (channels, size) = (input.channels, input.size as i64);
    let example = Tensor::zeros([2, channels, size, size], (Kind::Float, loaded.vs.device()));
    let module = tch::no_grad(|| {
        tch::CModule::create_by_tracing("BclClassifier", "forward", &[example], &mut |inputs| {
            vec![loaded.model.logits(&inputs[0])]
        })
    })
    .context("tracing the model")?;
    // libtorch's message runs on with its C++ backtrace: the first line says what failed.
    module.save(path).map_err(|e| {
        let cause = e.to_string();
        anyhow::anyhow!("cannot write {}: {}", path.display(), cause.lines().next().unwrap_or_default().trim())
    })
}
