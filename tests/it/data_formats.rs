//! Dataset readers (CIFAR binary and python, lists, class folders), long-tailed subsets and
//! samplers, with every bad input giving an error that names the file.
use std::path::Path;

use bcl::data::cifar::{self, Variant};
use bcl::data::files::{read_class_folders, read_list};
use bcl::data::long_tail::{Profile, class_counts};
use bcl::data::pickle;
use bcl::data::sampler::{SamplerKind, epoch_order};
use bcl::data::{DataConfig, Dataset, DatasetKind, Split};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn message(e: anyhow::Error) -> String {
    format!("{e:#}")
}

fn assert_error(result: anyhow::Result<impl Sized>, parts: &[&str]) {
    let Err(e) = result else { panic!("expected an error containing {parts:?}") };
    let text = message(e);
    for part in parts {
        assert!(text.contains(part), "{text:?} must contain {part:?}");
    }
}

/// One CIFAR binary record: label byte(s), then planar pixels (i·3072 + k) mod 251.
fn cifar_record(labels: &[u8], i: usize) -> Vec<u8> {
    let mut rec = labels.to_vec();
    rec.extend((0..3072).map(|k| ((i * 3072 + k) % 251) as u8));
    rec
}

#[test]
fn cifar10_binary_release() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&root).unwrap();
    for b in 1..=5 {
        let bytes: Vec<u8> = (0..2).flat_map(|i| cifar_record(&[(b + i) as u8 % 10], i)).collect();
        std::fs::write(root.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    std::fs::write(root.join("test_batch.bin"), cifar_record(&[7], 0)).unwrap();
    let train = cifar::load(dir.path(), Variant::Cifar10, true).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(&train.labels[..4], &[1, 2, 2, 3]);
    let img = train.image(1).unwrap();
    assert_eq!((img.width, img.height, img.channels), (32, 32, 3));
    // Pixel (0, 0) of record 1 interleaves the first byte of each plane.
    assert_eq!(img.pixel(0, 0), &[(3072 % 251) as u8, ((3072 + 1024) % 251) as u8, ((3072 + 2048) % 251) as u8]);
    assert_eq!(cifar::load(dir.path(), Variant::Cifar10, false).unwrap().labels, vec![7]);
    // Without batches.meta.txt the classes are numbered.
    assert_eq!(train.class_names()[3], "3");

    std::fs::write(root.join("data_batch_3.bin"), &cifar_record(&[1], 0)[..3000]).unwrap();
    assert_error(cifar::load(dir.path(), Variant::Cifar10, true), &["data_batch_3.bin", "not a whole number"]);
    std::fs::write(root.join("data_batch_3.bin"), cifar_record(&[10], 0)).unwrap();
    assert_error(cifar::load(dir.path(), Variant::Cifar10, true), &["data_batch_3.bin", "label 10 of record 0"]);
    std::fs::write(root.join("data_batch_3.bin"), cifar_record(&[1], 0)).unwrap();
    std::fs::remove_file(root.join("data_batch_4.bin")).unwrap();
    assert_error(cifar::load(dir.path(), Variant::Cifar10, true), &["data_batch_4.bin"]);
}

#[test]
fn cifar100_binary_uses_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> =
        [(3u8, 42u8), (19, 99)].iter().enumerate().flat_map(|(i, &(c, f))| cifar_record(&[c, f], i)).collect();
    std::fs::write(dir.path().join("train.bin"), bytes).unwrap();
    let names: String = (0..100).map(|i| format!("class{i}\n")).collect();
    std::fs::write(dir.path().join("fine_label_names.txt"), names).unwrap();
    let train = cifar::load(dir.path(), Variant::Cifar100, true).unwrap();
    assert_eq!(train.labels, vec![42, 99]);
    assert_eq!(train.class_names()[42], "class42");
}

fn python_release(batch_fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-10-batches-py");
    std::fs::create_dir(&root).unwrap();
    let batch = std::fs::read(Path::new(FIXTURES).join(batch_fixture)).unwrap();
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(root.join(name), &batch).unwrap();
    }
    std::fs::copy(Path::new(FIXTURES).join("cifar10_batches.meta"), root.join("batches.meta")).unwrap();
    dir
}

#[test]
fn cifar10_python_release_in_every_pickle_dialect() {
    for fixture in ["cifar10_py2_batch", "cifar10_py3_protocol2_batch", "cifar10_py3_protocol5_batch"] {
        let dir = python_release(fixture);
        let train = cifar::load(dir.path(), Variant::Cifar10, true).unwrap_or_else(|e| panic!("{fixture}: {e:#}"));
        assert_eq!(train.len(), 15, "{fixture}");
        assert_eq!(&train.labels[..3], &[1, 2, 9], "{fixture}");
        assert_eq!(train.class_names()[9], "truck", "{fixture}");
        let img = train.image(2).unwrap();
        let k = |plane: usize| ((2 * 3072 + plane * 1024 + 33) % 251) as u8; // pixel (1, 1) = index 33
        assert_eq!(img.pixel(1, 1), &[k(0), k(1), k(2)], "{fixture}");
    }
}

