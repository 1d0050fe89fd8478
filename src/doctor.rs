//! `bcl doctor`: what this build of `bcl` finds on this machine, for bug reports and for
//! checking a GPU set-up before a long run.
use std::fmt;
use std::path::PathBuf;

use crate::data;

/// One CUDA device, as the driver describes it.
#[derive(Debug, Clone)]
pub struct CudaDevice {
    pub name: String,
    pub compute_capability: (i32, i32),
    pub memory_bytes: u64,
}

/// Everything `bcl doctor` prints.
#[derive(Debug, Clone)]
pub struct Report {
    pub bcl_version: &'static str,
    /// Version of the libtorch the process loaded (its `version.py`), when found.
    pub libtorch_version: Option<String>,
    /// Folder of the `libtorch_cpu.so` the process loaded.
    pub libtorch_dir: Option<PathBuf>,
    /// Whether `libtorch_cuda.so` is loaded: without it CUDA can never be used.
    pub libtorch_cuda_loaded: bool,
    pub cpu_threads: i32,
    pub cuda_available: bool,
    pub cuda_devices: Vec<CudaDevice>,
    /// cuDNN version libtorch was built against (e.g. 91900 for 9.19.0), when CUDA is usable.
    pub cudnn_version: Option<i64>,
    /// The loaded cuDNN library's own version (`cudnnGetVersion`), which is what runs.
    pub cudnn_runtime_version: Option<usize>,
    /// Whether this build has c10d's NCCL process group (multi-GPU training).
    pub nccl: bool,
    pub fashion_mnist_dir: PathBuf,
    pub fashion_mnist_source: &'static str,
    /// Which Fashion-MNIST files are missing from `fashion_mnist_dir`.
    pub fashion_mnist_missing: Vec<&'static str>,
}

impl Report {
    pub fn collect() -> Self {
        let loaded = loaded_libraries();
        let libtorch_dir = loaded
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == "libtorch_cpu.so"))
            .and_then(|p| p.parent().map(PathBuf::from));
        let libtorch_version = libtorch_dir.as_ref().and_then(|dir| {
            let version_py = std::fs::read_to_string(dir.join("../version.py")).ok()?;
            version_py
                .lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(['\'', '"']).to_string())
        });
        let cuda_available = tch::Cuda::is_available();
        let cuda_devices = if cuda_available {
            (0..tch::Cuda::device_count() as i32).filter_map(cuda_driver::device).collect()
        } else {
            Vec::new()
        };
        let (fashion_mnist_dir, fashion_mnist_source) = data::fashion_mnist_dir();
        let fashion_mnist_missing = data::mnist::missing_files(&fashion_mnist_dir);
        Self {
            bcl_version: env!("CARGO_PKG_VERSION"),
            libtorch_version,
            libtorch_cuda_loaded: loaded.iter().any(|p| p.file_name().is_some_and(|n| n == "libtorch_cuda.so")),
            libtorch_dir,
            cpu_threads: tch::get_num_threads(),
            cuda_available,
            cudnn_version: (cuda_available && tch::Cuda::cudnn_is_available()).then(tch::utils::version_cudnn),
            cudnn_runtime_version: cuda_driver::cudnn_runtime_version(),
            cuda_devices,
            nccl: crate::c10d::has_nccl(),
            fashion_mnist_dir,
            fashion_mnist_source,
            fashion_mnist_missing,
        }
    }
}

/// A cuDNN version number (91900) as text (9.19.0).
fn cudnn_text(version: usize) -> String {
    format!("{}.{}.{}", version / 10000, version / 100 % 100, version % 100)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bcl          {}", self.bcl_version)?;
        let version = self.libtorch_version.as_deref().unwrap_or("unknown (version.py not found)");
        match &self.libtorch_dir {
            Some(dir) => writeln!(f, "libtorch     {version} from {}", dir.display())?,
            None => writeln!(f, "libtorch     {version}")?,
        }
        writeln!(f, "CPU threads  {}", self.cpu_threads)?;
        let cuda_lib = if self.libtorch_cuda_loaded { "loaded" } else { "NOT loaded (CPU-only build)" };
        if self.cuda_available {
            writeln!(f, "CUDA         usable, {} device(s); libtorch_cuda {cuda_lib}", tch::Cuda::device_count())?;
            for (i, d) in self.cuda_devices.iter().enumerate() {
                let gib = d.memory_bytes as f64 / (1u64 << 30) as f64;
                let (major, minor) = d.compute_capability;
                writeln!(f, "  cuda:{i}     {} (compute {major}.{minor}, {gib:.1} GiB)", d.name)?;
            }
            let version = cudnn_text;
            match (self.cudnn_runtime_version, self.cudnn_version) {
                (Some(run), Some(built)) => {
                    writeln!(f, "cuDNN        {} (libtorch built with {})", version(run), version(built as usize))?
                }
                (None, Some(built)) => writeln!(f, "cuDNN        built with {}", version(built as usize))?,
                _ => writeln!(f, "cuDNN        not available")?,
            }
        } else {
            writeln!(f, "CUDA         not usable (no GPU or driver found); libtorch_cuda {cuda_lib}")?;
            if let Some(v) = self.cudnn_runtime_version {
                writeln!(f, "cuDNN        {} loaded (used once a GPU is)", cudnn_text(v))?;
            }
        }
        if self.nccl {
            writeln!(f, "multi-GPU    c10d NCCL process group built in (bcl train --nproc-per-node N, or torchrun)")?;
        } else {
            writeln!(f, "multi-GPU    not built in (no CUDA headers when bcl was built); CPU store backend only")?;
        }
        let dir = self.fashion_mnist_dir.display();
        if self.fashion_mnist_missing.is_empty() {
            write!(f, "Fashion-MNIST {dir} ({})", self.fashion_mnist_source)
        } else {
            write!(
                f,
                "Fashion-MNIST missing from {dir} ({}): {}; run `make setup` or set BCL_FASHION_MNIST",
                self.fashion_mnist_source,
                self.fashion_mnist_missing.join(", ")
            )
        }
    }
}

