//! The batch loader: layout, determinism across worker counts, evaluation order, errors.
use std::sync::Arc;

use bcl::augment::{ClViews, Recipe};
use bcl::data::files::FileDataset;
use bcl::data::{Dataset, InMemoryDataset, Normalization};
use bcl::loader::{DeviceNormalization, LoaderConfig, eval_batches, train_epoch};
use tch::{Device, Kind, Tensor};

fn dataset(n: usize) -> Arc<dyn Dataset> {
    let pixels = (0..n * 32 * 32 * 3).map(|i| ((i * 7919) % 251) as u8).collect();
    Arc::new(InMemoryDataset {
        width: 32,
        height: 32,
        channels: 3,
        pixels,
        labels: (0..n as i64).map(|i| i % 4).collect(),
        class_names: (0..4).map(|c| c.to_string()).collect(),
    })
}

fn normalization() -> Normalization {
    Normalization { mean: vec![0.5, 0.4, 0.3], std: vec![0.25, 0.2, 0.1] }
}

/// Batches of 6 with `workers` threads, uint8 (normalised on the device).
fn config(workers: usize) -> LoaderConfig {
    let mut c = LoaderConfig::new(6, 11, normalization());
    c.workers = workers;
    c.normalize_in_workers = false;
    c
}

fn recipe() -> Arc<Recipe> {
    Arc::new(Recipe::cifar(32, false, [125, 123, 114]))
}

fn equal(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.eq_tensor(b).all().int64_value(&[]) == 1
}

#[test]
fn train_batches_hold_three_views_per_sample_with_their_labels() {
    let data = dataset(40);
    let batches: Vec<_> = train_epoch(data.clone(), recipe(), &config(2), 0, 0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 40 / 6, "the last partial batch is dropped");
    let mut seen = Vec::new();
    for batch in &batches {
        assert_eq!(batch.images.size(), vec![18, 3, 32, 32]);
        assert_eq!(batch.images.kind(), Kind::Uint8);
        assert_eq!(batch.views, 3);
        let labels: Vec<i64> = Vec::try_from(&batch.labels).unwrap();
        let expected: Vec<i64> = batch.indices.iter().map(|&i| data.labels()[i]).collect();
        assert_eq!(labels, expected);
        let view = |v: i64| batch.images.narrow(0, 6 * v, 6);
        assert!(!equal(&view(0), &view(1)) && !equal(&view(1), &view(2)), "views differ");
        seen.extend(batch.indices.iter().copied());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 36, "no sample twice in an epoch");
}

#[test]
fn batches_do_not_depend_on_the_number_of_workers() {
    let data = dataset(30);
    let one: Vec<_> = train_epoch(data.clone(), recipe(), &config(1), 3, 0).map(Result::unwrap).collect();
    let three: Vec<_> = train_epoch(data.clone(), recipe(), &config(3), 3, 0).map(Result::unwrap).collect();
    assert_eq!(one.len(), three.len());
    for (a, b) in one.iter().zip(&three) {
        assert_eq!(a.indices, b.indices);
        assert!(equal(&a.images, &b.images));
    }
    let next_epoch: Vec<_> = train_epoch(data.clone(), recipe(), &config(3), 4, 0).map(Result::unwrap).collect();
    assert_ne!(one[0].indices, next_epoch[0].indices, "each epoch has its own order");

    // A resumed epoch starts at a later batch and sees exactly the rest of the epoch.
    let rest: Vec<_> = train_epoch(data.clone(), recipe(), &config(2), 3, 3).map(Result::unwrap).collect();
    assert_eq!(rest.len(), one.len() - 3);
    for (a, b) in one[3..].iter().zip(&rest) {
        assert_eq!(a.indices, b.indices);
        assert!(equal(&a.images, &b.images));
    }
}

#[test]
fn eval_batches_cover_the_dataset_in_order_unchanged() {
    let data = dataset(14);
    let batches: Vec<_> = eval_batches(data.clone(), recipe(), &config(2)).map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.indices.len()).collect::<Vec<_>>(), vec![6, 6, 2]);
    let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(order, (0..14).collect::<Vec<_>>());
    // CIFAR evaluation is the identity: the batch is the image in CHW layout.
    let img = data.image(7).unwrap();
    let chw = batches[1].images.get(1);
    for (c, y, x) in [(0, 0, 0), (1, 5, 9), (2, 31, 30)] {
        assert_eq!(chw.int64_value(&[c, y, x]) as u8, img.pixel(x as usize, y as usize)[c as usize]);
    }
}

