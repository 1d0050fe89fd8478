//! A trained model for inference: loading a checkpoint (or plain weights) and classifying
//! image files with the evaluation transform of the model's dataset.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use tch::{Device, Kind, Tensor, nn};

use crate::amp;
use crate::augment::{Recipe, RecipeStyle, ops};
use crate::checkpoint::{self, Checkpoint};
use crate::config::TrainConfig;
use crate::data::{Image, files};
use crate::init;
use crate::loader::to_planar;
use crate::model::{self, BclModel};

/// A trained model, ready to evaluate.
pub struct LoadedModel {
    pub config: TrainConfig,
    pub model: BclModel,
    /// Class names saved with a bcl checkpoint; `class k` for plain weights.
    pub class_names: Vec<String>,
    /// Owns the weights `model` uses.
    pub vs: nn::VarStore,
}

/// The model of a checkpoint: its config from the checkpoint's metadata (or `fallback`, for
/// plain weights such as the reference's), its weights loaded on `device`.
pub fn load_model(path: &Path, fallback: Option<&TrainConfig>, device: Device) -> Result<LoadedModel> {
    let saved = checkpoint::load(path)?;
    let config = match (saved.metadata.get("config"), fallback) {
        (_, Some(config)) => config.clone(),
        (Some(text), None) => TrainConfig::from_toml(text, &format!("the config in {}", path.display()))?,
        (None, None) => bail!("{} holds weights only; say which model it is with --preset", path.display()),
    };
    let (mut vs, model) = model::create(&config.model, device, None);
    load_weights(&config, &saved, path, &vs)?;
    // For inference only (and so that tracing takes the weights as constants).
    vs.freeze();
    let class_names = class_names(saved.metadata.get("class_names"), config.model.num_classes)
        .with_context(|| path.display().to_string())?;
    Ok(LoadedModel { config, model, class_names, vs })
}

/// Loads the model weights of the checkpoint `saved` (read from `path`, made by a run of
/// `config`) into `vs`, every variable. A checkpoint that leaves out what its run kept as
/// its `--init` file has it takes that part from the file, which must be the one the run
/// started from (same sha256).
pub fn load_weights(config: &TrainConfig, saved: &Checkpoint, path: &Path, vs: &nn::VarStore) -> Result<()> {
    let non_finite =
        saved.weights.iter().find(|(_, t)| t.is_floating_point() && t.isfinite().all().int64_value(&[]) == 0);
    if let Some((key, _)) = non_finite {
        bail!("{}: tensor {key} holds NaN or infinite values: these weights are broken", path.display());
    }
    let variables = vs.variables();
    let left_out = |key: &String| !saved.weights.contains_key(key) && config.keeps_from_init(key);
    if !variables.keys().any(left_out) {
        return checkpoint::copy_weights(&variables, &saved.weights, path);
    }
    let source = config.init.as_ref().context("a run that keeps its encoder as loaded names its --init file")?;
    let base = source.reopen().with_context(|| {
        format!(
            "{} holds only the tensors its run trained; the frozen encoder comes from the run's --init file",
            path.display()
        )
    })?;
    init::load(base, config.model.arch, config.model.num_classes, &variables)?;
    let trained = variables.into_iter().filter(|(key, _)| !left_out(key)).collect();
    checkpoint::copy_weights(&trained, &saved.weights, path)
}

/// Class names saved in a checkpoint, or `class k` for plain weights.
fn class_names(metadata: Option<&String>, num_classes: i64) -> Result<Vec<String>> {
    let Some(text) = metadata else { return Ok((0..num_classes).map(|k| format!("class {k}")).collect()) };
    let names: Vec<String> = serde_json::from_str(text).context("the checkpoint's class names are damaged")?;
    ensure!(
        names.len() as i64 == num_classes,
        "the checkpoint names {} classes ({}), its model has {num_classes}",
        names.len(),
        checkpoint::first_few(&names)
    );
    Ok(names)
}

/// What turns an image file into the model's input: the evaluation transform of the model's
/// recipe (CIFAR-style models get the file resized to their image size first), the model's
/// channels, the dataset's normalisation. Built once for any number of images.
pub struct InputTransform {
    recipe: Recipe,
    /// The side CIFAR-style models resize files to; none for ImageNet-style ones.
    resize_to: Option<usize>,
    gray: bool,
    tables: Vec<[f32; 256]>,
}

impl InputTransform {
    pub fn new(config: &TrainConfig) -> Result<Self> {
        let input = config.input();
        Ok(Self {
            recipe: config.recipe()?,
            resize_to: (input.style == RecipeStyle::Cifar).then_some(input.size),
            gray: input.channels == 1,
            tables: input.normalization.tables(),
        })
    }

    /// The model input for the image at `path`: 1 × C × H × W, normalised.
    pub fn apply(&self, path: &Path) -> Result<Tensor> {
        let mut image = files::decode_rgb(path)?;
        if let Some(size) = self.resize_to {
            image = ops::resize(&image, size, size);
        }
        let image = self.recipe.eval.apply(image, &mut rand::SeedableRng::seed_from_u64(0));
        let image = if self.gray {
            let gray = ops::grayscale(image);
            Image::new(gray.width, gray.height, 1, gray.pixels.iter().step_by(3).copied().collect())
        } else {
            image
        };
        let mut values = vec![0f32; image.channels * image.width * image.height];
        to_planar(&image, &mut values, &|channel, v| self.tables[channel][v as usize]);
        Ok(Tensor::from_slice(&values).view([1, image.channels as i64, image.height as i64, image.width as i64]))
    }
}

/// The model inputs of the images at `paths` (see [`InputTransform`]), decoded on up to
/// `threads` threads; each one's error names its file.
pub fn inputs(paths: &[PathBuf], transform: &InputTransform, threads: usize) -> Vec<Result<Tensor>> {
    let chunk = paths.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|path| transform.apply(path)).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

/// The `k` most probable classes of each of `inputs` (1 × C × H × W each), run as one
/// batch on `device`: (class, probability) pairs, most probable first.
pub fn top_k(
    model: &BclModel,
    inputs: &[Tensor],
    k: usize,
    device: Device,
    autocast: Option<Kind>,
) -> Result<Vec<Vec<(i64, f64)>>> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let x = Tensor::cat(inputs, 0).to_device(device);
    let logits = tch::no_grad(|| amp::autocast(device, autocast, || model.logits(&x)));
    let probabilities = logits.softmax(1, Kind::Float).to_device(Device::Cpu);
    let k = k.min(probabilities.size()[1] as usize) as i64;
    let (values, indices) = probabilities.topk(k, 1, true, true);
    let values = Vec::<f64>::try_from(values.to_kind(Kind::Double).view([-1]))?;
    let indices = Vec::<i64>::try_from(indices.view([-1]))?;
    Ok(indices
        .chunks(k as usize)
        .zip(values.chunks(k as usize))
        .map(|(i, v)| i.iter().copied().zip(v.iter().copied()).collect())
        .collect())
}
