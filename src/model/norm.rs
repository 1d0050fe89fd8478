//! BatchNorm, with training statistics over this process's batch (as `nn.BatchNorm`) or,
//! inside [`with_statistics_over_ranks`], over every rank's batch (as `nn.SyncBatchNorm`):
//! the same statistics one process would take over the global batch, for data-parallel
//! runs whose per-GPU batch is small.
//!
//! Which statistics a training forward pass uses is a mode of the thread, like autocast
//! or `no_grad`, so that the model's layers need no handle on the process group.
use std::cell::RefCell;
use std::rc::Rc;

use anyhow::Result;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// PyTorch's BatchNorm defaults.
const MOMENTUM: f64 = 0.1;
const EPS: f64 = 1e-5;

/// A differentiable sum of a tensor over the ranks (see [`crate::c10d::sum_over_ranks`]).
pub type SumOverRanks = dyn Fn(&Tensor) -> Result<Tensor>;

thread_local! {
    static SUM_OVER_RANKS: RefCell<Option<Rc<SumOverRanks>>> = const { RefCell::new(None) };
    /// The first failure of a sum inside the current scope.
    static FAILURE: RefCell<Option<anyhow::Error>> = const { RefCell::new(None) };
}

/// Runs `forward` (a training forward pass) with every BatchNorm layer taking its batch
/// statistics over all ranks through `sum`. A sum that fails (a rank gone, a timeout)
/// makes this an error.
pub fn with_statistics_over_ranks<T>(sum: Rc<SumOverRanks>, forward: impl FnOnce() -> T) -> Result<T> {
    /// Restores the previous mode even if `forward` panics.
    struct Restore(Option<Rc<SumOverRanks>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SUM_OVER_RANKS.set(self.0.take());
        }
    }
    let _restore = Restore(SUM_OVER_RANKS.replace(Some(sum)));
    let out = forward();
    match FAILURE.take() {
        Some(error) => Err(error.context("BatchNorm statistics over the ranks")),
        None => Ok(out),
    }
}

/// BatchNorm over channels (dimension 1), with PyTorch's initialisation (weight 1, bias 0;
/// tch's default weight is U(0, 1)) and parameter names.
#[derive(Debug)]
pub struct BatchNorm {
    local: nn::BatchNorm,
}

impl BatchNorm {
    /// `dims`: 1 for (N, C) inputs, 2 for (N, C, H, W).
    pub fn new(vs: nn::Path, channels: i64, dims: usize) -> Self {
        let config = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            momentum: MOMENTUM,
            eps: EPS,
            ..Default::default()
        };
        let local = match dims {
            1 => nn::batch_norm1d(vs, channels, config),
            _ => nn::batch_norm2d(vs, channels, config),
        };
        BatchNorm { local }
    }

    /// Training-mode BatchNorm whose statistics are summed over the ranks by `sum`:
    /// mean = Σx / n and biased var = Σx² / n − mean² over all n samples of all ranks, each
    /// rank's input receiving the gradients of every rank's loss through the sums. The
    /// running statistics (unbiased variance, as PyTorch) are the same on every rank.
    fn forward_over_ranks(&self, xs: &Tensor, sum: &SumOverRanks) -> Result<Tensor> {
        let size = xs.size();
        let channels = size[1];
        let dims: Vec<i64> = (0..size.len() as i64).filter(|&d| d != 1).collect();
        // Half-precision activations (autocast) are normalised in f32, as cuDNN does.
        let kind = match xs.kind() {
            Kind::Half | Kind::BFloat16 => Kind::Float,
            kind => kind,
        };
        let x = xs.to_kind(kind);
        let count = x.new_full([1], (x.numel() as i64 / channels) as f64, (kind, x.device()));
        let over_samples = |t: &Tensor| t.sum_dim_intlist(dims.as_slice(), false, kind);
        let local = Tensor::cat(&[over_samples(&x), over_samples(&x.square()), count], 0);
        let global = sum(&local)?;
        let n = global.narrow(0, 2 * channels, 1).detach();
        let mean = global.narrow(0, 0, channels) / &n;
        let var = (global.narrow(0, channels, channels) / &n - mean.square()).clamp_min(0.0);
        tch::no_grad(|| {
            let (running_mean, running_var) = (&self.local.running_mean, &self.local.running_var);
            let unbiased = &var * &n / (&n - 1.0).clamp_min(1.0);
            running_mean.shallow_clone().copy_(&(running_mean * (1.0 - MOMENTUM) + mean.detach() * MOMENTUM));
            running_var.shallow_clone().copy_(&(running_var * (1.0 - MOMENTUM) + unbiased * MOMENTUM));
        });
        let mut shape = vec![1i64; size.len()];
        shape[1] = channels;
        let scale = (var + EPS).rsqrt() * self.local.ws.as_ref().expect("affine BatchNorm");
        let shift = self.local.bs.as_ref().expect("affine BatchNorm") - &mean * &scale;
        Ok((x * scale.view(shape.as_slice()) + shift.view(shape.as_slice())).to_kind(xs.kind()))
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        // After a failed sum, the others would only wait for the same missing rank.
        let failed = FAILURE.with_borrow(Option::is_some);
        let sum = if train && !failed { SUM_OVER_RANKS.with_borrow(Clone::clone) } else { None };
        match sum.map(|sum| self.forward_over_ranks(xs, sum.as_ref())) {
            None => xs.apply_t(&self.local, train),
            Some(Ok(out)) => out,
            Some(Err(error)) => {
                // Reported by with_statistics_over_ranks once the forward pass returns.
                FAILURE.with_borrow_mut(|failure| {
                    failure.get_or_insert(error);
                });
                xs.apply_t(&self.local, train)
            }
        }
    }
}
