//! The command line: one module per command, each an args struct and an `exec` that
//! parses, calls the library and prints (as cargo's `src/bin/cargo/commands/`).
mod config;
mod data;
mod doctor;
mod eval;
mod export;
mod features;
mod launch;
mod models;
mod overfit;
mod predict;
mod progress;
mod summarize;
mod train;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bcl::config::Preset;
use bcl::data::Split;
use bcl::metrics::Evaluation;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "bcl", version, about = "Balanced Contrastive Learning for long-tailed image recognition")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this build finds: libtorch, CPU threads, CUDA devices, cuDNN, the data.
    Doctor,
    /// Train the Fashion-MNIST BCL model on one fixed batch and show both losses fall.
    OverfitBatch(overfit::OverfitArgs),
    /// List the encoders (--arch): feature width, parameters, input, the weights' normalisation.
    Models,
    /// Show the config a run would use.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Inspect datasets and the augmentation pipeline.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train BCL (or a baseline) with a benchmark preset, evaluating after every epoch.
    Train(train::TrainArgs),
    /// Evaluate a checkpoint: top-1, Many/Medium/Few, per-class accuracy and plots.
    Eval(eval::EvalArgs),
    /// Write a checkpoint's model for PyTorch: its state_dict as safetensors, or TorchScript.
    Export(export::ExportArgs),
    /// Write every sample's encoder (h) and contrastive (z) features with labels, for
    /// t-SNE/UMAP in other tools.
    Features(features::FeaturesArgs),
    /// How close the class means of the features and the prototypes are to the regular
    /// simplex BCL aims for, all classes and head vs tail.
    Geometry(features::GeometryArgs),
    /// Print the most probable classes of image files.
    Predict(predict::PredictArgs),
    /// A Markdown table of runs: mean ± std over seeds of top-1, top-5, many/medium/few,
    /// the rarest classes and ECE.
    Summarize(summarize::SummarizeArgs),
}

impl Cli {
    /// Runs the command; its exit code (`train` stopped by a signal exits 128 + its number).
    pub fn exec(self) -> Result<ExitCode> {
        match self.command {
            Command::Doctor => doctor::exec(),
            Command::Models => models::exec(),
            Command::OverfitBatch(args) => overfit::exec(&args),
            Command::Config(command) => config::exec(&command),
            Command::Data(command) => data::exec(command),
            Command::Train(args) => return train::exec(&args),
            Command::Eval(args) => eval::exec(&args),
            Command::Export(args) => export::exec(&args),
            Command::Features(args) => features::exec_features(&args),
            Command::Geometry(args) => features::exec_geometry(&args),
            Command::Predict(args) => predict::exec(&args),
            Command::Summarize(args) => summarize::exec(&args),
        }
        .map(|()| ExitCode::SUCCESS)
    }
}

/// Parses `--preset`, listing the presets in `--help` and in the error for a wrong name.
#[derive(Clone)]
struct PresetParser;

impl TypedValueParser for PresetParser {
    type Value = Preset;

    fn parse_ref(&self, _: &clap::Command, _: Option<&clap::Arg>, value: &OsStr) -> Result<Preset, clap::Error> {
        let name = value.to_string_lossy();
        Preset::from_str(&name, false).map_err(|_| {
            let names: Vec<String> = Preset::all().iter().map(|p| p.name()).collect();
            let message = format!("unknown preset {name:?}; presets: {}\n", names.join(", "));
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, message)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Preset::all().iter().filter_map(ValueEnum::to_possible_value)))
    }
}

/// A count that must be at least 1 (`--top-k`, `--batch-size`, `--steps`): 0 is refused
/// when the flag is parsed, not met later as a division or an empty loop.
fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}", 100.0 * v))
}

/// Top-1, Many/Medium/Few and, for up to 20 classes, each class's accuracy, on `split`.
fn print_evaluation(split: Split, names: &[String], counts: &[i64], eval: &Evaluation) {
    let split = split.folder_name();
    println!(
        "{split} top-1 {:.2}%   top-5 {}%   many {}   medium {}   few {}   ECE {}%   NLL {}",
        100.0 * eval.top1,
        percent(eval.top5),
        percent(eval.many),
        percent(eval.medium),
        percent(eval.few),
        percent(eval.ece),
        eval.nll.map_or("-".into(), |v| format!("{v:.3}"))
    );
    if eval.per_class.len() <= 20 {
        println!("per-class {split} accuracy (class: training images → accuracy):");
        for ((name, n), acc) in names.iter().zip(counts).zip(&eval.per_class) {
            println!("  {name:<20} {n:>6} → {:>5.1}%", 100.0 * acc);
        }
    }
}

fn print_written(paths: &[PathBuf]) {
    for path in paths {
        println!("wrote {}", path.display());
    }
}

/// `--device`: `auto`, `cpu`, `cuda` or `cuda:N`; `auto` picks CUDA when usable.
fn parse_device(spec: &str) -> Result<tch::Device, String> {
    let cuda = |i: usize| {
        if !tch::Cuda::is_available() {
            return Err("CUDA is not usable here (see `bcl doctor`)".to_string());
        }
        let count = tch::Cuda::device_count() as usize;
        if i >= count {
            return Err(format!("only {count} CUDA device(s)"));
        }
        Ok(tch::Device::Cuda(i))
    };
    match spec {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => cuda(0),
        _ => match spec.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda(i),
            None => Err("expected auto, cpu, cuda or cuda:N".to_string()),
        },
    }
}
