// What tch does not expose about a tensor: for src/loader.rs, whether a handle is the only
// one to its tensor and storage, so that a loader worker may write a new batch into it; for
// src/optim.rs, dropping a parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
#include <ATen/core/Tensor.h>

extern "C" int bcl_tensor_is_unshared(const at::Tensor* tensor) {
  // Shallow copies share the TensorImpl; views (and autograd's saved inputs) the storage.
  return tensor->use_count() == 1 && tensor->storage().use_count() == 1;
}

extern "C" void bcl_tensor_clear_grad(at::Tensor* tensor) {
  tensor->mutable_grad().reset();
}
