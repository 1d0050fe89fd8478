//! `bcl data stats|preview|bench`: a dataset's classes, its augmented views, the loader's
//! speed.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use bcl::augment::{ClViews, Recipe, RecipeStyle, Rng};
use bcl::data::long_tail::{Profile, imbalance_factor};
use bcl::data::{DataConfig, Dataset, DatasetKind, Split, indices_by_class};
use bcl::loader::{LoaderConfig, views_per_second};
use bcl::metrics::ShotGroup;
use clap::{Args, Subcommand};
use rand::SeedableRng;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Classes, counts, imbalance factor and head/tail split; writes a PNG histogram.
    Stats {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_enum, default_value = "train")]
        split: Split,
        /// Also write the sorted class-count histogram to this PNG.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A PNG grid of training samples: the image, then its views 0, 1, 2.
    Preview {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        recipe: RecipeArgs,
        #[arg(long, default_value_t = 8)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes the training indices the long-tailed subset keeps (positions in the training
    /// files, one per line, class by class in the order the LDAM-DRW / BCL code keeps
    /// them), to compare with that code's split.
    Subset {
        #[command(flatten)]
        data: DataArgs,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Measures the training loader: augmented views per second, as normalised floats on CPU.
    Bench {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        recipe: RecipeArgs,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Loader threads (default: the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Batches timed after `--warmup` batches.
        #[arg(long, default_value_t = 20)]
        batches: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Hand batches over as uint8, as for a GPU (which normalises them); by default the
        /// workers normalise to float32, as for CPU training.
        #[arg(long)]
        uint8: bool,
    },
}

/// Which data: dataset, root and long-tailed subset.
#[derive(Args, Clone)]
pub struct DataArgs {
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetKind,
    /// Dataset folder (default for Fashion-MNIST: $BCL_FASHION_MNIST, else Debian's location).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Take a long-tailed subset of the training split with this imbalance factor ρ.
    #[arg(long)]
    imb_factor: Option<f64>,
    /// How the class sizes fall: exponentially, or in one step halfway.
    #[arg(long, value_enum, default_value = "exp")]
    profile: Profile,
    /// numpy seed of the shuffle that picks the subset's images (LDAM's `rand_number`).
    #[arg(long, default_value_t = 0)]
    subset_seed: u64,
    /// `--dataset list`: the training list, `path label` per line, paths relative to --root.
    #[arg(long)]
    train_list: Option<PathBuf>,
    /// `--dataset list`: the validation list.
    #[arg(long)]
    val_list: Option<PathBuf>,
    /// `--dataset list`: the test list.
    #[arg(long)]
    test_list: Option<PathBuf>,
}

impl DataArgs {
    fn config(&self) -> Result<DataConfig> {
        let root = match (&self.root, self.dataset) {
            (None, DatasetKind::FashionMnist) => bcl::data::fashion_mnist_dir().0,
            (Some(root), _) => root.clone(),
            (None, kind) => bail!("--root is required for --dataset {kind:?}"),
        };
        Ok(DataConfig {
            imb_factor: self.imb_factor,
            profile: self.profile,
            subset_seed: self.subset_seed,
            train_list: self.train_list.clone(),
            val_list: self.val_list.clone(),
            test_list: self.test_list.clone(),
            ..DataConfig::new(self.dataset, root)
        })
    }
}

/// Which views: the recipe follows the dataset (CIFAR-style or ImageNet-style).
#[derive(Args, Clone)]
pub struct RecipeArgs {
    /// cifar or imagenet views (default: by the dataset; a folder or list by its images).
    #[arg(long, value_enum, default_value = "auto")]
    recipe: RecipeStyle,
    /// Side of the imagenet recipe's crops (default 224).
    #[arg(long)]
    image_size: Option<usize>,
    /// ImageNet-style contrastive views.
    #[arg(long, value_enum, default_value = "sim-sim")]
    cl_views: ClViews,
    /// RandAugment configuration of the ImageNet-style views.
    #[arg(long, default_value = "rand-n2-m10-mstd0.5")]
    randaugment: String,
    /// Cutout 16 on view 0 of the CIFAR-style recipe.
    #[arg(long)]
    cutout: bool,
}

impl RecipeArgs {
    fn recipe(&self, kind: DatasetKind, dataset: &dyn Dataset) -> Result<Recipe> {
        let style = self.recipe.for_data(kind, dataset)?;
        super::config::check_image_size_flag(self.image_size, style)?;
        Recipe::for_dataset(kind, style, dataset, self.image_size, self.cl_views, &self.randaugment, self.cutout)
    }
}

pub fn exec(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Stats { data, split, out } => {
            let config = data.config()?;
            if split != Split::Train {
                return print_stats(config.open(split)?.as_ref(), out.as_deref());
            }
            // The files are read once: the subset and the classes it had to clamp.
            let full = config.open(Split::Train)?;
            print_stats(config.long_tail_of(full.clone())?.as_ref(), out.as_deref())?;
            print_clamped_classes(&config, full.as_ref())
        }
        DataCommand::Subset { data, out } => {
            let config = data.config()?;
            ensure!(config.imb_factor.is_some(), "data subset needs --imb-factor (the subset's imbalance factor ρ)");
            let full = config.open(Split::Train)?;
            let indices = config.long_tail_indices(full.as_ref())?.unwrap_or_default();
            let text: String = indices.iter().map(|i| format!("{i}\n")).collect();
            bcl::fs::write_atomic(&out, text.as_bytes())?;
            println!(
                "wrote {} ({} of {} training images, in the LDAM-DRW order)",
                out.display(),
                indices.len(),
                full.len()
            );
            Ok(())
        }
        DataCommand::Preview { data, recipe, samples, seed, out } => {
            let config = data.config()?;
            let dataset = config.train_set()?;
            let recipe = recipe.recipe(config.dataset, dataset.as_ref())?;
            write_preview(dataset.as_ref(), &recipe, samples, seed, &out)
        }
        DataCommand::Bench { data, recipe, batch_size, workers, batches, warmup, uint8 } => {
            let config = data.config()?;
            let dataset = config.train_set()?;
            let recipe = Arc::new(recipe.recipe(config.dataset, dataset.as_ref())?);
            let mut loader_config = LoaderConfig::new(batch_size, 0, config.dataset.normalization());
            loader_config.workers = workers.unwrap_or(loader_config.workers);
            loader_config.normalize_in_workers = !uint8;
            let rate = views_per_second(dataset, recipe, &loader_config, warmup, batches)?;
            println!(
                "bcl loader{}: {} workers, batch {batch_size}, {batches} batches in {:.2} s: {rate:.0} views/s, {:.0} views/s per worker",
                if uint8 { " (uint8)" } else { "" },
                loader_config.workers,
                (batches * batch_size * 3) as f64 / rate,
                rate / loader_config.workers as f64
            );
            Ok(())
        }
    }
}

/// A grid of up to `samples` training images, taken from the classes in turn so that the
/// tail shows too: each image, then its views 0, 1, 2.
fn write_preview(dataset: &dyn Dataset, recipe: &Recipe, samples: usize, seed: u64, out: &Path) -> Result<()> {
    let by_class = indices_by_class(dataset.labels(), dataset.num_classes());
    let depth = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let picks = (0..depth).flat_map(|d| by_class.iter().filter_map(move |members| members.get(d).copied()));
    let mut rng = Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for i in picks.take(samples) {
        let image = dataset.image(i)?;
        let views = recipe.train_views(&image, &mut rng, 3);
        let mut row = vec![image];
        row.extend(views);
        rows.push(row);
    }
    bcl::plot::image_grid(&rows, recipe.size.max(96), out)?;
    println!("wrote {} ({} samples: image, view 0, view 1, view 2)", out.display(), rows.len());
    Ok(())
}

/// The classes of a long-tailed subset that hold fewer images than the profile asks: they
/// keep all they have, as the LDAM-DRW code does (real MNIST's classes differ in size).
fn print_clamped_classes(config: &DataConfig, full: &dyn Dataset) -> Result<()> {
    let quotas = config.long_tail_quotas(full)?.unwrap_or_default();
    for ((name, &has), &quota) in full.class_names().iter().zip(&full.class_counts()).zip(&quotas) {
        if (has as usize) < quota {
            println!("  {name}: the profile asks for {quota} images, the class has {has}: keeps all {has}");
        }
    }
    Ok(())
}

fn print_stats(dataset: &dyn Dataset, out: Option<&Path>) -> Result<()> {
    let counts = dataset.class_counts();
    let in_group = |group| counts.iter().filter(|&&n| ShotGroup::of(n) == group).count();
    println!("{} images, {} classes, imbalance factor {:.1}", dataset.len(), counts.len(), imbalance_factor(&counts));
    let groups: Vec<String> =
        ShotGroup::ALL.iter().map(|&g| format!("{}: {} classes", g.describe(), in_group(g))).collect();
    println!("{}", groups.join(", "));
    if counts.len() <= 100 {
        for (name, n) in dataset.class_names().iter().zip(&counts) {
            println!("  {name:<20} {n}");
        }
    }
    let Some(out) = out else { return Ok(()) };
    bcl::plot::class_counts(dataset.class_names(), &counts, out)?;
    println!("wrote {}", out.display());
    Ok(())
}
