//! IDX reading: real Fashion-MNIST, and every kind of bad file giving an error that names it.
use std::io::Write;
use std::path::{Path, PathBuf};

use bcl::data::Dataset;
use bcl::data::fashion_mnist_dir;
use bcl::data::idx::read_idx;
use bcl::data::mnist;
use flate2::{Compression, write::GzEncoder};

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error for `bytes`, which must name the file and contain `expected`.
fn error_for(bytes: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("plain-idx", bytes.to_vec()), ("zipped-idx.gz", gzip(bytes))] {
        let path = write(dir.path(), name, &content);
        let message = format!("{:#}", read_idx(&path).expect_err(name));
        assert!(message.contains(&path.display().to_string()), "{message:?} must name {}", path.display());
        assert!(message.contains(expected), "{message:?} must say {expected:?}");
    }
}

#[test]
fn reads_plain_and_gzipped_files_alike() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..24).collect();
    let bytes = idx_bytes(&[2, 3, 4], &data);
    for path in [write(dir.path(), "a-idx3-ubyte", &bytes), write(dir.path(), "a-idx3-ubyte.gz", &gzip(&bytes))] {
        let array = read_idx(&path).unwrap();
        assert_eq!(array.dims, vec![2, 3, 4]);
        assert_eq!(array.data, data);
    }
}

#[test]
fn bad_files_are_errors_that_name_the_file() {
    error_for(&[], "truncated before the end of its 4-byte header");
    error_for(&[0, 0, 8], "truncated before the end of its 4-byte header");
    error_for(b"\x89PNG\r\n\x1a\n", "bad magic number");
    error_for(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "element type 0x0d is not supported");
    error_for(&[0, 0, 8, 0], "zero dimensions");
    error_for(&[0, 0, 8, 3, 0, 0, 0, 2], "truncated in the size of dimension 1");
    error_for(&idx_bytes(&[2, 2], &[1, 2, 3]), "need 4 bytes of data, the file has 3");
    error_for(&idx_bytes(&[2, 2], &[1, 2, 3, 4, 5]), "data continues past the 4 bytes");
}

#[test]
fn a_header_claiming_huge_sizes_does_not_allocate_them() {
    // 2^32-1 cubed overflows; 2^31 × 2^31 images would be 4 EiB: both are plain errors.
    error_for(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[]), "overflow");
    error_for(&idx_bytes(&[1 << 31, 1 << 31], &[7; 10]), "the file has 10");
}

#[test]
fn corrupt_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut zipped = gzip(&idx_bytes(&[100], &[9; 100]));
    let middle = zipped.len() / 2;
    zipped.truncate(middle);
    let path = write(dir.path(), "cut.gz", &zipped);
    let message = format!("{:#}", read_idx(&path).unwrap_err());
    assert!(message.contains("cut.gz"), "{message}");
}

#[test]
fn missing_file_is_an_error_that_names_it() {
    let message = format!("{:#}", read_idx(Path::new("/nonexistent/x-idx1-ubyte")).unwrap_err());
    assert!(message.contains("/nonexistent/x-idx1-ubyte"), "{message}");
}

fn write_split(dir: &Path, images: &[u8], image_dims: &[u32], labels: &[u8]) {
    write(dir, "train-images-idx3-ubyte", &idx_bytes(image_dims, images));
    write(dir, "train-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[labels.len() as u32], labels)));
}

#[test]
fn mnist_split_checks_labels_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), &[0; 8], &[2, 2, 2], &[3, 9]);
    let split = mnist::load(dir.path(), true, mnist::digit_names()).unwrap();
    assert_eq!((split.len(), split.height, split.width), (2, 2, 2));
    assert_eq!(split.labels, vec![3, 9]);
    assert_eq!(split.class_counts()[3], 1);

    write_split(dir.path(), &[0; 8], &[2, 2, 2], &[3, 10]);
    let message = format!("{:#}", mnist::load(dir.path(), true, mnist::digit_names()).unwrap_err());
    assert!(message.contains("train-labels-idx1-ubyte.gz") && message.contains("label 10 of image 1"), "{message}");

    write_split(dir.path(), &[0; 12], &[3, 2, 2], &[3, 1]);
    let message = format!("{:#}", mnist::load(dir.path(), true, mnist::digit_names()).unwrap_err());
    assert!(message.contains("holds 3 images but") && message.contains("holds 2 labels"), "{message}");

    let message = format!("{:#}", mnist::load(dir.path(), false, mnist::digit_names()).unwrap_err());
    assert!(message.contains("t10k-images-idx3-ubyte"), "{message}");
}

/// The real data set, as `make setup` installs it.
#[test]
fn reads_real_fashion_mnist() {
    let (dir, source) = fashion_mnist_dir();
    let train = mnist::load(&dir, true, mnist::fashion_names())
        .unwrap_or_else(|e| panic!("Fashion-MNIST from {source} ({e:#}): run `make setup`"));
    assert_eq!((train.len(), train.height, train.width), (60_000, 28, 28));
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let test = mnist::load(&dir, false, mnist::fashion_names()).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    // Real images: mostly dark background, some bright pixels, not constant.
    let mean = train.pixels.iter().map(|&p| p as f64).sum::<f64>() / train.pixels.len() as f64;
    assert!((mean / 255.0 - 0.286).abs() < 0.005, "Fashion-MNIST's pixel mean is 0.286, got {}", mean / 255.0);
}