#[test]
fn workers_and_device_normalise_alike() {
    let data = dataset(6);
    let on_device = eval_batches(data.clone(), recipe(), &config(1)).next().unwrap().unwrap();
    let mut in_workers = config(1);
    in_workers.normalize_in_workers = true;
    let from_workers = eval_batches(data, recipe(), &in_workers).next().unwrap().unwrap();
    assert_eq!(from_workers.images.kind(), Kind::Float);
    let normalization = DeviceNormalization::new(&in_workers.normalization, Device::Cpu);
    let (a, b) = (on_device.input(Device::Cpu, &normalization), from_workers.input(Device::Cpu, &normalization));
    assert_eq!(a.kind(), Kind::Float);
    assert!((&a - &b).abs().max().double_value(&[]) < 1e-5);
    let raw = on_device.images.double_value(&[2, 1, 3, 4]);
    let expected = (raw / 255.0 - 0.4) / 0.2;
    assert!((a.double_value(&[2, 1, 3, 4]) - expected).abs() < 1e-5);
}

#[test]
fn a_bad_file_fails_its_batch_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    image::RgbImage::from_pixel(300, 260, image::Rgb([10, 200, 30])).save(&good).unwrap();
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff garbage").unwrap();
    let files = FileDataset {
        paths: vec![good.clone(), bad, good],
        labels: vec![0, 1, 0],
        class_names: vec!["a".into(), "b".into()],
    };
    let recipe = Arc::new(Recipe::imagenet(224, ClViews::SimSim, "rand-n2-m10-mstd0.5", [124, 116, 104]).unwrap());
    let mut config = LoaderConfig::new(3, 0, normalization());
    config.workers = 2;
    let mut results = eval_batches(Arc::new(files), recipe, &config);
    let err = format!("{:#}", results.next().unwrap().unwrap_err());
    assert!(err.contains("bad.jpg") && err.contains("cannot decode image"), "{err}");
}

#[test]
fn dropping_a_loader_early_stops_its_workers() {
    let data = dataset(600);
    let mut config = config(3);
    config.prefetch = 1;
    let mut loader = train_epoch(data, recipe(), &config, 0, 0);
    assert!(loader.next().unwrap().is_ok());
    drop(loader); // must return: blocked workers see the closed channel
}

#[test]
fn loader_threads_default_to_the_cores_shared_out_over_local_processes() {
    use bcl::loader::default_workers;
    assert_eq!(default_workers(16, None), 16);
    assert_eq!(default_workers(16, Some(8)), 2, "8 ranks on a 16-core node");
    assert_eq!(default_workers(4, Some(8)), 1, "at least one");
    assert_eq!(default_workers(4, Some(0)), 4, "a nonsense LOCAL_WORLD_SIZE counts as 1");
}

#[test]
fn a_worker_reuses_only_batch_memory_that_nobody_holds() {
    // Batches 0, 3, 6, … kept as a view (shares the storage), 1, 4, 7, … as a shallow copy
    // (shares the tensor), the others dropped: their memory may carry later batches, and
    // what is kept must still hold what it held.
    let data = dataset(60);
    let expected: Vec<Tensor> =
        train_epoch(data.clone(), recipe(), &config(1), 0, 0).map(|b| b.unwrap().images.copy()).collect();
    assert_eq!(expected.len(), 10);
    let mut kept = Vec::new();
    for (i, batch) in train_epoch(data, recipe(), &config(1), 0, 0).enumerate() {
        let images = batch.unwrap().images;
        match i % 3 {
            0 => kept.push((i, images.narrow(0, 1, 2), expected[i].narrow(0, 1, 2))),
            1 => kept.push((i, images.shallow_clone(), expected[i].shallow_clone())),
            _ => assert!(equal(&images, &expected[i]), "batch {i}"),
        }
    }
    for (i, held, wanted) in kept {
        assert!(equal(&held, &wanted), "batch {i} was overwritten while held");
    }
}
