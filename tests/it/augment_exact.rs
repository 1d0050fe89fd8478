//! The speed work on the augmentation ops must not change a byte: every op meant to be
//! exact is run on seeded random images (3 and 1 channels, widths that are not multiples
//! of a vector) and its output checksummed; the checksums were recorded from the per-pixel
//! implementations before they were vectorised (commit f7c5fca).
use bcl::augment::ops::{self, Interpolation};
use bcl::augment::{ClViews, Recipe, Rng};
use bcl::data::{Dataset, DatasetKind, Image, InMemoryDataset, Normalization};
use bcl::loader::{LoaderConfig, train_epoch};
use rand::{Rng as _, SeedableRng};
use std::sync::Arc;

/// Random pixels, with runs of gray pixels and of pure colours (the hue op's special cases).
fn random_image(width: usize, height: usize, channels: usize, seed: u64) -> Image {
    let mut rng = Rng::seed_from_u64(seed);
    let mut pixels: Vec<u8> = (0..width * height * channels).map(|_| rng.random()).collect();
    if channels == 3 {
        for px in pixels.chunks_exact_mut(3).step_by(7) {
            let v = px[0];
            px.copy_from_slice(&[v, v, v]);
        }
        for px in pixels.chunks_exact_mut(3).skip(3).step_by(11) {
            px.copy_from_slice(&[255, 0, px[2] / 2]);
        }
    }
    Image::new(width, height, channels, pixels)
}

/// The test images: 224 × 224 RGB (the ImageNet view), 37 × 23 RGB and 37 × 23 gray.
fn images() -> Vec<Image> {
    vec![random_image(224, 224, 3, 1), random_image(37, 23, 3, 2), random_image(37, 23, 1, 3)]
}

/// CRC-32C of every image's pixels after `op`, in order.
fn checksums(op: impl Fn(Image) -> Image) -> Vec<u32> {
    images().into_iter().map(|img| crc32c::crc32c(&op(img).pixels)).collect()
}

#[test]
fn every_exact_op_gives_the_bytes_it_gave_before_vectorisation() {
    let fill = [124u8, 116, 104];
    let cases: Vec<(&str, Vec<u32>, [u32; 3])> = vec![
        ("hflip", checksums(ops::hflip), [3600280364, 3699420985, 456699315]),
        ("grayscale", checksums(ops::grayscale), [4108189686, 2321595770, 1117130603]),
        ("saturation 0.37", checksums(|i| ops::saturation(i, 0.37)), [3333010776, 917621612, 1117130603]),
        ("saturation 1.4", checksums(|i| ops::saturation(i, 1.4)), [907347119, 1707941852, 1117130603]),
        ("contrast 0.6", checksums(|i| ops::contrast(i, 0.6)), [4193559172, 1192827842, 1805801948]),
        ("contrast 1.4", checksums(|i| ops::contrast(i, 1.4)), [1346853990, 1202209479, 1194401675]),
        ("brightness 1.3", checksums(|i| ops::brightness(i, 1.3)), [1153555152, 1367761993, 3792126133]),
        ("hue 0.07", checksums(|i| ops::hue(i, 0.07)), [1461978666, 3940278841, 1117130603]),
        ("hue -0.1", checksums(|i| ops::hue(i, -0.1)), [2119170436, 4125609518, 1117130603]),
        (
            "rotate bilinear",
            checksums(|i| ops::rotate(&i, 17.0, Interpolation::Bilinear, &fill)),
            [1924327881, 1014690007, 1955192986],
        ),
        (
            "rotate bicubic",
            checksums(|i| ops::rotate(&i, -23.0, Interpolation::Bicubic, &fill)),
            [2801171938, 2580771720, 1217383882],
        ),
        (
            "rotate nearest",
            checksums(|i| ops::rotate(&i, 9.0, Interpolation::Nearest, &fill)),
            [3917708039, 1860993497, 1194451453],
        ),
        (
            "shear_x bilinear",
            checksums(|i| ops::shear_x(&i, 0.21, Interpolation::Bilinear, &fill)),
            [3426170928, 1591009610, 2694932329],
        ),
        (
            "shear_y bicubic",
            checksums(|i| ops::shear_y(&i, -0.17, Interpolation::Bicubic, &fill)),
            [1166894563, 1299542169, 97319611],
        ),
        (
            "translate bilinear",
            checksums(|i| ops::translate(&i, 13.4, -5.2, Interpolation::Bilinear, &fill)),
            [713604977, 2401635278, 1495896682],
        ),
        (
            "translate bicubic",
            checksums(|i| ops::translate(&i, -7.6, 3.3, Interpolation::Bicubic, &fill)),
            [2574519227, 3705995374, 2587129245],
        ),
        (
            "resized_crop",
            checksums(|i| ops::resized_crop(&i, (3.0, 2.0, 20.0, 17.0), 16, 16)),
            [981486626, 4129641242, 2160297039],
        ),
    ];
    for (name, got, expected) in cases {
        assert_eq!(got, expected, "{name}: 224x224 RGB, 37x23 RGB, 37x23 gray");
    }
}

