//! Starting from pretrained weights (`--init FILE`), as timm's `--pretrained-path` and
//! `load_pretrained` do: a torchvision or timm ResNet `state_dict`, or a bcl checkpoint or
//! export, in safetensors. The encoder loads by name; a classifier whose shape differs is
//! dropped; fp16/bf16 tensors are cast to float32; a report says what loaded.
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::checkpoint::{self, KeyMatch, first_few};
use crate::model::{Arch, ENCODER_PREFIX, is_adapter};

/// The weights a run started from, as its config records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSource {
    pub path: PathBuf,
    pub sha256: String,
}

impl InitSource {
    /// `path`, with its sha256 (read once, in blocks).
    pub fn of(path: &Path) -> Result<Self> {
        crate::fs::check_regular_file(path, "--init")?;
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot read --init {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut block).with_context(|| format!("cannot read --init {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&block[..n]);
        }
        let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { path: path.to_path_buf(), sha256 })
    }

    /// The file again, checked to be the one recorded (its sha256 unchanged).
    pub fn reopen(&self) -> Result<Self> {
        let found = Self::of(&self.path)?;
        anyhow::ensure!(
            found.sha256 == self.sha256,
            "--init {} has changed since the run was configured (its sha256 is {}, the config says {})",
            self.path.display(),
            found.sha256,
            self.sha256
        );
        Ok(found)
    }
}

/// Prefixes trainers wrap a `state_dict`'s keys in (timm's `state_dict` / `model`
/// sub-dicts, flattened; DataParallel's `module.`): stripped, one after the other, while
/// every key has one.
const KEY_WRAPPERS: [&str; 3] = ["state_dict.", "model.", "module."];

/// What `--init` loaded, for the one-line summary and the run folder's `init.txt`.
#[derive(Debug)]
pub struct InitReport {
    pub source: InitSource,
    /// In the model's key names.
    pub keys: KeyMatch,
    /// The encoder's variables, loaded or not, less its adapters.
    pub encoder_total: usize,
    /// The adapters' variables, which start as new (`--tune adapter`).
    pub adapters: usize,
    /// The classes of the file's classifier, when it has one.
    pub file_classes: Option<i64>,
    pub model_classes: i64,
}

/// Loads the weights of `source` into `variables` (the VarStore's of an `arch` model).
/// Errors name the file: nothing of the encoder matched, or an encoder tensor of another shape.
pub fn load(
    source: InitSource,
    arch: Arch,
    model_classes: i64,
    variables: &HashMap<String, Tensor>,
) -> Result<InitReport> {
    let path = &source.path;
    let file = checkpoint::load(path)?;
    let weights = in_model_names(file.weights, variables);
    let keys = KeyMatch::new(variables, &weights);
    let file_classes = classes_of(&weights);
    let adapters = variables.keys().filter(|k| is_adapter(k)).count();
    let encoder_total = variables.keys().filter(|k| k.starts_with(ENCODER_PREFIX)).count() - adapters;
    if let Some((key, file_shape, model_shape)) = keys.mismatched.iter().find(|(k, ..)| k.starts_with(ENCODER_PREFIX)) {
        bail!(
            "--init {}: {} has shape {file_shape:?} there, {model_shape:?} in a {} model: weights of another \
             architecture (choose it with --arch)",
            path.display(),
            key.strip_prefix(ENCODER_PREFIX).unwrap_or(key),
            arch.name()
        );
    }
    let in_encoder =
        |keys: &[String]| keys.iter().filter(|k| k.starts_with(ENCODER_PREFIX)).cloned().collect::<Vec<_>>();
    // Adapters are new: no backbone file has them.
    let lacking: Vec<String> = in_encoder(&keys.missing).into_iter().filter(|k| !is_adapter(k)).collect();
    let surplus = in_encoder(&keys.unexpected);
    let encoder_loaded = keys.matched.iter().filter(|k| k.starts_with(ENCODER_PREFIX)).count();
    if encoder_loaded > 0 && (!surplus.is_empty() || !lacking.is_empty()) {
        bail!(
            "--init {}: not a {} encoder: the file has {} encoder tensors the model lacks ({}) and lacks {} it has \
             ({}): weights of another depth or variant (choose it with --arch)",
            path.display(),
            arch.name(),
            surplus.len(),
            first_few(&surplus),
            lacking.len(),
            first_few(&lacking)
        );
    }
    if encoder_loaded == 0 {
        let mut file_keys: Vec<String> = weights.keys().cloned().collect();
        file_keys.truncate(4);
        bail!(
            "--init {}: 0 of {encoder_total} encoder tensors: is this a {} state_dict? its keys look like {}",
            path.display(),
            arch.name(),
            first_few(&file_keys)
        );
    }
    keys.copy(variables, &weights);
    Ok(InitReport { source, keys, encoder_total, adapters, file_classes, model_classes })
}