/// Shared libraries mapped into this process (Linux: /proc/self/maps).
fn loaded_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .map(PathBuf::from)
        .collect();
    libs.dedup();
    libs
}

pub use self::cuda_driver::device as cuda_device;

/// Device facts libtorch does not expose, from the CUDA driver API (`libcuda.so.1`, already
/// loaded by libtorch when a GPU is usable).
mod cuda_driver {
    use super::CudaDevice;
    use std::ffi::{CStr, c_char, c_int};

    type CuInit = unsafe extern "C" fn(flags: u32) -> c_int;
    type CuDeviceGet = unsafe extern "C" fn(device: *mut c_int, ordinal: c_int) -> c_int;
    type CuDeviceGetName = unsafe extern "C" fn(name: *mut c_char, len: c_int, device: c_int) -> c_int;
    type CuDeviceGetAttribute = unsafe extern "C" fn(value: *mut c_int, attribute: c_int, device: c_int) -> c_int;
    type CuDeviceTotalMem = unsafe extern "C" fn(bytes: *mut usize, device: c_int) -> c_int;

    const COMPUTE_CAPABILITY_MAJOR: c_int = 75;
    const COMPUTE_CAPABILITY_MINOR: c_int = 76;

    /// The version of the cuDNN library in this process (libtorch_cuda loads it), by its
    /// own `cudnnGetVersion`; none where it is not loaded.
    pub fn cudnn_runtime_version() -> Option<usize> {
        // SAFETY: `size_t cudnnGetVersion(void)` as declared in cudnn_graph.h; dlopen of a
        // library already loaded only returns its handle.
        unsafe {
            let lib = libloading::Library::new("libcudnn.so.9").ok()?;
            let get: libloading::Symbol<unsafe extern "C" fn() -> usize> = lib.get("cudnnGetVersion").ok()?;
            Some(get())
        }
    }

    pub fn device(ordinal: i32) -> Option<CudaDevice> {
        // SAFETY: the CUDA driver API's C signatures as documented in cuda.h; every output
        // pointer refers to a live local of the declared type and size.
        unsafe {
            let lib = libloading::Library::new("libcuda.so.1").ok()?;
            let init: libloading::Symbol<CuInit> = lib.get("cuInit").ok()?;
            let get: libloading::Symbol<CuDeviceGet> = lib.get("cuDeviceGet").ok()?;
            let get_name: libloading::Symbol<CuDeviceGetName> = lib.get("cuDeviceGetName").ok()?;
            let attribute: libloading::Symbol<CuDeviceGetAttribute> = lib.get("cuDeviceGetAttribute").ok()?;
            let total_mem: libloading::Symbol<CuDeviceTotalMem> = lib.get("cuDeviceTotalMem_v2").ok()?;
            if init(0) != 0 {
                return None;
            }
            let mut device = 0;
            if get(&mut device, ordinal) != 0 {
                return None;
            }
            let mut name = [0 as c_char; 256];
            if get_name(name.as_mut_ptr(), name.len() as c_int, device) != 0 {
                return None;
            }
            let (mut major, mut minor, mut memory) = (0, 0, 0usize);
            attribute(&mut major, COMPUTE_CAPABILITY_MAJOR, device);
            attribute(&mut minor, COMPUTE_CAPABILITY_MINOR, device);
            total_mem(&mut memory, device);
            Some(CudaDevice {
                name: CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
                compute_capability: (major, minor),
                memory_bytes: memory as u64,
            })
        }
    }
}
