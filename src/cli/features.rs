//! `bcl features` (every sample's encoder and contrastive features, for t-SNE/UMAP in other
//! tools) and `bcl geometry` (how close the class means and prototypes are to the regular
//! simplex BCL aims for).
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bcl::checkpoint::{self, Checkpoint};
use bcl::data::Split;
use bcl::evaluation::EvalData;
use bcl::geometry::{self, Features, SimplexFit};
use bcl::predict::{LoadedModel, load_model};
use clap::Args;

/// Which model and which of its data.
#[derive(Args)]
pub struct FeatureSource {
    /// A checkpoint (RUN/best, RUN/last, a run folder) or exported weights.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The split whose images are embedded (evaluation transform): the training set the
    /// model learnt from (its long-tailed subset) or the evaluation split.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    device: tch::Device,
}

#[derive(Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    source: FeatureSource,
    /// The safetensors file to write: `h` (N × d), `z` (N × D), `labels` (N), with the
    /// class names in its metadata.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct GeometryArgs {
    #[command(flatten)]
    source: FeatureSource,
    /// Where to write geometry.json and class_mean_cosines.png (default: the checkpoint's
    /// folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The model, its features on the chosen split, and the training counts per class.
fn features_of(source: &FeatureSource) -> Result<(LoadedModel, Features, Vec<i64>)> {
    let device = source.device;
    let loaded = load_model(&checkpoint::resolve(&source.checkpoint), None, device)?;
    let config = &loaded.config;
    // `test` stands for the evaluation split (val where the data has no test split).
    let split = if source.split == Split::Test { config.data.eval_split() } else { source.split };
    let data = EvalData::open(config, split, device)?;
    let root = config.data.root.display();
    println!("embedding {} images of the {:?} split of {root}", data.data.len(), source.split);
    let features = geometry::extract(&loaded.model, data.data.clone(), data.recipe.clone(), &data.loader, device)?;
    Ok((loaded, features, data.counts))
}

pub fn exec_features(args: &FeaturesArgs) -> Result<()> {
    let (loaded, features, _) = features_of(&args.source)?;
    let tensors = BTreeMap::from([
        ("h".to_string(), features.h.shallow_clone()),
        ("z".to_string(), features.z.shallow_clone()),
        ("labels".to_string(), features.labels.shallow_clone()),
    ]);
    let metadata = HashMap::from([("class_names".to_string(), serde_json::to_string(&loaded.class_names)?)]);
    checkpoint::save(&args.out, &Checkpoint { weights: tensors, optimizer: BTreeMap::new(), metadata })?;
    println!("wrote {} (h {:?}, z {:?}, labels)", args.out.display(), features.h.size(), features.z.size());
    Ok(())
}

pub fn exec_geometry(args: &GeometryArgs) -> Result<()> {
    let (loaded, features, counts) = features_of(&args.source)?;
    let geometry = geometry::measure(&features, &tch::no_grad(|| loaded.model.prototypes()), &counts)?;
    println!(
        "{} classes: a regular simplex has every pairwise cosine at −1/(C−1) = {:.4}",
        geometry.classes, geometry.simplex_cosine
    );
    println!("{:<34} {:>6} {:>12} {:>15} {:>14}", "", "pairs", "mean cosine", "mean |Δ| to it", "max |Δ| to it");
    for (name, fit) in [
        ("class means of z, all classes", &geometry.class_means),
        ("class means, head half", &geometry.class_means_head),
        ("class means, tail half", &geometry.class_means_tail),
        ("prototypes", &geometry.prototypes),
    ] {
        print_fit(name, fit);
    }
    let names = &loaded.class_names;
    if names.len() <= 20 {
        println!("class-mean norms (1: a class's features coincide):");
        for (c, norm) in geometry.class_mean_norms.iter().enumerate() {
            println!("  {:<20} {:>6} train images  {norm:.3}", names[c], counts[c]);
        }
    }
    let folder = args.out.clone().unwrap_or_else(|| checkpoint_folder(&args.source.checkpoint));
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let json = folder.join("geometry.json");
    bcl::fs::write_atomic(&json, &serde_json::to_vec_pretty(&geometry)?)?;
    let png = folder.join("class_mean_cosines.png");
    let spec = bcl::plot::HeatMap {
        title: format!(
            "Cosines of the class means of z (regular simplex: {:.3} off the diagonal)",
            geometry.simplex_cosine
        ),
        x_desc: "class",
        y_desc: "class",
        class_names: names,
        range: (-1.0, 1.0),
    };
    bcl::plot::heat_map(&geometry.class_mean_cosines, &spec, &png)?;
    println!("wrote {}\nwrote {}", json.display(), png.display());
    Ok(())
}

fn print_fit(name: &str, fit: &SimplexFit) {
    println!(
        "{name:<34} {:>6} {:>12.4} {:>15.4} {:>14.4}",
        fit.pairs, fit.mean_cosine, fit.mean_deviation, fit.max_deviation
    );
}

/// The folder of a checkpoint path as the user gave it (a run folder is its own).
fn checkpoint_folder(path: &Path) -> PathBuf {
    if path.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() }
}
