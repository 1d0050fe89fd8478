//! SGD with momentum, weight decay and Nesterov, as `torch.optim.SGD` (dampening 0), kept
//! in Rust so that its momentum buffers can be checkpointed (tch's optimizer hides them).
use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use tch::{Tensor, nn};

/// The trainable parameters of `vs` by name, in name order.
pub fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut parameters: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    parameters.sort_by(|a, b| a.0.cmp(&b.0));
    parameters
}

unsafe extern "C" {
    /// src/tensor_shim.cpp: drops the gradient of `tensor`.
    fn bcl_tensor_clear_grad(tensor: *mut torch_sys::C_tensor);
}

/// Drops the parameters' gradients before a backward pass (PyTorch's
/// `zero_grad(set_to_none=True)`): the pass then writes new ones instead of adding to zeros,
/// two passes over the parameters' memory fewer (a few percent of a ViT-B/16 step).
pub fn clear_gradients(parameters: &[(String, Tensor)]) {
    for (_, p) in parameters {
        // SAFETY: `p`'s own live handle; the shim resets the gradient of the tensor it points
        // to and leaves the handle as it is (no new handle per parameter and step).
        unsafe { bcl_tensor_clear_grad(p.as_ptr() as *mut torch_sys::C_tensor) };
    }
}

#[derive(Debug)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Momentum buffer per parameter name; absent until the parameter's first step.
    buffers: BTreeMap<String, Tensor>,
    /// Learning-rate multipliers of the parameters under a name prefix (PyTorch's parameter
    /// groups): the first matching prefix applies, 1 where none does.
    lr_scales: Vec<(String, f64)>,
}

impl Sgd {
    pub fn new(momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        Self { momentum, weight_decay, nesterov, buffers: BTreeMap::new(), lr_scales: Vec::new() }
    }

    /// This optimizer with the parameters whose names start with `prefix` at `scale` times
    /// the learning rate.
    pub fn with_lr_scale(mut self, prefix: &str, scale: f64) -> Self {
        self.lr_scales.push((prefix.to_string(), scale));
        self
    }

    fn lr_scale(&self, name: &str) -> f64 {
        self.lr_scales.iter().find(|(prefix, _)| name.starts_with(prefix.as_str())).map_or(1.0, |(_, s)| *s)
    }

    /// One update of each named parameter that has a gradient, with learning rate `lr`:
    ///   g ← ∇ + wd · p;  b ← μ · b + g (b ← g at the first step);
    ///   p ← p − lr · (g + μ · b) with Nesterov, p ← p − lr · b without.
    /// The gradients are updated in place (a step ends their use: the next backward pass
    /// starts from none, [`clear_gradients`]), so that a step makes four passes over each
    /// parameter's memory and allocates nothing after the first.
    pub fn step(&mut self, parameters: &[(String, Tensor)], lr: f64) {
        tch::no_grad(|| {
            for (name, p) in parameters {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                let scalar = |value: f64| Tensor::scalar_tensor(value, (p.kind(), p.device()));
                if self.weight_decay != 0.0 {
                    let _ = g.addcmul_(p, &scalar(self.weight_decay));
                }
                if self.momentum != 0.0 {
                    let buffer = match self.buffers.get_mut(name) {
                        Some(b) => {
                            let _ = b.g_mul_scalar_(self.momentum).g_add_(&g);
                            b.shallow_clone()
                        }
                        None => {
                            let b = g.detach().copy();
                            self.buffers.insert(name.clone(), b.shallow_clone());
                            b
                        }
                    };
                    if self.nesterov {
                        let _ = g.addcmul_(&buffer, &scalar(self.momentum));
                    } else {
                        g = buffer;
                    }
                }
                let _ = p.shallow_clone().addcmul_(&g, &scalar(-lr * self.lr_scale(name)));
            }
        })
    }

    /// The momentum buffers by parameter name, to checkpoint.
    pub fn buffers(&self) -> &BTreeMap<String, Tensor> {
        &self.buffers
    }

    /// Restores checkpointed buffers; each must belong to a parameter of the same shape.
    pub fn load_buffers(&mut self, buffers: BTreeMap<String, Tensor>, parameters: &[(String, Tensor)]) -> Result<()> {
        let mut loaded = BTreeMap::new();
        for (name, buffer) in buffers {
            let Some((_, p)) = parameters.iter().find(|(n, _)| *n == name) else {
                bail!("the optimizer state has a buffer for {name:?}, which the model does not have");
            };
            ensure!(
                p.size() == buffer.size(),
                "the optimizer buffer of {name:?} has shape {:?}, the parameter {:?}",
                buffer.size(),
                p.size()
            );
            loaded.insert(name, buffer.to_device(p.device()));
        }
        self.buffers = loaded;
        Ok(())
    }
}
