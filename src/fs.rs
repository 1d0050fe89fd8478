//! Files that survive a kill: whole files written atomically, log lines appended and
//! synced, and the CSV quoting every table bcl writes shares.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// Writes `bytes` to `path` so that `path` is either its old contents or all of `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    check_output_file(path)?;
    let temporary = folder.join(format!(".{}.partial", name.to_string_lossy()));
    let written = File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        bail!("cannot write {}: {e} (the previous file, if any, is unchanged)", path.display());
    }
    if let Err(e) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        bail!("cannot write {}: {e} (the previous file, if any, is unchanged)", path.display());
    }
    // The rename itself is durable once the folder is synced.
    File::open(folder).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {}", folder.display()))?;
    Ok(())
}

/// Appends `line` (with its newline) to `path`, created if needed, and syncs it to disk.
pub fn append_synced(path: &Path, line: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Checks that `path` (a `what`, for the message) is a regular file before anything opens
/// it: opening a FIFO blocks, a device never ends, a folder or dangling link is no file.
/// Refuses to write to `path` where something other than a file is: a folder, or a FIFO or
/// device (writing would block on a FIFO, or replace it).
pub fn check_output_file(path: &Path) -> Result<()> {
    let Ok(metadata) = std::fs::metadata(path) else { return Ok(()) };
    ensure!(!metadata.is_dir(), "{} is a folder: give the name of a file to write", path.display());
    ensure!(
        metadata.is_file(),
        "{} is not a regular file (a FIFO or device): give the name of a file to write",
        path.display()
    );
    Ok(())
}

pub fn check_regular_file(path: &Path, what: &str) -> Result<()> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("{what} {} does not exist or cannot be read", path.display()))?;
    ensure!(metadata.is_file(), "{what} {} is not a regular file (a folder, FIFO or device)", path.display());
    Ok(())
}
