//! CIFAR-10 and CIFAR-100 binary record files.
#![no_main]
use std::path::Path;

use bcl::data::cifar::{Variant, decode_binary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for variant in [Variant::Cifar10, Variant::Cifar100] {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        if decode_binary(data, variant, Path::new("fuzz.bin"), &mut pixels, &mut labels).is_ok() {
            assert_eq!(pixels.len(), labels.len() * 3072);
        }
    }
});