#[test]
fn pickles_that_would_run_code_are_only_decoded() {
    let marker = std::env::temp_dir().join(format!("bcl-pickle-ran-{}", std::process::id()));
    let payload = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
    let value = pickle::decode(payload.as_bytes()).unwrap();
    assert!(matches!(value, pickle::Value::Call(_)), "a call stays a symbolic value");
    assert!(!marker.exists(), "decoding must not run anything");

    let dir = python_release("cifar10_py2_batch");
    let batch = dir.path().join("cifar-10-batches-py/data_batch_2");
    std::fs::write(&batch, payload).unwrap();
    assert_error(cifar::load(dir.path(), Variant::Cifar10, true), &["data_batch_2"]);
    assert!(!marker.exists());
}

#[test]
fn damaged_pickles_are_errors_that_name_the_file() {
    let good = std::fs::read(Path::new(FIXTURES).join("cifar10_py2_batch")).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() / 2].to_vec(), "truncated"),
        (vec![], "truncated"),
        (b"\x80\x02\xffjunk".to_vec(), "unsupported pickle opcode 0xff"),
        (b"\x80\x02h\x07.".to_vec(), "memo key 7 is not defined"),
        (b"\x80\x02T\xff\xff\xff\x7fabc".to_vec(), "truncated: needs 2147483647 more bytes"),
        (b"\x80\x02}q\x00.".to_vec(), "no \"data\" entry"),
    ];
    for (bytes, expected) in cases {
        let dir = python_release("cifar10_py2_batch");
        let batch = dir.path().join("cifar-10-batches-py/data_batch_1");
        std::fs::write(&batch, &bytes).unwrap();
        assert_error(cifar::load(dir.path(), Variant::Cifar10, true), &["data_batch_1", expected]);
    }
}

fn write_png(path: &Path, w: u32, h: u32, shade: u8) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([shade, (x * 7) as u8, (y * 5) as u8])).save(path).unwrap();
}

#[test]
fn image_lists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train/n01")).unwrap();
    write_png(&root.join("train/n01/a.png"), 20, 10, 1);
    write_png(&root.join("train/n01/b b.png"), 8, 8, 2);
    let list = root.join("list.txt");
    std::fs::write(&list, "train/n01/a.png 3\n\ntrain/n01/b b.png 0\n").unwrap();
    let data = read_list(&list, root, Some(5)).unwrap();
    assert_eq!(data.labels, vec![3, 0]);
    assert_eq!(data.num_classes(), 5);
    let img = data.image(0).unwrap();
    assert_eq!((img.width, img.height, img.channels), (20, 10, 3));
    assert_eq!(img.pixel(2, 0), &[1, 14, 0]);

    let write_list = |text: &str| std::fs::write(&list, text).unwrap();
    write_list("train/n01/a.png 0\ntrain/n01/missing.png 1\n");
    assert_error(read_list(&list, root, None), &["list.txt, line 2", "missing.png does not exist"]);
    write_list("train/n01/a.png three\n");
    assert_error(read_list(&list, root, None), &["list.txt, line 1", "\"three\" is not an integer"]);
    write_list("train/n01/a.png\n");
    assert_error(read_list(&list, root, None), &["list.txt, line 1", "expected `path label`"]);
    write_list("train/n01/a.png 7\n");
    assert_error(read_list(&list, root, Some(5)), &["line 1", "label 7 is out of range 0..5"]);
    write_list("\n");
    assert_error(read_list(&list, root, None), &["list.txt", "names no images"]);
    assert_error(read_list(&root.join("nope.txt"), root, None), &["nope.txt"]);

    std::fs::write(root.join("train/n01/a.png"), b"not an image at all").unwrap();
    write_list("train/n01/a.png 0\n");
    let data = read_list(&list, root, None).unwrap();
    assert_error(data.image(0), &["a.png", "cannot decode image"]);
}

