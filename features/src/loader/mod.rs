//! The framework-neutral loader core shared by the PyTorch and TensorFlow adapters.
//!
//! In the spirit of `burn-dataset`: a tiny [`SampleSource`] trait (`len`, `get`), a
//! composable [`SampleSourceExt::map`] wrapper, and one [`Loader`] that turns any source into
//! batches — ordered, or shuffled with a seed; sharded by `(rank, world_size)` for
//! distributed training; cut into batches with or without `drop_last`; loaded on
//! `num_workers` threads with bounded prefetch. Collation (turning a `Vec` of items into a
//! framework batch) is a closure the adapter supplies, so both adapters share every line of
//! ordering, sharding and threading logic.
//!
//! [`elements`] holds the other shared half: enumerating a dataset's elements, resolving
//! their targets and producing `(sample, target, rid)` items; [`collate`] the shared rules
//! for stacking labels, row columns and padded shapes; [`cache`] the `.cache()`-style
//! sample cache both adapters offer.
//!
//! Guarantees, for every epoch:
//! * without shuffling, items come in source order (the adapters' sources are sorted by RID);
//! * with `shuffle(seed)`, the order is a pure function of `(seed, epoch)` — the same on every
//!   machine, every run and every worker count;
//! * across ranks `0..world_size` the shards are disjoint and together hold every index
//!   exactly once (by default no padding, unlike torch's `DistributedSampler`: duplicated
//!   samples would bias metrics), so shard sizes may differ by one;
//! * with [`LoaderOptions::even_shards`] every rank gets the same number of elements, so
//!   every rank runs the same number of steps and collective ops (all-reduce) do not hang:
//!   [`EvenShards::Pad`] repeats the first elements of the epoch's order (wrapping around)
//!   until the length divides by `world_size`, as `DistributedSampler(drop_last=False)`;
//!   [`EvenShards::Drop`] leaves out the last `len % world_size` elements of the epoch's
//!   order, as `DistributedSampler(drop_last=True)`. Shuffled, the padded or dropped
//!   elements change from epoch to epoch;
//! * every rank computes the same order for epoch `e` from `(seed, e)` alone (torch's
//!   `set_epoch(e)` is [`Loader::epoch`]`(e)`, or the `e`-th call of [`Loader::iter`]), so
//!   the shards of one epoch stay disjoint (but for `Pad`'s repeats) without any
//!   communication between ranks;
//! * batches are yielded in the same order whatever `num_workers` is;
//! * every kept element (all of them unless `drop_last` drops a short final batch) is yielded
//!   exactly once.
//!
//! ```
//! use std::sync::Arc;
//! use deriva_bag_features::loader::{Loader, LoaderOptions, SampleSource};
//!
//! /// The squares 0, 1, 4, … as a source.
//! struct Squares(usize);
//! impl SampleSource for Squares {
//!     type Item = u64;
//!     type Error = std::convert::Infallible;
//!     fn len(&self) -> usize { self.0 }
//!     fn get(&self, i: usize) -> Result<u64, Self::Error> { Ok((i * i) as u64) }
//! }
//!
//! let options = LoaderOptions::default().batch_size(4).num_workers(2);
//! let loader = Loader::new(Arc::new(Squares(10)), options, |items: Vec<u64>| Ok(items)).unwrap();
//! let batches: Vec<Vec<u64>> = loader.epoch(0).map(Result::unwrap).collect();
//! assert_eq!(batches, vec![vec![0, 1, 4, 9], vec![16, 25, 36, 49], vec![64, 81]]);
//! assert_eq!(loader.len(), 3);
//! ```

pub mod cache;
pub mod collate;
pub mod elements;
#[cfg(feature = "image")]
#[cfg_attr(docsrs, doc(cfg(feature = "image")))]
pub mod image;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::Error;

