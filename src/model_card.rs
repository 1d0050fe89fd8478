//! The model card every export writes beside the model: `config.json` (timm's hub layout:
//! architecture, classes in order, input size and normalisation, plus the training data's
//! class counts and the many/medium/few thresholds) and `README.md` (data, long-tail
//! profile, metrics and the split they were measured on, training config, the `--init`
//! weights and their licence, how to load the files in PyTorch), so that the folder can be
//! uploaded to the Hugging Face hub as it is.
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use serde_json::json;

use crate::augment::RecipeStyle;
use crate::metrics::{Evaluation, ShotGroup};
use crate::predict::LoadedModel;
use crate::run::RunDir;

/// The first line of a bcl model card: a README.md that starts otherwise is someone else's,
/// and is not overwritten.
const FRONT_MATTER: &str = "---\nlibrary_name: bcl\n";

/// Refuses a `folder` whose `README.md` or `config.json` is not bcl's: it is someone else's.
pub fn check_folder(folder: &Path) -> Result<()> {
    let ours = |name: &str, mark: &str| match std::fs::read_to_string(folder.join(name)) {
        Ok(text) => text.contains(mark),
        Err(_) => true,
    };
    for (name, mark) in [("README.md", FRONT_MATTER), ("config.json", "\"bcl\": {")] {
        ensure!(
            ours(name, mark),
            "{} exists and is not bcl's: export into a folder of its own (--out DIR/model.safetensors)",
            folder.join(name).display()
        );
    }
    Ok(())
}

/// What the run folder of an exported checkpoint says about the model: the training data's
/// class counts and the evaluation that goes with the checkpoint.
struct RunFacts {
    counts: Option<Vec<i64>>,
    /// The evaluation, the split it was measured on, and which model it is.
    eval: Option<(Evaluation, String, String)>,
}

/// Writes `config.json` and `README.md` for `loaded` (read from `checkpoint`) into
/// `folder`, where the model file `files` (names in `folder`) were written. Returns the
/// paths written.
pub fn write(loaded: &LoadedModel, checkpoint: &Path, folder: &Path, files: &[&str]) -> Result<Vec<PathBuf>> {
    check_folder(folder)?;
    let readme = folder.join("README.md");
    let facts = run_facts(checkpoint);
    let config = folder.join("config.json");
    crate::fs::write_atomic(&config, &serde_json::to_vec_pretty(&config_json(loaded, &facts))?)?;
    crate::fs::write_atomic(&readme, readme_text(loaded, &facts, files).as_bytes())?;
    Ok(vec![config, readme])
}

/// The class counts and evaluation of the run folder holding `checkpoint`, as far as it has
/// them: the `eval.json` that scored this checkpoint, else the record of the epoch it holds.
fn run_facts(checkpoint: &Path) -> RunFacts {
    let run = RunDir { path: checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf() };
    let which = format!("the model of {}", checkpoint.file_name().unwrap_or_default().to_string_lossy());
    let eval = read_eval_json(&run.path.join("eval.json"), checkpoint)
        .map(|(eval, split)| (eval, split, which))
        .or_else(|| epoch_record(&run, checkpoint));
    RunFacts { counts: run.read_class_counts().ok(), eval }
}

/// The `metrics.jsonl` record (on the selection split) of the epoch whose model
/// `checkpoint` holds: its best epoch for `best`, the last finished one for `last`.
fn epoch_record(run: &RunDir, checkpoint: &Path) -> Option<(Evaluation, String, String)> {
    let (state, config) = (crate::train::saved_state_of(checkpoint).ok()?, run.config().ok()?);
    let is_best = checkpoint.file_stem().is_some_and(|s| s == "best");
    let epoch = match is_best {
        true => state.best_epoch?,
        false if state.step == 0 => state.epoch.checked_sub(1)?,
        // Stopped inside an epoch: no evaluation is of these weights.
        false => return None,
    };
    let record = run.read_metrics().ok()?.into_iter().find(|r| r.epoch == epoch)?;
    let selection = config.data.selection_split();
    // Picked on the split it is scored on (no validation split): optimistic.
    let caveat = match is_best && config.data.eval_split() == selection {
        true => ", picked on this split, so the figures are optimistic",
        false => "",
    };
    Some((record.eval, selection.folder_name().to_string(), format!("epoch {}{caveat}", epoch + 1)))
}

