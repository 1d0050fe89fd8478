//! Datasets: readers for the formats users hold, one [`Dataset`] abstraction over them,
//! long-tailed subsets and samplers.
//!
//! | format | reader |
//! |---|---|
//! | MNIST / Fashion-MNIST IDX files, gzipped or not | [`mnist`] |
//! | CIFAR-10/100 "binary" and "python" releases | [`cifar`] |
//! | ImageNet-LT / iNaturalist 2018 / any `path label` lists | [`files::read_list`] |
//! | a folder per class (torchvision's ImageFolder) | [`files::read_class_folders`] |
pub mod cifar;
pub mod files;
pub mod idx;
pub mod long_tail;
pub mod mnist;
pub mod numpy_random;
pub mod pickle;
pub mod sampler;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// An 8-bit image, rows of interleaved channels (1 = gray, 3 = RGB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    pub fn new(width: usize, height: usize, channels: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(pixels.len(), width * height * channels, "pixel buffer size");
        Self { width, height, channels, pixels }
    }

    pub fn filled(width: usize, height: usize, channels: usize, value: u8) -> Self {
        Self::new(width, height, channels, vec![value; width * height * channels])
    }

    /// The channel values of pixel (x, y).
    pub fn pixel(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * self.channels;
        &self.pixels[i..i + self.channels]
    }
}

/// A labelled image collection. Labels are `0..num_classes()`.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The label of every sample, in sample order.
    fn labels(&self) -> &[i64];
    fn class_names(&self) -> &[String];
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }
    /// Channels of every image this dataset returns (1 or 3).
    fn channels(&self) -> usize;
    /// Loads (decodes) sample `index`. Errors name the file.
    fn image(&self, index: usize) -> Result<Image>;
    /// Images per class.
    fn class_counts(&self) -> Vec<i64> {
        let mut counts = vec![0; self.num_classes()];
        for &l in self.labels() {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Same-size images held in one buffer: MNIST-like and CIFAR data (small enough to keep).
#[derive(Debug, Clone)]
pub struct InMemoryDataset {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// All images back to back, each `height × width × channels` bytes, interleaved.
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    pub class_names: Vec<String>,
}

impl InMemoryDataset {
    fn image_size(&self) -> usize {
        self.width * self.height * self.channels
    }
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn labels(&self) -> &[i64] {
        &self.labels
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
    fn channels(&self) -> usize {
        self.channels
    }
    fn image(&self, index: usize) -> Result<Image> {
        let size = self.image_size();
        let pixels = self.pixels[index * size..(index + 1) * size].to_vec();
        Ok(Image::new(self.width, self.height, self.channels, pixels))
    }
}

/// A view of some samples of another dataset (e.g. a long-tailed subset).
pub struct Subset {
    base: Arc<dyn Dataset>,
    indices: Vec<usize>,
    labels: Vec<i64>,
}

impl Subset {
    pub fn new(base: Arc<dyn Dataset>, indices: Vec<usize>) -> Self {
        let labels = indices.iter().map(|&i| base.labels()[i]).collect();
        Self { base, indices, labels }
    }

    /// Indices of the kept samples in the base dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn labels(&self) -> &[i64] {
        &self.labels
    }
    fn class_names(&self) -> &[String] {
        self.base.class_names()
    }
    fn channels(&self) -> usize {
        self.base.channels()
    }
    fn image(&self, index: usize) -> Result<Image> {
        self.base.image(self.indices[index])
    }
}

/// The dataset formats `bcl` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST IDX files.
    Mnist,
    /// Fashion-MNIST IDX files.
    FashionMnist,
    /// CIFAR-10, binary or python release.
    Cifar10,
    /// CIFAR-100, binary or python release.
    Cifar100,
    /// ImageNet-LT: `ImageNet_LT_{train,val,test}.txt` lists under the ImageNet root.
    ImagenetLt,
    /// iNaturalist 2018: `iNaturalist18_{train,val}.txt` lists under its root.
    Inat2018,
    /// Places-LT: OLTR's `Places_LT_{train,val,test}.txt` lists (365 classes) under the
    /// Places-365 root.
    PlacesLt,
    /// A folder per class: `root/<class>/<image>` (torchvision's ImageFolder), with
    /// `train/`, `val/`, `test/` splits or the root as the training set.
    Folder,
    /// `path label` files (e.g. Places-LT): `train_list`, `test_list` and optionally
    /// `val_list`, paths relative to the root.
    List,
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    /// Validation (ImageNet-LT's val list, iNaturalist's val list); test set elsewhere.
    Val,
    Test,
}

impl Split {
    /// `train`, `val` or `test`: the split's folder (and flag) name.
    pub fn folder_name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// The share of a class folder's images held out for evaluation when it has no `test/` or
/// `val/` folder (`--holdout`).
pub const DEFAULT_HOLDOUT: f64 = 0.2;

/// Per-channel mean and standard deviation of inputs scaled to [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    /// (v / 255 − mean_c) / std_c for every byte value v, per channel.
    pub fn tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| std::array::from_fn(|v| ((v as f64 / 255.0 - m) / s) as f32))
            .collect()
    }

    /// The mean colour as 8-bit RGB: the fill of geometric augmentations.
    pub fn fill(&self) -> [u8; 3] {
        let mean = &self.mean;
        std::array::from_fn(|c| (mean[c.min(mean.len() - 1)] * 255.0).round() as u8)
    }
}