/// A random-access collection of samples: the whole contract a [`Loader`] needs.
pub trait SampleSource {
    /// One sample (for the adapters: `(sample, target, rid)`).
    type Item;
    /// What loading one sample can fail with.
    type Error;

    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample at `index` (`0..len()`); loaded lazily, on whichever thread asks.
    fn get(&self, index: usize) -> Result<Self::Item, Self::Error>;
}

impl<S: SampleSource + ?Sized> SampleSource for Arc<S> {
    type Item = S::Item;
    type Error = S::Error;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<S::Item, S::Error> {
        (**self).get(index)
    }
}

/// Composable wrappers over any [`SampleSource`].
pub trait SampleSourceExt: SampleSource + Sized {
    /// Applies `f` to every sample as it is loaded (on the loading thread).
    fn map<F, T>(self, f: F) -> Mapped<Self, F>
    where
        F: Fn(Self::Item) -> Result<T, Self::Error>,
    {
        Mapped { source: self, f }
    }

    /// Caches samples in `cache` (`tf.data`'s `.cache()`): the first load of each index is
    /// kept (up to the cache's capacity), later epochs reuse it; see [`cache`].
    fn cache(self, cache: cache::SampleCache<Self::Item>) -> cache::Cached<Self> {
        cache::Cached::new(self, cache)
    }
}

impl<S: SampleSource> SampleSourceExt for S {}

/// A source whose samples pass through a function; see [`SampleSourceExt::map`].
pub struct Mapped<S, F> {
    source: S,
    f: F,
}

impl<S, F, T> SampleSource for Mapped<S, F>
where
    S: SampleSource,
    F: Fn(S::Item) -> Result<T, S::Error>,
{
    type Item = T;
    type Error = S::Error;
    fn len(&self) -> usize {
        self.source.len()
    }
    fn get(&self, index: usize) -> Result<T, S::Error> {
        (self.f)(self.source.get(index)?)
    }
}

/// How a [`Loader`] orders, shards, batches and loads. Built with chained setters from
/// [`LoaderOptions::default`]: batch size 1, source order, keep the last short batch, load on
/// the calling thread, prefetch 2 batches per worker, one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Samples per batch (≥ 1).
    pub batch_size: usize,
    /// `Some(seed)`: shuffle every epoch, reproducibly from `(seed, epoch)`.
    pub shuffle: Option<u64>,
    /// Drop the final batch when it is shorter than `batch_size`.
    pub drop_last: bool,
    /// Loader threads; 0 loads on the thread that iterates (as torch's `num_workers=0`).
    pub num_workers: usize,
    /// Batches each worker may hold ready ahead of the consumer (≥ 1).
    pub prefetch: usize,
    /// This process's shard index, `0..world_size`.
    pub rank: usize,
    /// Number of shards (processes) in distributed training (≥ 1).
    pub world_size: usize,
    /// `Some(mode)`: give every rank the same number of elements (see [`EvenShards`]);
    /// `None`: shard sizes may differ by one.
    pub even_shards: Option<EvenShards>,
}

/// How [`LoaderOptions::even_shards`] makes every rank's shard the same size when the
/// number of elements `n` does not divide by `world_size` — torch's `DistributedSampler`
/// `drop_last=False` / `drop_last=True`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvenShards {
    /// Repeat elements from the start of the epoch's (shuffled) order, wrapping around, until
    /// every rank has `ceil(n / world_size)`: every element is visited, a few twice.
    Pad,
    /// Leave out the last `n % world_size` elements of the epoch's (shuffled) order: every
    /// rank has `floor(n / world_size)`, no element is visited twice.
    Drop,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            batch_size: 1,
            shuffle: None,
            drop_last: false,
            num_workers: 0,
            prefetch: 2,
            rank: 0,
            world_size: 1,
            even_shards: None,
        }
    }
}

impl LoaderOptions {
    /// Sets the batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Shuffles every epoch with this seed.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    /// Drops a short final batch.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Loads on `n` worker threads (0 = on the iterating thread).
    pub fn num_workers(mut self, n: usize) -> Self {
        self.num_workers = n;
        self
    }