#[test]
fn class_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (class, n) in [("cat", 3), ("ant", 2)] {
        std::fs::create_dir(root.join(class)).unwrap();
        for i in 0..n {
            write_png(&root.join(class).join(format!("{i}.PNG")), 6, 6, i);
        }
    }
    // ImageFolder's other extensions, and images in sub-folders of a class folder.
    std::fs::create_dir_all(root.join("ant/nested/deeper")).unwrap();
    image::RgbImage::from_pixel(6, 6, image::Rgb([9, 9, 9])).save(root.join("ant/nested/deeper/z.bmp")).unwrap();
    image::GrayImage::from_pixel(6, 6, image::Luma([7])).save(root.join("ant/nested/y.pgm")).unwrap();
    std::fs::write(root.join("cat/notes.txt"), "skipped").unwrap();
    std::fs::write(root.join("cat/.hidden.png"), "skipped").unwrap();
    let data = read_class_folders(root).unwrap();
    assert_eq!(data.class_names, vec!["ant", "cat"]);
    assert_eq!(data.labels, vec![0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(data.class_counts(), vec![4, 3]);
    assert_eq!(data.image(6).unwrap().pixel(0, 0)[0], 2);
    assert!(data.paths[2].ends_with("ant/nested/deeper/z.bmp") && data.paths[3].ends_with("ant/nested/y.pgm"));
    assert_eq!(data.image(2).unwrap().pixel(0, 0), [9, 9, 9]);
    assert_eq!(data.image(3).unwrap().pixel(0, 0), [7, 7, 7]);

    std::fs::create_dir(root.join("empty")).unwrap();
    assert_error(read_class_folders(root), &["empty", "holds no images"]);
    assert_error(read_class_folders(&root.join("absent")), &["absent"]);
    let only_files = tempfile::tempdir().unwrap();
    std::fs::write(only_files.path().join("x.png"), "x").unwrap();
    assert_error(read_class_folders(only_files.path()), &["no class folders"]);
    std::fs::create_dir(only_files.path().join("lonely")).unwrap();
    write_png(&only_files.path().join("lonely/a.png"), 4, 4, 0);
    assert_error(read_class_folders(only_files.path()), &["only one class folder", "lonely", "at least two"]);
}

#[test]
fn open_dispatches_and_checks_the_root() {
    let open = |kind, root: &Path, split| DataConfig::new(kind, root.to_path_buf()).open(split);
    assert_error(open(DatasetKind::Cifar10, Path::new("/nonexistent/c10"), Split::Train), &["/nonexistent/c10"]);
    let empty = tempfile::tempdir().unwrap();
    assert_error(open(DatasetKind::Cifar100, empty.path(), Split::Train), &["no CIFAR release found"]);
    assert_error(open(DatasetKind::ImagenetLt, empty.path(), Split::Train), &["ImageNet_LT_train.txt"]);
    assert_error(open(DatasetKind::List, empty.path(), Split::Train), &["--train-list"]);
    let (dir, _) = bcl::data::fashion_mnist_dir();
    let test = open(DatasetKind::FashionMnist, &dir, Split::Test).unwrap();
    assert_eq!((test.len(), test.channels()), (10_000, 1));
    assert_eq!(test.class_names()[9], "Ankle boot");
}

#[test]
fn samplers() {
    let labels: Vec<i64> = class_counts(Profile::Exp, 1000.0, 5, 100.0)
        .iter()
        .enumerate()
        .flat_map(|(c, &n)| std::iter::repeat_n(c as i64, n))
        .collect();
    let order = epoch_order(SamplerKind::Shuffle, &labels, 5, 0, 0);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..labels.len()).collect::<Vec<_>>(), "a permutation");
    assert_ne!(order, epoch_order(SamplerKind::Shuffle, &labels, 5, 0, 1), "each epoch its own order");
    assert_eq!(order, epoch_order(SamplerKind::Shuffle, &labels, 5, 0, 0), "reproducible");

    // Class c is drawn ∝ n_c^q: q = 0 class-balanced, q = 0.5 square-root.
    let counts: Vec<f64> = (0..5).map(|c| labels.iter().filter(|&&l| l == c).count() as f64).collect();
    for (kind, q) in [(SamplerKind::ClassBalanced, 0.0), (SamplerKind::SquareRoot, 0.5)] {
        let order = epoch_order(kind, &labels, 5, 0, 0);
        assert_eq!(order.len(), labels.len());
        assert_eq!(order, epoch_order(kind, &labels, 5, 0, 0), "reproducible");
        // Over 50 epochs the rarest class expects ~3,400 square-root draws: 6% is ~3.5 σ.
        let mut per_class = [0usize; 5];
        for epoch in 0..50 {
            for i in epoch_order(kind, &labels, 5, 0, epoch) {
                per_class[labels[i] as usize] += 1;
            }
        }
        let weights: Vec<f64> = counts.iter().map(|n| n.powf(q)).collect();
        let total: f64 = weights.iter().sum();
        for (c, &n) in per_class.iter().enumerate() {
            let expected = 50.0 * labels.len() as f64 * weights[c] / total;
            assert!(
                (n as f64 / expected - 1.0).abs() < 0.06,
                "{kind:?}: {per_class:?}, class {c} expects {expected:.0}"
            );
        }
    }
}