impl DatasetKind {
    /// Per-channel mean and standard deviation used to normalise inputs (SPEC section 3).
    pub fn normalization(self) -> Normalization {
        let (mean, std): (&[f64], &[f64]) = match self {
            DatasetKind::Mnist => (&[0.1307], &[0.3081]),
            DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
            // The constants of the BCL-derived CIFAR code, for CIFAR-10 and CIFAR-100 alike.
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]),
            DatasetKind::Inat2018 => (&[0.466, 0.471, 0.380], &[0.195, 0.194, 0.192]),
            DatasetKind::ImagenetLt | DatasetKind::PlacesLt | DatasetKind::Folder | DatasetKind::List => {
                (&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225])
            }
        };
        Normalization { mean: mean.to_vec(), std: std.to_vec() }
    }

    /// Whether this is a balanced benchmark (MNIST, Fashion-MNIST, CIFAR), trained on a
    /// long-tailed subset; the others are used as they are.
    pub fn is_balanced(self) -> bool {
        matches!(self, DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::Cifar10 | DatasetKind::Cifar100)
    }

    /// The name `--dataset` takes, such as `fashion-mnist`.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_string())
    }

    /// The mean colour as 8-bit RGB: the fill of geometric augmentations.
    pub fn fill(self) -> [u8; 3] {
        self.normalization().fill()
    }
}

/// Which data a run uses: the dataset, where it lives, and the long-tailed subset of its
/// training split (for balanced sets such as CIFAR and Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetKind,
    pub root: PathBuf,
    /// Imbalance factor ρ of the long-tailed training subset; none keeps every image.
    pub imb_factor: Option<f64>,
    pub profile: long_tail::Profile,
    /// numpy seed of the per-class shuffle that picks the subset (LDAM's `rand_number`).
    pub subset_seed: u64,
    /// The `list` dataset's files, relative to `root` (or absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_list: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_list: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_list: Option<PathBuf>,
    /// A class folder without `test/` or `val/`: the share of each class's images held out
    /// as the test split (stratified, drawn with `subset_seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<f64>,
    /// Image files whose header cannot be read are left out (with a warning naming them)
    /// rather than refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_bad: bool,
}

impl DataConfig {
    /// All of the data of `kind` under `root`: no long-tailed subset, no lists.
    pub fn new(dataset: DatasetKind, root: PathBuf) -> Self {
        Self {
            dataset,
            root,
            imb_factor: None,
            profile: long_tail::Profile::Exp,
            subset_seed: 0,
            train_list: None,
            val_list: None,
            test_list: None,
            holdout: None,
            skip_bad: false,
        }
    }

