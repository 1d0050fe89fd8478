//! CIFAR python batches: pickles decoded as data only, never run.
#![no_main]
use std::path::Path;

use bcl::data::cifar::{Variant, decode_python_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    if decode_python_batch(data, Variant::Cifar10, "labels", Path::new("fuzz"), &mut pixels, &mut labels).is_ok() {
        assert_eq!(pixels.len(), labels.len() * 3072);
    }
    if let Ok(value) = bcl::data::pickle::decode(data) {
        let _ = value.as_texts();
        let _ = bcl::data::pickle::ndarray_u8(&value);
    }
});
