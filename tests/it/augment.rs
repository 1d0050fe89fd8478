//! Each augmentation op against what it must do (and not be the identity), the random
//! transforms' distributions, RandAugment / AutoAugment, and the view recipes.
use bcl::augment::autoaugment::{self, CIFAR10_POLICY};
use bcl::augment::ops::{self, Interpolation};
use bcl::augment::pipeline::random_resized_crop_box;
use bcl::augment::randaugment::{OPS, Op, RandAugment};
use bcl::augment::{ClViews, Pipeline, Recipe, Rng, Step};
use bcl::data::{DatasetKind, Image};
use rand::SeedableRng;

/// A 3-channel image whose every pixel differs: (x·16, y·16, x + y).
fn gradient(w: usize, h: usize) -> Image {
    let pixels =
        (0..h).flat_map(|y| (0..w).flat_map(move |x| [(x * 16) as u8, (y * 16) as u8, (x + y) as u8])).collect();
    Image::new(w, h, 3, pixels)
}

fn rgb(r: u8, g: u8, b: u8) -> Image {
    Image::new(1, 1, 3, vec![r, g, b])
}

fn gray(values: &[u8]) -> Image {
    Image::new(values.len(), 1, 1, values.to_vec())
}

fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

#[test]
fn flip_twice_is_the_identity_and_once_mirrors() {
    let img = gradient(5, 3);
    let flipped = ops::hflip(img.clone());
    assert_ne!(flipped, img);
    assert_eq!(flipped.pixel(0, 1), img.pixel(4, 1));
    assert_eq!(ops::hflip(flipped), img);
}

#[test]
fn crop_and_pad() {
    let img = gradient(6, 5);
    let c = ops::crop(&img, 2, 1, 3, 2);
    assert_eq!((c.width, c.height), (3, 2));
    assert_eq!(c.pixel(0, 0), img.pixel(2, 1));
    assert_eq!(c.pixel(2, 1), img.pixel(4, 2));
    let p = ops::pad(&img, 2, 0);
    assert_eq!((p.width, p.height), (10, 9));
    assert_eq!(p.pixel(0, 0), &[0, 0, 0]);
    assert_eq!(p.pixel(2, 2), img.pixel(0, 0));
}

#[test]
fn resize_keeps_flat_colour_and_scales_gradients() {
    let flat = Image::filled(40, 30, 3, 77);
    let small = ops::resize(&flat, 10, 7);
    assert_eq!((small.width, small.height), (10, 7));
    assert!(small.pixels.iter().all(|&p| p == 77));
    let g = ops::resize(&gradient(16, 16), 8, 8);
    assert!(g.pixel(7, 0)[0] > g.pixel(0, 0)[0] + 100, "the horizontal ramp survives");
    let region = ops::resized_crop(&gradient(16, 16), (8.0, 0.0, 8.0, 16.0), 4, 4);
    assert!(region.pixel(0, 0)[0] >= 120, "a crop of the right half starts bright");
}

#[test]
fn hue_rotates_pure_colours() {
    assert_eq!(ops::hue(rgb(255, 0, 0), 1.0 / 3.0).pixels, vec![0, 255, 0]);
    assert_eq!(ops::hue(rgb(255, 0, 0), -1.0 / 3.0).pixels, vec![0, 0, 255]);
    assert_eq!(ops::hue(rgb(255, 0, 0), 0.5).pixels, vec![0, 255, 255]);
    assert_eq!(ops::hue(rgb(90, 90, 90), 0.3).pixels, vec![90, 90, 90], "gray has no hue");
    assert_eq!(ops::hue(gray(&[10, 200]), 0.3), gray(&[10, 200]));
}

#[test]
fn saturation_brightness_contrast_grayscale() {
    let red = rgb(200, 40, 40);
    let g = ops::grayscale(red.clone()).pixels;
    assert!(g[0] == g[1] && g[1] == g[2]);
    assert_eq!(g[0], ((200 * 19595 + 40 * 38470 + 40 * 7471 + 0x8000) >> 16) as u8);
    assert_eq!(ops::saturation(red.clone(), 0.0).pixels, g);
    assert_eq!(ops::saturation(red.clone(), 1.0), red);
    assert!(ops::saturation(red.clone(), 1.5).pixels[0] > 200 || ops::saturation(red.clone(), 1.5).pixels[1] < 40);
    assert_eq!(ops::brightness(red.clone(), 0.0).pixels, vec![0, 0, 0]);
    assert_eq!(ops::brightness(red.clone(), 0.5).pixels, vec![100, 20, 20]);
    let img = gray(&[0, 100, 200]);
    assert_eq!(ops::contrast(img.clone(), 0.0).pixels, vec![100, 100, 100]);
    assert_eq!(ops::contrast(img.clone(), 2.0).pixels, vec![0, 100, 255]);
    assert_eq!(ops::saturation(img.clone(), 0.0), img, "saturation leaves gray images alone");
}

