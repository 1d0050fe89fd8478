//! IDX (MNIST family) files, plain and gzipped: any bytes give Ok or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = bcl::data::idx::parse_idx(&mut &data[..]);
    if let Ok(array) = plain {
        assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
    }
    let _ = bcl::data::idx::parse_idx(&mut flate2::read::GzDecoder::new(data));
});
