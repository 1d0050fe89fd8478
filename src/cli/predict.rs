//! `bcl predict`: the most probable classes of image files.
use std::path::PathBuf;

use anyhow::Result;
use bcl::checkpoint;
use bcl::config::{Preset, TrainConfig};
use bcl::predict::{load_model, top_k};
use clap::Args;

#[derive(Args)]
pub struct PredictArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The preset describing plain weights that carry no bcl config.
    #[arg(long, value_parser = super::PresetParser)]
    preset: Option<Preset>,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn exec(args: &PredictArgs) -> Result<()> {
    let path = checkpoint::resolve(&args.checkpoint);
    let fallback = args.preset.map(|p| TrainConfig::preset(p, PathBuf::new()));
    let device = bcl::parse_device(&args.device)?;
    let loaded = load_model(&path, fallback.as_ref(), device)?;
    for image in &args.images {
        println!("{}", image.display());
        for (class, p) in top_k(&loaded.model, &loaded.config, image, args.top_k, device)? {
            println!("  {:>6.2}%  {}", 100.0 * p, loaded.class_names[class as usize]);
        }
    }
    Ok(())
}