/// The evaluation of a run's `eval.json` and the split it names, when it scored the
/// checkpoint file `checkpoint` (`bcl eval RUN/best` writes one there too).
fn read_eval_json(path: &Path, checkpoint: &Path) -> Option<(Evaluation, String)> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let scored = value.get("checkpoint")?.as_str()?;
    if Some(std::ffi::OsStr::new(scored)) != checkpoint.file_name() {
        return None;
    }
    let split = value.get("split")?.as_str()?.to_string();
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_f64);
    let per_class = value.get("per_class")?.as_array()?.iter().filter_map(|c| c.get("accuracy")?.as_f64()).collect();
    let eval = Evaluation {
        top1: number("top1")?,
        top5: number("top5"),
        many: number("many"),
        medium: number("medium"),
        few: number("few"),
        ece: number("ece"),
        nll: number("nll"),
        per_class,
    };
    Some((eval, split))
}

/// timm's `config.json`: `architecture`, `num_classes`, `num_features`, `label_names`,
/// `pretrained_cfg` (input size, mean, std, interpolation, crop_pct), and bcl's own keys.
fn config_json(loaded: &LoadedModel, facts: &RunFacts) -> serde_json::Value {
    let config = &loaded.config;
    let input = config.input();
    let crop_pct = match input.style {
        RecipeStyle::Imagenet => 0.875,
        RecipeStyle::Cifar | RecipeStyle::Auto => 1.0,
    };
    let groups: serde_json::Map<String, serde_json::Value> =
        ShotGroup::ALL.iter().map(|g| (g.name().to_string(), json!(g.describe()))).collect();
    json!({
        "architecture": config.model.arch.name(),
        "num_classes": config.model.num_classes,
        "num_features": config.model.arch.spec().feature_dim,
        "label_names": loaded.class_names,
        "pretrained_cfg": {
            "input_size": [input.channels, input.size, input.size],
            "mean": input.normalization.mean,
            "std": input.normalization.std,
            "interpolation": "bilinear",
            "crop_pct": crop_pct,
            "num_classes": config.model.num_classes,
        },
        "bcl": {
            "class_counts": facts.counts,
            "shot_groups": groups,
            "classifier": config.model.classifier,
            "loss": config.loss.kind().name(),
        },
    })
}

fn readme_text(loaded: &LoadedModel, facts: &RunFacts, files: &[&str]) -> String {
    let config = &loaded.config;
    let arch = config.model.arch.name();
    let licence = config.init.as_ref().and(config.model.arch.spec().weights_licence);
    let mut card = format!(
        "{FRONT_MATTER}license: other\ntags:\n- image-classification\n- long-tailed\n- bcl\n- {arch}\n\
         pipeline_tag: image-classification\n---\n\n<!-- license: set the one your data and the initial weights allow before \
         publishing -->\n\n# {arch} for long-tailed {} ({} classes)\n\n\
         Trained by bcl (Balanced Contrastive Learning, Zhu et al., CVPR 2022, in Rust) with the `{}` loss. Files: {}.\n\n",
        config.data.dataset.name(),
        config.model.num_classes,
        config.loss.kind().name(),
        files.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
    );
    card += &data_section(loaded, facts);
    card += &metrics_section(facts);
    card += &format!(
        "## Training\n\n{} epochs of batch {}, SGD lr {} (momentum {}, weight decay {}), encoder tuning `{}` \
         (`--tune`), seed {}. The whole config (`bcl train --config` takes it):\n\n```toml\n{}```\n\n",
        config.epochs,
        config.batch_size,
        config.schedule.base_lr,
        config.momentum,
        config.weight_decay,
        config.finetune.tune.name(),
        config.seed,
        config.to_toml().unwrap_or_default()
    );
    card += &init_section(config, licence);
    card += &usage_section(loaded, files);
    card
}

