//! Balanced Contrastive Learning (Zhu et al., CVPR 2022) for long-tailed image recognition,
//! on libtorch through `tch`. The `bcl` binary (`src/main.rs`, `src/cli/`) is a thin
//! command line over this library; a program calls the same functions.
//!
//! Train a preset, then score the finished run on its test split:
//!
//! ```no_run
//! use bcl::{Preset, RunDir, TrainConfig, TrainOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let (fashion_mnist, _) = bcl::data::fashion_mnist_dir();
//! let mut config = TrainConfig::preset(Preset::FashionMnistLt, fashion_mnist);
//! config.epochs = 2;
//! let run = RunDir::create("runs/from-rust".as_ref(), &config)?;
//! let options = TrainOptions::new(tch::Device::cuda_if_available());
//! let outcome = bcl::train(&config, &run, &options, |progress| println!("{progress:?}"))?;
//! if let Some(end) = bcl::train::score_end(&config, &run, &outcome, options.device)? {
//!     println!("test top-1 {:.1}%, few-shot {:?}", 100.0 * end.last.top1, end.last.few);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! - [`model`]: the encoders (ResNets, ViTs) behind one seam, and the two-branch BCL model.
//! - [`loss`]: the losses, their `[loss]` config, and the [`Objective`] that composes them.
//! - [`config`]: a run's configuration and the benchmark presets.
//! - [`data`]: dataset readers, long-tailed subsets, samplers.
//! - [`augment`]: augmentation operations and the view recipes.
//! - [`loader`]: parallel, deterministic batches of augmented views.
//! - [`train`]: the training loop, and starting, resuming and scoring a run;
//!   [`evaluation`] and [`metrics`].
//! - [`run`]: run folders; [`checkpoint`]: safetensors checkpoints; [`init`]: pretrained
//!   weights in; [`predict`]: inference; [`export`]: weights out.
//! - [`distributed`]: data-parallel training over libtorch's c10d ([`c10d`]).
//! - [`doctor`]: what this build of `bcl` can use on this machine.
pub use config::{Preset, TrainConfig};
pub use data::{DataConfig, DatasetKind};
pub use evaluation::EvalData;
pub use loss::{LossConfig, LossKind, Objective};
pub use model::{Arch, BclModel, ModelConfig};
pub use predict::{LoadedModel, load_model};
pub use run::RunDir;
pub use train::{Outcome, TrainOptions, train};

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
pub mod model_card;
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
