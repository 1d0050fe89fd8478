//! `bcl eval`: a checkpoint's accuracy on its evaluation split, with the report files.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use bcl::checkpoint::{self, first_few};
use bcl::config::{Preset, TrainConfig};
use bcl::data::{DataConfig, DatasetKind};
use bcl::evaluation::EvalData;
use bcl::loss::log_prior;
use bcl::metrics::{self, Evaluation};
use bcl::predict::load_model;
use bcl::report;
use bcl::run::RunDir;
use clap::Args;
use tch::{Kind, Tensor};

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint (RUN/best, RUN/last, a run folder) or plain safetensors weights.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Evaluate on this data instead of the model's (with --root): it must have the
    /// model's classes, in the same order.
    #[arg(long, value_enum, requires = "root")]
    dataset: Option<DatasetKind>,
    /// Dataset folder (default: the one the model was trained on).
    #[arg(long)]
    root: Option<PathBuf>,
    /// `--dataset list`: the training list (its class counts group classes into many,
    /// medium and few).
    #[arg(long, requires = "dataset")]
    train_list: Option<PathBuf>,
    /// `--dataset list`: the list to evaluate on.
    #[arg(long, requires = "dataset")]
    test_list: Option<PathBuf>,
    /// The preset describing plain weights that carry no bcl config (such as the reference's).
    #[arg(long, value_parser = super::PresetParser)]
    preset: Option<Preset>,
    /// Also evaluate with post-hoc logit adjustment: logits − τ · log(training class prior)
    /// (Menon et al. 2021), printed beside the plain result.
    #[arg(long, value_name = "TAU")]
    logit_adjust: Option<f64>,
    /// Also evaluate with τ-normalised classifier weights, w_k / ‖w_k‖^p (Kang et al. 2020),
    /// printed beside the plain result (a linear classifier; a cosine one is normalised
    /// already).
    #[arg(long, value_name = "P")]
    tau_norm: Option<f64>,
    /// Where to write eval.json, per_class.csv, confusion.csv and the plots (default: the
    /// checkpoint's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    device: tch::Device,
}

pub fn exec(args: &EvalArgs) -> Result<()> {
    let device = args.device;
    let path = checkpoint::resolve(&args.checkpoint);
    let fallback = match args.preset {
        Some(preset) => {
            let root = args.root.clone().context("--preset needs --root (the data to evaluate on)")?;
            Some(TrainConfig::preset(preset, root))
        }
        None => None,
    };
    let mut loaded = load_model(&path, fallback.as_ref(), device)?;
    if let Some(root) = &args.root {
        loaded.config.data.root = root.clone();
    }
    if let Some(kind) = args.dataset {
        // A CIFAR-style model takes small images at their own size: the other data's.
        (loaded.config.data, loaded.config.image_size) = other_data(&loaded.config, kind, args)?;
    }
    let config = &loaded.config;
    let data = EvalData::open(config, config.data.eval_split(), device)?;
    check_class_names(&loaded.class_names, data.class_names(), &config.data.root)?;
    let (split, counts) = (data.split, &data.counts);
    println!(
        "evaluating {} on the {split:?} split of {} ({} images)",
        path.display(),
        config.data.root.display(),
        data.data.len()
    );
    let scored = data.score(&loaded.model, None)?;
    let eval = metrics::evaluate(&scored, counts);
    super::print_evaluation(split, data.class_names(), counts, &eval);
    let mut post_hoc = Vec::new();
    if let Some(tau) = args.logit_adjust {
        let bias = log_prior(&Tensor::from_slice(counts), Kind::Float).view([1, -1]) * -tau;
        let adjusted = data.score(&loaded.model, Some(&bias))?;
        post_hoc.push((format!("logit-adjusted, τ = {tau}"), metrics::evaluate(&adjusted, counts)));
    }
    if let Some(p) = args.tau_norm {
        if loaded.model.classifier().tau_normalize(p) {
            post_hoc.push((format!("τ-normalised, p = {p}"), data.evaluate(&loaded.model)?));
        } else {
            println!("--tau-norm: the cosine classifier normalises its weights already; τ-norm changes nothing");
        }
    }
    if !post_hoc.is_empty() {
        print_side_by_side(&eval, &post_hoc);
    }
    let checkpoint_folder = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let folder = args.out.clone().unwrap_or_else(|| checkpoint_folder.clone());
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    // The training curves come from the run the checkpoint belongs to, if any.
    let history = RunDir { path: checkpoint_folder }.read_metrics()?;
    super::print_written(&report::write(
        &folder,
        report::Scope { checkpoint: &path, split },
        data.class_names(),
        counts,
        &eval,
        &scored,
        &history,
    )?);
    Ok(())
}

/// Refuses data whose classes have other names than the model's: scoring them by position
/// would be silently wrong. Numbered classes (lists, plain weights' `class k`) match any.
fn check_class_names(model: &[String], data: &[String], root: &Path) -> Result<()> {
    let numbered =
        |names: &[String]| names.iter().enumerate().all(|(i, n)| *n == i.to_string() || *n == format!("class {i}"));
    ensure!(
        model == data || numbered(model) || numbered(data),
        "{} has the classes {}; the model was trained on {}: scored by position, they would be wrong",
        root.display(),
        first_few(data),
        first_few(model)
    );
    Ok(())
}

/// The data of `--dataset`, checked to have the classes of the model `config` describes.
fn other_data(config: &TrainConfig, kind: DatasetKind, args: &EvalArgs) -> Result<(DataConfig, Option<usize>)> {
    let root = args.root.clone().unwrap_or_default();
    let data = DataConfig {
        train_list: args.train_list.clone(),
        test_list: args.test_list.clone(),
        ..DataConfig::new(kind, root.clone())
    };
    let (other, _) = config.on_data(data)?;
    ensure!(
        other.model.num_classes == config.model.num_classes && other.model.in_channels == config.model.in_channels,
        "{} has {} classes of {}-channel images; the model was trained on {} classes of {}-channel images",
        root.display(),
        other.model.num_classes,
        other.model.in_channels,
        config.model.num_classes,
        config.model.in_channels
    );
    Ok((other.data, other.image_size))
}

/// The plain evaluation and the post-hoc corrected ones, a row each.
fn print_side_by_side(plain: &Evaluation, post_hoc: &[(String, Evaluation)]) {
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "post-hoc", "top-1", "top-5", "many", "medium", "few", "ECE"
    );
    let rows = std::iter::once(("plain".to_string(), plain)).chain(post_hoc.iter().map(|(name, e)| (name.clone(), e)));
    for (name, e) in rows {
        println!(
            "{name:<28} {:>7.2} {:>7} {:>7} {:>7} {:>7} {:>7}",
            100.0 * e.top1,
            super::percent(e.top5),
            super::percent(e.many),
            super::percent(e.medium),
            super::percent(e.few),
            super::percent(e.ece)
        );
    }
}
