//! `bcl export`: a checkpoint's model for other tools, with its model card beside it.
use std::path::{Path, PathBuf};

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
    /// ONNX (input `input`, output `logits`, dynamic batch), converted from TorchScript by
    /// PyTorch's exporter in --python.
    Onnx,
    /// A Triton Inference Server model repository: OUT/<name>/config.pbtxt (platform
    /// pytorch_libtorch), OUT/<name>/1/model.pt, OUT/<name>/labels.txt.
    Triton,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder).
    checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "safetensors")]
    format: Format,
    /// The file to write (for triton: the model repository folder). config.json and a
    /// README.md model card are written beside the model, as the Hugging Face hub takes them.
    #[arg(long)]
    out: PathBuf,
    /// triton: the model's name in the repository (default: the run folder's name).
    #[arg(long)]
    name: Option<String>,
    /// onnx: the Python whose torch and onnx convert the model (default: $BCL_PYTHON, else
    /// python3).
    #[arg(long)]
    python: Option<PathBuf>,
}

pub fn exec(args: &ExportArgs) -> Result<()> {
    let path = checkpoint::resolve(&args.checkpoint);
    let loaded = load_model(&path, None, Device::Cpu)?;
    let file_name = || args.out.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let name = args.name.clone().unwrap_or_else(|| run_name(&path));
    let (folder, files) = match args.format {
        Format::Safetensors | Format::Torchscript | Format::Onnx => (parent(&args.out), vec![file_name()]),
        Format::Triton => (args.out.join(&name), vec!["1/model.pt".into(), "config.pbtxt".into(), "labels.txt".into()]),
    };
    // Before the model is written: a folder whose README.md is someone else's is refused.
    bcl::model_card::check_folder(&folder)?;
    match args.format {
        Format::Safetensors => bcl::export::write_state_dict(&loaded, &args.out)?,
        Format::Torchscript => bcl::export::write_torchscript(&loaded, &args.out)?,
        Format::Onnx => {
            let python = args.python.clone().or_else(|| std::env::var_os("BCL_PYTHON").map(PathBuf::from));
            bcl::export::write_onnx(&loaded, &args.out, &python.unwrap_or_else(|| "python3".into()))?
        }
        Format::Triton => drop(bcl::export::write_triton(&loaded, &args.out, &name)?),
    }
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let card = bcl::model_card::write(&loaded, &path, &folder, &names)?;
    let config = &loaded.config;
    let input = config.input();
    let side = input.size;
    println!(
        "wrote {}: {:?}, {} classes; input N×{}×{side}×{side} float32, (pixel/255 − mean) / std with mean {:?}, \
         std {:?}",
        folder.join(names[0]).display(),
        config.model.arch,
        config.model.num_classes,
        input.channels,
        input.normalization.mean,
        input.normalization.std
    );
    super::print_written(&card);
    Ok(())
}

/// The folder a file is written into (`.` for a bare name).
fn parent(file: &Path) -> PathBuf {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// The name of the run folder holding `checkpoint`, as Triton takes names.
fn run_name(checkpoint: &Path) -> String {
    let folder = checkpoint.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    let name: String = folder
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    if name.is_empty() { "bcl_model".into() } else { name }
}