/// The file's keys as the model (whose variables are `variables`) names them: a bcl file's
/// as they are; OpenAI CLIP's image tower converted to timm's names first; then a
/// torchvision or timm file's under `encoder.`, except a classifier (`fc`, timm's `head`)
/// the encoder has no place for, which meets bcl's `fc`.
fn in_model_names(
    mut weights: BTreeMap<String, Tensor>,
    variables: &HashMap<String, Tensor>,
) -> BTreeMap<String, Tensor> {
    while let Some(wrapper) =
        KEY_WRAPPERS.iter().find(|w| !weights.is_empty() && weights.keys().all(|k| k.starts_with(**w)))
    {
        weights = weights.into_iter().map(|(k, t)| (k[wrapper.len()..].to_string(), t)).collect();
    }
    if weights.keys().any(|k| k.starts_with(ENCODER_PREFIX)) {
        return weights;
    }
    let mut renamed = BTreeMap::new();
    if weights.keys().any(|k| k.starts_with(OPENAI_VISUAL)) {
        // The text tower keeps its names: reported as tensors the model has no place for.
        let text_tower;
        (weights, text_tower) = from_openai_clip(weights);
        renamed.extend(text_tower);
    }
    for (key, tensor) in weights {
        let in_encoder = format!("{ENCODER_PREFIX}{key}");
        let classifier = key.strip_prefix("fc.").or_else(|| key.strip_prefix("head."));
        match classifier {
            Some(rest) if !variables.contains_key(&in_encoder) => renamed.insert(format!("fc.{rest}"), tensor),
            _ => renamed.insert(in_encoder, tensor),
        };
    }
    renamed
}

/// The prefix of OpenAI CLIP's image tower in its released state_dict.
const OPENAI_VISUAL: &str = "visual.";

/// OpenAI CLIP's image tower under timm's ViT names, as timm's `_convert_openai_clip`
/// renames it: `proj` becomes `head` (transposed, zero bias), `class_embedding` the
/// `cls_token`; and, apart, the rest of the file (the text tower) as it is.
fn from_openai_clip(weights: BTreeMap<String, Tensor>) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
    const SWAPS: [(&str, &str); 10] = [
        ("conv1", "patch_embed.proj"),
        ("positional_embedding", "pos_embed"),
        ("transformer.resblocks.", "blocks."),
        ("ln_pre", "norm_pre"),
        ("ln_post", "norm"),
        ("ln_", "norm"),
        ("in_proj_", "qkv."),
        ("out_proj", "proj"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
    ];
    let (mut converted, mut rest) = (BTreeMap::new(), BTreeMap::new());
    for (key, tensor) in weights {
        let Some(visual) = key.strip_prefix(OPENAI_VISUAL) else {
            rest.insert(key, tensor);
            continue;
        };
        let name = SWAPS.iter().fold(visual.to_string(), |name, (from, to)| name.replace(from, to));
        match name.as_str() {
            "proj" => {
                let weight = tensor.tr().contiguous();
                converted.insert("head.bias".into(), weight.zeros_like().select(1, 0));
                converted.insert("head.weight".into(), weight)
            }
            "class_embedding" => converted.insert("cls_token".into(), tensor.view([1, 1, -1])),
            "pos_embed" => converted.insert(name, tensor.unsqueeze(0)),
            _ => converted.insert(name, tensor),
        };
    }
    (converted, rest)
}

