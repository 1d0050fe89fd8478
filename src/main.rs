//! The `bcl` binary: a thin command line over the `bcl` library (see `src/cli/`).
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Exit quietly when the reader of our output goes away (`bcl data stats | head`), as
    // Unix tools do, instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    match cli::Cli::parse().exec() {
        Ok(code) => code,
        // A user's mistake (a missing file, a bad number) is one line naming it, whatever
        // RUST_BACKTRACE says; backtraces are for panics.
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// CPU training allocates and frees the same activations (tens of MB each) at every step.
/// By default glibc maps blocks that large afresh and trims freed memory back to the
/// kernel, so every step page-faults its activations in again. Serving blocks up to 32 MB
/// from the heap and keeping freed heap removes most of those faults (measured in
/// bench/RESULTS.md); peak memory stays the same.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets parameters of glibc's allocator; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