    /// A class folder without split folders, split into training and held-out images by
    /// `holdout`; none for other data.
    pub fn holdout_split(&self) -> Result<Option<(files::FileDataset, files::FileDataset)>> {
        let Some(fraction) = self.holdout else { return Ok(None) };
        ensure!(
            self.dataset == DatasetKind::Folder,
            "data.holdout splits a class folder; this data is {:?}",
            self.dataset
        );
        ensure!(fraction > 0.0 && fraction < 1.0, "holdout = {fraction} must be a share between 0 and 1");
        if let Some(split) =
            [Split::Train, Split::Val, Split::Test].iter().find(|s| self.root.join(s.folder_name()).is_dir())
        {
            bail!(
                "--holdout: {} has a {}/ folder already; a folder is held out from only when it has no split folders",
                self.root.display(),
                split.folder_name()
            );
        }
        Ok(Some(self.readable(files::read_class_folders(&self.root)?)?.split_off(fraction, self.subset_seed)))
    }

    /// Opens `split` of the data, whole (see [`Self::train_set`] for the long-tailed
    /// subset).
    ///
    /// For `Folder`, `root` holds `train/`, `val/` and/or `test/` class folders, or is itself
    /// the class folder root of the training split.
    pub fn open(&self, split: Split) -> Result<Arc<dyn Dataset>> {
        let root = &self.root;
        if !root.exists() {
            bail!("dataset root {} does not exist", root.display());
        }
        let train = split == Split::Train;
        Ok(match self.dataset {
            DatasetKind::Mnist => {
                Arc::new(mnist::load(&mnist::release_dir(root, "MNIST"), train, mnist::digit_names())?)
            }
            DatasetKind::FashionMnist => {
                Arc::new(mnist::load(&mnist::release_dir(root, "FashionMNIST"), train, mnist::fashion_names())?)
            }
            DatasetKind::Cifar10 => Arc::new(cifar::load(root, cifar::Variant::Cifar10, train)?),
            DatasetKind::Cifar100 => Arc::new(cifar::load(root, cifar::Variant::Cifar100, train)?),
            DatasetKind::ImagenetLt => {
                Arc::new(self.readable(benchmark_list(root, IMAGENET_LT_LISTS, split, 1000)?)?)
            }
            DatasetKind::PlacesLt => Arc::new(self.readable(benchmark_list(root, PLACES_LT_LISTS, split, 365)?)?),
            DatasetKind::Inat2018 => {
                let name = if train { "iNaturalist18_train.txt" } else { "iNaturalist18_val.txt" };
                Arc::new(self.readable(files::read_list(&root.join(name), root, Some(8142))?)?)
            }
            DatasetKind::Folder if self.holdout.is_some() => {
                let (train_part, held_out) = self.holdout_split()?.expect("holdout is set");
                match split {
                    Split::Train => Arc::new(train_part),
                    Split::Val | Split::Test => Arc::new(held_out),
                }
            }
            DatasetKind::Folder => {
                let sub = root.join(split.folder_name());
                // Without split folders the root is the training set; evaluation needs its own.
                if !sub.is_dir() && !train {
                    bail!("{}: no {}/ folder of classes to evaluate on", root.display(), split.folder_name());
                }
                // With split folders and no train/, the split folders are not classes to train.
                let splits: Vec<&str> = [Split::Val, Split::Test]
                    .iter()
                    .map(|s| s.folder_name())
                    .filter(|s| root.join(s).is_dir())
                    .collect();
                if !sub.is_dir() && !splits.is_empty() {
                    bail!(
                        "{}: has {}/ but no train/ folder: split folders hold the classes of each split, so the \
                         training images go in train/<class>/ (or give a folder of class folders alone)",
                        root.display(),
                        splits.join("/ and ")
                    );
                }
                Arc::new(self.readable(files::read_class_folders(if sub.is_dir() { &sub } else { root })?)?)
            }
            DatasetKind::List => {
                let list = self.list(split)?;
                let data = self.readable(files::read_list(&root.join(list), root, None)?)?;
                if train {
                    files::check_every_class_listed(&data, &root.join(list))?;
                }
                Arc::new(data)
            }
        })
    }

