//! RandAugment with timm's conventions (`rand-nN-mM-mstdS`): N ops drawn uniformly with
//! replacement from 15, each applied with probability 0.5 at a magnitude drawn from
//! N(M, S) and clipped to [0, 10].
use anyhow::{Context, Result, bail, ensure};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::Rng as AugRng;
use super::ops::{self, Interpolation};
use crate::data::Image;

/// The 15 operations of timm's `rand` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    SolarizeAdd,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

pub const OPS: [Op; 15] = [
    Op::AutoContrast,
    Op::Equalize,
    Op::Invert,
    Op::Rotate,
    Op::Posterize,
    Op::Solarize,
    Op::SolarizeAdd,
    Op::Color,
    Op::Contrast,
    Op::Brightness,
    Op::Sharpness,
    Op::ShearX,
    Op::ShearY,
    Op::TranslateXRel,
    Op::TranslateYRel,
];

const MAX_LEVEL: f64 = 10.0;

/// Applies `op` at magnitude `m` (0..10). `negate` flips the sign of signed ops;
/// geometric ops fill with `fill` and resample with `interpolation`.
pub fn apply_op(img: Image, op: Op, m: f64, negate: bool, interpolation: Interpolation, fill: &[u8]) -> Image {
    let level = m / MAX_LEVEL;
    let sign = if negate { -1.0 } else { 1.0 };
    let enhance = 0.1 + 1.8 * level;
    match op {
        Op::AutoContrast => ops::autocontrast(img),
        Op::Equalize => ops::equalize(img),
        Op::Invert => ops::invert(img),
        Op::Rotate => ops::rotate(&img, sign * 30.0 * level, interpolation, fill),
        Op::Posterize => ops::posterize(img, (4.0 * level) as u32),
        Op::Solarize => ops::solarize(img, 256.0 * level),
        Op::SolarizeAdd => ops::solarize_add(img, 110.0 * level),
        Op::Color => ops::saturation(img, enhance),
        Op::Contrast => ops::contrast(img, enhance),
        Op::Brightness => ops::brightness(img, enhance),
        Op::Sharpness => ops::sharpness(img, enhance),
        Op::ShearX => ops::shear_x(&img, sign * 0.3 * level, interpolation, fill),
        Op::ShearY => ops::shear_y(&img, sign * 0.3 * level, interpolation, fill),
        Op::TranslateXRel => ops::translate(&img, sign * 0.45 * level * img.width as f64, 0.0, interpolation, fill),
        Op::TranslateYRel => ops::translate(&img, 0.0, sign * 0.45 * level * img.height as f64, interpolation, fill),
    }
}

/// A parsed RandAugment configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    pub num_ops: usize,
    pub magnitude: f64,
    pub magnitude_std: f64,
    /// Probability that each chosen op runs.
    pub prob: f64,
}

impl RandAugment {
    /// Parses timm's config strings, e.g. `rand-n2-m10-mstd0.5` (`n` ops, magnitude `m`,
    /// magnitude standard deviation `mstd`, per-op probability `p`; defaults n2, m10,
    /// mstd0, p0.5).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut parts = spec.split('-');
        ensure!(parts.next() == Some("rand"), "RandAugment config {spec:?} must start with `rand`");
        let mut config = Self { num_ops: 2, magnitude: 10.0, magnitude_std: 0.0, prob: 0.5 };
        for part in parts {
            let number = |prefix: &str| -> Result<f64> {
                let value = &part[prefix.len()..];
                value.parse().with_context(|| format!("RandAugment config {spec:?}: {part:?} needs a number"))
            };
            if part.starts_with("mstd") {
                config.magnitude_std = number("mstd")?;
            } else if part.starts_with('m') {
                config.magnitude = number("m")?;
            } else if part.starts_with('n') {
                let n = number("n")?;
                ensure!(n >= 0.0 && n.fract() == 0.0, "RandAugment config {spec:?}: n must be a whole number");
                config.num_ops = n as usize;
            } else if part.starts_with('p') {
                config.prob = number("p")?;
                ensure!((0.0..=1.0).contains(&config.prob), "RandAugment config {spec:?}: p must be in [0, 1]");
            } else {
                bail!("RandAugment config {spec:?}: unknown part {part:?} (expected nN, mM, mstdS or pP)");
            }
        }
        ensure!(config.magnitude_std >= 0.0, "RandAugment config {spec:?}: mstd must not be negative");
        Ok(config)
    }

    /// The ops chosen for one image and, for those that run, their magnitude.
    pub fn draw(&self, rng: &mut AugRng) -> Vec<(Op, Option<f64>)> {
        (0..self.num_ops)
            .map(|_| {
                let op = OPS[rng.random_range(0..OPS.len())];
                let runs = rng.random::<f64>() < self.prob;
                let magnitude = runs.then(|| {
                    let m = if self.magnitude_std > 0.0 {
                        Normal::new(self.magnitude, self.magnitude_std).expect("finite std").sample(rng)
                    } else {
                        self.magnitude
                    };
                    m.clamp(0.0, MAX_LEVEL)
                });
                (op, magnitude)
            })
            .collect()
    }

    pub fn apply(&self, img: Image, fill: &[u8], rng: &mut AugRng) -> Image {
        let mut img = img;
        for (op, magnitude) in self.draw(rng) {
            if let Some(m) = magnitude {
                let negate = rng.random::<bool>();
                let interpolation = if rng.random::<bool>() { Interpolation::Bilinear } else { Interpolation::Bicubic };
                img = apply_op(img, op, m, negate, interpolation, fill);
            }
        }
        img
    }
}
