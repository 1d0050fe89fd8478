//! MNIST and Fashion-MNIST: 28×28 grayscale images in IDX files, 10 classes.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};

use super::idx::read_idx;

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// One split (train or test) held in memory: N images of `height × width` bytes, N labels.
#[derive(Debug, Clone)]
pub struct MnistSplit {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
}

pub const NUM_CLASSES: usize = 10;

impl MnistSplit {
    /// Reads `train-*` or `t10k-*` images and labels from `dir`, gzipped (`.gz`) or not.
    pub fn load(dir: &Path, train: bool) -> Result<Self> {
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
            labels.dims.len() == 1,
            "{}: expected 1 dimension (count), found {:?}",
            labels_path.display(),
            labels.dims
        );
        ensure!(
            images.dims[0] == labels.dims[0],
            "{} holds {} images but {} holds {} labels",
            images_path.display(),
            images.dims[0],
            labels_path.display(),
            labels.dims[0]
        );
        if let Some(i) = labels.data.iter().position(|&l| l as usize >= NUM_CLASSES) {
            bail!(
                "{}: label {} of image {i} is out of range 0..{NUM_CLASSES}",
                labels_path.display(),
                labels.data[i]
            );
        }
        Ok(Self {
            images: images.data,
            labels: labels.data.iter().map(|&l| l as i64).collect(),
            height: images.dims[1],
            width: images.dims[2],
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.height * self.width;
        &self.images[i * size..(i + 1) * size]
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<i64> {
        let mut counts = vec![0; NUM_CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
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