    /// `data` once every image's header is read: the unreadable ones named all at once, and
    /// refused, or left out under `skip_bad` (a run finds a bad file at once, not hours in
    /// when the sampler draws it).
    fn readable(&self, data: files::FileDataset) -> Result<files::FileDataset> {
        let (bad, found_now) = data.unreadable();
        if bad.is_empty() {
            return Ok(data);
        }
        const SHOWN: usize = 20;
        let mut listing: Vec<String> =
            bad.iter().take(SHOWN).map(|(p, why)| format!("  {}: {why}", p.display())).collect();
        if bad.len() > SHOWN {
            listing.push(format!("  … and {} more", bad.len() - SHOWN));
        }
        let what = format!("{} of {} images under {} cannot be read", bad.len(), data.paths.len(), self.root.display());
        ensure!(self.skip_bad, "{what}:\n{}\n--skip-bad trains without them", listing.join("\n"));
        if found_now {
            eprintln!("warning: {what}; left out (--skip-bad):\n{}", listing.join("\n"));
        }
        let paths: Vec<PathBuf> = bad.into_iter().map(|(path, _)| path).collect();
        let kept = data.without(&paths);
        let (before, after) = (Dataset::class_counts(&data), Dataset::class_counts(&kept));
        if let Some(empty) = (0..after.len()).find(|&c| before[c] > 0 && after[c] == 0) {
            bail!(
                "{}: with its unreadable images left out (--skip-bad), class {} has no image",
                self.root.display(),
                kept.class_names[empty]
            );
        }
        Ok(kept)
    }

    /// The list file of `split` (a `list` dataset).
    fn list(&self, split: Split) -> Result<&PathBuf> {
        let list = match split {
            Split::Train => &self.train_list,
            Split::Val => &self.val_list,
            Split::Test => &self.test_list,
        };
        list.as_ref().with_context(|| {
            format!(
                "a list dataset needs --{}-list (data.{}_list): the `path label` file",
                split.folder_name(),
                split.folder_name()
            )
        })
    }

    /// The split that evaluation uses: the test split, or val where there is no test split
    /// (iNaturalist 2018; a list dataset given only a val list).
    pub fn eval_split(&self) -> Split {
        let no_test = match self.dataset {
            DatasetKind::Inat2018 => true,
            DatasetKind::List => self.test_list.is_none() && self.val_list.is_some(),
            _ => false,
        };
        if no_test { Split::Val } else { Split::Test }
    }

    /// The split evaluated after every epoch, on which `best` is picked: val where the data
    /// has one besides the split of [`Self::eval_split`] (ImageNet-LT with its val list; a
    /// list dataset given both; a folder with `val/` and `test/`), as the reference does;
    /// else that split itself, so that `best` is then an optimistic figure.
    pub fn selection_split(&self) -> Split {
        let has_val = match self.dataset {
            DatasetKind::ImagenetLt => list_path(&self.root, IMAGENET_LT_LISTS, Split::Val).is_file(),
            DatasetKind::PlacesLt => list_path(&self.root, PLACES_LT_LISTS, Split::Val).is_file(),
            DatasetKind::List => self.val_list.is_some() && self.test_list.is_some(),
            DatasetKind::Folder => self.root.join("val").is_dir() && self.root.join("test").is_dir(),
            _ => false,
        };
        if has_val { Split::Val } else { self.eval_split() }
    }

    /// The training set, long-tailed when `imb_factor` is set.
    pub fn train_set(&self) -> Result<Arc<dyn Dataset>> {
        self.long_tail_of(self.open(Split::Train)?)
    }

    /// The long-tailed subset of the full training set `full` (itself without `imb_factor`).
    pub fn long_tail_of(&self, full: Arc<dyn Dataset>) -> Result<Arc<dyn Dataset>> {
        match self.long_tail_indices(full.as_ref())? {
            Some(indices) => Ok(Arc::new(Subset::new(full, indices))),
            None => Ok(full),
        }
    }

