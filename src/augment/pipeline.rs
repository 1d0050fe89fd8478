//! Random transform pipelines and the BCL view recipes.
//!
//! A training sample gives three views: view 0 for the classifier, views 1 and 2 for the
//! contrastive loss (SPEC section 3).
use anyhow::{Result, bail};
use rand::Rng as _;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::Rng;
use super::autoaugment;
use super::ops;
use super::randaugment::RandAugment;
use crate::data::{Dataset, DatasetKind, Image, Normalization, indices_by_class};

/// One random transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// torchvision's RandomResizedCrop: a box of `scale` × area and aspect ratio in `ratio`
    /// (log-uniform), resized to `size × size`.
    RandomResizedCrop {
        size: usize,
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    /// Zero-pad by `padding`, then a random `size × size` crop.
    RandomCrop {
        size: usize,
        padding: usize,
    },
    HorizontalFlip {
        p: f64,
    },
    /// torchvision's ColorJitter, applied with probability `p`: brightness, contrast and
    /// saturation factors from [1 − x, 1 + x], hue shift from [−h, h], in random order.
    ColorJitter {
        brightness: f64,
        contrast: f64,
        saturation: f64,
        hue: f64,
        p: f64,
    },
    RandomGrayscale {
        p: f64,
    },
    GaussianBlur {
        p: f64,
        sigma: (f64, f64),
    },
    RandAugment(RandAugment),
    AutoAugmentCifar10,
    /// A `size × size` square of the fill colour at a random centre (DeVries & Taylor).
    Cutout {
        size: usize,
    },
    /// Resize so that the shorter side is `size`.
    ResizeShorter {
        size: usize,
    },
    CenterCrop {
        size: usize,
    },
}

/// A sequence of steps, with the fill colour of geometric ops (the dataset mean).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub steps: Vec<Step>,
    pub fill: [u8; 3],
}

/// torchvision's RandomResizedCrop box (left, top, width, height) for a `width × height`
/// image: ten tries at a random area and aspect ratio, then a centre crop as fallback.
pub fn random_resized_crop_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (left, top, w, h);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, ((width as f64 / ratio.0).round() as usize).min(height))
    } else if in_ratio > ratio.1 {
        (((height as f64 * ratio.1).round() as usize).min(width), height)
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// A random box (see [`random_resized_crop_box`]) resized to `size × size`.
fn random_resized_crop(img: &Image, size: usize, scale: (f64, f64), ratio: (f64, f64), rng: &mut Rng) -> Image {
    let (left, top, w, h) = random_resized_crop_box(img.width, img.height, scale, ratio, rng);
    ops::resized_crop(img, (left as f64, top as f64, w as f64, h as f64), size, size)
}

fn color_jitter(img: Image, jitter: (f64, f64, f64, f64), rng: &mut Rng) -> Image {
    let (b, c, s, h) = jitter;
    let factor = |x: f64, rng: &mut Rng| {
        if x > 0.0 { rng.random_range((1.0 - x).max(0.0)..=1.0 + x) } else { 1.0 }
    };
    let mut order = [0, 1, 2, 3];
    order.shuffle(rng);
    let mut img = img;
    for which in order {
        img = match which {
            0 if b > 0.0 => ops::brightness(img, factor(b, rng)),
            1 if c > 0.0 => ops::contrast(img, factor(c, rng)),
            2 if s > 0.0 => ops::saturation(img, factor(s, rng)),
            3 if h > 0.0 => ops::hue(img, rng.random_range(-h..=h)),
            _ => img,
        };
    }
    img
}

impl Step {
    pub fn apply(&self, img: Image, fill: &[u8; 3], rng: &mut Rng) -> Image {
        match self {
            Step::RandomResizedCrop { size, scale, ratio } => random_resized_crop(&img, *size, *scale, *ratio, rng),
            Step::RandomCrop { size, padding } => {
                let padded = if *padding > 0 { ops::pad(&img, *padding, 0) } else { img };
                let left = rng.random_range(0..=padded.width.saturating_sub(*size));
                let top = rng.random_range(0..=padded.height.saturating_sub(*size));
                ops::crop(&padded, left, top, (*size).min(padded.width), (*size).min(padded.height))
            }
            Step::HorizontalFlip { p } => {
                if rng.random::<f64>() < *p {
                    ops::hflip(img)
                } else {
                    img
                }
            }
            Step::ColorJitter { brightness, contrast, saturation, hue, p } => {
                if rng.random::<f64>() < *p {
                    color_jitter(img, (*brightness, *contrast, *saturation, *hue), rng)
                } else {
                    img
                }
            }
            Step::RandomGrayscale { p } => {
                if rng.random::<f64>() < *p {
                    ops::grayscale(img)
                } else {
                    img
                }
            }
            Step::GaussianBlur { p, sigma } => {
                if rng.random::<f64>() < *p {
                    ops::gaussian_blur(&img, rng.random_range(sigma.0..=sigma.1))
                } else {
                    img
                }
            }
            Step::RandAugment(ra) => ra.apply(img, fill, rng),
            Step::AutoAugmentCifar10 => autoaugment::cifar10(img, rng),
            Step::Cutout { size } => {
                let (cx, cy) = (rng.random_range(0..img.width), rng.random_range(0..img.height));
                ops::cutout(img, cx, cy, *size, fill)
            }
            Step::ResizeShorter { size } => {
                let (w, h) = (img.width as f64, img.height as f64);
                let scale = *size as f64 / w.min(h);
                let (nw, nh) = ((w * scale).round() as usize, (h * scale).round() as usize);
                ops::resize(&img, nw.max(1), nh.max(1))
            }
            Step::CenterCrop { size } => {
                let (w, h) = ((*size).min(img.width), (*size).min(img.height));
                // torchvision rounds the offset: int(round((H − h) / 2)).
                let left = ((img.width - w) as f64 / 2.0).round() as usize;
                let top = ((img.height - h) as f64 / 2.0).round() as usize;
                ops::crop(&img, left, top, w, h)
            }
        }
    }
}

impl Pipeline {
    pub fn apply(&self, img: Image, rng: &mut Rng) -> Image {
        self.steps.iter().fold(img, |img, step| step.apply(img, &self.fill, rng))
    }

    /// [`Pipeline::apply`] to a borrowed image: a leading RandomResizedCrop reads it in
    /// place, so the (large, decoded) source is not copied for every view.
    pub fn apply_to(&self, img: &Image, rng: &mut Rng) -> Image {
        match self.steps.split_first() {
            Some((Step::RandomResizedCrop { size, scale, ratio }, rest)) => {
                let cropped = random_resized_crop(img, *size, *scale, *ratio, rng);
                rest.iter().fold(cropped, |img, step| step.apply(img, &self.fill, rng))
            }
            _ => self.apply(img.clone(), rng),
        }
    }
}

/// Which contrastive views the ImageNet recipe uses (`--cl-views`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClViews {
    /// [randcls, sim, sim]
    SimSim,
    /// [randcls, rand, sim]
    SimRand,
    /// [randcls, rand, rand]
    RandRand,
}

