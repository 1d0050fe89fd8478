//! The `bcl` binary: see [`bcl::cli`].
use clap::Parser;

fn main() -> anyhow::Result<()> {
    // Exit quietly when the reader of our output goes away (`bcl data stats | head`), as
    // Unix tools do, instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    bcl::cli::run(bcl::cli::Cli::parse())
}