#[test]
fn the_imagenet_views_are_the_bytes_they_were() {
    let recipe = Recipe::imagenet(224, ClViews::SimSim, "rand-n2-m10-mstd0.5", DatasetKind::Folder.fill()).unwrap();
    let source = random_image(500, 375, 3, 4);
    let mut rng = Rng::seed_from_u64(5);
    let views: Vec<u32> =
        (0..16).flat_map(|_| recipe.train_views(&source, &mut rng, 3)).map(|v| crc32c::crc32c(&v.pixels)).collect();
    assert_eq!(views, VIEWS);
}

/// 16 samples × 3 views of one 500 × 375 image.
const VIEWS: [u32; 48] = [
    2177406604, 1147849032, 1184214525, 3004901333, 1537130447, 731370001, 1264417913, 2854838654, 329924431,
    581652789, 3603977291, 78795436, 1060947028, 3258721873, 3072160183, 2133284599, 411620813, 1414936590, 1733671456,
    52547224, 1120488451, 3425725519, 1604864754, 3636470599, 4221708706, 2310660056, 2582335877, 4241891897,
    2122231438, 4089251708, 2291330408, 4242362887, 3228862482, 2148945935, 2847778315, 3225577788, 1312125823,
    3267753941, 1303615299, 369392953, 1576156211, 939932602, 3318069376, 2157495493, 2316047595, 1807791850,
    2542121186, 4096880610,
];

/// Checksums of the first training batch of four 300 × 260 random images under the
/// ImageNet sim-sim recipe: uint8 (for a GPU) and float32 (normalised in the workers).
fn batch_checksums() -> (u32, u32) {
    let (width, height, n) = (300, 260, 4);
    let pixels = (0..n).flat_map(|i| random_image(width, height, 3, 10 + i as u64).pixels).collect();
    let dataset: Arc<dyn Dataset> = Arc::new(InMemoryDataset {
        width,
        height,
        channels: 3,
        pixels,
        labels: vec![0, 1, 0, 1],
        class_names: vec!["a".into(), "b".into()],
    });
    let recipe = Arc::new(Recipe::imagenet(224, ClViews::SimSim, "rand-n2-m10-mstd0.5", [124, 116, 104]).unwrap());
    let normalization = Normalization { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] };
    let mut config = LoaderConfig::new(n, 7, normalization);
    config.workers = 1;
    config.normalize_in_workers = false;
    let bytes = train_epoch(dataset.clone(), recipe.clone(), &config, 0, 0).next().unwrap().unwrap().images;
    let bytes = Vec::<u8>::try_from(bytes.flatten(0, -1)).unwrap();
    config.normalize_in_workers = true;
    let floats = train_epoch(dataset, recipe, &config, 0, 0).next().unwrap().unwrap().images;
    let floats: Vec<u8> =
        Vec::<f32>::try_from(floats.flatten(0, -1)).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
    (crc32c::crc32c(&bytes), crc32c::crc32c(&floats))
}

#[test]
fn loader_batches_are_the_bytes_they_were() {
    assert_eq!(batch_checksums(), (300314540, 914562095), "(uint8, float32)");
}
