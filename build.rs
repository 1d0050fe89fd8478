//! Link-time set-up for every binary of this package (the CLI and the tests).
//!
//! torch-sys tells us where libtorch lives (`DEP_TCH_LIBTORCH_LIB`, torch-sys has
//! `links = "tch"`). We use it for three things tch does not do itself:
//! - a RUNPATH, so that `bcl` runs without `LD_LIBRARY_PATH` (which still wins when set,
//!   e.g. on a GPU machine whose torch lives elsewhere);
//! - forcing `libtorch_cuda.so` into the binary: rustc links with `--as-needed` and nothing
//!   references its symbols directly, so it would be dropped and CUDA never registered
//!   (tch-rs issues #329, #907, #980);
//! - compiling our C++ shims against the same libtorch's headers: `src/c10d_shim.cpp`, our
//!   C interface to libtorch's distributed engine, and `src/tensor_shim.cpp`, what tch does
//!   not expose about a tensor. The NCCL part also needs the CUDA headers that
//!   `scripts/setup.sh` installs from PyPI next to torch; without them the shim is built
//!   with the TCPStore only, and `bcl doctor` says so.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/c10d_shim.cpp");
    println!("cargo:rerun-if-changed=src/tensor_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    let lib = PathBuf::from(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let has_cuda = lib.join("libtorch_cuda.so").exists();
    if has_cuda {
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    build_shims(&lib, has_cuda);
}

fn build_shims(lib: &Path, has_cuda: bool) {
    let torch = lib.parent().expect("the libtorch lib directory has a parent");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("src/c10d_shim.cpp")
        .file("src/tensor_shim.cpp")
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .flag("-w");
    // The PyPI wheels: site-packages/torch/lib and site-packages/nvidia/{cu13,nccl}/include.
    let nvidia = std::fs::canonicalize(torch).ok().and_then(|t| t.parent().map(|s| s.join("nvidia")));
    let cuda_headers =
        nvidia.filter(|n| n.join("cu13/include/crt/host_config.h").exists() && n.join("nccl/include/nccl.h").exists());
    match cuda_headers {
        Some(nvidia) if has_cuda => {
            build
                .define("BCL_WITH_NCCL", None)
                .define("USE_C10D_NCCL", None)
                .include(nvidia.join("cu13/include"))
                .include(nvidia.join("nccl/include"));
        }
        _ => println!("cargo:warning=building without NCCL: no CUDA libtorch or CUDA headers (run scripts/setup.sh)"),
    }
    build.compile("bcl_shims");
}