#[test]
fn solarize_posterize_invert() {
    let img = gray(&[0, 100, 127, 128, 200, 255]);
    assert_eq!(ops::solarize(img.clone(), 128.0).pixels, vec![0, 100, 127, 127, 55, 0]);
    assert_eq!(ops::solarize(img.clone(), 256.0), img);
    assert_eq!(ops::solarize_add(img.clone(), 30.0).pixels, vec![30, 130, 157, 128, 200, 255]);
    assert_eq!(ops::posterize(gray(&[0b1011_1111]), 4).pixels, vec![0b1011_0000]);
    assert_eq!(ops::posterize(gray(&[0b1011_1111]), 1).pixels, vec![0b1000_0000]);
    assert_eq!(ops::posterize(gray(&[0b1011_1111]), 0).pixels, vec![0]);
    assert_eq!(ops::posterize(img.clone(), 8), img);
    assert_eq!(ops::invert(img.clone()).pixels, vec![255, 155, 128, 127, 55, 0]);
}

#[test]
fn equalize_and_autocontrast_on_known_histograms() {
    // Half 0, half 100: equalising spreads the two levels to the ends.
    let mut values = vec![0u8; 510];
    values.extend(vec![100u8; 510]);
    let eq = ops::equalize(gray(&values));
    assert_eq!((eq.pixels[0], eq.pixels[1019]), (0, 255));
    // Four equal levels spread evenly over the range (PIL: lut = ⌊running count / step⌋).
    let quarters: Vec<u8> = [10u8, 20, 30, 40].iter().flat_map(|&v| vec![v; 255]).collect();
    let eq = ops::equalize(gray(&quarters));
    let levels: Vec<u8> = [0, 255, 510, 765].iter().map(|&i| eq.pixels[i]).collect();
    assert_eq!(levels, vec![0, 85, 170, 255]);
    // A single level stays as it is.
    assert_eq!(ops::equalize(gray(&[9; 300])), gray(&[9; 300]));

    let ac = ops::autocontrast(gray(&[50, 100, 150]));
    assert_eq!(ac.pixels, vec![0, 127, 255]);
    assert_eq!(ops::autocontrast(gray(&[7, 7])), gray(&[7, 7]));
}

#[test]
fn sharpness_blur_and_cutout() {
    let checker = Image::new(4, 4, 1, (0..16).map(|i| if (i + i / 4) % 2 == 0 { 0 } else { 240 }).collect());
    assert_eq!(ops::sharpness(checker.clone(), 1.0), checker);
    let smooth = ops::sharpness(checker.clone(), 0.0);
    assert_ne!(smooth.pixel(1, 1), checker.pixel(1, 1), "the interior is smoothed");
    assert_eq!(smooth.pixel(0, 0), checker.pixel(0, 0), "the border is kept");

    let flat = Image::filled(9, 9, 3, 60);
    assert_eq!(ops::gaussian_blur(&flat, 1.5), flat);
    let mut impulse = Image::filled(9, 9, 1, 0);
    impulse.pixels[4 * 9 + 4] = 255;
    let blurred = ops::gaussian_blur(&impulse, 1.0);
    assert!(blurred.pixel(4, 4)[0] < 255 && blurred.pixel(3, 4)[0] > 0);
    let total: u32 = blurred.pixels.iter().map(|&p| p as u32).sum();
    assert!((total as i64 - 255).abs() < 15, "blur keeps the mass: {total}");

    let cut = ops::cutout(Image::filled(32, 32, 3, 200), 16, 16, 16, &[0, 0, 0]);
    assert_eq!(cut.pixels.chunks(3).filter(|p| p == &[0, 0, 0]).count(), 256);
    let corner = ops::cutout(Image::filled(32, 32, 3, 200), 0, 0, 16, &[0, 0, 0]);
    assert_eq!(corner.pixels.chunks(3).filter(|p| p == &[0, 0, 0]).count(), 64, "clipped at the border");
}

