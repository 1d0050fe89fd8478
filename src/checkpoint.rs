//! Checkpoints: one safetensors file each, holding the model's `state_dict` under the
//! reference's key names (so the file is also plain weights for other tools), the SGD
//! momentum buffers under `optimizer.momentum_buffer.<key>`, and the run's configuration
//! and progress as JSON strings in the safetensors metadata.
//!
//! Files are written atomically (temporary file, fsync, rename, fsync of the folder): a
//! crash or a full disk leaves the previous checkpoint as it was. Reading never runs code:
//! PyTorch's pickled `.pt`/`.pth` files are refused with a way to convert them.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::fs::write_atomic;

const OPTIMIZER_PREFIX: &str = "optimizer.momentum_buffer.";

/// A checkpoint's contents, on the CPU.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Model parameters and BatchNorm statistics by `state_dict` key.
    pub weights: BTreeMap<String, Tensor>,
    /// SGD momentum buffers by parameter key.
    pub optimizer: BTreeMap<String, Tensor>,
    /// Free-form strings (bcl stores its config and progress here).
    pub metadata: HashMap<String, String>,
}

/// The checkpoint file a user names: `RUN/best` or `RUN/best.safetensors`, or a run folder
/// (its `last`).
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.join("last.safetensors");
    }
    if !path.exists() && path.extension().is_none() {
        return path.with_extension("safetensors");
    }
    path.to_path_buf()
}

/// Writes `checkpoint` to `path` atomically.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<()> {
    write_atomic(path, &encode(checkpoint)?)
}

/// The safetensors bytes of `checkpoint` (encode once, write to several paths).
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>> {
    let optimizer = checkpoint.optimizer.iter().map(|(k, t)| (format!("{OPTIMIZER_PREFIX}{k}"), t));
    let tensors: Vec<(String, TensorBytes)> = checkpoint
        .weights
        .iter()
        .map(|(k, t)| (k.clone(), t))
        .chain(optimizer)
        .map(|(k, t)| TensorBytes::new(t).map(|b| (k, b)))
        .collect::<Result<_>>()?;
    safetensors::serialize(tensors, Some(checkpoint.metadata.clone())).context("cannot encode the checkpoint")
}

/// Reads a checkpoint or a plain safetensors weights file. Keys of a `DataParallel` model
/// (`module.` prefix) are accepted; `num_batches_tracked` counters are dropped (unused).
pub fn load(path: &Path) -> Result<Checkpoint> {
    refuse_pickle(path)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    parse(&bytes, path)
}

