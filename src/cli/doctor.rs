//! `bcl doctor`: what this build of bcl finds on this machine.
use anyhow::Result;

pub fn exec() -> Result<()> {
    println!("{}", bcl::doctor::Report::collect());
    Ok(())
}