    /// Lets each worker hold up to `n` finished batches ahead of the consumer.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Takes shard `rank` of `world_size`.
    pub fn shard(mut self, rank: usize, world_size: usize) -> Self {
        self.rank = rank;
        self.world_size = world_size;
        self
    }

    /// Gives every rank the same number of elements per epoch, padding or dropping the tail
    /// (see [`EvenShards`]); needed when ranks run collective ops in every step.
    ///
    /// ```
    /// use deriva_bag_features::loader::{EvenShards, LoaderOptions};
    ///
    /// // 10 elements over 3 ranks: 4/3/3 by default, 4/4/4 padded, 3/3/3 dropped.
    /// let sizes = |even: Option<EvenShards>| -> Vec<usize> {
    ///     (0..3)
    ///         .map(|rank| {
    ///             let mut options = LoaderOptions::default().shard(rank, 3);
    ///             if let Some(mode) = even {
    ///                 options = options.even_shards(mode);
    ///             }
    ///             options.epoch_indices(10, 0).len()
    ///         })
    ///         .collect()
    /// };
    /// assert_eq!(sizes(None), [4, 3, 3]);
    /// assert_eq!(sizes(Some(EvenShards::Pad)), [4, 4, 4]);
    /// assert_eq!(sizes(Some(EvenShards::Drop)), [3, 3, 3]);
    /// // Padding repeats the start of the order: rank 1 and 2 end with elements 0 and 1.
    /// let padded = LoaderOptions::default().shard(1, 3).even_shards(EvenShards::Pad);
    /// assert_eq!(padded.epoch_indices(10, 0), [1, 4, 7, 0]);
    /// ```
    pub fn even_shards(mut self, mode: EvenShards) -> Self {
        self.even_shards = Some(mode);
        self
    }

    /// Checks the options, naming the bad value.
    pub fn validate(&self) -> Result<(), Error> {
        if self.batch_size == 0 {
            return Err(Error::Invalid(
                "loader batch_size must be at least 1, got 0".into(),
            ));
        }
        if self.prefetch == 0 {
            return Err(Error::Invalid(
                "loader prefetch must be at least 1, got 0".into(),
            ));
        }
        if self.world_size == 0 || self.rank >= self.world_size {
            return Err(Error::Invalid(format!(
                "loader shard rank {} is not in 0..world_size ({})",
                self.rank, self.world_size
            )));
        }
        Ok(())
    }

    /// The source indices this rank visits in `epoch`, in order, before batching.
    ///
    /// All ranks compute the same global order (same seed, same epoch), evened out per
    /// [`EvenShards`] if asked (padded by wrapping around to its start, or cut to a multiple
    /// of `world_size`), then rank `r` takes positions `r, r + world_size, …`: disjoint shards
    /// that cover everything once (or every kept element once, or every element once plus
    /// the padding).
    pub fn epoch_indices(&self, len: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        if let Some(seed) = self.shuffle {
            SplitMix64::for_epoch(seed, epoch).shuffle(&mut order);
        }
        let world = self.world_size.max(1);
        match self.even_shards {
            None => {}
            Some(EvenShards::Drop) => order.truncate(len - len % world),
            Some(EvenShards::Pad) => {
                let padded = len.div_ceil(world) * world;
                // Wraps around as often as needed (more than once when len < world_size).
                let extra: Vec<usize> = order.iter().copied().cycle().take(padded - len).collect();
                order.extend(extra);
            }
        }
        order.into_iter().skip(self.rank).step_by(world).collect()
    }

