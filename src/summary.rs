//! Runs summarised over seeds (`bcl summarize`): runs whose configs differ only in the seed
//! form a row of means ± standard deviations, as long-tailed papers report them.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::config::TrainConfig;
use crate::metrics::Evaluation;
use crate::run::RunDir;

/// The rarest classes whose mean accuracy the table shows.
pub const RAREST: usize = 5;

/// What a table needs of one run: its config and its last logged epoch.
pub struct RunResult {
    pub folder: String,
    pub config: TrainConfig,
    /// Epochs logged (the last one's evaluation is the run's result).
    pub epochs_done: usize,
    pub eval: Evaluation,
    pub train_counts: Vec<i64>,
}

impl RunResult {
    pub fn read(folder: &Path) -> Result<Self> {
        let run = RunDir::open(folder)?;
        let records = run.read_metrics()?;
        let last = records.last().with_context(|| format!("{} has no finished epoch yet", folder.display()))?;
        Ok(Self {
            folder: folder.display().to_string(),
            config: run.config()?,
            epochs_done: last.epoch + 1,
            eval: last.eval.clone(),
            train_counts: run.read_class_counts()?,
        })
    }

    /// The mean accuracy of the [`RAREST`] classes with the fewest training images.
    fn rarest_accuracy(&self) -> f64 {
        let mut classes: Vec<usize> = (0..self.train_counts.len()).collect();
        classes.sort_by_key(|&c| self.train_counts[c]);
        let rarest = &classes[..RAREST.min(classes.len())];
        rarest.iter().map(|&c| self.eval.per_class[c]).sum::<f64>() / rarest.len().max(1) as f64
    }
}

/// A Markdown table of `runs`: one row per config (seed and loader threads aside), in the
/// order the runs come, named by the keys in which the rows differ.
pub fn markdown_table(runs: &[RunResult]) -> Result<String> {
    ensure!(!runs.is_empty(), "no runs to summarise");
    let mut rows: Vec<(toml::Table, Vec<&RunResult>)> = Vec::new();
    for run in runs {
        let key = config_without_seed(&run.config)?;
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(run),
            None => rows.push((key, vec![run])),
        }
    }
    let differing = differing_keys(&rows.iter().map(|(k, _)| flatten(k)).collect::<Vec<_>>());
    let mut table = String::from(
        "| runs | seeds | epochs | top-1 | top-5 | many | medium | few | 5 rarest classes | ECE |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (key, members) in &rows {
        let flat = flatten(key);
        let name = match differing.is_empty() {
            true => members[0].folder.clone(),
            // A key set in some configs only (an `--init` file) reads "unset" in the others,
            // unless its table is there with other keys (`[loss]` of another kind).
            false => differing
                .iter()
                .filter(|k| flat.contains_key(*k) || !has_table_of(&flat, k))
                .map(|k| format!("{k} = {}", flat.get(k).map_or("unset", String::as_str)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let seeds: Vec<String> = members.iter().map(|r| r.config.seed.to_string()).collect();
        let done: Vec<usize> = members.iter().map(|r| r.epochs_done).collect();
        let epochs = members[0].config.epochs;
        let epochs = if done.iter().all(|&d| d == epochs) {
            epochs.to_string()
        } else {
            format!("{} of {epochs} (unfinished)", done.iter().map(usize::to_string).collect::<Vec<_>>().join("/"))
        };
        let cell =
            |f: &dyn Fn(&RunResult) -> Option<f64>| mean_std(&members.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
        table += &format!(
            "| {name} | {} | {epochs} | {} | {} | {} | {} | {} | {} | {} |\n",
            seeds.join(", "),
            cell(&|r| Some(r.eval.top1)),
            cell(&|r| r.eval.top5),
            cell(&|r| r.eval.many),
            cell(&|r| r.eval.medium),
            cell(&|r| r.eval.few),
            cell(&|r| Some(r.rarest_accuracy())),
            cell(&|r| r.eval.ece),
        );
    }
    Ok(table)
}

/// `mean ± std` (sample standard deviation) in percent, one decimal; the value alone for
/// one run; `–` for none.
pub fn mean_std(values: &[f64]) -> String {
    match values {
        [] => "–".into(),
        [one] => format!("{:.1}", 100.0 * one),
        _ => {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * var.sqrt())
        }
    }
}

/// A config as TOML without what does not change the result: the seed, loader threads.
fn config_without_seed(config: &TrainConfig) -> Result<toml::Table> {
    let mut table = toml::Table::try_from(config)?;
    table.remove("seed");
    table.remove("workers");
    Ok(table)
}

/// A TOML table's values by dotted key (`schedule.base_lr`), as TOML text.
fn flatten(table: &toml::Table) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(inner) => {
                flat.extend(flatten(inner).into_iter().map(|(k, v)| (format!("{key}.{k}"), v)));
            }
            value => {
                flat.insert(key.clone(), value.to_string());
            }
        }
    }
    flat
}

/// Whether `flat` has another key in the table of the dotted `key`.
fn has_table_of(flat: &BTreeMap<String, String>, key: &str) -> bool {
    key.rsplit_once('.').is_some_and(|(table, _)| flat.keys().any(|k| k.starts_with(&format!("{table}."))))
}

/// The keys whose values are not the same in all of `rows` (missing counts as a value).
fn differing_keys(rows: &[BTreeMap<String, String>]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    keys.into_iter().filter(|k| rows.iter().any(|r| r.get(*k) != rows[0].get(*k))).cloned().collect()
}
