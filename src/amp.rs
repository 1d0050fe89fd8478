//! Mixed precision: autocast regions and dynamic loss scaling (as torch.amp).
//!
//! tch's `autocast` only turns on CUDA autocast in float16. libtorch's own
//! `at::autocast` functions take the device type and the dtype, so they are called
//! directly (C++ symbols of libtorch_cpu; `DeviceType` and `ScalarType` are `int8_t` enums).
use tch::{Device, Kind, Tensor};

use crate::config::Amp;

mod ffi {
    unsafe extern "C" {
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

/// c10::DeviceType values.
fn device_type(device: Device) -> i8 {
    match device {
        Device::Cpu => 0,
        Device::Cuda(_) => 1,
        Device::Mps => 13,
        Device::Vulkan => 10,
    }
}

/// c10::ScalarType values.
fn scalar_type(kind: Kind) -> i8 {
    match kind {
        Kind::Half => 5,
        Kind::BFloat16 => 15,
        _ => 6, // Float
    }
}

/// The precision training on `device` uses when `requested` is asked for, and why it
/// differs when it does. `auto` is bfloat16 on GPUs that compute in it (compute capability
/// 8.0 and later), float16 with loss scaling on older ones, bfloat16 on CPUs with AMX and
/// float32 on other CPUs: with AVX512-BF16 alone, bfloat16 measured slower than float32
/// (bench/RESULTS.md).
/// An explicit `bf16` is honoured wherever the CPU has bf16 instructions (elsewhere
/// libtorch would emulate it); float16 autocast is for GPUs.
pub fn resolve(requested: Amp, device: Device) -> (Amp, Option<&'static str>) {
    let flags = cpu_flags();
    match (requested, device) {
        (Amp::Auto, Device::Cpu) if flags.iter().any(|f| f == "amx_bf16") => (Amp::Bf16, None),
        (Amp::Auto, Device::Cpu) => (Amp::Off, None),
        (Amp::Auto, Device::Cuda(i)) => {
            let ampere = crate::doctor::cuda_device(i as i32).is_none_or(|d| d.compute_capability.0 >= 8);
            (if ampere { Amp::Bf16 } else { Amp::Fp16 }, None)
        }
        (Amp::Auto, _) => (Amp::Bf16, None),
        (Amp::Bf16, Device::Cpu)
            if !flags.iter().any(|f| matches!(f.as_str(), "avx512_bf16" | "amx_bf16" | "bf16")) =>
        {
            (Amp::Off, Some("this CPU has no bf16 instructions"))
        }
        (Amp::Fp16, Device::Cpu) => (Amp::Off, Some("float16 autocast is for GPUs")),
        _ => (requested, None),
    }
}

/// This CPU's feature flags, from /proc/cpuinfo (x86 `flags`, Arm `Features`).
pub fn cpu_flags() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = cpuinfo.lines().find(|line| line.starts_with("flags") || line.starts_with("Features"));
    line.and_then(|l| l.split_once(':'))
        .map_or(Vec::new(), |(_, flags)| flags.split_whitespace().map(String::from).collect())
}

/// Runs `f` with autocast off on `device`'s type (full precision inside an autocast
/// region), restoring the previous state afterwards.
pub fn without_autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
    let device_type = device_type(device);
    // SAFETY: plain getter/setter of libtorch's thread-local autocast state.
    let was_enabled = unsafe {
        let was_enabled = ffi::is_autocast_enabled(device_type);
        ffi::set_autocast_enabled(device_type, false);
        was_enabled
    };
    let result = f();
    // SAFETY: as above.
    unsafe { ffi::set_autocast_enabled(device_type, was_enabled) };
    result
}

/// The reduced precision `amp` computes in, if any.
pub fn autocast_kind(amp: Amp) -> Option<Kind> {
    match amp {
        Amp::Auto | Amp::Off => None,
        Amp::Fp16 => Some(Kind::Half),
        Amp::Bf16 => Some(Kind::BFloat16),
    }
}

/// Runs `f` with autocast to `kind` on `device`'s type (no autocast when `kind` is none),
/// restoring the previous autocast state afterwards.
pub fn autocast<T>(device: Device, kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    let Some(kind) = kind else {
        return f();
    };
    let device_type = device_type(device);
    // SAFETY: plain setters/getters of libtorch's thread-local autocast state; the values
    // are valid DeviceType/ScalarType enumerators.
    let (was_enabled, was_dtype) = unsafe {
        let previous = (ffi::is_autocast_enabled(device_type), ffi::get_autocast_dtype(device_type));
        ffi::set_autocast_enabled(device_type, true);
        ffi::set_autocast_dtype(device_type, scalar_type(kind));
        ffi::increment_nesting();
        previous
    };
    let result = f();
    // SAFETY: as above; the cache of casted weights is cleared when the outermost region ends.
    unsafe {
        if ffi::decrement_nesting() == 0 {
            ffi::clear_cache();
        }
        ffi::set_autocast_enabled(device_type, was_enabled);
        ffi::set_autocast_dtype(device_type, was_dtype);
    }
    result
}

/// Dynamic loss scaling for float16 (torch.amp.GradScaler's defaults): the loss is
/// multiplied by `scale` before backward; a step whose gradients overflow is skipped and
/// halves the scale; 2000 clean steps in a row double it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Clean steps since the scale last changed.
    pub clean_steps: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self { scale: 65536.0, clean_steps: 0 }
    }
}

impl LossScaler {
    const GROWTH_INTERVAL: u64 = 2000;

    /// Unscales the gradients of `parameters` in place; returns whether they are all
    /// finite (the step may be taken) and updates the scale.
    pub fn unscale(&mut self, parameters: &[(String, Tensor)]) -> bool {
        let grads: Vec<Tensor> = parameters.iter().map(|(_, p)| p.grad()).filter(Tensor::defined).collect();
        let finite = tch::no_grad(|| {
            let checks: Vec<Tensor> = grads
                .iter()
                .map(|g| {
                    let _ = g.shallow_clone().g_mul_scalar_(1.0 / self.scale);
                    g.isfinite().all()
                })
                .collect();
            Tensor::stack(&checks, 0).all().int64_value(&[]) != 0
        });
        if finite {
            self.clean_steps += 1;
            if self.clean_steps == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.clean_steps = 0;
        }
        finite
    }
}
