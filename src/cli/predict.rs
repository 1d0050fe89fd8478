//! `bcl predict`: the most probable classes of image files and folders, in batches on the
//! device, to the terminal or a CSV / JSON Lines file.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bcl::checkpoint;
use bcl::config::{Amp, Preset, TrainConfig};
use bcl::data::files;
use bcl::predict::{InputTransform, LoadedModel, inputs, load_model, top_k};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct PredictArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder) or exported weights.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The preset describing plain weights that carry no bcl config.
    #[arg(long, value_parser = super::PresetParser)]
    preset: Option<Preset>,
    /// How many classes to report per image.
    #[arg(long, default_value_t = 5, value_parser = super::positive, allow_negative_numbers = true)]
    top_k: usize,
    /// Images per batch on the device.
    #[arg(long, default_value_t = 64, value_parser = super::positive, allow_negative_numbers = true)]
    batch_size: usize,
    /// Write the predictions to this file instead of the terminal: .csv (path, then class
    /// and probability for each of the top k) or .jsonl (one JSON object per image).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip images that cannot be read (each is still named) and exit 0; by default any
    /// such image makes the exit code 1.
    #[arg(long)]
    skip_bad: bool,
    /// Threads decoding images (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    device: tch::Device,
    /// Mixed precision: auto (bf16 on GPUs and on CPUs with AMX, about 2.5× the images/s of
    /// float32 there), bf16, fp16 (GPUs) or off (float32).
    #[arg(long, value_enum, default_value = "auto")]
    amp: Amp,
    /// Image files, or folders searched for images (recursively).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn exec(args: &PredictArgs) -> Result<()> {
    let path = checkpoint::resolve(&args.checkpoint);
    let fallback = args.preset.map(|p| TrainConfig::preset(p, PathBuf::new()));
    let device = args.device;
    let loaded = load_model(&path, fallback.as_ref(), device)?;
    let images = image_paths(&args.images)?;
    let transform = InputTransform::new(&loaded.config)?;
    let threads = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (amp, why) = bcl::amp::resolve(args.amp, device);
    if let Some(why) = why {
        eprintln!("--amp {:?}: {why}; float32", args.amp);
    }
    let autocast = bcl::amp::autocast_kind(amp);
    let k = args.top_k.min(loaded.class_names.len());
    let mut sink = Sink::open(args.out.as_deref(), k)?;
    let bar = progress_bar(images.len(), args.out.is_some());
    let (mut failed, start) = (0usize, std::time::Instant::now());
    for batch in images.chunks(args.batch_size) {
        let (mut good, mut tensors) = (Vec::new(), Vec::new());
        for (image, input) in batch.iter().zip(inputs(batch, &transform, threads)) {
            match input {
                Ok(tensor) => {
                    good.push(image);
                    tensors.push(tensor);
                }
                Err(e) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("cannot predict: {e:#}"));
                }
            }
        }
        for (image, classes) in good.into_iter().zip(top_k(&loaded.model, &tensors, args.top_k, device, autocast)?) {
            sink.write(image, &classes, &loaded)?;
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    sink.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    let done = images.len() - failed;
    if let Some(out) = &args.out {
        println!("wrote {} ({done} images, {:.1} images/s)", out.display(), done as f64 / seconds);
    }
    if failed > 0 {
        let message = format!("{failed} of {} images could not be read (named above)", images.len());
        if !args.skip_bad {
            bail!("{message}; --skip-bad to leave them out and exit 0");
        }
        eprintln!("{message}");
    }
    Ok(())
}

/// The images named: files as they are, folders searched recursively for image files.
fn image_paths(named: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for path in named {
        if path.is_dir() {
            let found = files::images_under(path)?;
            if found.is_empty() {
                bail!("{}: no images (.{}) in this folder", path.display(), files::IMAGE_EXTENSIONS.join(", ."));
            }
            images.extend(found);
        } else {
            images.push(path.clone());
        }
    }
    Ok(images)
}

/// A bar on the terminal when predictions go to a file and there are many images.
fn progress_bar(images: usize, to_file: bool) -> ProgressBar {
    if !to_file || images < 256 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(images as u64).with_style(style)
}

/// Where predictions go: the terminal, a CSV or a JSON Lines file.
enum Sink {
    Terminal,
    Csv(std::io::BufWriter<std::fs::File>, PathBuf),
    Jsonl(std::io::BufWriter<std::fs::File>, PathBuf),
}

impl Sink {
    /// A sink for `k` classes per image (a CSV's header names them).
    fn open(out: Option<&Path>, k: usize) -> Result<Self> {
        let Some(path) = out else { return Ok(Sink::Terminal) };
        let create = || -> Result<std::io::BufWriter<std::fs::File>> {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Ok(std::io::BufWriter::new(file))
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                let mut writer = create()?;
                let header: String = (1..=k).map(|i| format!(",class_{i},probability_{i}")).collect();
                writeln!(writer, "path{header}").with_context(|| format!("cannot write {}", path.display()))?;
                Ok(Sink::Csv(writer, path.to_path_buf()))
            }
            Some("jsonl") => Ok(Sink::Jsonl(create()?, path.to_path_buf())),
            _ => bail!("--out {}: name a .csv or a .jsonl file", path.display()),
        }
    }

    fn write(&mut self, image: &Path, classes: &[(i64, f64)], loaded: &LoadedModel) -> Result<()> {
        let name = |class: i64| loaded.class_names[class as usize].as_str();
        match self {
            Sink::Terminal => {
                println!("{}", image.display());
                for &(class, p) in classes {
                    println!("  {:>6.2}%  {}", 100.0 * p, name(class));
                }
                Ok(())
            }
            Sink::Csv(writer, path) => {
                let mut line = bcl::fs::csv_field(&image.display().to_string());
                for &(class, p) in classes {
                    line += &format!(",{},{p:.6}", bcl::fs::csv_field(name(class)));
                }
                writeln!(writer, "{line}").with_context(|| format!("cannot write {}", path.display()))
            }
            Sink::Jsonl(writer, path) => {
                let top: Vec<_> = classes
                    .iter()
                    .map(|&(class, p)| serde_json::json!({"class": name(class), "index": class, "probability": p}))
                    .collect();
                let row = serde_json::json!({"path": image.display().to_string(), "top_k": top});
                writeln!(writer, "{row}").with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Terminal => Ok(()),
            Sink::Csv(mut w, path) | Sink::Jsonl(mut w, path) => {
                w.flush().with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }
}
