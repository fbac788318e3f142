//! A `.cache()`-style sample cache both adapters share: the first epoch loads (decodes,
//! transforms) each sample, later epochs reuse it.
//!
//! The cache is **explicit and bounded**: it has one slot per source index and keeps at most
//! `capacity` samples — the first ones loaded; once full, further samples are loaded every
//! time (no eviction: under a shuffled order an evicting cache would mostly miss, and
//! `tf.data`'s in-memory `.cache()` keeps everything too). [`SampleCache::unbounded`] keeps
//! every sample; size it so that `capacity × sample size` fits in memory. Errors are not
//! cached (a failed sample is tried again). Cached samples include the `transform`'s output,
//! so a random augmentation in the transform is frozen at its first draw: augment after
//! the batch, or do not cache.
//!
//! ```
//! use deriva_bag_features::loader::cache::{Cached, SampleCache};
//! use deriva_bag_features::loader::{SampleSource, SampleSourceExt};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! /// Counts its loads.
//! struct Decodes(AtomicUsize);
//! impl SampleSource for Decodes {
//!     type Item = u64;
//!     type Error = std::convert::Infallible;
//!     fn len(&self) -> usize { 4 }
//!     fn get(&self, i: usize) -> Result<u64, Self::Error> {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         Ok(i as u64 * 10)
//!     }
//! }
//!
//! let cached = Decodes(AtomicUsize::new(0)).cache(SampleCache::bounded(4, 3));
//! for _epoch in 0..3 {
//!     let all: Vec<u64> = (0..4).map(|i| cached.get(i).unwrap()).collect();
//!     assert_eq!(all, [0, 10, 20, 30]);
//! }
//! // Three samples cached after the first epoch; the fourth is loaded every epoch.
//! assert_eq!(cached.sample_cache().cached(), 3);
//! assert_eq!(cached.source().0.load(Ordering::Relaxed), 4 + 1 + 1);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::SampleSource;

/// One slot per source index, at most `capacity` of them filled.
#[derive(Debug)]
pub struct SampleCache<T> {
    slots: Box<[OnceLock<T>]>,
    capacity: usize,
    filled: AtomicUsize,
}

impl<T> SampleCache<T> {
    /// A cache for a source of `len` samples that keeps every one of them.
    pub fn unbounded(len: usize) -> Self {
        Self::bounded(len, len)
    }

    /// A cache for a source of `len` samples that keeps at most `capacity` (the first loaded).
    pub fn bounded(len: usize, capacity: usize) -> Self {
        SampleCache {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
            capacity: capacity.min(len),
            filled: AtomicUsize::new(0),
        }
    }

    /// How many samples are cached.
    pub fn cached(&self) -> usize {
        self.filled.load(Ordering::Relaxed).min(self.capacity)
    }

    /// The most samples this cache keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sample at `index`: a copy (`dup`) of the cached one, or `load()`'s result, kept
    /// when there is room. An index outside the cache's length is loaded and not kept.
    pub fn get_or_load<E>(
        &self,
        index: usize,
        load: impl FnOnce() -> Result<T, E>,
        dup: impl Fn(&T) -> T,
    ) -> Result<T, E> {
        let Some(slot) = self.slots.get(index) else {
            return load();
        };
        if let Some(hit) = slot.get() {
            return Ok(dup(hit));
        }
        let loaded = load()?;
        // Reserve room first, so concurrent loaders never keep more than `capacity`.
        if self.filled.fetch_add(1, Ordering::Relaxed) < self.capacity {
            let copy = dup(&loaded);
            if slot.set(copy).is_err() {
                // Another thread cached this index first: give the reservation back.
                self.filled.fetch_sub(1, Ordering::Relaxed);
            }
        } else {
            self.filled.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(loaded)
    }
}

/// A source whose samples are cached; see [`SampleSourceExt::cache`](super::SampleSourceExt::cache).
#[derive(Debug)]
pub struct Cached<S: SampleSource> {
    source: S,
    cache: SampleCache<S::Item>,
}

impl<S: SampleSource> Cached<S> {
    /// `source` with `cache` in front of it (the cache's length should be `source.len()`).
    pub fn new(source: S, cache: SampleCache<S::Item>) -> Self {
        Cached { source, cache }
    }

    /// The cache.
    pub fn sample_cache(&self) -> &SampleCache<S::Item> {
        &self.cache
    }

    /// The source behind the cache.
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S> SampleSource for Cached<S>
where
    S: SampleSource,
    S::Item: Clone,
{
    type Item = S::Item;
    type Error = S::Error;

    fn len(&self) -> usize {
        self.source.len()
    }

    fn get(&self, index: usize) -> Result<S::Item, S::Error> {
        self.cache
            .get_or_load(index, || self.source.get(index), Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_not_cached_and_a_later_success_is() {
        let cache = SampleCache::<u8>::unbounded(2);
        assert_eq!(cache.get_or_load(0, || Err("busy"), |v| *v), Err("busy"));
        assert_eq!(cache.cached(), 0);
        assert_eq!(cache.get_or_load(0, || Ok::<_, &str>(7), |v| *v), Ok(7));
        assert_eq!(cache.get_or_load(0, || Err("not called"), |v| *v), Ok(7));
        assert_eq!(cache.cached(), 1);
        // Outside the length: loaded, never kept.
        assert_eq!(cache.get_or_load(5, || Ok::<_, &str>(9), |v| *v), Ok(9));
        assert_eq!(cache.cached(), 1);
    }

    #[test]
    fn a_zero_capacity_cache_keeps_nothing() {
        let cache = SampleCache::<u8>::bounded(3, 0);
        for _ in 0..2 {
            assert_eq!(cache.get_or_load(1, || Ok::<_, ()>(4), |v| *v), Ok(4));
        }
        assert_eq!(cache.cached(), 0);
    }
}
