//! MNIST and Fashion-MNIST: 28×28 grayscale images in IDX files, 10 classes.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};

use super::InMemoryDataset;
use super::idx::read_idx;

const NUM_CLASSES: usize = 10;

/// Fashion-MNIST's class names, in label order.
pub fn fashion_names() -> Vec<String> {
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        .map(String::from)
        .to_vec()
}

/// MNIST's class names: the digits.
pub fn digit_names() -> Vec<String> {
    (0..NUM_CLASSES).map(|d| d.to_string()).collect()
}

/// The four files of an MNIST-style release (each may also be gzipped, `.gz`).
pub const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// The files of [`FILES`] that `dir` lacks in either form.
pub fn missing_files(dir: &Path) -> Vec<&'static str> {
    FILES.into_iter().filter(|name| find(dir, name).is_err()).collect()
}

/// Reads the `train-*` or `t10k-*` images and labels in `dir`, gzipped (`.gz`) or not.
pub fn load(dir: &Path, train: bool, class_names: Vec<String>) -> Result<InMemoryDataset> {
    let prefix = if train { "train" } else { "t10k" };
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    ensure!(
        images.dims.len() == 3,
        "{}: expected 3 dimensions (count, rows, columns), found {:?}",
        images_path.display(),
        images.dims
    );
    ensure!(
        images.dims[1] > 0 && images.dims[2] > 0,
        "{}: its images are {}×{} pixels; they need at least one",
        images_path.display(),
        images.dims[1],
        images.dims[2]
    );
    ensure!(labels.dims.len() == 1, "{}: expected 1 dimension (count), found {:?}", labels_path.display(), labels.dims);
    ensure!(
        images.dims[0] == labels.dims[0],
        "{} holds {} images but {} holds {} labels",
        images_path.display(),
        images.dims[0],
        labels_path.display(),
        labels.dims[0]
    );
    if let Some(i) = labels.data.iter().position(|&l| l as usize >= NUM_CLASSES) {
        bail!("{}: label {} of image {i} is out of range 0..{NUM_CLASSES}", labels_path.display(), labels.data[i]);
    }
    Ok(InMemoryDataset {
        height: images.dims[1],
        width: images.dims[2],
        channels: 1,
        pixels: images.data,
        labels: labels.data.iter().map(|&l| l as i64).collect(),
        class_names,
    })
}

/// The folder holding the IDX files under `root`: `root` itself, or torchvision's
/// download layout `root/<name>/raw` (`name` = `MNIST` or `FashionMNIST`) when only that has
/// them.
pub fn release_dir(root: &Path, name: &str) -> PathBuf {
    let torchvision = root.join(name).join("raw");
    if !missing_files(root).is_empty() && missing_files(&torchvision).is_empty() {
        torchvision
    } else {
        root.to_path_buf()
    }
}

/// `dir/name.gz` or `dir/name`, whichever exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{}: neither {name}.gz nor {name} is there", dir.display())
}
