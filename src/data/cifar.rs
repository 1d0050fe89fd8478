//! CIFAR-10 and CIFAR-100, from either official release:
//! - "binary": records of label byte(s) + 3072 pixel bytes (`data_batch_{1..5}.bin`,
//!   `test_batch.bin`; CIFAR-100 `train.bin`, `test.bin` with coarse + fine labels);
//! - "python": pickled dicts (`data_batch_{1..5}`, `test_batch`; `train`, `test`), read by
//!   the data-only decoder in [`super::pickle`].
//!
//! Pixels are stored as three 32×32 planes (R, G, B); images are returned interleaved.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use super::InMemoryDataset;
use super::pickle;

const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE * 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn num_classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
}

/// Loads the train or test split of a CIFAR release found in `root` or in the folder the
/// official archive unpacks to (`cifar-10-batches-bin`, `cifar-10-batches-py`,
/// `cifar-100-binary`, `cifar-100-python`).
pub fn load(root: &Path, variant: Variant, train: bool) -> Result<InMemoryDataset> {
    let (bin_dir, py_dir, bin_probe, py_probe) = match variant {
        Variant::Cifar10 => ("cifar-10-batches-bin", "cifar-10-batches-py", "data_batch_1.bin", "data_batch_1"),
        Variant::Cifar100 => ("cifar-100-binary", "cifar-100-python", "train.bin", "train"),
    };
    for dir in [root.to_path_buf(), root.join(bin_dir)] {
        if dir.join(bin_probe).is_file() {
            return load_binary(&dir, variant, train);
        }
    }
    for dir in [root.to_path_buf(), root.join(py_dir)] {
        if dir.join(py_probe).is_file() {
            return load_python(&dir, variant, train);
        }
    }
    bail!(
        "{}: no CIFAR release found (looked for {bin_probe} and {py_probe} there and in {bin_dir}/, {py_dir}/)",
        root.display()
    )
}

fn split_files(dir: &Path, variant: Variant, train: bool, extension: &str) -> Vec<PathBuf> {
    match (variant, train) {
        (Variant::Cifar10, true) => (1..=5).map(|i| dir.join(format!("data_batch_{i}{extension}"))).collect(),
        (Variant::Cifar10, false) => vec![dir.join(format!("test_batch{extension}"))],
        (Variant::Cifar100, true) => vec![dir.join(format!("train{extension}"))],
        (Variant::Cifar100, false) => vec![dir.join(format!("test{extension}"))],
    }
}

/// Appends one planar CIFAR image as interleaved RGB.
fn push_interleaved(planar: &[u8], out: &mut Vec<u8>) {
    let plane = SIDE * SIDE;
    for i in 0..plane {
        out.extend_from_slice(&[planar[i], planar[plane + i], planar[2 * plane + i]]);
    }
}

fn check_label(label: i64, variant: Variant, file: &Path, record: usize) -> Result<i64> {
    ensure!(
        (0..variant.num_classes() as i64).contains(&label),
        "{}: label {label} of record {record} is out of range 0..{}",
        file.display(),
        variant.num_classes()
    );
    Ok(label)
}

fn load_binary(dir: &Path, variant: Variant, train: bool) -> Result<InMemoryDataset> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for file in split_files(dir, variant, train, ".bin") {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read CIFAR file {}", file.display()))?;
        decode_binary(&bytes, variant, &file, &mut pixels, &mut labels)?;
    }
    let names_file = dir.join(match variant {
        Variant::Cifar10 => "batches.meta.txt",
        Variant::Cifar100 => "fine_label_names.txt",
    });
    let class_names = match std::fs::read_to_string(&names_file) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) => numbered_names(variant),
    };
    finish(pixels, labels, class_names, variant, &names_file)
}

fn load_python(dir: &Path, variant: Variant, train: bool) -> Result<InMemoryDataset> {
    let label_key = if variant == Variant::Cifar100 { "fine_labels" } else { "labels" };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for file in split_files(dir, variant, train, "") {
        read_python_batch(&file, variant, label_key, &mut pixels, &mut labels)
            .with_context(|| format!("invalid CIFAR python batch {}", file.display()))?;
    }
    let (meta_file, names_key) = match variant {
        Variant::Cifar10 => (dir.join("batches.meta"), "label_names"),
        Variant::Cifar100 => (dir.join("meta"), "fine_label_names"),
    };
    let class_names = if meta_file.is_file() {
        let bytes = std::fs::read(&meta_file)?;
        pickle::decode(&bytes)
            .and_then(|meta| meta.get(names_key).with_context(|| format!("no {names_key:?} entry"))?.as_texts())
            .with_context(|| format!("invalid CIFAR meta file {}", meta_file.display()))?
    } else {
        numbered_names(variant)
    };
    finish(pixels, labels, class_names, variant, &meta_file)
}

/// Appends the records of a CIFAR binary file's `bytes` (label byte(s), then planar RGB)
/// to `pixels` (interleaved) and `labels`; `file` names the file in errors.
pub fn decode_binary(
    bytes: &[u8],
    variant: Variant,
    file: &Path,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    // CIFAR-100 records carry the coarse label, then the fine label we use.
    let label_bytes = if variant == Variant::Cifar100 { 2 } else { 1 };
    let record = label_bytes + PIXELS;
    ensure!(
        !bytes.is_empty() && bytes.len().is_multiple_of(record),
        "{}: {} bytes is not a whole number of {record}-byte CIFAR records (truncated or not a CIFAR binary file)",
        file.display(),
        bytes.len()
    );
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        labels.push(check_label(rec[label_bytes - 1] as i64, variant, file, i)?);
        push_interleaved(&rec[label_bytes..], pixels);
    }
    Ok(())
}

fn read_python_batch(
    file: &Path,
    variant: Variant,
    label_key: &str,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    decode_python_batch(&bytes, variant, label_key, file, pixels, labels)
}

/// Appends the images and labels of a CIFAR python batch (a pickle, decoded as data only).
pub fn decode_python_batch(
    bytes: &[u8],
    variant: Variant,
    label_key: &str,
    file: &Path,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    let batch = pickle::decode(bytes)?;
    let data = batch.get("data").context("no \"data\" entry")?;
    let (shape, data) = pickle::ndarray_u8(&data).context("\"data\" entry")?;
    ensure!(shape.len() == 2 && shape[1] == PIXELS, "\"data\" has shape {shape:?}, expected [N, {PIXELS}]");
    let batch_labels = batch.get(label_key).with_context(|| format!("no {label_key:?} entry"))?.as_ints()?;
    ensure!(batch_labels.len() == shape[0], "{} images but {} labels", shape[0], batch_labels.len());
    for (i, (image, &label)) in data.chunks_exact(PIXELS).zip(&batch_labels).enumerate() {
        labels.push(check_label(label, variant, file, i)?);
        push_interleaved(image, pixels);
    }
    Ok(())
}

fn numbered_names(variant: Variant) -> Vec<String> {
    (0..variant.num_classes()).map(|i| i.to_string()).collect()
}

fn finish(
    pixels: Vec<u8>,
    labels: Vec<i64>,
    class_names: Vec<String>,
    variant: Variant,
    names_file: &Path,
) -> Result<InMemoryDataset> {
    ensure!(
        class_names.len() == variant.num_classes(),
        "{}: {} class names, expected {}",
        names_file.display(),
        class_names.len(),
        variant.num_classes()
    );
    Ok(InMemoryDataset { width: SIDE, height: SIDE, channels: 3, pixels, labels, class_names })
}
