//! The feature geometry BCL is about (the paper's Figure 1 and section 3): under a long
//! tail, supervised contrastive learning lets head classes crowd the feature sphere, while
//! BCL's class-averaging and class-complement aim for class means (and prototypes) that
//! form a regular simplex, every pair at cosine −1/(C−1). This module measures how far a
//! trained model's features are from that.
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::augment::Recipe;
use crate::data::Dataset;
use crate::loader::{self, DeviceNormalization, LoaderConfig};
use crate::model::BclModel;

/// Every sample's features under the evaluation transform, on the CPU.
pub struct Features {
    /// Encoder features, N × d.
    pub h: Tensor,
    /// Contrastive features, N × D, unit rows.
    pub z: Tensor,
    pub labels: Tensor,
}

/// The features of every sample of `dataset` (evaluation transform).
pub fn extract(
    model: &BclModel,
    dataset: Arc<dyn Dataset>,
    recipe: Arc<Recipe>,
    loader_config: &LoaderConfig,
    device: Device,
) -> Result<Features> {
    let normalization = DeviceNormalization::new(&loader_config.normalization, device);
    let (mut h, mut z, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for batch in loader::eval_batches(dataset, recipe, loader_config) {
        let batch = batch.context("feature data")?;
        let (bh, bz) = tch::no_grad(|| model.embed(&batch.input(device, &normalization)));
        h.push(bh.to_device(Device::Cpu).to_kind(Kind::Float));
        z.push(bz.to_device(Device::Cpu).to_kind(Kind::Float));
        labels.push(batch.labels.shallow_clone());
    }
    Ok(Features { h: Tensor::cat(&h, 0), z: Tensor::cat(&z, 0), labels: Tensor::cat(&labels, 0) })
}

/// How close C vectors (class means or prototypes) are to a regular simplex.
#[derive(Debug, Clone, Serialize)]
pub struct SimplexFit {
    /// Pairs of distinct classes compared.
    pub pairs: usize,
    /// Mean pairwise cosine.
    pub mean_cosine: f64,
    /// Mean and largest |cosine − (−1/(C−1))| over the pairs.
    pub mean_deviation: f64,
    pub max_deviation: f64,
}

/// The geometry of a model's contrastive features on one split.
#[derive(Debug, Clone, Serialize)]
pub struct Geometry {
    pub classes: usize,
    /// −1/(C−1): the pairwise cosine of a regular simplex's C vertices.
    pub simplex_cosine: f64,
    /// The class means of z, all classes; then among the head classes (the half with the
    /// most training images) and among the tail classes (the other half).
    pub class_means: SimplexFit,
    pub class_means_head: SimplexFit,
    pub class_means_tail: SimplexFit,
    /// The prototypes normalize(head_fc(W)), all classes.
    pub prototypes: SimplexFit,
    /// Each class's mean-vector norm ‖mean of its unit z‖: 1 when a class's features
    /// coincide, lower when they spread.
    pub class_mean_norms: Vec<f64>,
    /// The pairwise cosines of the class means, C × C.
    pub class_mean_cosines: Vec<Vec<f64>>,
}

/// The geometry of `features` (C classes; `train_counts` order head and tail) and the
/// model's `prototypes`.
pub fn measure(features: &Features, prototypes: &Tensor, train_counts: &[i64]) -> Result<Geometry> {
    let classes = train_counts.len();
    let means = class_means(&features.z, &features.labels, classes);
    let class_mean_norms = Vec::<f64>::try_from(means.norm_scalaropt_dim(2, [1], false).to_kind(Kind::Double))?;
    let cosines = cosine_matrix(&means)?;
    let mut by_count: Vec<usize> = (0..classes).collect();
    by_count.sort_by_key(|&c| std::cmp::Reverse(train_counts[c]));
    let (head, tail) = by_count.split_at(classes / 2);
    let all: Vec<usize> = (0..classes).collect();
    let simplex_cosine = -1.0 / (classes as f64 - 1.0).max(1.0);
    let fit = |matrix: &[Vec<f64>], members: &[usize]| simplex_fit(matrix, members, simplex_cosine);
    let prototype_cosines = cosine_matrix(&prototypes.to_device(Device::Cpu).to_kind(Kind::Float))?;
    Ok(Geometry {
        classes,
        simplex_cosine,
        class_means: fit(&cosines, &all),
        class_means_head: fit(&cosines, head),
        class_means_tail: fit(&cosines, tail),
        prototypes: fit(&prototype_cosines, &all),
        class_mean_norms,
        class_mean_cosines: cosines,
    })
}

/// The mean of each class's rows of `z` (C × D; a class without samples gets zeros).
pub fn class_means(z: &Tensor, labels: &Tensor, classes: usize) -> Tensor {
    let one_hot = labels.to_kind(Kind::Int64).one_hot(classes as i64).to_kind(Kind::Float); // N × C
    let sums = one_hot.tr().matmul(z);
    let counts = one_hot.sum_dim_intlist([0i64].as_slice(), false, Kind::Float).clamp_min(1.0).unsqueeze(1);
    sums / counts
}

/// Pairwise cosines of the rows of `vectors` (C × D) as a C × C matrix.
fn cosine_matrix(vectors: &Tensor) -> Result<Vec<Vec<f64>>> {
    let unit = vectors / vectors.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let matrix = unit.matmul(&unit.tr()).to_kind(Kind::Double);
    Ok(Vec::<Vec<f64>>::try_from(matrix)?)
}

/// How the cosines among `members` compare with the simplex's `target`.
fn simplex_fit(cosines: &[Vec<f64>], members: &[usize], target: f64) -> SimplexFit {
    let values: Vec<f64> =
        members.iter().flat_map(|&a| members.iter().filter(move |&&b| b > a).map(move |&b| cosines[a][b])).collect();
    let n = values.len().max(1) as f64;
    SimplexFit {
        pairs: values.len(),
        mean_cosine: values.iter().sum::<f64>() / n,
        mean_deviation: values.iter().map(|v| (v - target).abs()).sum::<f64>() / n,
        max_deviation: values.iter().map(|v| (v - target).abs()).fold(0.0, f64::max),
    }
}
