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
    keep_freed_memory();
    bcl::cli::run(bcl::cli::Cli::parse())
}

/// CPU training allocates and frees the same activations (tens of MB each) at every step.
/// By default glibc maps blocks that large afresh and trims freed memory back to the
/// kernel, so every step page-faults its activations in again: 3.2 million page faults in
/// 25 steps of the fashion-mnist-lt preset, about a sixth of the time. Serving blocks up
/// to 32 MB from the heap and keeping up to 2 GB of freed heap removes nine faults in ten
/// (bench/RESULTS.md); peak memory stays the same.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets parameters of glibc's allocator; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