/// The class count of a file's classifier: a linear `fc`'s bias length, or a cosine `fc`'s
/// columns (bcl's `fc.weight` is d × C).
fn classes_of(weights: &BTreeMap<String, Tensor>) -> Option<i64> {
    match (weights.get("fc.bias"), weights.get("fc.weight")) {
        (Some(bias), _) => bias.size().first().copied(),
        (None, Some(weight)) => weight.size().last().copied(),
        (None, None) => None,
    }
}

impl InitReport {
    /// The tensors of the file left out because their shape differs outside the encoder (a
    /// classifier for other classes), or that the model has no place for under `fc.`.
    pub fn dropped(&self) -> Vec<String> {
        let mismatched = self.keys.mismatched.iter().map(|(k, ..)| k.clone());
        mismatched.chain(self.keys.unexpected.iter().filter(|k| k.starts_with("fc.")).cloned()).collect()
    }

    /// `init: 318 of 320 encoder tensors from FILE (fc.weight, fc.bias dropped: 1000 classes,
    /// the data has 37)`.
    pub fn summary(&self) -> String {
        let encoder = self.keys.matched.iter().filter(|k| k.starts_with(ENCODER_PREFIX)).count();
        let heads = self.keys.matched.len() - encoder;
        let mut line =
            format!("init: {encoder} of {} encoder tensors from {}", self.encoder_total, self.source.path.display());
        if self.adapters > 0 {
            line += &format!(", {} adapter tensors new", self.adapters);
        }
        if heads > 0 {
            line += &format!(", {heads} head and classifier tensors");
        }
        let dropped = self.dropped();
        if !dropped.is_empty() {
            let why = match self.file_classes.filter(|&c| c != self.model_classes) {
                Some(c) => format!("{c} classes, the data has {}", self.model_classes),
                None => "shapes differ".into(),
            };
            line += &format!(" ({} dropped: {why})", dropped.join(", "));
        }
        let elsewhere = self.keys.unexpected.iter().filter(|k| !k.starts_with("fc.")).count();
        if elsewhere > 0 {
            line += &format!("; {elsewhere} tensors of the file have no place in the model (listed in init.txt)");
        }
        line
    }

    /// The whole account, for `init.txt`: every loaded, missing, unexpected and dropped key.
    pub fn details(&self) -> String {
        let section = |title: &str, keys: &[String]| {
            let mut text = format!("{title} ({}):\n", keys.len());
            keys.iter().for_each(|k| text += &format!("  {k}\n"));
            text
        };
        let mismatched: Vec<String> = self
            .keys
            .mismatched
            .iter()
            .map(|(k, file, model)| format!("{k}: {file:?} in the file, {model:?} in the model"))
            .collect();
        let unexpected: Vec<String> = self.keys.unexpected.iter().filter(|k| !k.starts_with("fc.")).cloned().collect();
        let dropped_fc: Vec<String> = self.keys.unexpected.iter().filter(|k| k.starts_with("fc.")).cloned().collect();
        [
            format!("{}\nsource: {}\nsha256: {}\n", self.summary(), self.source.path.display(), self.source.sha256),
            section("loaded", &self.keys.matched),
            section("missing: initialised fresh", &self.keys.missing),
            section("dropped: shapes differ", &mismatched),
            section("dropped: the file's classifier, which the model has no place for", &dropped_fc),
            section("unexpected: in the file, not in the model", &unexpected),
        ]
        .join("\n")
    }
}