fn data_section(loaded: &LoadedModel, facts: &RunFacts) -> String {
    let mut text = format!("## Data\n\n`{}` data", loaded.config.data.dataset.name());
    if let Some(rho) = loaded.config.data.imb_factor {
        text += &format!(", long-tailed subset of imbalance factor ρ = {rho}");
    }
    text += ".\n";
    if let Some(counts) = facts.counts.as_ref().filter(|c| !c.is_empty()) {
        let (most, fewest) = (counts.iter().max().copied().unwrap_or(0), counts.iter().min().copied().unwrap_or(0));
        let in_group = |g: ShotGroup| counts.iter().filter(|&&n| g.train_images().contains(&n)).count();
        text += &format!(
            "{} training images; the largest class has {most}, the smallest {fewest} (ratio {:.1}). Classes by \
             training images: {} many-shot (>100), {} medium-shot (20–100), {} few-shot (<20).\n",
            counts.iter().sum::<i64>(),
            most as f64 / fewest.max(1) as f64,
            in_group(ShotGroup::Many),
            in_group(ShotGroup::Medium),
            in_group(ShotGroup::Few)
        );
    }
    text + "\n"
}

fn metrics_section(facts: &RunFacts) -> String {
    let Some((eval, split, which)) = &facts.eval else {
        return "## Metrics\n\nNot evaluated: the run folder holds no evaluation for this checkpoint.\n\n".into();
    };
    let percent = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}", 100.0 * v));
    format!(
        "## Metrics\n\nOn the `{split}` split, {which} (many/medium/few: classes with >100, 20–100, <20 training \
         images):\n\n| top-1 | top-5 | many | medium | few | ECE |\n|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} |\n\n",
        percent(Some(eval.top1)),
        percent(eval.top5),
        percent(eval.many),
        percent(eval.medium),
        percent(eval.few),
        percent(eval.ece)
    )
}

fn init_section(config: &crate::config::TrainConfig, licence: Option<&str>) -> String {
    match &config.init {
        Some(init) => format!(
            "## Initial weights\n\nStarted from `{}` (sha256 `{}`), {} weights. If they are the published ones, \
             their licence: {}.\n\n",
            init.path.display(),
            init.sha256,
            config.model.arch.name(),
            licence.unwrap_or("see where they came from")
        ),
        None => "## Initial weights\n\nTrained from scratch (random initialisation).\n\n".into(),
    }
}

fn usage_section(loaded: &LoadedModel, files: &[&str]) -> String {
    let input = loaded.config.input();
    let mut text = format!(
        "## Use in PyTorch\n\nInput: N × {} × {side} × {side} float32, (pixel / 255 − mean) / std with mean {:?} and \
         std {:?}; output: N × {} logits in the order of `label_names` in `config.json`.\n\n",
        input.channels,
        input.normalization.mean,
        input.normalization.std,
        loaded.config.model.num_classes,
        side = input.size
    );
    for file in files {
        text += &match Path::new(file).extension().and_then(|e| e.to_str()) {
            Some("pt") => {
                format!("```python\nimport torch\nmodel = torch.jit.load(\"{file}\")\nlogits = model(x)\n```\n\n")
            }
            Some("onnx") => format!(
                "```python\nimport onnxruntime\nsession = onnxruntime.InferenceSession(\"{file}\")\nlogits = \
                 session.run(None, {{\"input\": x}})[0]\n```\n\n"
            ),
            _ => format!(
                "```python\nfrom safetensors.torch import load_file\nstate_dict = load_file(\"{file}\")\n# bcl's \
                 scripts/load_in_pytorch.py builds the model and loads it with strict=True\n```\n\n"
            ),
        };
    }
    text
}
