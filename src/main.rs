//! The `bcl` binary: see [`bcl::cli`].
use clap::Parser;

fn main() -> anyhow::Result<()> {
    bcl::cli::run(bcl::cli::Cli::parse())
}
