//! The `bcl` command line: a thin layer over the `bcl` library.
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use bcl::sanity::{OverfitConfig, overfit_batch};

#[derive(Parser)]
#[command(
    name = "bcl",
    version,
    about = "Balanced Contrastive Learning for long-tailed image recognition"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this build finds: libtorch, CPU threads, CUDA devices, cuDNN, the data.
    Doctor,
    /// Train the Fashion-MNIST BCL model on one fixed batch and show both losses fall.
    OverfitBatch {
        /// Fashion-MNIST folder (default: $BCL_FASHION_MNIST, else Debian's location).
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 0.05)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Doctor => println!("{}", bcl::doctor::Report::collect()),
        Command::OverfitBatch {
            root,
            batch_size,
            steps,
            lr,
            seed,
            device,
        } => {
            let config = OverfitConfig {
                data_dir: root.unwrap_or_else(|| bcl::data::fashion_mnist_dir().0),
                batch_size,
                steps,
                learning_rate: lr,
                seed,
                device: bcl::parse_device(&device)?,
            };
            println!(
                "overfitting one batch of {batch_size} Fashion-MNIST images (views 0, 1, 2) on {:?}",
                config.device
            );
            println!(
                "{:>4}  {:>8}  {:>8}  {:>8}  {:>9}",
                "step", "LA-CE", "BCL", "total", "batch acc"
            );
            let records = overfit_batch(&config)?;
            for r in &records {
                println!(
                    "{:>4}  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.1}%",
                    r.step,
                    r.la_ce,
                    r.bcl,
                    r.total,
                    100.0 * r.accuracy
                );
            }
            if let (Some(first), Some(last)) = (records.first(), records.last()) {
                println!(
                    "total loss {:.4} -> {:.4} in {} steps",
                    first.total,
                    last.total,
                    records.len()
                );
            }
        }
    }
    Ok(())
}
