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
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::config::TrainConfig;
use crate::data::DataConfig;
use crate::distributed::Group;
use crate::fs::{append_synced, csv_field, write_atomic};
use crate::metrics::EpochRecord;

/// A run folder's lock ([`RunDir::lock`]), released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _held: File,
}

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
        run.write_config(config)?;
        Ok(run)
    }

    /// Locks the folder for one training process (an advisory lock, which the process's
    /// end releases, a crash included): a second process training in it is refused, naming
    /// the first one's pid. Held while the returned lock lives.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.path.join(".lock");
        let open = || OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path);
        let mut file = open().with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).and_then(|()| write!(file, "{}", std::process::id()))?;
                Ok(RunLock { _held: file })
            }
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "{} is in use: bcl process {} trains in it; wait for it to end or stop it first",
                    self.path.display(),
                    holder.trim()
                )
            }
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Saves `config` as the run's config (what `--resume` continues).
    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        write_atomic(&self.config_path(), config.to_toml()?.as_bytes())
    }

    /// [`Self::create`] for a run of several processes: the primary creates the folder
    /// (a default name has the time in it) and tells the others its path.
    pub fn create_shared(path: &Path, config: &TrainConfig, group: Option<&Group>) -> Result<Self> {
        let Some(group) = group else { return Self::create(path, config) };
        let created = if group.is_primary() { Some(Self::create(path, config)?) } else { None };
        let bytes = created.as_ref().map_or(Vec::new(), |r| r.path.as_os_str().as_encoded_bytes().to_vec());
        let path = String::from_utf8(group.broadcast_bytes(&bytes)?).context("the run folder's name")?;
        Ok(Self { path: PathBuf::from(path) })
    }

    /// An existing run folder, for `--resume` and `eval`.
    pub fn open(path: &Path) -> Result<Self> {
        let run = Self { path: path.to_path_buf() };
        ensure!(path.exists(), "run folder {} does not exist", path.display());
        ensure!(path.is_dir(), "{} is a file, not a run folder (the folder `bcl train --out` made)", path.display());
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

    /// Writes `text` to the file `name` in the run folder (atomically).
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.path.join(name), text.as_bytes())
    }

    /// `split.csv`: which images of a held-out class folder train and which test.
    pub fn write_holdout(&self, data: &DataConfig) -> Result<()> {
        let Some((train, held)) = data.holdout_split()? else { return Ok(()) };
        let mut csv = String::from("path,split\n");
        for (part, name) in [(&train, "train"), (&held, "test")] {
            for path in &part.paths {
                csv += &format!("{},{name}\n", csv_field(&path.display().to_string()));
            }
        }
        self.write_text("split.csv", &csv)
    }

    pub fn write_class_counts(&self, names: &[String], counts: &[i64]) -> Result<()> {
        let mut csv = String::from("class,name,train_images\n");
        for (class, (name, n)) in names.iter().zip(counts).enumerate() {
            csv += &format!("{class},{},{n}\n", csv_field(name));
        }
        write_atomic(&self.path.join("class_counts.csv"), csv.as_bytes())
    }

    /// Training images per class, from `class_counts.csv`.
    pub fn read_class_counts(&self) -> Result<Vec<i64>> {
        let path = self.path.join("class_counts.csv");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // The count is the last field: a quoted class name may hold commas.
        text.lines()
            .skip(1)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let count = line.rsplit(',').next().unwrap_or_default();
                count.parse().with_context(|| format!("{}: {count:?} is not an image count", path.display()))
            })
            .collect()
    }

    /// The epochs logged in `metrics.jsonl`, in order.
    pub fn read_metrics(&self) -> Result<Vec<EpochRecord>> {
        Ok(self.metrics_lines()?.into_iter().map(|(record, _)| record).collect())
    }

    /// Keeps only the logged epochs before `epoch` (a resumed run repeats the rest), byte
    /// for byte: the lines kept are not written anew.
    pub fn truncate_metrics(&self, epoch: usize) -> Result<()> {
        let kept: String = self
            .metrics_lines()?
            .into_iter()
            .filter(|(record, _)| record.epoch < epoch)
            .map(|(_, line)| line)
            .collect();
        write_atomic(&self.metrics_path(), kept.as_bytes())
    }

    pub fn append_metrics(&self, record: &EpochRecord) -> Result<()> {
        append_synced(&self.metrics_path(), &(serde_json::to_string(record)? + "\n"))
    }

    /// Each logged epoch with its line, ending in a newline; a line cut short by a crash
    /// is not an epoch (one that lost only its newline still is).
    fn metrics_lines(&self) -> Result<Vec<(EpochRecord, String)>> {
        let path = self.metrics_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let mut records = Vec::new();
        for (number, line) in text.split_inclusive('\n').enumerate() {
            match serde_json::from_str(line.trim_end()) {
                Ok(record) => records.push((record, line.to_string())),
                // A line a kill cut short (no newline yet) is the one that may not parse.
                Err(_) if !line.ends_with('\n') => {}
                Err(e) => bail!("{}, line {}: not an epoch record of bcl ({e})", path.display(), number + 1),
            }
        }
        Ok(records)
    }
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
