//! A trained model for other tools: its weights as a plain PyTorch `state_dict`
//! (`load_state_dict(strict=True)` takes it; `scripts/load_in_pytorch.py` builds the model),
//! a TorchScript module of the classifier (`torch.jit.load`), or a Triton model repository
//! entry holding that module. `model_card` writes what goes beside each.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
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
    crate::fs::check_output_file(path)?;
    // libtorch's message runs on with its C++ backtrace: the first line says what failed.
    module.save(path).map_err(|e| {
        let cause = e.to_string();
        anyhow::anyhow!("cannot write {}: {}", path.display(), cause.lines().next().unwrap_or_default().trim())
    })
}

/// The largest batch the Triton config lets the server form from queued requests.
const TRITON_MAX_BATCH: usize = 64;

/// Writes a Triton model repository entry `repo/<name>/`: `config.pbtxt` (platform
/// `pytorch_libtorch`, input `INPUT__0` C × H × W float32, output `OUTPUT__0` logits with
/// the class names as its labels), `labels.txt`, and the TorchScript module as
/// `1/model.pt`. Returns the model's folder.
pub fn write_triton(loaded: &LoadedModel, repo: &Path, name: &str) -> Result<PathBuf> {
    ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "Triton model name {name:?}: use letters, digits, '_' and '-'"
    );
    let folder = repo.join(name);
    let version = folder.join("1");
    std::fs::create_dir_all(&version).with_context(|| format!("cannot create {}", version.display()))?;
    write_torchscript(loaded, &version.join("model.pt"))?;
    let labels: Vec<String> = loaded.class_names.iter().map(|n| n.replace(['\n', '\r'], " ")).collect();
    crate::fs::write_atomic(&folder.join("labels.txt"), (labels.join("\n") + "\n").as_bytes())?;
    let input = loaded.config.input();
    let config = format!(
        "name: \"{name}\"\nplatform: \"pytorch_libtorch\"\nmax_batch_size: {TRITON_MAX_BATCH}\n\
         input [\n  {{\n    name: \"INPUT__0\"\n    data_type: TYPE_FP32\n    dims: [ {}, {side}, {side} ]\n  }}\n]\n\
         output [\n  {{\n    name: \"OUTPUT__0\"\n    data_type: TYPE_FP32\n    dims: [ {} ]\n    \
         label_filename: \"labels.txt\"\n  }}\n]\ndynamic_batching {{ }}\n",
        input.channels,
        loaded.config.model.num_classes,
        side = input.size,
    );
    crate::fs::write_atomic(&folder.join("config.pbtxt"), config.as_bytes())?;
    Ok(folder)
}

/// The Python step of [`write_onnx`].
const TORCHSCRIPT_TO_ONNX: &str = include_str!("../scripts/torchscript_to_onnx.py");

/// Writes an ONNX model (input `input` N × C × H × W, output `logits`, the batch axis
/// dynamic): the TorchScript module, converted by PyTorch's exporter in `python` (which
/// needs torch and onnx; tch cannot write ONNX).
pub fn write_onnx(loaded: &LoadedModel, path: &Path, python: &Path) -> Result<()> {
    crate::fs::check_output_file(path)?;
    let traced = path.with_extension("onnx-source.pt");
    write_torchscript(loaded, &traced)?;
    let input = loaded.config.input();
    let converted = run_python(python, TORCHSCRIPT_TO_ONNX, &[&traced, path], &[input.channels, input.size as i64]);
    let removed = std::fs::remove_file(&traced).with_context(|| format!("cannot remove {}", traced.display()));
    converted.with_context(|| format!("cannot write {}", path.display()))?;
    removed
}

/// Runs `script` (given on standard input) in `python` with `paths` and then `numbers` as
/// its arguments; its last line of errors is the error.
fn run_python(python: &Path, script: &str, paths: &[&Path], numbers: &[i64]) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(python)
        .arg("-")
        .args(paths)
        .args(numbers.iter().map(i64::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} (--python names a Python with torch and onnx)", python.display()))?;
    child.stdin.take().context("python's standard input")?.write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    let errors = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "{} failed: {}",
        python.display(),
        errors.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim()
    );
    Ok(())
}
