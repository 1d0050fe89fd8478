//! AutoAugment's CIFAR-10 policy (Cubuk et al., 2019): one of 25 learned sub-policies per
//! image, each two (operation, probability, magnitude bin 0–9) steps, with the magnitude
//! ranges of the CIFAR long-tailed code bases (gray fill 128).
use rand::Rng;

use super::Rng as AugRng;
use super::ops::{self, Interpolation};
use crate::data::Image;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Invert,
    Contrast,
    Rotate,
    TranslateX,
    TranslateY,
    Sharpness,
    ShearY,
    AutoContrast,
    Equalize,
    Posterize,
    Color,
    Brightness,
    Solarize,
}

use Op::*;

/// (op, probability, magnitude bin) × 2, as in the paper's appendix.
pub const CIFAR10_POLICY: [[(Op, f64, usize); 2]; 25] = [
    [(Invert, 0.1, 7), (Contrast, 0.2, 6)],
    [(Rotate, 0.7, 2), (TranslateX, 0.3, 9)],
    [(Sharpness, 0.8, 1), (Sharpness, 0.9, 3)],
    [(ShearY, 0.5, 8), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.5, 8), (Equalize, 0.9, 2)],
    [(ShearY, 0.2, 7), (Posterize, 0.3, 7)],
    [(Color, 0.4, 3), (Brightness, 0.6, 7)],
    [(Sharpness, 0.3, 9), (Brightness, 0.7, 9)],
    [(Equalize, 0.6, 5), (Equalize, 0.5, 1)],
    [(Contrast, 0.6, 7), (Sharpness, 0.6, 5)],
    [(Color, 0.7, 7), (TranslateX, 0.5, 8)],
    [(Equalize, 0.3, 7), (AutoContrast, 0.4, 8)],
    [(TranslateY, 0.4, 3), (Sharpness, 0.2, 6)],
    [(Brightness, 0.9, 6), (Color, 0.2, 8)],
    [(Solarize, 0.5, 2), (Invert, 0.0, 3)],
    [(Equalize, 0.2, 0), (AutoContrast, 0.6, 0)],
    [(Equalize, 0.2, 8), (Equalize, 0.6, 4)],
    [(Color, 0.9, 9), (Equalize, 0.6, 6)],
    [(AutoContrast, 0.8, 4), (Solarize, 0.2, 8)],
    [(Brightness, 0.1, 3), (Color, 0.7, 0)],
    [(Solarize, 0.4, 5), (AutoContrast, 0.9, 3)],
    [(TranslateY, 0.9, 9), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.9, 2), (Solarize, 0.8, 3)],
    [(Equalize, 0.8, 8), (Invert, 0.1, 3)],
    [(TranslateY, 0.7, 9), (AutoContrast, 0.9, 1)],
];

const FILL: [u8; 3] = [128, 128, 128];

/// Value of bin `bin` (0..=9) on `lo..=hi` in 10 even steps.
fn linspace(lo: f64, hi: f64, bin: usize) -> f64 {
    lo + (hi - lo) * bin as f64 / 9.0
}

/// Applies `op` at magnitude bin `bin`; `negate` flips signed ops.
pub fn apply_op(img: Image, op: Op, bin: usize, negate: bool) -> Image {
    let sign = if negate { -1.0 } else { 1.0 };
    let enhance = 1.0 + sign * linspace(0.0, 0.9, bin);
    match op {
        Invert => ops::invert(img),
        AutoContrast => ops::autocontrast(img),
        Equalize => ops::equalize(img),
        Contrast => ops::contrast(img, enhance),
        Color => ops::saturation(img, enhance),
        Brightness => ops::brightness(img, enhance),
        Sharpness => ops::sharpness(img, enhance),
        Rotate => ops::rotate(&img, sign * linspace(0.0, 30.0, bin), Interpolation::Nearest, &FILL),
        TranslateX => {
            let dx = sign * linspace(0.0, 150.0 / 331.0, bin) * img.width as f64;
            ops::translate(&img, dx, 0.0, Interpolation::Nearest, &FILL)
        }
        TranslateY => {
            let dy = sign * linspace(0.0, 150.0 / 331.0, bin) * img.height as f64;
            ops::translate(&img, 0.0, dy, Interpolation::Nearest, &FILL)
        }
        ShearY => ops::shear_y(&img, sign * linspace(0.0, 0.3, bin), Interpolation::Bicubic, &FILL),
        Posterize => ops::posterize(img, linspace(8.0, 4.0, bin).round() as u32),
        Solarize => ops::solarize(img, linspace(256.0, 0.0, bin)),
    }
}

/// Picks one sub-policy uniformly and applies each of its steps with its probability.
pub fn cifar10(img: Image, rng: &mut AugRng) -> Image {
    let policy = &CIFAR10_POLICY[rng.random_range(0..CIFAR10_POLICY.len())];
    let mut img = img;
    for &(op, prob, bin) in policy {
        if rng.random::<f64>() < prob {
            img = apply_op(img, op, bin, rng.random::<bool>());
        }
    }
    img
}
