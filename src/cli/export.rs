//! `bcl export`: a checkpoint's model for other tools.
use std::path::PathBuf;

use anyhow::Result;
use bcl::checkpoint;
use bcl::predict::load_model;
use clap::{Args, ValueEnum};
use tch::Device;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// The model's state_dict (reference key names, no optimizer state): PyTorch's
    /// load_state_dict(strict=True) takes it (see scripts/load_in_pytorch.py).
    Safetensors,
    /// A TorchScript module, normalised images → logits: torch.jit.load(FILE)(x).
    Torchscript,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder).
    checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "safetensors")]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn exec(args: &ExportArgs) -> Result<()> {
    let path = checkpoint::resolve(&args.checkpoint);
    let loaded = load_model(&path, None, Device::Cpu)?;
    match args.format {
        Format::Safetensors => bcl::export::write_state_dict(&loaded, &args.out)?,
        Format::Torchscript => bcl::export::write_torchscript(&loaded, &args.out)?,
    }
    let config = &loaded.config;
    let input = config.input();
    let side = input.size;
    println!(
        "wrote {}: {:?}, {} classes; input N×{}×{side}×{side} float32, (pixel/255 − mean) / std with mean {:?}, \
         std {:?}",
        args.out.display(),
        config.model.arch,
        config.model.num_classes,
        input.channels,
        input.normalization.mean,
        input.normalization.std
    );
    Ok(())
}