/// Which family of views a run trains with (`recipe_style`, `--recipe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RecipeStyle {
    /// By the dataset: ImageNet-style for ImageNet-LT, iNaturalist, folders and lists,
    /// CIFAR-style for the rest (`--dataset` with own data sets it from the images).
    #[default]
    Auto,
    /// Small same-size images: padded random crops of the whole image, resnet32.
    Cifar,
    /// Photos of any size: 224 crops (or `image_size`), RandAugment, ResNet-50-class encoders.
    Imagenet,
}

/// Images at most this many pixels on a side, all of one size, get the CIFAR-style recipe.
pub const SMALL_IMAGE_MAX_SIDE: usize = 64;

impl RecipeStyle {
    /// The style `auto` stands for with data of `kind`; other styles as they are.
    pub fn or_by_kind(self, kind: DatasetKind) -> Self {
        match (self, kind) {
            (
                Self::Auto,
                DatasetKind::ImagenetLt
                | DatasetKind::Inat2018
                | DatasetKind::PlacesLt
                | DatasetKind::Folder
                | DatasetKind::List,
            ) => Self::Imagenet,
            (Self::Auto, _) => Self::Cifar,
            (style, _) => style,
        }
    }

    /// The style for `dataset`, of `kind`: with a user's own data (folder, list) `auto`
    /// becomes what the images call for ([`Self::of_images`]); otherwise [`Self::or_by_kind`].
    pub fn for_data(self, kind: DatasetKind, dataset: &dyn Dataset) -> Result<Self> {
        if self == Self::Auto && matches!(kind, DatasetKind::Folder | DatasetKind::List) {
            Self::of_images(dataset)
        } else {
            Ok(self.or_by_kind(kind))
        }
    }

    /// The style the images of `dataset` call for: CIFAR-style when the first image of each
    /// class (32 classes at most, spread over them) is square, at most
    /// [`SMALL_IMAGE_MAX_SIDE`] and of one size; ImageNet-style otherwise.
    pub fn of_images(dataset: &dyn Dataset) -> Result<Self> {
        let sizes = sampled_sizes(dataset)?;
        let (width, height) = sizes[0];
        let small = width == height && width <= SMALL_IMAGE_MAX_SIDE && sizes.iter().all(|&s| s == (width, height));
        Ok(if small { Self::Cifar } else { Self::Imagenet })
    }
}

