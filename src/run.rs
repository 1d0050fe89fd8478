//! A run folder: everything one training run leaves behind.
//!
//! ```text
//! config.toml            the full resolved config (what `--resume` continues)
//! class_counts.csv       training images per class
//! metrics.jsonl          one JSON line per finished epoch
//! events.out.tfevents.*  TensorBoard scalars
//! last.safetensors       checkpoint after the latest epoch (or at Ctrl-C)
//! best.safetensors       checkpoint of the best test top-1 so far
//! ```
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::checkpoint::write_atomic;
use crate::config::TrainConfig;
use crate::train::EpochRecord;

#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// `runs/<name>-<local date>-<time>`.
    pub fn default_path(name: &str) -> PathBuf {
        PathBuf::from("runs").join(format!("{name}-{}", local_timestamp()))
    }

    /// A folder for a new run, made if needed. One that holds a checkpoint is refused; one
    /// whose run stopped before its first checkpoint is started afresh.
    pub fn create(path: &Path, config: &TrainConfig) -> Result<Self> {
        let run = Self { path: path.to_path_buf() };
        ensure!(
            !run.last().exists(),
            "{} already holds a run; continue it with `bcl train --resume {}` or choose another --out",
            path.display(),
            path.display()
        );
        std::fs::create_dir_all(path).with_context(|| format!("cannot create run folder {}", path.display()))?;
        write_atomic(&run.config_path(), config.to_toml()?.as_bytes())?;
        Ok(run)
    }

    /// An existing run folder, for `--resume` and `eval`.
    pub fn open(path: &Path) -> Result<Self> {
        let run = Self { path: path.to_path_buf() };
        ensure!(path.is_dir(), "run folder {} does not exist", path.display());
        ensure!(run.config_path().is_file(), "{} is not a bcl run folder: it has no config.toml", path.display());
        Ok(run)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn last(&self) -> PathBuf {
        self.path.join("last.safetensors")
    }

    pub fn best(&self) -> PathBuf {
        self.path.join("best.safetensors")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    pub fn config(&self) -> Result<TrainConfig> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        TrainConfig::from_toml(&text, &path.display().to_string())
    }

    pub fn write_class_counts(&self, names: &[String], counts: &[i64]) -> Result<()> {
        let mut csv = String::from("class,name,train_images\n");
        for (class, (name, n)) in names.iter().zip(counts).enumerate() {
            csv += &format!("{class},{},{n}\n", csv_field(name));
        }
        write_atomic(&self.path.join("class_counts.csv"), csv.as_bytes())
    }

    /// The epochs logged in `metrics.jsonl`, in order.
    pub fn read_metrics(&self) -> Result<Vec<serde_json::Value>> {
        let path = self.metrics_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        // A line cut short by a crash is not an epoch.
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }

    /// Keeps only the logged epochs before `epoch` (a resumed run repeats the rest).
    pub fn truncate_metrics(&self, epoch: usize) -> Result<()> {
        let kept: Vec<String> = self
            .read_metrics()?
            .into_iter()
            .filter(|m| m["epoch"].as_u64().is_some_and(|e| (e as usize) < epoch))
            .map(|m| m.to_string() + "\n")
            .collect();
        write_atomic(&self.metrics_path(), kept.concat().as_bytes())
    }

    pub fn append_metrics(&self, record: &EpochRecord) -> Result<()> {
        let path = self.metrics_path();
        let line = serde_json::to_string(record)? + "\n";
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Local time as `YYYYMMDD-HHMMSS`.
fn local_timestamp() -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which is a plain C struct we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