    /// The indices into the full training set `full` that the long-tailed subset keeps, in
    /// the LDAM-DRW code's order; none without `imb_factor`.
    pub fn long_tail_indices(&self, full: &dyn Dataset) -> Result<Option<Vec<usize>>> {
        let Some(quotas) = self.long_tail_quotas(full)? else { return Ok(None) };
        let seed = u32::try_from(self.subset_seed)
            .map_err(|_| anyhow::anyhow!("subset_seed = {} must be below 2^32 (a numpy seed)", self.subset_seed))?;
        Ok(Some(long_tail::subset_indices(full.labels(), &quotas, seed)))
    }

    /// The images per class the long-tailed profile asks of the full training set `full`
    /// (n_max = its images / its classes, as LDAM computes it); none without `imb_factor`.
    pub fn long_tail_quotas(&self, full: &dyn Dataset) -> Result<Option<Vec<usize>>> {
        let Some(rho) = self.imb_factor else { return Ok(None) };
        anyhow::ensure!(rho >= 1.0, "imbalance factor {rho} must be at least 1");
        let n_max = full.len() as f64 / full.num_classes().max(1) as f64;
        Ok(Some(long_tail::class_counts(self.profile, n_max, full.num_classes(), rho)))
    }

    /// The evaluation split `split`, checked against the training set `train_set`: labels
    /// within its classes, and a folder's classes the same folders.
    pub fn eval_set(&self, split: Split, train_set: &dyn Dataset) -> Result<Arc<dyn Dataset>> {
        let eval = self.open(split)?;
        let what = format!("the {} split of {}", split.folder_name(), self.root.display());
        if self.dataset == DatasetKind::Folder {
            ensure!(
                eval.class_names() == train_set.class_names(),
                "{what} has the classes {:?}, the training split {:?}: they must be the same folders",
                eval.class_names(),
                train_set.class_names()
            );
        }
        ensure!(
            eval.num_classes() <= train_set.num_classes(),
            "{what} has labels up to {}, the training split only {} classes",
            eval.num_classes() - 1,
            train_set.num_classes()
        );
        Ok(eval)
    }
}

/// The start of ImageNet-LT's list files (`ImageNet_LT_train.txt`, `_val`, `_test`), and
/// of OLTR's Places-LT lists.
const IMAGENET_LT_LISTS: &str = "ImageNet_LT";
const PLACES_LT_LISTS: &str = "Places_LT";

/// `root/<prefix>_<split>.txt`: a benchmark's list file of `split`.
fn list_path(root: &Path, prefix: &str, split: Split) -> PathBuf {
    root.join(format!("{prefix}_{}.txt", split.folder_name()))
}

/// The `split` list of a benchmark given as `<prefix>_{train,val,test}.txt` under `root`.
fn benchmark_list(root: &Path, prefix: &str, split: Split, classes: usize) -> Result<files::FileDataset> {
    files::read_list(&list_path(root, prefix, split), root, Some(classes))
}

/// The indices of each class's samples, in order: `num_classes` lists (labels outside
/// `0..num_classes` are left out).
pub fn indices_by_class(labels: &[i64], num_classes: usize) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(members) = usize::try_from(l).ok().and_then(|l| by_class.get_mut(l)) {
            members.push(i);
        }
    }
    by_class
}

/// Where Debian's `dataset-fashion-mnist` package puts the four IDX files.
pub const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST folder: `$BCL_FASHION_MNIST` when set, otherwise Debian's location.
/// Returns the folder with where it came from, whether or not it holds the files.
pub fn fashion_mnist_dir() -> (PathBuf, &'static str) {
    match std::env::var_os("BCL_FASHION_MNIST") {
        Some(dir) => (PathBuf::from(dir), "$BCL_FASHION_MNIST"),
        None => (PathBuf::from(DEBIAN_FASHION_MNIST_DIR), "Debian's dataset-fashion-mnist"),
    }
}
