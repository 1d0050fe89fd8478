//! Link-time set-up for every binary of this package (the CLI and the tests).
//!
//! torch-sys tells us where libtorch lives (`DEP_TCH_LIBTORCH_LIB`, torch-sys has
//! `links = "tch"`). We use it for two things tch does not do itself:
//! - a RUNPATH, so that `bcl` runs without `LD_LIBRARY_PATH` (which still wins when set,
//!   e.g. on a GPU machine whose torch lives elsewhere);
//! - forcing `libtorch_cuda.so` into the binary: rustc links with `--as-needed` and nothing
//!   references its symbols directly, so it would be dropped and CUDA never registered
//!   (tch-rs issues #329, #907, #980).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