/// The (width, height) of the first image of each class of `dataset`, 32 classes at most,
/// spread over them: what [`RecipeStyle::of_images`] decides by.
pub fn sampled_sizes(dataset: &dyn Dataset) -> Result<Vec<(usize, usize)>> {
    anyhow::ensure!(!dataset.is_empty(), "the dataset is empty");
    let firsts: Vec<usize> =
        indices_by_class(dataset.labels(), dataset.num_classes()).iter().filter_map(|m| m.first().copied()).collect();
    let stride = firsts.len().div_ceil(32).max(1);
    firsts.iter().step_by(stride).map(|&i| dataset.image(i).map(|image| (image.width, image.height))).collect()
}

/// What a model takes as input, decided once from the preset, the data and the weights
/// (torchvision's `weights.transforms()`, timm's `resolve_data_config`): the views, the
/// side of the square images, their channels and normalisation. The recipe, the loader,
/// prediction and export all read it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// CIFAR-style or ImageNet-style (never `auto`).
    pub style: RecipeStyle,
    pub size: usize,
    pub channels: i64,
    pub normalization: Normalization,
}

/// The three training views and the evaluation transform, all giving `size × size` images.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub views: [Pipeline; 3],
    pub eval: Pipeline,
    pub size: usize,
}

fn flip() -> Step {
    Step::HorizontalFlip { p: 0.5 }
}

/// The side of ImageNet-style crops unless `image_size` says otherwise.
pub const IMAGENET_CROP_SIZE: usize = 224;

/// The smallest ImageNet-style crop: ResNet-50 downsamples 32 times.
pub const IMAGENET_MIN_CROP_SIZE: usize = 32;

/// Refuses ImageNet-style crops too small for the encoder.
pub fn check_crop_size(size: usize) -> Result<()> {
    anyhow::ensure!(
        size >= IMAGENET_MIN_CROP_SIZE,
        "image_size = {size}: ImageNet-style crops must be at least {IMAGENET_MIN_CROP_SIZE} px (ResNet-50 \
         downsamples 32×)"
    );
    Ok(())
}

/// The area range of ImageNet's RandomResizedCrop.
pub const IMAGENET_CROP_SCALE: (f64, f64) = (0.08, 1.0);

/// The area range of the contrastive views of small images (SupCon's CIFAR view): at
/// least a fifth of a 32 × 32 image, where ImageNet's 0.08 leaves crops of a few pixels.
pub const SMALL_IMAGE_CROP_SCALE: (f64, f64) = (0.2, 1.0);

/// RandomResizedCrop of area `scale`, flip, then ColorJitter(0.4, 0.4, 0.4, `hue`) with
/// probability `p`: the start of every ImageNet-style view and of SimCLR's.
fn crop_flip_jitter(size: usize, scale: (f64, f64), hue: f64, p: f64) -> Vec<Step> {
    vec![
        Step::RandomResizedCrop { size, scale, ratio: (3.0 / 4.0, 4.0 / 3.0) },
        flip(),
        Step::ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue, p },
    ]
}

/// SimCLR's contrastive view: RandomResizedCrop of area `scale`, flip, ColorJitter(0.4,
/// 0.4, 0.4, 0.1) with p 0.8, grayscale with p 0.2.
fn sim_steps(size: usize, scale: (f64, f64)) -> Vec<Step> {
    let mut steps = crop_flip_jitter(size, scale, 0.1, 0.8);
    steps.push(Step::RandomGrayscale { p: 0.2 });
    steps
}

/// The contrastive view of small images, as the BCL-derived CIFAR code has it: SimCLR's
/// view at [`SMALL_IMAGE_CROP_SCALE`], then a Gaussian blur with p 0.5, σ from [0.1, 2].
fn small_image_contrastive_steps(size: usize) -> Vec<Step> {
    let mut steps = sim_steps(size, SMALL_IMAGE_CROP_SCALE);
    steps.push(Step::GaussianBlur { p: 0.5, sigma: (0.1, 2.0) });
    steps
}