/// The metadata of a checkpoint (config, progress), read from its header alone: a few
/// kilobytes, whatever the size of the weights.
pub fn metadata(path: &Path) -> Result<HashMap<String, String>> {
    refuse_pickle(path)?;
    let mut file = File::open(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let mut length = [0u8; 8];
    std::io::Read::read_exact(&mut file, &mut length).with_context(|| format!("{} is too short", path.display()))?;
    let length = u64::from_le_bytes(length);
    ensure!(length <= 100 << 20, "{} is not a valid safetensors file: a {length}-byte header", path.display());
    let mut header = vec![0u8; length as usize];
    std::io::Read::read_exact(&mut file, &mut header).with_context(|| format!("{} is cut short", path.display()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{} is not a valid safetensors file: its header is not JSON", path.display()))?;
    let metadata = header.get("__metadata__").cloned().unwrap_or_default();
    Ok(serde_json::from_value(metadata).unwrap_or_default())
}

/// Decodes the bytes of a safetensors checkpoint; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad =
        |e: safetensors::SafeTensorError| anyhow::anyhow!("{} is not a valid safetensors file: {e}", path.display());
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let file = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut checkpoint = Checkpoint { metadata: header.metadata().clone().unwrap_or_default(), ..Default::default() };
    for (name, view) in file.iter() {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let tensor = to_tensor(&view).with_context(|| format!("tensor {name:?} of {}", path.display()))?;
        match name.strip_prefix(OPTIMIZER_PREFIX) {
            Some(key) => checkpoint.optimizer.insert(key.to_string(), tensor),
            None => checkpoint.weights.insert(name.strip_prefix("module.").unwrap_or(name).to_string(), tensor),
        };
    }
    Ok(checkpoint)
}

/// How a file's tensors line up with a model's variables, key by key (after whatever
/// renaming the caller did).
#[derive(Debug, Default)]
pub struct KeyMatch {
    /// In both, with equal shapes: the keys that load.
    pub matched: Vec<String>,
    /// The model's keys the file lacks.
    pub missing: Vec<String>,
    /// The file's keys the model lacks.
    pub unexpected: Vec<String>,
    /// In both with different shapes: the key, the file's shape, the model's.
    pub mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl KeyMatch {
    /// Matches `weights` to `variables` (a VarStore's); every list in key order.
    pub fn new(variables: &HashMap<String, Tensor>, weights: &BTreeMap<String, Tensor>) -> Self {
        let mut found = Self::default();
        let mut keys: Vec<&String> = variables.keys().collect();
        keys.sort();
        for key in keys {
            match weights.get(key) {
                None => found.missing.push(key.clone()),
                Some(weight) if weight.size() != variables[key].size() => {
                    found.mismatched.push((key.clone(), weight.size(), variables[key].size()))
                }
                Some(_) => found.matched.push(key.clone()),
            }
        }
        found.unexpected = weights.keys().filter(|k| !variables.contains_key(*k)).cloned().collect();
        found
    }

    /// Copies the matched tensors into `variables`, each cast to its variable's type (so
    /// fp16 or bf16 files load into a float32 model and leave it float32).
    pub fn copy(&self, variables: &HashMap<String, Tensor>, weights: &BTreeMap<String, Tensor>) {
        tch::no_grad(|| {
            for key in &self.matched {
                let variable = &variables[key];
                variable.shallow_clone().copy_(&weights[key].to_kind(variable.kind()));
            }
        });
    }
}

/// Copies `weights` into `variables` (a VarStore's), which must match key for key and
/// shape for shape; `source` names the file in errors.
pub fn copy_weights(
    variables: &HashMap<String, Tensor>,
    weights: &BTreeMap<String, Tensor>,
    source: &Path,
) -> Result<()> {
    let found = KeyMatch::new(variables, weights);
    let (missing, unexpected) = (&found.missing, &found.unexpected);
    if !missing.is_empty() || !unexpected.is_empty() {
        bail!(
            "{} does not fit the model: {} of its tensors are missing ({}), {} are not in the model ({})",
            source.display(),
            missing.len(),
            first_few(missing),
            unexpected.len(),
            first_few(unexpected)
        );
    }
    if let Some((key, file_shape, model_shape)) = found.mismatched.first() {
        bail!(
            "{}: tensor {key:?} has shape {file_shape:?}, the model expects {model_shape:?} (a different \
             architecture or class count?)",
            source.display(),
        );
    }
    found.copy(variables, weights);
    Ok(())
}

/// Up to four of `keys`, for an error message.
pub fn first_few(keys: &[String]) -> String {
    let mut shown: Vec<&str> = keys.iter().take(4).map(String::as_str).collect();
    if keys.len() > 4 {
        shown.push("…");
    }
    if shown.is_empty() { "none".into() } else { shown.join(", ") }
}

/// Refuses PyTorch pickle checkpoints before reading them: unpickling can run code.
fn refuse_pickle(path: &Path) -> Result<()> {
    crate::fs::check_regular_file(path, "checkpoint")?;
    let mut head = [0u8; 4];
    let read = File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let is_zip = read >= 4 && head == *b"PK\x03\x04";
    let is_pickle = read >= 2 && head[0] == 0x80 && head[1] <= 5;
    let pytorch_name = matches!(path.extension().and_then(|e| e.to_str()), Some("pt" | "pth" | "pkl" | "tar" | "bin"));
    if is_zip || is_pickle || pytorch_name {
        bail!(
            "{} looks like a PyTorch pickle checkpoint; bcl only reads safetensors, because unpickling a file \
             can run code in it. Convert it where you trust it: python scripts/pt_to_safetensors.py {} OUT.safetensors",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// A tensor's bytes on the CPU, as safetensors writes them.
struct TensorBytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl TensorBytes {
    fn new(tensor: &Tensor) -> Result<Self> {
        let dtype = match tensor.kind() {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            other => bail!("cannot checkpoint a tensor of kind {other:?}"),
        };
        Ok(Self { dtype, shape: tensor.size().iter().map(|&d| d as usize).collect(), data: bytes_of(tensor) })
    }
}

/// A tensor's elements as bytes in memory order, copied to the CPU.
pub fn bytes_of(tensor: &Tensor) -> Vec<u8> {
    let tensor = tensor.to_device(Device::Cpu).contiguous();
    let numel = tensor.numel();
    let mut bytes = vec![0u8; numel * tensor.kind().elt_size_in_bytes()];
    tensor.copy_data_u8(&mut bytes, numel);
    bytes
}

impl View for TensorBytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_tensor(view: &safetensors::tensor::TensorView<'_>) -> Result<Tensor> {
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        other => bail!("unsupported element type {other:?}"),
    };
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_data_size(view.data(), &shape, kind))
}
