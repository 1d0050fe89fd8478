//! Hostile input for every reader: random bytes and mutations of valid files must give
//! `Ok` or an error — never a panic, an abort, or an allocation the input cannot justify.
use std::path::Path;

use bcl::checkpoint::{self, Checkpoint};
use bcl::config::{Preset, TrainConfig};
use bcl::data::cifar::{self, Variant};
use bcl::data::files::{decode_rgb, read_list};
use bcl::data::idx::read_idx;
use bcl::data::pickle;
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
}

/// `bytes` with some positions overwritten and possibly cut short.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn idx_file(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| bytes.extend_from_slice(&d.to_be_bytes()));
    bytes.extend_from_slice(data);
    bytes
}

/// A small valid checkpoint file: two tensors, optimizer state and metadata.
fn checkpoint_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let tensor = |v: &[f32]| tch::Tensor::from_slice(v).view([-1, 1]);
    let checkpoint = Checkpoint {
        weights: [("a.weight".to_string(), tensor(&[1.0, 2.0])), ("b".to_string(), tensor(&[3.0]))].into(),
        optimizer: [("a.weight".to_string(), tensor(&[0.5, 0.25]))].into(),
        metadata: [("state".to_string(), "{}".to_string())].into(),
    };
    checkpoint::save(&path, &checkpoint).unwrap();
    std::fs::read(&path).unwrap()
}

fn preset_toml() -> String {
    TrainConfig::preset(Preset::Cifar100Lt, "/data".into()).to_toml().unwrap()
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn idx_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-idx3-ubyte");
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_idx(&path);
    }

    #[test]
    fn idx_reader_survives_mutated_files(edits in edits(), cut in proptest::option::of(any::<usize>()), gz in any::<bool>()) {
        let valid = idx_file(&[3, 4, 5], &[7; 60]);
        let mut bytes = mutate(valid, &edits, cut);
        if gz {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&bytes).unwrap();
            bytes = mutate(encoder.finish().unwrap(), &edits[..edits.len().min(2)], None);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gz { "x.gz" } else { "x" });
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(array) = read_idx(&path) {
            prop_assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn pickle_decoder_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(value) = pickle::decode(&bytes) {
            let _ = pickle::ndarray_u8(&value);
            let _ = value.get("data");
        }
    }

    #[test]
    fn cifar_python_reader_survives_mutated_pickles(
        which in 0usize..3, edits in edits(), cut in proptest::option::of(any::<usize>())
    ) {
        let name = ["cifar10_py2_batch", "cifar10_py3_protocol2_batch", "cifar10_py3_protocol5_batch"][which];
        let dir = tempfile::tempdir().unwrap();
        let bytes = mutate(fixture(name), &edits, cut);
        for batch in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
            std::fs::write(dir.path().join(batch), &bytes).unwrap();
        }
        if let Ok(data) = cifar::load(dir.path(), Variant::Cifar10, true) {
            prop_assert_eq!(data.pixels.len(), data.labels.len() * 3072);
        }
    }

    #[test]
    fn cifar_binary_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..7000), hundred in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (variant, files) = if hundred {
            (Variant::Cifar100, vec!["train.bin"])
        } else {
            (Variant::Cifar10, vec!["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"])
        };
        for f in files {
            std::fs::write(dir.path().join(f), &bytes).unwrap();
        }
        let _ = cifar::load(dir.path(), variant, true);
    }

    #[test]
    fn list_reader_survives_any_text(text in "[a-z0-9 ./\\-\n\t]{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.jpg"), b"x").unwrap();
        let list = dir.path().join("list.txt");
        std::fs::write(&list, text).unwrap();
        if let Ok(data) = read_list(&list, dir.path(), Some(10)) {
            prop_assert!(data.labels.iter().all(|&l| (0..10).contains(&l)));
        }
    }

    #[test]
    fn image_decoder_survives_mutated_images(png in any::<bool>(), edits in edits(), cut in proptest::option::of(any::<usize>())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if png { "a.png" } else { "a.jpg" });
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77])).save(&path).unwrap();
        let bytes = mutate(std::fs::read(&path).unwrap(), &edits, cut);
        std::fs::write(&path, bytes).unwrap();
        if let Ok(img) = decode_rgb(&path) {
            prop_assert_eq!(img.pixels.len(), img.width * img.height * 3);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn checkpoint_reader_survives_mutated_files(edits in edits(), cut in proptest::option::of(any::<usize>())) {
        let bytes = mutate(checkpoint_bytes(), &edits, cut);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(loaded) = checkpoint::load(&path) {
            let values: i64 = loaded.weights.values().chain(loaded.optimizer.values()).map(|t| t.numel() as i64).sum();
            prop_assert!(values * 4 <= bytes.len() as i64, "no more values than the file holds");
        }
    }

    #[test]
    fn checkpoint_reader_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let _ = checkpoint::load(&path);
    }

    #[test]
    fn config_reader_survives_mutated_configs(edits in edits(), cut in proptest::option::of(any::<usize>())) {
        let text = String::from_utf8_lossy(&mutate(preset_toml().into_bytes(), &edits, cut)).into_owned();
        if let Ok(config) = TrainConfig::from_toml(&text, "c.toml") {
            prop_assert!(config.validate().is_ok());
        }
        let base = TrainConfig::preset(Preset::FashionMnistLt, "/data".into());
        if let Ok(config) = base.with_overrides(&text, "c.toml") {
            prop_assert!(config.validate().is_ok());
        }
    }

    #[test]
    fn config_overrides_survive_any_text(text in "[a-z_=\\[\\]. 0-9\"\n-]{0,120}") {
        let base = TrainConfig::preset(Preset::FashionMnistLt, "/data".into());
        let _ = base.with_overrides(&text, "c.toml");
    }
}

/// A safetensors header that claims 2^40 bytes is an error, not an allocation.
#[test]
fn a_checkpoint_header_claiming_a_terabyte_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(&path, bytes).unwrap();
    let err = checkpoint::load(&path).err().unwrap().to_string();
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

/// A million nested tuples (one opcode each) must neither overflow the stack when the
/// value is dropped nor when a reader inspects it.
#[test]
fn deeply_nested_pickles_do_not_overflow_the_stack() {
    let mut bytes = b"\x80\x02K\x01".to_vec();
    bytes.extend(std::iter::repeat_n(0x85u8, 1_000_000)); // TUPLE1
    bytes.push(b'.');
    let value = pickle::decode(&bytes).unwrap();
    assert!(pickle::ndarray_u8(&value).is_err());
    drop(value);

    // The same through _codecs.encode calls nested in their encoding argument.
    let mut nested = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00a".to_vec();
    for _ in 0..200_000 {
        nested.extend_from_slice(b"h\x00X\x01\x00\x00\x00a");
    }
    nested.extend_from_slice(b"X\x06\x00\x00\x00latin1");
    for _ in 0..200_000 {
        nested.extend_from_slice(b"\x86R");
    }
    nested.extend_from_slice(b"\x86R.");
    let value = pickle::decode(&nested).unwrap();
    assert!(value.as_text().is_none());
}

/// A list that contains itself is decoded and inspected without looping.
#[test]
fn self_referencing_pickles_are_harmless() {
    let bytes = b"\x80\x02]q\x00h\x00a.";
    let value = pickle::decode(bytes).unwrap();
    assert!(value.as_ints().is_err());
    assert!(value.get("data").is_none());
}
