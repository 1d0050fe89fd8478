//! Balanced Contrastive Learning (Zhu et al., CVPR 2022) for long-tailed image recognition,
//! on libtorch through `tch`. The `bcl` binary (`src/main.rs`, `src/cli/`) is a thin
//! command line over this library.
//!
//! - [`model`]: ResNet encoders and the two-branch BCL model (SPEC section 1).
//! - [`loss`]: the balanced contrastive loss and (logit-adjusted) cross-entropy (section 2).
//! - [`config`]: a run's configuration and the benchmark presets (section 3).
//! - [`data`]: dataset readers, long-tailed subsets, samplers (section 4).
//! - [`augment`]: augmentation operations and the BCL view recipes.
//! - [`loader`]: parallel, deterministic batches of augmented views.
//! - [`train`]: the training loop; [`evaluation`] and [`metrics`] (section 5).
//! - [`run`]: run folders; [`checkpoint`]: safetensors checkpoints; [`init`]: pretrained
//!   weights in; [`predict`]: inference.
//! - [`distributed`]: data-parallel training over libtorch's c10d ([`c10d`]).
//! - [`doctor`]: what this build of `bcl` can use on this machine.
pub mod amp;
pub mod augment;
pub mod c10d;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distributed;
pub mod doctor;
pub mod evaluation;
pub mod export;
pub mod fs;
pub mod geometry;
pub mod init;
pub mod loader;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod overfit;
pub mod plot;
pub mod predict;
pub mod report;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod tensorboard;
pub mod train;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N` into a device; `auto` picks CUDA when usable.
pub fn parse_device(spec: &str) -> anyhow::Result<tch::Device> {
    let cuda = |i: usize| {
        anyhow::ensure!(tch::Cuda::is_available(), "device {spec}: CUDA is not usable here (see `bcl doctor`)");
        let count = tch::Cuda::device_count() as usize;
        anyhow::ensure!(i < count, "device {spec}: only {count} CUDA device(s)");
        Ok(tch::Device::Cuda(i))
    };
    match spec {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => cuda(0),
        _ => match spec.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => cuda(i),
            None => anyhow::bail!("unknown device {spec:?}: expected auto, cpu, cuda or cuda:N"),
        },
    }
}
