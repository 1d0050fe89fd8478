//! Training progress on the terminal: a bar with ETA, images/s and running losses while
//! an epoch runs, and one line per finished epoch.
use std::time::Instant;

use bcl::data::Split;
use bcl::train::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Progress of training: a bar with ETA, images/s and running losses on a terminal, and
/// one line per epoch everywhere.
pub struct ProgressView {
    /// The split evaluated after each epoch: `test` or `val`.
    split: &'static str,
    bar: Option<ProgressBar>,
    header_shown: bool,
    /// (steps taken, time) when the warm-up steps were done and at the latest report.
    timing: Option<(usize, Instant)>,
    latest: Option<(usize, Instant)>,
    /// Steps taken before the current epoch, and the step it started at (resumed epochs
    /// start later than 0).
    epoch_base: (usize, usize),
}

impl ProgressView {
    const WARMUP_STEPS: usize = 10;

    pub fn new(split: Split) -> Self {
        Self {
            split: split.folder_name(),
            bar: None,
            header_shown: false,
            timing: None,
            latest: None,
            epoch_base: (0, 0),
        }
    }

    /// Training samples per second after the warm-up steps, as `--max-steps` reports it.
    pub fn throughput(&self, batch_size: usize) -> Option<String> {
        let ((first, t0), (last, t1)) = (self.timing?, self.latest?);
        (last > first).then(|| {
            let rate = ((last - first) * batch_size) as f64 / (t1 - t0).as_secs_f64();
            // Three significant figures: ImageNet-sized models on a CPU train a few samples/s.
            let decimals = (2 - rate.log10().floor() as i32).max(0) as usize;
            format!(
                "throughput: {rate:.decimals$} samples/s over steps {}–{last} (after {first} warm-up steps)",
                first + 1
            )
        })
    }

    pub fn show(&mut self, progress: Progress) {
        match progress {
            Progress::Note(line) => println!("{line}"),
            Progress::EpochStart { epoch, step, steps } => {
                self.epoch_base = (self.latest.map_or(0, |(taken, _)| taken), step);
                let bar = ProgressBar::new(steps as u64).with_position(step as u64);
                bar.set_style(
                    ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix((epoch + 1).to_string());
                self.bar = Some(bar);
            }
            Progress::Steps { step, ce, contrastive, samples_per_second, .. } => {
                let total = self.epoch_base.0 + step - self.epoch_base.1;
                if self.timing.is_none() && total >= Self::WARMUP_STEPS {
                    self.timing = Some((total, Instant::now()));
                }
                self.latest = Some((total, Instant::now()));
                if let Some(bar) = &self.bar {
                    bar.set_position(step as u64);
                    bar.set_message(format!("CE {ce:.3} CL {contrastive:.3} {samples_per_second:.0} img/s"));
                }
            }
            Progress::Evaluating { .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message("evaluating");
                }
            }
            Progress::Epoch(r) => {
                self.finish();
                if !self.header_shown {
                    println!(
                        "epoch      lr  train-CE  contrast  train-acc {:>10}   many  medium   few   samples/s   time",
                        format!("{}-top1", self.split)
                    );
                    self.header_shown = true;
                }
                println!(
                    "{:>5} {:>7.4} {:>9.4} {:>9.4} {:>9.1}% {:>9.1}% {:>6} {:>7} {:>5} {:>11.0} {:>5.0}s",
                    r.epoch + 1,
                    r.lr,
                    r.train_ce,
                    r.train_contrastive,
                    100.0 * r.train_accuracy,
                    100.0 * r.eval.top1,
                    super::percent(r.eval.many),
                    super::percent(r.eval.medium),
                    super::percent(r.eval.few),
                    r.samples_per_second,
                    r.seconds
                );
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
