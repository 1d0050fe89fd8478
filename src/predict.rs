//! Classifying image files with a trained model: the evaluation transform of the model's
//! dataset, then the top-k softmax probabilities of the classifier.
use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::augment::{Recipe, ops};
use crate::config::TrainConfig;
use crate::data::{DatasetKind, Image, files};
use crate::model::BclModel;

/// Side of the images a CIFAR-style model was trained on.
fn small_image_size(kind: DatasetKind) -> usize {
    match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => 28,
        _ => 32,
    }
}

/// The model input for one image file: resized (CIFAR-style data) or resized and centre
/// cropped (ImageNet-style), converted to the model's channels, normalised; 1 × C × H × W.
pub fn input(path: &Path, config: &TrainConfig) -> Result<Tensor> {
    let kind = config.data.dataset;
    let image = files::decode_rgb(path)?;
    let image = if kind.uses_imagenet_recipe() {
        let recipe = Recipe::imagenet(config.cl_views, &config.randaugment, kind.fill())?;
        recipe.eval.apply(image, &mut rand::SeedableRng::seed_from_u64(0))
    } else {
        let size = small_image_size(kind);
        ops::resize(&image, size, size)
    };
    let image = if config.model.in_channels == 1 {
        let gray = ops::grayscale(image);
        Image::new(gray.width, gray.height, 1, gray.pixels.iter().step_by(3).copied().collect())
    } else {
        image
    };
    let tables = kind.normalization().tables();
    let (c, plane) = (image.channels, image.width * image.height);
    let mut values = vec![0f32; c * plane];
    for (i, px) in image.pixels.chunks_exact(c).enumerate() {
        for (channel, &v) in px.iter().enumerate() {
            values[channel * plane + i] = tables[channel][v as usize];
        }
    }
    Ok(Tensor::from_slice(&values).view([1, c as i64, image.height as i64, image.width as i64]))
}

/// The `k` most probable classes of the image at `path`, as (class, probability).
pub fn top_k(model: &BclModel, config: &TrainConfig, path: &Path, k: usize, device: Device) -> Result<Vec<(i64, f64)>> {
    let x = input(path, config)?.to_device(device);
    let probabilities = tch::no_grad(|| model.logits(&x).softmax(1, Kind::Float)).to_device(Device::Cpu);
    let k = k.min(config.model.num_classes as usize) as i64;
    let (values, indices) = probabilities.topk(k, 1, true, true);
    let values = Vec::<f64>::try_from(values.view([-1]).to_kind(Kind::Double))?;
    let indices = Vec::<i64>::try_from(indices.view([-1]))?;
    Ok(indices.into_iter().zip(values).collect())
}

/// Class names saved in a checkpoint, or `class k` for plain weights.
pub fn class_names(metadata: Option<&String>, num_classes: i64) -> Result<Vec<String>> {
    match metadata {
        Some(text) => serde_json::from_str(text).context("the checkpoint's class names are damaged"),
        None => Ok((0..num_classes).map(|k| format!("class {k}")).collect()),
    }
}