    /// The batches (lists of source indices) this rank visits in `epoch`.
    pub fn epoch_batches(&self, len: usize, epoch: u64) -> Vec<Vec<usize>> {
        let indices = self.epoch_indices(len, epoch);
        let size = self.batch_size.max(1);
        indices
            .chunks(size)
            .filter(|c| !self.drop_last || c.len() == size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// SplitMix64: a tiny, well-mixed PRNG. Built in (rather than `rand`) so that a seed's
/// permutation is fixed forever, independent of a dependency's algorithm changes.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for one epoch: the same `(seed, epoch)` always gives the same stream, and
    /// epochs differ so every epoch is shuffled afresh.
    fn for_epoch(seed: u64, epoch: u64) -> Self {
        let mut g = SplitMix64(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let _ = g.next_u64();
        g
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-and-reject, no modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The collation closure: the items of one batch in, one framework batch out.
pub type Collate<I, B, E> = dyn Fn(Vec<I>) -> Result<B, E> + Send + Sync;

/// Batches a [`SampleSource`] per [`LoaderOptions`]; iterate one epoch with [`Loader::epoch`]
/// or the next one with [`Loader::iter`]. Re-iterable: every epoch yields every kept element.
pub struct Loader<S: SampleSource, B> {
    source: Arc<S>,
    collate: Arc<Collate<S::Item, B, S::Error>>,
    options: LoaderOptions,
    next_epoch: AtomicU64,
}

impl<S, B> Loader<S, B>
where
    S: SampleSource + Send + Sync + 'static,
    S::Item: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    /// A loader over `source`; `collate` turns the items of one batch into a batch.
    /// Fails when the options are invalid (batch size 0, rank outside the world, …).
    pub fn new<F>(source: Arc<S>, options: LoaderOptions, collate: F) -> Result<Self, Error>
    where
        F: Fn(Vec<S::Item>) -> Result<B, S::Error> + Send + Sync + 'static,
    {
        options.validate()?;
        Ok(Loader {
            source,
            collate: Arc::new(collate),
            options,
            next_epoch: AtomicU64::new(0),
        })
    }

    /// The source.
    pub fn source(&self) -> &Arc<S> {
        &self.source
    }

    /// The options.
    pub fn options(&self) -> &LoaderOptions {
        &self.options
    }

    /// Batches per epoch for this rank.
    pub fn len(&self) -> usize {
        let shard = self.options.epoch_indices(self.source.len(), 0).len();
        let size = self.options.batch_size;
        if self.options.drop_last {
            shard / size
        } else {
            shard.div_ceil(size)
        }
    }

    /// Whether an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates the next epoch (0, 1, 2, … on successive calls; torch's `for batch in loader`).
    pub fn iter(&self) -> Batches<B, S::Error> {
        self.epoch(self.next_epoch.fetch_add(1, Ordering::Relaxed))
    }

    /// Iterates epoch `epoch` (its shuffle order is a function of the seed and `epoch` only).
    pub fn epoch(&self, epoch: u64) -> Batches<B, S::Error> {
        let plan: VecDeque<Vec<usize>> =
            self.options.epoch_batches(self.source.len(), epoch).into();
        tracing::debug!(
            epoch,
            batches = plan.len(),
            workers = self.options.num_workers,
            "loader epoch"
        );
        if self.options.num_workers == 0 {
            let source = Arc::clone(&self.source);
            let collate = Arc::clone(&self.collate);
            let load = move |batch: Vec<usize>| load_batch(&*source, &*collate, &batch);
            return Batches {
                inner: Inner::Inline {
                    plan,
                    load: Box::new(load),
                },
            };
        }
        self.spawn_workers(plan.into())
    }

    /// Worker `w` loads batches `w, w + W, …` into its own bounded channel; the consumer reads
    /// the channels round-robin, so the order is the plan's whatever the timing.
    fn spawn_workers(&self, plan: Vec<Vec<usize>>) -> Batches<B, S::Error> {
        let workers = self.options.num_workers.min(plan.len()).max(1);
        let total = plan.len();
        let plan = Arc::new(plan);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.options.prefetch);
            let source = Arc::clone(&self.source);
            let collate = Arc::clone(&self.collate);
            let worker_plan = Arc::clone(&plan);
            let spawned = std::thread::Builder::new()
                .name(format!("deriva-loader-{w}"))
                .spawn(move || {
                    for batch in worker_plan.iter().skip(w).step_by(workers) {
                        // A send error means the consumer dropped the iterator: stop quietly.
                        if tx.send(load_batch(&*source, &*collate, batch)).is_err() {
                            break;
                        }
                    }
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                // Out of threads: the batches of this worker are loaded inline instead.
                Err(e) => {
                    tracing::warn!("could not start loader worker {w}: {e}; loading inline");
                    drop(rx);
                    return self.inline_fallback(plan);
                }
            }
            receivers.push(rx);
        }
        Batches {
            inner: Inner::Threaded {
                receivers,
                handles,
                next: 0,
                total,
            },
        }
    }

    fn inline_fallback(&self, plan: Arc<Vec<Vec<usize>>>) -> Batches<B, S::Error> {
        let source = Arc::clone(&self.source);
        let collate = Arc::clone(&self.collate);
        let load = move |batch: Vec<usize>| load_batch(&*source, &*collate, &batch);
        Batches {
            inner: Inner::Inline {
                plan: plan.iter().cloned().collect(),
                load: Box::new(load),
            },
        }
    }
}

fn load_batch<S: SampleSource, B>(
    source: &S,
    collate: &Collate<S::Item, B, S::Error>,
    batch: &[usize],
) -> Result<B, S::Error> {
    let items = batch
        .iter()
        .map(|&i| source.get(i))
        .collect::<Result<Vec<_>, _>>()?;
    collate(items)
}

type LoadFn<B, E> = Box<dyn FnMut(Vec<usize>) -> Result<B, E> + Send>;

/// The batches of one epoch, in plan order; `Err` items are batches that failed to load
/// (iteration can continue past them).
pub struct Batches<B, E> {
    inner: Inner<B, E>,
}

enum Inner<B, E> {
    Inline {
        plan: VecDeque<Vec<usize>>,
        load: LoadFn<B, E>,
    },
    Threaded {
        receivers: Vec<Receiver<Result<B, E>>>,
        handles: Vec<JoinHandle<()>>,
        next: usize,
        total: usize,
    },
}

impl<B, E> Iterator for Batches<B, E> {
    type Item = Result<B, E>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Inline { plan, load } => plan.pop_front().map(load),
            Inner::Threaded {
                receivers,
                handles,
                next,
                total,
            } => {
                if *next >= *total {
                    return None;
                }
                let w = *next % receivers.len();
                *next += 1;
                match receivers[w].recv() {
                    Ok(batch) => Some(batch),
                    Err(_) => {
                        // The worker ended without sending: it panicked. Re-raise its panic
                        // here rather than silently ending the epoch short.
                        let handle = handles.remove(w.min(handles.len().saturating_sub(1)));
                        match handle.join() {
                            Err(panic) => std::panic::resume_unwind(panic),
                            Ok(()) => panic!("loader worker {w} exited before its last batch"),
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = match &self.inner {
            Inner::Inline { plan, .. } => plan.len(),
            Inner::Threaded { next, total, .. } => total - next,
        };
        (left, Some(left))
    }
}

impl<B, E> ExactSizeIterator for Batches<B, E> {}

impl<B, E> Drop for Batches<B, E> {
    fn drop(&mut self) {
        if let Inner::Threaded {
            receivers, handles, ..
        } = &mut self.inner
        {
            // Closing the channels makes blocked workers' sends fail, so they exit promptly.
            receivers.clear();
            for handle in handles.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::convert::Infallible;
    use std::time::Duration;

    /// Index i → i, with a per-index delay that makes later-started workers finish first.
    struct Numbers {
        len: usize,
        jitter: bool,
    }

    impl SampleSource for Numbers {
        type Item = usize;
        type Error = Infallible;
        fn len(&self) -> usize {
            self.len
        }
        fn get(&self, i: usize) -> Result<usize, Infallible> {
            if self.jitter {
                std::thread::sleep(Duration::from_micros(((self.len - i) % 7) as u64 * 200));
            }
            Ok(i)
        }
    }

    fn loader(len: usize, options: LoaderOptions) -> Loader<Numbers, Vec<usize>> {
        Loader::new(
            Arc::new(Numbers { len, jitter: true }),
            options,
            |items: Vec<usize>| Ok(items),
        )
        .unwrap()
    }

    fn flatten(loader: &Loader<Numbers, Vec<usize>>, epoch: u64) -> Vec<usize> {
        loader.epoch(epoch).flat_map(Result::unwrap).collect()
    }

    #[test]
    fn unshuffled_epoch_is_source_order_in_batches() {
        let l = loader(7, LoaderOptions::default().batch_size(3));
        let batches: Vec<Vec<usize>> = l.epoch(0).map(Result::unwrap).collect();
        assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn shuffle_with_the_same_seed_is_reproducible_and_epochs_differ() {
        let a = loader(50, LoaderOptions::default().batch_size(8).shuffle(42));
        let b = loader(50, LoaderOptions::default().batch_size(8).shuffle(42));
        let a0 = flatten(&a, 0);
        assert_eq!(a0, flatten(&b, 0));
        assert_ne!(
            a0,
            (0..50).collect::<Vec<_>>(),
            "seed 42 must actually permute"
        );
        assert_ne!(a0, flatten(&a, 1), "each epoch reshuffles");
        let other_seed = loader(50, LoaderOptions::default().batch_size(8).shuffle(43));
        assert_ne!(a0, flatten(&other_seed, 0));
        let mut sorted = a0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn iter_advances_the_epoch_like_a_torch_dataloader() {
        let l = loader(20, LoaderOptions::default().batch_size(5).shuffle(7));
        let first: Vec<usize> = l.iter().flat_map(Result::unwrap).collect();
        let second: Vec<usize> = l.iter().flat_map(Result::unwrap).collect();
        assert_eq!(first, flatten(&l, 0));
        assert_eq!(second, flatten(&l, 1));
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_element_once() {
        for world in 1..=5 {
            for len in [0, 1, 4, 13, 64] {
                let mut seen = Vec::new();
                for rank in 0..world {
                    let options = LoaderOptions::default()
                        .batch_size(3)
                        .shuffle(9)
                        .shard(rank, world);
                    seen.extend(flatten(&loader(len, options), 2));
                }
                seen.sort_unstable();
                assert_eq!(
                    seen,
                    (0..len).collect::<Vec<_>>(),
                    "world {world}, len {len}"
                );
            }
        }
    }

    #[test]
    fn shard_sizes_differ_by_at_most_one() {
        let sizes: Vec<usize> = (0..4)
            .map(|r| {
                LoaderOptions::default()
                    .shard(r, 4)
                    .epoch_indices(10, 0)
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![3, 3, 2, 2]);
    }

    /// Each rank's elements for `epoch`, from a loader per rank (as separate processes would).
    fn per_rank(len: usize, world: usize, epoch: u64, base: &LoaderOptions) -> Vec<Vec<usize>> {
        (0..world)
            .map(|rank| flatten(&loader(len, base.clone().shard(rank, world)), epoch))
            .collect()
    }

    #[test]
    fn padded_shards_are_equal_and_repeat_the_start_of_the_order() {
        for base in [
            LoaderOptions::default().batch_size(2),
            LoaderOptions::default().batch_size(2).shuffle(11),
        ] {
            let base = base.even_shards(EvenShards::Pad);
            let order = base.clone().shard(0, 1).epoch_indices(10, 0);
            let shards = per_rank(10, 3, 0, &base);
            assert_eq!(shards.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 4]);
            let mut counts = [0usize; 10];
            shards.concat().iter().for_each(|&i| counts[i] += 1);
            assert!(
                counts.iter().all(|&c| c >= 1),
                "union covers all: {counts:?}"
            );
            let twice: BTreeSet<usize> = (0..10).filter(|&i| counts[i] == 2).collect();
            assert_eq!(twice, BTreeSet::from([order[0], order[1]]), "{base:?}");
            assert_eq!(counts.iter().sum::<usize>(), 12);
            // The repeats are the last element of ranks 1 and 2 (positions 10 and 11).
            assert_eq!(shards[1][3], order[0]);
            assert_eq!(shards[2][3], order[1]);
            let l = loader(10, base.clone().shard(2, 3));
            assert_eq!(l.len(), 2);
        }
    }

    #[test]
    fn padding_wraps_around_more_than_once_when_there_are_fewer_elements_than_ranks() {
        let base = LoaderOptions::default().even_shards(EvenShards::Pad);
        assert_eq!(per_rank(2, 5, 0, &base), [[0], [1], [0], [1], [0]]);
        assert_eq!(per_rank(0, 3, 0, &base), [[0; 0]; 3]);
    }

    #[test]
    fn dropped_shards_are_equal_disjoint_and_leave_out_the_tail_of_the_order() {
        for base in [
            LoaderOptions::default().batch_size(2),
            LoaderOptions::default().batch_size(2).shuffle(11),
        ] {
            let base = base.even_shards(EvenShards::Drop);
            let order = base.clone().shard(0, 1).epoch_indices(10, 0);
            let shards = per_rank(10, 3, 0, &base);
            assert_eq!(shards.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3]);
            let all = shards.concat();
            let distinct: BTreeSet<usize> = all.iter().copied().collect();
            assert_eq!(all.len(), 9);
            assert_eq!(distinct.len(), 9, "disjoint");
            assert!(
                !distinct.contains(&order[9]),
                "the last of the order is dropped"
            );
            assert_eq!(loader(10, base.clone().shard(0, 3)).len(), 2);
        }
        let exact = LoaderOptions::default().even_shards(EvenShards::Drop);
        assert_eq!(
            per_rank(9, 3, 0, &exact).concat().len(),
            9,
            "nothing to drop"
        );
        assert_eq!(per_rank(2, 3, 0, &exact), [[0; 0]; 3]);
    }

    #[test]
    fn uneven_shards_stay_the_default() {
        assert_eq!(LoaderOptions::default().even_shards, None);
        let shards = per_rank(10, 3, 0, &LoaderOptions::default().batch_size(2));
        assert_eq!(shards, [vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
    }

    #[test]
    fn every_rank_reshuffles_alike_each_epoch_and_shards_stay_disjoint() {
        for even in [None, Some(EvenShards::Drop)] {
            let mut base = LoaderOptions::default().batch_size(2).shuffle(2024);
            base.even_shards = even;
            let global = |e: u64| LoaderOptions::default().shuffle(2024).epoch_indices(12, e);
            assert_ne!(global(0), global(1), "epochs 0 and 1 differ");
            for epoch in 0..2 {
                // Each rank's loader is on its own (as in its own process), yet interleaving
                // the shards gives back the one global order of (seed, epoch): every rank
                // computed the same permutation.
                let shards = per_rank(12, 3, epoch, &base);
                let interleaved: Vec<usize> = (0..12).map(|p| shards[p % 3][p / 3]).collect();
                assert_eq!(interleaved, global(epoch), "epoch {epoch}, {even:?}");
                let distinct: BTreeSet<usize> = shards.concat().into_iter().collect();
                assert_eq!(
                    distinct.len(),
                    12,
                    "disjoint within epoch {epoch} ({even:?})"
                );
            }
            assert_ne!(per_rank(12, 3, 0, &base), per_rank(12, 3, 1, &base));
        }
    }

    #[test]
    fn workers_yield_the_same_sequence_as_one_thread() {
        for workers in [1, 2, 3, 8] {
            let base = LoaderOptions::default().batch_size(4).shuffle(5);
            let single: Vec<Vec<usize>> = loader(37, base.clone())
                .epoch(3)
                .map(Result::unwrap)
                .collect();
            let threaded: Vec<Vec<usize>> = loader(37, base.num_workers(workers).prefetch(1))
                .epoch(3)
                .map(Result::unwrap)
                .collect();
            assert_eq!(single, threaded, "{workers} workers");
        }
    }

    #[test]
    fn drop_last_drops_only_the_short_final_batch() {
        let l = loader(10, LoaderOptions::default().batch_size(4).drop_last(true));
        let batches: Vec<Vec<usize>> = l.epoch(0).map(Result::unwrap).collect();
        assert_eq!(batches, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(l.len(), 2);
        let exact = loader(8, LoaderOptions::default().batch_size(4).drop_last(true));
        assert_eq!(exact.epoch(0).count(), 2);
    }

    #[test]
    fn every_pass_yields_every_element_exactly_once() {
        let l = loader(
            23,
            LoaderOptions::default()
                .batch_size(4)
                .num_workers(3)
                .shuffle(1),
        );
        for _ in 0..3 {
            let items: Vec<usize> = l.iter().flat_map(Result::unwrap).collect();
            assert_eq!(items.len(), 23);
            assert_eq!(items.iter().copied().collect::<BTreeSet<_>>().len(), 23);
        }
    }

    #[test]
    fn dropping_a_half_read_epoch_stops_the_workers() {
        let l = loader(
            200,
            LoaderOptions::default()
                .batch_size(2)
                .num_workers(4)
                .prefetch(1),
        );
        let mut it = l.epoch(0);
        assert_eq!(it.next().unwrap().unwrap(), vec![0, 1]);
        drop(it); // must not hang: workers blocked on full channels see the closed receiver
        assert_eq!(l.epoch(0).len(), 100);
    }

    #[test]
    fn failed_items_fail_their_batch_only() {
        struct OddFails;
        impl SampleSource for OddFails {
            type Item = usize;
            type Error = String;
            fn len(&self) -> usize {
                4
            }
            fn get(&self, i: usize) -> Result<usize, String> {
                if i == 3 {
                    Err(format!("sample {i} is unreadable"))
                } else {
                    Ok(i)
                }
            }
        }
        let l = Loader::new(
            Arc::new(OddFails),
            LoaderOptions::default().batch_size(2).num_workers(2),
            |items: Vec<usize>| Ok(items),
        )
        .unwrap();
        let got: Vec<Result<Vec<usize>, String>> = l.epoch(0).collect();
        assert_eq!(
            got,
            vec![Ok(vec![0, 1]), Err("sample 3 is unreadable".to_string())]
        );
    }

    #[test]
    fn invalid_options_name_the_bad_value() {
        let source = Arc::new(Numbers {
            len: 3,
            jitter: false,
        });
        let err = |o: LoaderOptions| {
            Loader::new(Arc::clone(&source), o, |v: Vec<usize>| Ok(v))
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err(LoaderOptions::default().batch_size(0)).contains("batch_size"));
        assert!(err(LoaderOptions::default().shard(2, 2)).contains("rank 2"));
        assert!(err(LoaderOptions::default().prefetch(0)).contains("prefetch"));
    }

    #[test]
    fn map_wrapper_transforms_on_load() {
        let doubled = Numbers {
            len: 3,
            jitter: false,
        }
        .map(|i| Ok(i * 2));
        assert_eq!(doubled.len(), 3);
        assert_eq!(doubled.get(2), Ok(4));
    }

    #[test]
    fn seeded_permutation_is_pinned() {
        // Pins the algorithm: changing the PRNG would silently change users' data order.
        let order = LoaderOptions::default().shuffle(42).epoch_indices(10, 0);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(order, PINNED_SEED_42);
    }

    const PINNED_SEED_42: [usize; 10] = [6, 7, 4, 3, 9, 5, 0, 8, 2, 1];
}
