//! `bcl summarize`: a Markdown table of runs, mean ± std over seeds.
use std::path::PathBuf;

use anyhow::Result;
use bcl::summary::{RunResult, markdown_table};
use clap::Args;

#[derive(Args)]
pub struct SummarizeArgs {
    /// Run folders. Runs whose configs differ only in the seed make one row; rows are
    /// named by the config keys in which they differ.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

pub fn exec(args: &SummarizeArgs) -> Result<()> {
    let runs = args.runs.iter().map(|folder| RunResult::read(folder)).collect::<Result<Vec<_>>>()?;
    print!("{}", markdown_table(&runs)?);
    println!(
        "\n(each run's last logged epoch; accuracies in %, mean ± sample std over seeds; many > 100, medium 20–100, \
         few < 20 training images; ECE over 15 bins)"
    );
    Ok(())
}