#[test]
fn geometric_ops_move_pixels_where_pil_would() {
    let mut dot = Image::filled(4, 4, 1, 0);
    dot.pixels[0] = 255; // top-left
    let fill = [9u8, 9, 9];
    let r = ops::rotate(&dot, 90.0, Interpolation::Nearest, &fill);
    assert_eq!(r.pixel(0, 3)[0], 255, "counter-clockwise: top-left goes to bottom-left");
    let mut back = r.clone();
    for _ in 0..3 {
        back = ops::rotate(&back, 90.0, Interpolation::Nearest, &fill);
    }
    assert_eq!(back, dot, "four quarter turns");

    let img = gradient(8, 8);
    let t = ops::translate(&img, 2.0, 0.0, Interpolation::Nearest, &fill);
    assert_eq!(t.pixel(0, 3), img.pixel(2, 3), "content moves left by 2");
    assert_eq!(t.pixel(7, 3), &fill, "uncovered pixels take the fill");
    let s = ops::shear_x(&img, 0.5, Interpolation::Nearest, &fill);
    assert_eq!(s.pixel(0, 0), img.pixel(0, 0));
    assert_eq!(s.pixel(0, 4), img.pixel(2, 4), "row y shifts by factor · y");
    let sy = ops::shear_y(&img, 0.5, Interpolation::Bicubic, &fill);
    assert_ne!(sy, img);
    let bilinear = ops::rotate(&img, 10.0, Interpolation::Bilinear, &fill);
    assert_ne!(bilinear, ops::rotate(&img, 10.0, Interpolation::Nearest, &fill));
}

