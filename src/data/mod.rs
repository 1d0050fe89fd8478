//! Dataset readers.
pub mod idx;
pub mod mnist;

use std::path::PathBuf;

/// Where Debian's `dataset-fashion-mnist` package puts the four IDX files.
pub const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST folder: `$BCL_FASHION_MNIST` when set, otherwise Debian's location.
/// Returns the folder with where it came from, whether or not it holds the files.
pub fn fashion_mnist_dir() -> (PathBuf, &'static str) {
    match std::env::var_os("BCL_FASHION_MNIST") {
        Some(dir) => (PathBuf::from(dir), "$BCL_FASHION_MNIST"),
        None => (
            PathBuf::from(DEBIAN_FASHION_MNIST_DIR),
            "Debian's dataset-fashion-mnist",
        ),
    }
}
