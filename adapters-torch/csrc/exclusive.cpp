// Whether a tensor is the only handle on its storage, so that the batch pool may write into
// it again (adapters-torch/src/pool.rs). tch exposes no reference counts; this reads
// libtorch's own: one at::Tensor handle on the TensorImpl, no weak references to it, and
// one TensorImpl on the storage (views and shallow clones each add one).
#include <ATen/core/TensorBase.h>

extern "C" int deriva_tensor_is_exclusive(const void *t) {
  // tch's C_tensor is a heap-allocated at::Tensor, whose only base is at::TensorBase.
  const at::TensorBase *tensor = static_cast<const at::TensorBase *>(t);
  if (!tensor->defined() || !tensor->has_storage()) return 0;
  if (tensor->use_count() != 1 || tensor->weak_use_count() != 1) return 0;
  return tensor->storage().use_count() == 1 ? 1 : 0;
}
