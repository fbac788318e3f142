//! Reused tensor buffers: no page-fault storm in collation.
//!
//! A fresh `[32, 3, 224, 224]` batch (19 MB) and a fresh `[3, 224, 224]` sample (0.6 MB) per
//! image are large enough that the C allocator maps them from the kernel and unmaps them on
//! free, so every pass faulted in every page again (about a million page faults per pass of
//! 5,000 images, against TensorFlow's 78 thousand), and with workers the faults contend in
//! the kernel. Instead:
//!
//! * a [`DataLoader`](crate::DataLoader) keeps a [`BatchPool`]: each batch tensor comes from
//!   it and goes back when the [`TorchBatch`](crate::TorchBatch) is dropped;
//! * sample tensors that collation has copied into a batch are kept (up to 64 MB, for the
//!   life of the process; [`recycle_sample`]) for the image pipeline's next sample of the
//!   same shape ([`take_sample`]).
//!
//! A tensor is only written again when it is provably unshared: libtorch's reference counts
//! (read by `csrc/exclusive.cpp`) show one handle, no weak reference and no view or shallow
//! clone of its storage. A batch tensor that the caller kept (a clone, a view, an autograd
//! graph holding it) is simply not returned, so reuse never changes values someone can see.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

extern "C" {
    fn deriva_tensor_is_exclusive(t: *const std::ffi::c_void) -> std::ffi::c_int;
}

/// Whether `t` is the only reference to its storage (so writing into it is unobservable).
pub(crate) fn is_exclusive(t: &Tensor) -> bool {
    // SAFETY: `as_ptr` is tch's live `at::Tensor*` for `t`, which outlives the call; the C++
    // side only reads reference counts.
    unsafe { deriva_tensor_is_exclusive(t.as_ptr().cast()) == 1 }
}

fn reusable(t: &Tensor, shape: &[i64]) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && t.size() == shape
}

/// Batch tensors handed back by dropped batches, for the next batches of the same shape.
#[derive(Debug)]
pub(crate) struct BatchPool {
    free: Mutex<Vec<Tensor>>,
    /// The most tensors kept (batches in flight: workers × prefetch, plus the consumer's).
    capacity: usize,
}

impl BatchPool {
    pub(crate) fn new(capacity: usize) -> Self {
        BatchPool {
            free: Mutex::new(Vec::new()),
            capacity,
        }
    }

    /// A CPU float tensor of `shape`: a returned one when there is one, else a new `empty`.
    pub(crate) fn take(&self, shape: &[i64]) -> Tensor {
        let reused = self.free.lock().ok().and_then(|mut free| {
            let i = free.iter().position(|t| reusable(t, shape))?;
            Some(free.swap_remove(i))
        });
        reused.unwrap_or_else(|| Tensor::empty(shape, (Kind::Float, Device::Cpu)))
    }

    /// Keeps `t` for reuse if nothing else refers to it and there is room.
    pub(crate) fn give_back(&self, t: Tensor) {
        if !is_exclusive(&t) {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.capacity {
                free.push(t);
            }
        }
    }

    /// How many tensors wait for reuse.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

/// The most bytes of sample tensors kept for reuse (about 100 samples of 3 × 224 × 224).
const SAMPLE_BYTES: usize = 64 << 20;

/// Sample tensors that collation copied into a batch, for the image pipeline's next samples:
/// shared by all threads, because loader workers are started anew for every epoch.
static SAMPLES: Mutex<Vec<Tensor>> = Mutex::new(Vec::new());

fn bytes(t: &Tensor) -> usize {
    t.numel() * std::mem::size_of::<f32>()
}

/// A recycled CPU float tensor of `shape`, if any.
pub(crate) fn take_sample(shape: &[i64]) -> Option<Tensor> {
    let mut samples = SAMPLES.lock().ok()?;
    let i = samples.iter().position(|t| reusable(t, shape))?;
    Some(samples.swap_remove(i))
}

/// Keeps a sample tensor whose values were copied into a batch, if nothing else refers to it
/// and the kept ones stay under [`SAMPLE_BYTES`].
pub(crate) fn recycle_sample(t: Tensor) {
    if t.kind() != Kind::Float || t.device() != Device::Cpu || !is_exclusive(&t) {
        return;
    }
    if let Ok(mut samples) = SAMPLES.lock() {
        let kept: usize = samples.iter().map(bytes).sum();
        if kept + bytes(&t) <= SAMPLE_BYTES {
            samples.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_with_a_view_or_clone_is_not_exclusive() {
        let t = Tensor::empty([2, 3], (Kind::Float, Device::Cpu));
        assert!(is_exclusive(&t));
        let clone = t.shallow_clone();
        assert!(!is_exclusive(&t));
        drop(clone);
        assert!(is_exclusive(&t));
        let view = t.get(0);
        assert!(!is_exclusive(&t));
        drop(view);
        assert!(is_exclusive(&t));
    }

    #[test]
    fn recycled_samples_come_back_for_the_same_shape_unless_shared() {
        // A shape no other test uses: the sample pool is shared by the whole process.
        let shape = [3i64, 7, 5];
        let t = Tensor::empty(shape, (Kind::Float, Device::Cpu));
        let ptr = t.data_ptr();
        recycle_sample(t);
        assert!(take_sample(&[3, 5, 7]).is_none());
        let back = take_sample(&shape).unwrap();
        assert_eq!(back.data_ptr(), ptr);
        assert!(take_sample(&shape).is_none(), "taken once");
        let view = back.get(0);
        recycle_sample(back);
        assert!(
            take_sample(&shape).is_none(),
            "a sample with a live view is not kept"
        );
        drop(view);
    }

    #[test]
    fn the_pool_reuses_returned_storage_and_refuses_shared_tensors() {
        let pool = BatchPool::new(2);
        let a = pool.take(&[4, 2]);
        let ptr = a.data_ptr();
        pool.give_back(a);
        assert_eq!(pool.len(), 1);
        let again = pool.take(&[4, 2]);
        assert_eq!(again.data_ptr(), ptr, "the same storage comes back");
        assert_eq!(pool.len(), 0);
        let other_shape = pool.take(&[2, 2]);
        assert_ne!(other_shape.data_ptr(), ptr);
        let kept = again.shallow_clone();
        pool.give_back(again);
        assert_eq!(
            pool.len(),
            0,
            "a tensor the caller still holds is not reused"
        );
        drop(kept);
        for _ in 0..3 {
            pool.give_back(Tensor::empty([4, 2], (Kind::Float, Device::Cpu)));
        }
        assert_eq!(pool.len(), 2, "capacity");
    }
}
