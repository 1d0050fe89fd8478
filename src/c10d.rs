//! Safe handles on libtorch's distributed engine, c10d, through `src/c10d_shim.cpp`:
//! the `TCPStore` that ranks meet at (as `torchrun` uses it) and the NCCL process group.
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tch::Tensor;

#[repr(C)]
struct RawStore {
    _private: [u8; 0],
}

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

// SAFETY (for every call below): the shim catches all C++ exceptions; pointers passed are
// live handles we own (or `tch` tensors, whose raw pointer is an `at::Tensor*`), and
// strings are NUL-terminated CStrings that outlive the call.
unsafe extern "C" {
    fn bcl_c10d_last_error() -> *const c_char;
    fn bcl_c10d_has_nccl() -> c_int;
    fn bcl_c10d_free(data: *mut c_void);
    fn bcl_store_connect(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        world_size: c_int,
        timeout_ms: i64,
        prefix: *const c_char,
    ) -> *mut RawStore;
    fn bcl_store_free(store: *mut RawStore);
    fn bcl_store_set(store: *mut RawStore, key: *const c_char, data: *const u8, len: usize) -> c_int;
    fn bcl_store_get(store: *mut RawStore, key: *const c_char, data: *mut *mut u8, len: *mut usize) -> c_int;
    fn bcl_store_delete(store: *mut RawStore, key: *const c_char) -> c_int;
    fn bcl_store_add(store: *mut RawStore, key: *const c_char, value: i64) -> i64;
    fn bcl_nccl_new(
        store: *mut RawStore,
        rank: c_int,
        world_size: c_int,
        device: c_int,
        timeout_ms: i64,
    ) -> *mut RawGroup;
    fn bcl_group_free(group: *mut RawGroup);
    fn bcl_group_all_reduce_sum(group: *mut RawGroup, tensor: *const c_void) -> c_int;
    fn bcl_group_all_gather(group: *mut RawGroup, output: *const c_void, input: *const c_void) -> c_int;
    fn bcl_group_broadcast(group: *mut RawGroup, tensor: *const c_void, root: c_int) -> c_int;
    fn bcl_sum_over_ranks(
        input: *const c_void,
        sum: extern "C" fn(*mut c_void, *const c_void) -> *const c_char,
        release: extern "C" fn(*mut c_void),
        state: *mut c_void,
    ) -> *mut c_void;
}

fn last_error() -> String {
    // SAFETY: the shim returns a pointer to its thread-local error string.
    unsafe { CStr::from_ptr(bcl_c10d_last_error()) }.to_string_lossy().into_owned()
}

fn check(status: c_int, what: impl FnOnce() -> String) -> Result<()> {
    if status < 0 {
        bail!("{}: {}", what(), last_error());
    }
    Ok(())
}

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).with_context(|| format!("{text:?} contains a NUL byte"))
}

/// Whether this build of bcl has the NCCL process group (compiled against CUDA headers).
pub fn has_nccl() -> bool {
    // SAFETY: no arguments.
    unsafe { bcl_c10d_has_nccl() == 1 }
}

/// An in-place sum of a tensor over the ranks: what [`sum_over_ranks`] differentiates.
pub trait SumInPlace: Send + Sync + 'static {
    fn sum_in_place(&self, tensor: &Tensor) -> Result<()>;
}

/// Σ over the ranks of `input`, as a new tensor that autograd differentiates through: the
/// gradient `input` receives is the sum over the ranks of the gradients the result receives
/// (each rank's loss depends on every rank's input). tch cannot define such an autograd
/// function, so the shim does, calling back `summer` both ways; it keeps `summer` alive
/// while a graph needs it.
pub fn sum_over_ranks<S: SumInPlace>(summer: Arc<S>, input: &Tensor) -> Result<Tensor> {
    let state = Arc::into_raw(summer).cast_mut().cast();
    // SAFETY: see the extern block; the shim takes over `state` and hands it back to
    // `release_summer` exactly once; on success it returns a new `at::Tensor*`, which the
    // returned `Tensor` owns.
    let raw = unsafe { bcl_sum_over_ranks(input.as_ptr().cast(), call_summer::<S>, release_summer::<S>, state) };
    ensure!(!raw.is_null(), "sum over the ranks: {}", last_error());
    // SAFETY: as above.
    Ok(unsafe { Tensor::from_ptr(raw.cast()) })
}