#[test]
fn random_resized_crop_boxes_stay_inside_with_the_requested_scale_and_ratio() {
    let mut rng = rng(0);
    let (w, h) = (500, 375);
    let (mut min_scale, mut max_scale, mut sum) = (1.0f64, 0.0f64, 0.0);
    let draws = 4000;
    for _ in 0..draws {
        let (left, top, bw, bh) = random_resized_crop_box(w, h, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert!(left + bw <= w && top + bh <= h && bw > 0 && bh > 0);
        let scale = (bw * bh) as f64 / (w * h) as f64;
        let ratio = bw as f64 / bh as f64;
        assert!((0.075..=1.0).contains(&scale), "scale {scale}");
        assert!(ratio > 0.74 && ratio < 1.35, "ratio {ratio}");
        min_scale = min_scale.min(scale);
        max_scale = max_scale.max(scale);
        sum += scale;
    }
    assert!(min_scale < 0.1 && max_scale > 0.85, "scales span the range: {min_scale}..{max_scale}");
    let mean = sum / draws as f64;
    assert!((0.40..0.56).contains(&mean), "mean scale {mean}");
}

#[test]
fn randaugment_parses_timm_strings() {
    let ra = RandAugment::parse("rand-n2-m10-mstd0.5").unwrap();
    assert_eq!((ra.num_ops, ra.magnitude, ra.magnitude_std, ra.prob), (2, 10.0, 0.5, 0.5));
    let ra = RandAugment::parse("rand-m9-n3-p0.8").unwrap();
    assert_eq!((ra.num_ops, ra.magnitude, ra.prob), (3, 9.0, 0.8));
    for bad in ["rand-rand", "auto-n2", "rand-nx", "rand-n1.5", "rand-p2", "rand-mstd-1"] {
        let err = RandAugment::parse(bad).unwrap_err().to_string();
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn randaugment_picks_n_ops_runs_half_of_them_and_clips_magnitudes() {
    let ra = RandAugment::parse("rand-n2-m10-mstd0.5").unwrap();
    let mut rng = rng(1);
    let (mut chosen, mut ran, mut magnitudes) = (0usize, 0usize, Vec::new());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5000 {
        let draw = ra.draw(&mut rng);
        assert_eq!(draw.len(), 2, "exactly N ops");
        for (op, m) in draw {
            chosen += 1;
            seen.insert(format!("{op:?}"));
            if let Some(m) = m {
                ran += 1;
                assert!((0.0..=10.0).contains(&m));
                magnitudes.push(m);
            }
        }
    }
    assert_eq!(seen.len(), OPS.len(), "all 15 ops get picked");
    let fraction = ran as f64 / chosen as f64;
    assert!((fraction - 0.5).abs() < 0.02, "each op runs with p 0.5: {fraction}");
    let mean = magnitudes.iter().sum::<f64>() / magnitudes.len() as f64;
    assert!((9.7..9.9).contains(&mean), "N(10, 0.5) clipped to 10 has mean ≈ 9.8: {mean}");
    assert!(magnitudes.iter().any(|&m| m < 9.5));

    let img = gradient(16, 16);
    let changed = (0..50).filter(|&s| ra.apply(img.clone(), &[0, 0, 0], &mut self::rng(s)) != img).count();
    assert!(changed > 30, "RandAugment changes most images ({changed}/50)");
}

#[test]
fn every_randaugment_op_changes_a_test_image() {
    // Textured, so that smoothing (Sharpness) has something to change.
    // Textured (Sharpness needs it) and large enough for PIL's equalize to act (step ≥ 1).
    let pixels = (0..32usize)
        .flat_map(|y| (0..32usize).flat_map(move |x| [(x * 4) as u8, (y * 8) as u8, ((x * y * 37) % 256) as u8]));
    let img = Image::new(32, 32, 3, pixels.collect());
    for op in OPS {
        // Solarize's threshold is 256·m/10: at m = 10 it inverts nothing (as in timm).
        let m = if op == Op::Solarize { 5.0 } else { 10.0 };
        let out = bcl::augment::randaugment::apply_op(img.clone(), op, m, false, Interpolation::Bilinear, &[0, 0, 0]);
        assert!(out != img, "{op:?} at magnitude {m} must change the image");
        assert_eq!((out.width, out.height, out.channels), (32, 32, 3));
    }
}

#[test]
fn autoaugment_cifar10_policy() {
    assert_eq!(CIFAR10_POLICY.len(), 25);
    let img = gradient(32, 32);
    let outputs: Vec<Image> = (0..200).map(|s| autoaugment::cifar10(img.clone(), &mut rng(s))).collect();
    let changed = outputs.iter().filter(|o| **o != img).count();
    assert!(changed > 100 && changed < 200, "some sub-policies skip their ops: {changed}/200 changed");
    assert_eq!(autoaugment::cifar10(img.clone(), &mut rng(3)), outputs[3], "seeded");
    for policy in CIFAR10_POLICY {
        for (op, _, bin) in policy {
            let out = autoaugment::apply_op(img.clone(), op, bin, true);
            assert_eq!((out.width, out.height), (32, 32), "{op:?}");
        }
    }
}

#[test]
fn cifar_recipe_makes_three_different_views_of_the_right_size() {
    let recipe = Recipe::cifar(32, true, [125, 123, 114]);
    let img = gradient(32, 32);
    let views = recipe.train_views(&img, &mut rng(5), 3);
    for v in &views {
        assert_eq!((v.width, v.height, v.channels), (32, 32, 3));
    }
    assert_ne!(views[0], views[1]);
    assert_ne!(views[1], views[2]);
    assert_eq!(recipe.eval.apply(img.clone(), &mut rng(0)), img, "CIFAR evaluation leaves images as they are");

    let fashion = Recipe::cifar(28, false, [73, 73, 73]);
    let gray_img = Image::new(28, 28, 1, (0..784).map(|i| (i % 256) as u8).collect());
    for v in fashion.train_views(&gray_img, &mut rng(2), 3) {
        assert_eq!((v.width, v.height, v.channels), (28, 28, 1));
    }
}

#[test]
fn imagenet_recipes_make_224_crops() {
    let photo = gradient(500, 375);
    for views in [ClViews::SimSim, ClViews::SimRand, ClViews::RandRand] {
        let recipe = Recipe::imagenet(224, views, "rand-n2-m10-mstd0.5", [124, 116, 104]).unwrap();
        for v in recipe.train_views(&photo, &mut rng(9), 3) {
            assert_eq!((v.width, v.height, v.channels), (224, 224, 3));
        }
        let eval = recipe.eval.apply(photo.clone(), &mut rng(0));
        assert_eq!((eval.width, eval.height), (224, 224));
    }
    let err = Recipe::imagenet(224, ClViews::SimSim, "rand-rand", [0, 0, 0]).unwrap_err().to_string();
    assert!(err.contains("rand-rand"), "{err}");
}

/// `image_size` sets the ImageNet-style crop: every view and the evaluation (resize the
/// shorter side to 8/7 of it, as 256 is of 224) come out at that size.
#[test]
fn imagenet_recipes_crop_at_their_image_size() {
    let photo = gradient(500, 375);
    let recipe = Recipe::imagenet(112, ClViews::SimRand, "rand-n2-m10-mstd0.5", [124, 116, 104]).unwrap();
    for v in recipe.train_views(&photo, &mut rng(4), 3) {
        assert_eq!((v.width, v.height), (112, 112));
    }
    assert_eq!(recipe.eval.steps, vec![Step::ResizeShorter { size: 128 }, Step::CenterCrop { size: 112 }]);
    let eval = recipe.eval.apply(photo, &mut rng(0));
    assert_eq!((eval.width, eval.height, recipe.size), (112, 112, 112));
    let err = Recipe::imagenet(16, ClViews::SimSim, "rand-n2-m10-mstd0.5", [0; 3]).unwrap_err().to_string();
    assert!(err.contains("image_size = 16") && err.contains("at least 32"), "{err}");
}

/// A `size × size` checkerboard of 0 and 255 in 1-pixel cells, on 3 channels.
fn checkerboard(size: usize) -> Image {
    let pixels =
        (0..size * size).flat_map(|i| [if (i / size + i % size).is_multiple_of(2) { 0 } else { 255 }; 3]).collect();
    Image::new(size, size, 3, pixels)
}

/// SPEC section 3: the contrastive views of CIFAR-style data crop 0.2–1 of the area (not
/// ImageNet's 0.08–1, which leaves a few pixels of a 32 × 32 image) and blur with p 0.5.
#[test]
fn small_image_contrastive_views_keep_a_fifth_of_the_image_and_blur_half_the_time() {
    for (size, recipe) in [(32, Recipe::cifar(32, false, [125, 123, 114])), (28, Recipe::cifar(28, false, [73; 3]))] {
        for view in &recipe.views[1..] {
            let Step::RandomResizedCrop { scale, ratio, .. } = view.steps[0] else { panic!("{view:?}") };
            let mut r = rng(3);
            let areas: Vec<f64> = (0..20_000)
                .map(|_| {
                    let (_, _, w, h) = random_resized_crop_box(size, size, scale, ratio, &mut r);
                    (w * h) as f64 / (size * size) as f64
                })
                .collect();
            let smallest = areas.iter().copied().fold(1.0, f64::min);
            let mean = areas.iter().sum::<f64>() / areas.len() as f64;
            assert!(smallest > 0.17, "crops down to {smallest:.3} of the area (scale {scale:?})");
            assert!((0.5..0.7).contains(&mean), "mean crop area {mean:.3}");
            assert!(view.steps.contains(&Step::GaussianBlur { p: 0.5, sigma: (0.1, 2.0) }), "{view:?}");
        }
    }
}

#[test]
fn gaussian_blur_draws_its_sigma_from_the_range_and_applies_with_its_probability() {
    let board = checkerboard(32);
    // Max − min over the centre, which edge replication does not reach for σ ≤ 2.
    let contrast = |img: &Image| {
        let values: Vec<f64> =
            (8..24).flat_map(|y| (8..24).map(move |x| (x, y))).map(|(x, y)| img.pixel(x, y)[0] as f64).collect();
        values.iter().copied().fold(0.0, f64::max) - values.iter().copied().fold(255.0, f64::min)
    };
    // σ = 0.1 leaves 1-pixel cells alone; σ = 2 all but erases them.
    assert_eq!(ops::gaussian_blur(&board, 0.1), board);
    assert!(contrast(&ops::gaussian_blur(&board, 2.0)) < 20.0);
    let always = Pipeline { steps: vec![Step::GaussianBlur { p: 1.0, sigma: (0.1, 2.0) }], fill: [0; 3] };
    let mut r = rng(11);
    let contrasts: Vec<f64> = (0..400).map(|_| contrast(&always.apply(board.clone(), &mut r))).collect();
    let untouched = contrasts.iter().filter(|&&c| c == 255.0).count();
    let flattened = contrasts.iter().filter(|&&c| c < 20.0).count();
    // σ below ~0.2 changes no 8-bit value (about 5% of [0.1, 2]); above ~1 the cells fade.
    assert!((5..60).contains(&untouched), "{untouched} of 400 unblurred");
    assert!(flattened > 100, "{flattened} of 400 strongly blurred");
    let half = Pipeline { steps: vec![Step::GaussianBlur { p: 0.5, sigma: (1.0, 2.0) }], fill: [0; 3] };
    let blurred = (0..1000).filter(|_| half.apply(board.clone(), &mut r) != board).count();
    assert!((440..560).contains(&blurred), "{blurred} of 1000 blurred at p 0.5");
}

#[test]
fn normalisation_constants_are_the_recipes() {
    let cifar = (vec![0.4914, 0.4822, 0.4465], vec![0.2023, 0.1994, 0.2010]);
    for (kind, (mean, std)) in [
        (DatasetKind::Cifar10, cifar.clone()),
        (DatasetKind::Cifar100, cifar),
        (DatasetKind::FashionMnist, (vec![0.2860], vec![0.3530])),
        (DatasetKind::Mnist, (vec![0.1307], vec![0.3081])),
        (DatasetKind::ImagenetLt, (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])),
        (DatasetKind::Inat2018, (vec![0.466, 0.471, 0.380], vec![0.195, 0.194, 0.192])),
    ] {
        let n = kind.normalization();
        assert_eq!((n.mean, n.std), (mean, std), "{kind:?}");
    }
}
