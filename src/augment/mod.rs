//! Data augmentation in Rust on 8-bit images (SPEC section 3): the operations
//! ([`ops`]), RandAugment ([`randaugment`]), AutoAugment's CIFAR-10 policy
//! ([`autoaugment`]) and the BCL view recipes ([`pipeline`]).
mod affine_avx2;
pub mod autoaugment;
pub mod ops;
pub mod pipeline;
pub mod randaugment;

pub use pipeline::{
    ClViews, IMAGENET_CROP_SIZE, InputSpec, Pipeline, Recipe, RecipeStyle, Step, check_crop_size, sampled_sizes,
};

/// The random generator of augmentation: small, fast and reproducible from a seed.
pub type Rng = rand_pcg::Pcg64Mcg;
