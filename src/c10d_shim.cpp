// A C interface to libtorch's own distributed engine (c10d) for src/c10d.rs: the TCPStore
// rendezvous (in libtorch_cpu) and, when built with CUDA headers, the NCCL process group
// (in libtorch_cuda). Every function catches C++ exceptions: it returns null or -1, and
// bcl_c10d_last_error() says why.
//
// It also holds the one piece of autograd that Rust cannot express with tch: a sum over the
// ranks that sums the gradients over the ranks on the way back (for SyncBatchNorm).
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef BCL_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
thread_local std::string last_error;

template <typename F>
auto guarded(F f, decltype(f()) failed) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    // libtorch's what() appends its C++ backtrace: noise in a user's error message.
    last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return failed;
}
// Rust's in-place sum over the ranks: returns null, or why it failed (valid until the next
// call on this thread). `release` drops `state` once no autograd graph needs it.
using bcl_sum_fn = const char* (*)(void* state, const at::Tensor* tensor);
using bcl_release_fn = void (*)(void* state);

struct RankSum : torch::CustomClassHolder {
  bcl_sum_fn sum;
  bcl_release_fn release;
  void* state;
  RankSum(bcl_sum_fn sum, bcl_release_fn release, void* state) : sum(sum), release(release), state(state) {}
  ~RankSum() override { release(state); }
  // A summed copy of `tensor`.
  at::Tensor operator()(const at::Tensor& tensor) const {
    at::Tensor copy = tensor.contiguous().clone();
    if (const char* error = sum(state, &copy)) throw std::runtime_error(error);
    return copy;
  }
};

// y = Σ_ranks x, and on the way back dL/dx = Σ_ranks dL_r/dy: every rank's loss depends on
// the sum, so each rank's input gets the gradients of all of them.
struct SumOverRanks : torch::autograd::Function<SumOverRanks> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            const c10::intrusive_ptr<RankSum>& sum) {
    ctx->saved_data["sum"] = c10::IValue::make_capsule(sum);
    return (*sum)(input);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto sum = c10::static_intrusive_pointer_cast<RankSum>(ctx->saved_data["sum"].toCapsule());
    return {(*sum)(grads[0]), at::Tensor()};
  }
};
}  // namespace

struct bcl_store {
  c10::intrusive_ptr<c10d::Store> store;
};

// A process group through c10d's backend interface (libtorch_cpu's headers): only its
// creation needs NCCL's.
struct bcl_group {
  c10::intrusive_ptr<c10d::Backend> group;
};

extern "C" {

const char* bcl_c10d_last_error() { return last_error.c_str(); }

int bcl_c10d_has_nccl() {
#ifdef BCL_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

// The server (is_server) listens on port; the others connect. The server waits up to
// timeout_ms for them. Keys live under `prefix` when it is not empty.
bcl_store* bcl_store_connect(const char* host, uint16_t port, int is_server, int world_size,
                             int64_t timeout_ms, const char* prefix) {
  return guarded(
      [&]() -> bcl_store* {
        c10d::TCPStoreOptions options;
        options.port = port;
        options.isServer = is_server != 0;
        options.numWorkers = static_cast<size_t>(world_size);
        options.waitWorkers = true;
        options.timeout = std::chrono::milliseconds(timeout_ms);
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, options);
        if (prefix[0] != '\0') store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
        return new bcl_store{store};
      },
      nullptr);
}

void bcl_store_free(bcl_store* store) { delete store; }

int bcl_store_set(bcl_store* store, const char* key, const uint8_t* data, size_t len) {
  return guarded(
      [&]() {
        store->store->set(key, std::vector<uint8_t>(data, data + len));
        return 0;
      },
      -1);
}

// Blocks until the key exists (or the store's timeout). The value is malloc'ed: free it
// with bcl_c10d_free.
int bcl_store_get(bcl_store* store, const char* key, uint8_t** data, size_t* len) {
  return guarded(
      [&]() {
        std::vector<uint8_t> value = store->store->get(key);
        *len = value.size();
        *data = static_cast<uint8_t*>(std::malloc(value.size() > 0 ? value.size() : 1));
        if (*data == nullptr) throw std::bad_alloc();
        std::memcpy(*data, value.data(), value.size());
        return 0;
      },
      -1);
}

void bcl_c10d_free(void* data) { std::free(data); }

int bcl_store_delete(bcl_store* store, const char* key) {
  return guarded([&]() { return store->store->deleteKey(key) ? 1 : 0; }, -1);
}

// Adds to a counter and returns its new value (-1 on error).
int64_t bcl_store_add(bcl_store* store, const char* key, int64_t value) {
  return guarded([&]() { return store->store->add(key, value); }, static_cast<int64_t>(-1));
}

// Makes `device` this thread's current CUDA device (as torch.cuda.set_device(local_rank)
// does in PyTorch scripts), then joins the NCCL group.
bcl_group* bcl_nccl_new(bcl_store* store, int rank, int world_size, int device, int64_t timeout_ms) {
#ifdef BCL_WITH_NCCL
  return guarded(
      [&]() -> bcl_group* {
        c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = std::chrono::milliseconds(timeout_ms);
        auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store->store, rank, world_size, options);
        return new bcl_group{group};
      },
      nullptr);
#else
  (void)store;
  (void)rank;
  (void)world_size;
  (void)device;
  (void)timeout_ms;
  last_error = "this bcl was built without NCCL (no CUDA headers at build time)";
  return nullptr;
#endif
}

// Shuts the group down first, as torch.distributed.destroy_process_group() does (libtorch
// warns about a group destroyed without it).
void bcl_group_free(bcl_group* group) {
  guarded(
      [&]() {
        group->group->shutdown();
        return 0;
      },
      -1);
  delete group;
}

namespace {
int wait(const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait();
  return 0;
}
}  // namespace

// In place: the element-wise sum over ranks.
int bcl_group_all_reduce_sum(bcl_group* group, const at::Tensor* tensor) {
  return guarded(
      [&]() {
        std::vector<at::Tensor> tensors{*tensor};
        return wait(group->group->allreduce(tensors));
      },
      -1);
}

// output (world_size · n elements, contiguous) ← every rank's input (n elements), in rank order.
int bcl_group_all_gather(bcl_group* group, const at::Tensor* output, const at::Tensor* input) {
  return guarded(
      [&]() {
        at::Tensor out = *output, in = *input;  // handles on the same storage
        return wait(group->group->_allgather_base(out, in));
      },
      -1);
}

// In place: root's tensor on every rank.
int bcl_group_broadcast(bcl_group* group, const at::Tensor* tensor, int root) {
  return guarded(
      [&]() {
        std::vector<at::Tensor> tensors{*tensor};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        return wait(group->group->broadcast(tensors, options));
      },
      -1);
}

// A new tensor: Σ over the ranks of `input`, through `sum`, differentiable (see
// SumOverRanks). Takes ownership of `state`: `release` is called once, even on failure.
at::Tensor* bcl_sum_over_ranks(const at::Tensor* input, bcl_sum_fn sum, bcl_release_fn release, void* state) {
  c10::intrusive_ptr<RankSum> holder;
  try {
    holder = c10::make_intrusive<RankSum>(sum, release, state);
  } catch (...) {
    release(state);
    last_error = "out of memory";
    return nullptr;
  }
  return guarded([&]() { return new at::Tensor(SumOverRanks::apply(*input, holder)); }, nullptr);
}

}  // extern "C"
