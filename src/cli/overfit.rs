//! `bcl overfit-batch`: both losses must fall on one fixed batch.
use std::path::PathBuf;

use anyhow::Result;
use bcl::overfit::{OverfitConfig, overfit_batch};
use clap::Args;

#[derive(Args)]
pub struct OverfitArgs {
    /// Fashion-MNIST folder (default: $BCL_FASHION_MNIST, else Debian's location).
    #[arg(long)]
    root: Option<PathBuf>,
    #[arg(long, default_value_t = 64, value_parser = super::positive, allow_negative_numbers = true)]
    batch_size: usize,
    #[arg(long, default_value_t = 20, value_parser = super::positive, allow_negative_numbers = true)]
    steps: usize,
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    device: tch::Device,
}

pub fn exec(args: &OverfitArgs) -> Result<()> {
    let config = OverfitConfig {
        data_dir: args.root.clone().unwrap_or_else(|| bcl::data::fashion_mnist_dir().0),
        batch_size: args.batch_size,
        steps: args.steps,
        learning_rate: args.lr,
        seed: args.seed,
        device: args.device,
    };
    println!(
        "overfitting one batch of {} Fashion-MNIST images (views 0, 1, 2) on {:?}",
        args.batch_size, config.device
    );
    println!("{:>4}  {:>8}  {:>8}  {:>8}  {:>9}", "step", "LA-CE", "BCL", "total", "batch acc");
    let records = overfit_batch(&config)?;
    for r in &records {
        println!("{:>4}  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.1}%", r.step, r.la_ce, r.bcl, r.total, 100.0 * r.accuracy);
    }
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        println!("total loss {:.4} -> {:.4} in {} steps", first.total, last.total, records.len());
    }
    Ok(())
}