thread_local! {
    /// Why the last callback on this thread failed; the shim copies it at once.
    static CALLBACK_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

extern "C" fn call_summer<S: SumInPlace>(state: *mut c_void, tensor: *const c_void) -> *const c_char {
    // SAFETY: `state` came from `Arc::into_raw` in `sum_over_ranks` and is released only
    // after the last call; `tensor` is an `at::Tensor*` the shim owns for the call, which we
    // borrow (ManuallyDrop: not freed here).
    let summer = unsafe { &*state.cast_const().cast::<S>() };
    let tensor = ManuallyDrop::new(unsafe { Tensor::from_ptr(tensor.cast_mut().cast()) });
    // A panic must not unwind into C++: it becomes the error.
    let message = match std::panic::catch_unwind(AssertUnwindSafe(|| summer.sum_in_place(&tensor))) {
        Ok(Ok(())) => return std::ptr::null(),
        Ok(Err(error)) => format!("{error:#}"),
        Err(_) => "the sum over the ranks panicked".to_string(),
    };
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    CALLBACK_ERROR.with_borrow_mut(|slot| {
        *slot = message;
        slot.as_ptr()
    })
}

extern "C" fn release_summer<S: SumInPlace>(state: *mut c_void) {
    // SAFETY: `state` came from `Arc::into_raw`, and the shim releases it once.
    drop(unsafe { Arc::from_raw(state.cast_const().cast::<S>()) });
}

/// A client of c10d's `TCPStore`, a key-value server that rank 0 (or the launcher) hosts.
pub struct Store(NonNull<RawStore>);

impl Store {
    /// Rank 0 listens on `host:port`, the others connect to it; every rank waits (up to
    /// `timeout`, which also bounds each later `get`) until all `world_size` have joined.
    /// With `launcher_prefix`, a launcher (torchrun's agent) already serves `host:port`:
    /// every rank connects to it, and keeps its keys under that prefix.
    pub fn connect(
        host: &str,
        port: u16,
        (rank, world_size): (usize, usize),
        timeout: Duration,
        launcher_prefix: Option<&str>,
    ) -> Result<Self> {
        let c_host = c_string(host)?;
        let c_prefix = c_string(launcher_prefix.unwrap_or(""))?;
        let is_server = (rank == 0 && launcher_prefix.is_none()) as c_int;
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        // SAFETY: see the extern block.
        let raw = unsafe {
            bcl_store_connect(c_host.as_ptr(), port, is_server, world_size as c_int, timeout_ms, c_prefix.as_ptr())
        };
        NonNull::new(raw).map(Store).with_context(|| {
            format!("rank {rank} of {world_size}: could not meet the others at {host}:{port}: {}", last_error())
        })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let c_key = c_string(key)?;
        // SAFETY: see the extern block; `value` is valid for `value.len()` bytes.
        check(unsafe { bcl_store_set(self.0.as_ptr(), c_key.as_ptr(), value.as_ptr(), value.len()) }, || {
            format!("store set {key:?}")
        })
    }

    /// The value of `key`, waiting for another rank to set it.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let c_key = c_string(key)?;
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: see the extern block; on success `data` holds `len` malloc'ed bytes, which
        // we copy and free.
        unsafe {
            check(bcl_store_get(self.0.as_ptr(), c_key.as_ptr(), &mut data, &mut len), || {
                format!("store get {key:?}")
            })?;
            let value = std::slice::from_raw_parts(data, len).to_vec();
            bcl_c10d_free(data.cast());
            Ok(value)
        }
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let c_key = c_string(key)?;
        // SAFETY: see the extern block.
        check(unsafe { bcl_store_delete(self.0.as_ptr(), c_key.as_ptr()) }, || format!("store delete {key:?}"))
    }

    /// Adds `value` to the counter `key` and returns its new value.
    pub fn add(&self, key: &str, value: i64) -> Result<i64> {
        let c_key = c_string(key)?;
        // SAFETY: see the extern block.
        let total = unsafe { bcl_store_add(self.0.as_ptr(), c_key.as_ptr(), value) };
        check(if total < 0 { -1 } else { 0 }, || format!("store add {key:?}"))?;
        Ok(total)
    }
}

// SAFETY: c10d's TCPStore client serialises its operations with its own lock, and PyTorch
// uses one store from many threads; the handle is owned, never aliased mutably.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: we own the handle.
        unsafe { bcl_store_free(self.0.as_ptr()) }
    }
}

/// c10d's NCCL process group: collectives on CUDA tensors, ranks in `0..world_size`.
pub struct NcclGroup(NonNull<RawGroup>);

impl NcclGroup {
    /// Joins the group on CUDA device `device` (made this thread's current device); a
    /// collective that waits longer than `timeout` fails.
    pub fn new(store: &Store, rank: usize, world_size: usize, device: usize, timeout: Duration) -> Result<Self> {
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let (rank, world_size, device) = (rank as c_int, world_size as c_int, device as c_int);
        // SAFETY: see the extern block; the group keeps its own reference to the store.
        let raw = unsafe { bcl_nccl_new(store.0.as_ptr(), rank, world_size, device, timeout_ms) };
        NonNull::new(raw).map(NcclGroup).with_context(|| format!("NCCL process group: {}", last_error()))
    }

    /// In place: the element-wise sum over the ranks.
    pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()> {
        // SAFETY: see the extern block.
        check(unsafe { bcl_group_all_reduce_sum(self.0.as_ptr(), tensor.as_ptr().cast()) }, || "NCCL all-reduce".into())
    }

    /// `output` (world_size × the elements of `input`) ← every rank's `input`, in rank order.
    pub fn all_gather(&self, output: &Tensor, input: &Tensor) -> Result<()> {
        // SAFETY: see the extern block.
        check(unsafe { bcl_group_all_gather(self.0.as_ptr(), output.as_ptr().cast(), input.as_ptr().cast()) }, || {
            "NCCL all-gather".into()
        })
    }

    /// In place: rank `root`'s tensor on every rank.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()> {
        // SAFETY: see the extern block.
        check(unsafe { bcl_group_broadcast(self.0.as_ptr(), tensor.as_ptr().cast(), root as c_int) }, || {
            "NCCL broadcast".into()
        })
    }
}

// SAFETY: ProcessGroupNCCL is thread-safe (PyTorch's autograd threads call it during
// backward, as SyncBatchNorm does); the handle is owned, never aliased mutably.
unsafe impl Send for NcclGroup {}
unsafe impl Sync for NcclGroup {}

impl Drop for NcclGroup {
    fn drop(&mut self) {
        // SAFETY: we own the handle.
        unsafe { bcl_group_free(self.0.as_ptr()) }
    }
}