impl Recipe {
    /// CIFAR (and other small same-size images): view 0 = random crop with 4-pixel padding,
    /// flip, AutoAugment CIFAR-10 (then Cutout 16 when `cutout`); views 1, 2 = SimCLR's
    /// view at crop scale 0.2–1 with Gaussian blur (SPEC section 3).
    pub fn cifar(size: usize, cutout: bool, fill: [u8; 3]) -> Self {
        let mut view0 = vec![Step::RandomCrop { size, padding: 4 }, flip(), Step::AutoAugmentCifar10];
        if cutout {
            view0.push(Step::Cutout { size: 16 });
        }
        let pipeline = |steps| Pipeline { steps, fill };
        Self {
            views: [
                pipeline(view0),
                pipeline(small_image_contrastive_steps(size)),
                pipeline(small_image_contrastive_steps(size)),
            ],
            eval: pipeline(Vec::new()),
            size,
        }
    }

    /// ImageNet-LT / iNaturalist: view 0 = `randcls`, views 1, 2 as `cl_views`, all `size`
    /// crops (224 in the paper); evaluation = resize the shorter side to 8/7 of `size` (256
    /// for 224), centre crop `size`.
    pub fn imagenet(size: usize, cl_views: ClViews, randaugment: &str, fill: [u8; 3]) -> Result<Self> {
        check_crop_size(size)?;
        let ra = RandAugment::parse(randaugment)?;
        let mut randcls = crop_flip_jitter(size, IMAGENET_CROP_SCALE, 0.0, 1.0);
        randcls.push(Step::RandAugment(ra.clone()));
        let sim = sim_steps(size, IMAGENET_CROP_SCALE);
        let mut rand = sim_steps(size, IMAGENET_CROP_SCALE);
        rand.push(Step::RandAugment(ra));
        let (v1, v2) = match cl_views {
            ClViews::SimSim => (sim.clone(), sim),
            ClViews::SimRand => (rand, sim),
            ClViews::RandRand => (rand.clone(), rand),
        };
        let pipeline = |steps| Pipeline { steps, fill };
        Ok(Self {
            views: [pipeline(randcls), pipeline(v1), pipeline(v2)],
            eval: pipeline(vec![Step::ResizeShorter { size: size * 8 / 7 }, Step::CenterCrop { size }]),
            size,
        })
    }

    /// The recipe of `style` for `dataset` (see [`RecipeStyle::for_data`]): ImageNet-style
    /// crops of `image_size` (default [`IMAGENET_CROP_SIZE`]), CIFAR-style at the size of
    /// the first image (for CIFAR-style runs `image_size` only records that size).
    pub fn for_dataset(
        kind: DatasetKind,
        style: RecipeStyle,
        dataset: &dyn Dataset,
        image_size: Option<usize>,
        cl_views: ClViews,
        randaugment: &str,
        cutout: bool,
    ) -> Result<Self> {
        anyhow::ensure!(!dataset.is_empty(), "the dataset is empty");
        let style = style.for_data(kind, dataset)?;
        let size = match style {
            RecipeStyle::Imagenet => image_size.unwrap_or(IMAGENET_CROP_SIZE),
            _ => dataset.image(0)?.width,
        };
        Self::for_style(kind, style, size, cl_views, randaugment, cutout)
    }

    /// The recipe of `style` (`auto`: by `kind`) making `size × size` images: ImageNet-style
    /// crops, or CIFAR-style for images of that size; the fill is `kind`'s mean.
    pub fn for_style(
        kind: DatasetKind,
        style: RecipeStyle,
        size: usize,
        cl_views: ClViews,
        randaugment: &str,
        cutout: bool,
    ) -> Result<Self> {
        let input = InputSpec { style: style.or_by_kind(kind), size, channels: 3, normalization: kind.normalization() };
        Self::for_input(&input, cl_views, randaugment, cutout)
    }

    /// The recipe making `input`'s images, filling with its mean colour.
    pub fn for_input(input: &InputSpec, cl_views: ClViews, randaugment: &str, cutout: bool) -> Result<Self> {
        let fill = input.normalization.fill();
        match input.style {
            RecipeStyle::Imagenet => Self::imagenet(input.size, cl_views, randaugment, fill),
            RecipeStyle::Cifar | RecipeStyle::Auto => Ok(Self::cifar(input.size, cutout, fill)),
        }
    }

    /// The first `count` of the three training views of one image, drawn in order from
    /// `rng` (so view 0 is the same whether one view is made or three).
    pub fn train_views(&self, img: &Image, rng: &mut Rng, count: usize) -> Vec<Image> {
        self.views.iter().take(count).map(|view| view.apply_to(img, rng)).collect()
    }

    /// Checks that a transformed image has the recipe's size.
    pub fn check_size(&self, img: &Image, what: &str) -> Result<()> {
        if img.width != self.size || img.height != self.size {
            bail!(
                "{what}: the recipe makes {}×{} images but gave {}×{} (input images of another size?)",
                self.size,
                self.size,
                img.width,
                img.height
            );
        }
        Ok(())
    }
}
