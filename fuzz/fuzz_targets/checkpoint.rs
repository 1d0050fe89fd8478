//! safetensors checkpoints as `bcl eval --checkpoint` and `--resume` read them.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(checkpoint) = bcl::checkpoint::parse(data, Path::new("fuzz.safetensors")) {
        let values: usize = checkpoint.weights.values().chain(checkpoint.optimizer.values()).map(|t| t.numel()).sum();
        assert!(values <= data.len(), "no more values than bytes");
    }
});
