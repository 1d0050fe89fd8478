//! `--nproc-per-node N`: this program started as N ranks of one data-parallel job on this
//! machine, as `torchrun --nproc-per-node` starts them (the ranks join through the
//! environment, `bcl::distributed::join_from_env`).
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// Runs this program as `processes` ranks of one data-parallel job on this machine, as
/// `torchrun --nproc-per-node` does: the same arguments less `--nproc-per-node`, and the
/// launcher's environment variables. Waits for them all. The `stop_signals` are passed on
/// to every rank (each saves and stops, as one process does, exiting with 128 + the
/// signal's number); when a rank fails, the others, which would wait for it until the
/// timeout, are killed. Returns the ranks' exit code: 0, or 128 + a stop signal.
pub fn launch_local(processes: usize, stop_signals: &[i32]) -> Result<u8> {
    ensure!(processes >= 1, "--nproc-per-node must be at least 1");
    ensure!(
        std::env::var_os("WORLD_SIZE").is_none(),
        "--nproc-per-node with WORLD_SIZE already set: a launcher started this process; leave one of them out"
    );
    let program = std::env::current_exe().context("locating the bcl executable")?;
    let args = without_nproc_per_node(std::env::args_os().skip(1));
    let port = match std::env::var("MASTER_PORT") {
        Ok(port) => port,
        Err(_) => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string(),
    };
    // One process per core share of libtorch threads, unless the user chose (torchrun sets 1).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| (cores / processes).max(1).to_string());
    // Listening before the ranks start: a signal in between must not orphan them.
    let mut signals = signal_hook::iterator::Signals::new(stop_signals)?;
    let mut children = Vec::with_capacity(processes);
    for rank in 0..processes {
        let child = Command::new(&program)
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", processes.to_string())
            .env("LOCAL_WORLD_SIZE", processes.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("OMP_NUM_THREADS", &threads)
            // Rank 0 hosts the store here, whatever a torchrun shell left behind.
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            // Its own process group: a Ctrl-C reaches the ranks once, through us.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting rank {rank} ({})", program.display()))?;
        children.push(child);
    }
    let pids: Vec<libc::pid_t> = children.iter().map(|c| c.id() as libc::pid_t).collect();
    let signals_handle = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            for &pid in &pids {
                // SAFETY: kill(2) on the pid of a child we started (not yet reaped by us
                // while this thread runs: it is closed before the last wait returns).
                unsafe { libc::kill(pid, signal) };
            }
        }
    });
    let stopped_codes: Vec<i32> = stop_signals.iter().map(|s| 128 + s).collect();
    let outcome = wait_all(children, &stopped_codes);
    signals_handle.close();
    let _ = forwarder.join();
    match outcome? {
        Err((rank, status)) => bail!("rank {rank} of {processes} failed ({status}); the other ranks were stopped"),
        Ok(code) => Ok(code),
    }
}

/// Waits for every child; the first that fails has the others killed. Returns it.
/// Waits for every rank. A rank that exits with a code other than 0 or one of
/// `stopped_codes` (a clean stop on a signal) has failed: the others are killed and the first
/// failure is returned. Otherwise returns the highest exit code (0 when all finished).
fn wait_all(children: Vec<Child>, stopped_codes: &[i32]) -> Result<Result<u8, (usize, std::process::ExitStatus)>> {
    let mut running: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let (mut failure, mut code) = (None, 0);
    while running.iter().any(Option::is_some) {
        for (rank, slot) in running.iter_mut().enumerate() {
            if let Some(status) = slot.as_mut().map(Child::try_wait).transpose()?.flatten() {
                match status.code() {
                    Some(0) => {}
                    Some(c) if stopped_codes.contains(&c) => code = code.max(c as u8),
                    _ if failure.is_none() => failure = Some((rank, status)),
                    _ => {}
                }
                *slot = None;
            }
        }
        if failure.is_some() {
            running.iter_mut().flatten().for_each(|child| drop(child.kill()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(failure.map_or(Ok(code), Err))
}

/// `args` without `--nproc-per-node N` or `--nproc-per-node=N`.
fn without_nproc_per_node(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match arg.to_str() {
            Some("--nproc-per-node") => skip_value = true,
            Some(a) if a.starts_with("--nproc-per-node=") => {}
            _ => kept.push(arg),
        }
    }
    kept
}
