//! A thread-safe LRU cache of byte strings with time-to-live expiry.
//!
//! - Capacity bounds the number of entries; inserting a new key into a full cache evicts the least
//!   recently used live entry (counted in `evictions`).
//! - Every entry expires `ttl` after it was last written: the cache's default TTL, or a per-entry TTL given
//!   to `put`. Expired entries are removed at the start of every operation (counted in `expirations`), so
//!   `len` counts live entries only and a capacity eviction never removes an entry that was already dead.
//! - `get` counts a hit or a miss and makes the entry most recently used; `contains` does neither.
//!
//! Layout: entries live in a slab (`Vec<Slot>` plus a free list) threaded by two intrusive doubly linked
//! lists of slot indices: the recency list (most recent first) and the expiry queue of entries that use the
//! default TTL. Because the clock never goes backwards and the default TTL is fixed, that queue is sorted
//! by expiry time simply by appending on write, so get, put, delete and the sweep are O(1) (the sweep is
//! amortised: each entry expires once). Entries with their own TTL go to a binary heap instead
//! (O(log m) for m such entries), whose stale records are skipped and periodically compacted.
//!
//! Time comes from a `Clock`, read under the lock, so tests advance it by hand instead of sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::error::{CoreError, CoreResult};

/// A monotonic time source in nanoseconds since an arbitrary origin.
/// It must never go backwards (the cache also clamps it to be safe).
pub trait Clock: Send + Sync {
    /// Nanoseconds since the clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The real clock: `Instant`-based, origin at construction.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock moved by hand, for deterministic tests of expiry.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `seconds` (negative or non-finite amounts are ignored).
    pub fn advance(&self, seconds: f64) {
        self.nanos
            .fetch_add(seconds_to_nanos(seconds), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
}

/// Seconds to whole nanoseconds, saturating (huge TTLs simply never expire); non-positive or NaN -> 0.
fn seconds_to_nanos(seconds: f64) -> u64 {
    let ns = seconds * 1e9;
    if ns >= u64::MAX as f64 {
        u64::MAX
    } else if ns > 0.0 {
        ns as u64
    } else {
        0
    }
}

/// Checks a TTL: finite and > 0 seconds.
fn check_ttl(field: &str, seconds: f64) -> CoreResult<u64> {
    if seconds.is_finite() && seconds > 0.0 {
        Ok(seconds_to_nanos(seconds).max(1))
    } else {
        Err(CoreError::invalid(
            field,
            format!("must be a finite number of seconds > 0, got {seconds}"),
        ))
    }
}

/// Counters since the cache was created (`clear` keeps them) and the live size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get` calls that found a live entry.
    pub hits: u64,
    /// `get` calls that found nothing live.
    pub misses: u64,
    /// Live entries removed to make room for a new key.
    pub evictions: u64,
    /// Entries removed because their TTL had passed.
    pub expirations: u64,
    /// Live entries now.
    pub size: usize,
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Entry {
    key: Arc<[u8]>,
    value: Arc<[u8]>,
    expires_at: u64,
    /// true: own TTL, tracked by the heap; false: default TTL, in the expiry queue.
    own_ttl: bool,
}

#[derive(Debug)]
struct Slot {
    entry: Option<Entry>,
    /// Bumped on every write and removal, so heap records of an older write are recognised as stale.
    generation: u64,
    lru_prev: usize,
    lru_next: usize,
    exp_prev: usize,
    exp_next: usize,
}

/// Two ends of an intrusive list of slot indices.
#[derive(Debug, Clone, Copy)]
struct Ends {
    head: usize,
    tail: usize,
}

impl Ends {
    const EMPTY: Ends = Ends {
        head: NIL,
        tail: NIL,
    };
}

/// Which intrusive list an operation threads through.
#[derive(Debug, Clone, Copy)]
enum List {
    Recency,
    Expiry,
}

#[derive(Debug)]
struct Inner {
    map: FxHashMap<Arc<[u8]>, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Most recently used at the head, least at the tail.
    recency: Ends,
    /// Default-TTL entries, soonest expiry at the head.
    expiry: Ends,
    /// (expires_at, slot, generation) of own-TTL entries, soonest first; may hold stale records.
    own_ttl: BinaryHeap<Reverse<(u64, usize, u64)>>,
    own_ttl_live: usize,
    last_now: u64,
    stats: CacheStats,
}

impl Inner {
    fn links(&mut self, list: List, i: usize) -> (&mut usize, &mut usize) {
        let slot = &mut self.slots[i];
        match list {
            List::Recency => (&mut slot.lru_prev, &mut slot.lru_next),
            List::Expiry => (&mut slot.exp_prev, &mut slot.exp_next),
        }
    }

    fn ends(&mut self, list: List) -> &mut Ends {
        match list {
            List::Recency => &mut self.recency,
            List::Expiry => &mut self.expiry,
        }
    }

    fn unlink(&mut self, list: List, i: usize) {
        let (prev, next) = {
            let (p, n) = self.links(list, i);
            let out = (*p, *n);
            (*p, *n) = (NIL, NIL);
            out
        };
        if prev == NIL {
            self.ends(list).head = next;
        } else {
            *self.links(list, prev).1 = next;
        }
        if next == NIL {
            self.ends(list).tail = prev;
        } else {
            *self.links(list, next).0 = prev;
        }
    }

    fn push_front(&mut self, list: List, i: usize) {
        let head = self.ends(list).head;
        {
            let (p, n) = self.links(list, i);
            (*p, *n) = (NIL, head);
        }
        if head == NIL {
            self.ends(list).tail = i;
        } else {
            *self.links(list, head).0 = i;
        }
        self.ends(list).head = i;
    }

    fn push_back(&mut self, list: List, i: usize) {
        let tail = self.ends(list).tail;
        {
            let (p, n) = self.links(list, i);
            (*p, *n) = (tail, NIL);
        }
        if tail == NIL {
            self.ends(list).head = i;
        } else {
            *self.links(list, tail).1 = i;
        }
        self.ends(list).tail = i;
    }

    /// Monotonic `now`: a clock that stepped back is held at its last reading.
    fn observe(&mut self, now: u64) -> u64 {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// Removes the entry in slot `i` from every structure; the slot goes back to the free list.
    fn remove(&mut self, i: usize) -> Option<Entry> {
        let entry = self.slots[i].entry.take()?;
        self.slots[i].generation = self.slots[i].generation.wrapping_add(1);
        self.unlink(List::Recency, i);
        if entry.own_ttl {
            self.own_ttl_live = self.own_ttl_live.saturating_sub(1);
        } else {
            self.unlink(List::Expiry, i);
        }
        self.map.remove(&entry.key);
        self.free.push(i);
        Some(entry)
    }

    /// Removes every entry whose expiry time has passed.
    fn sweep(&mut self, now: u64) {
        while self.expiry.head != NIL {
            let i = self.expiry.head;
            match &self.slots[i].entry {
                Some(e) if e.expires_at <= now => {
                    self.remove(i);
                    self.stats.expirations += 1;
                }
                _ => break,
            }
        }
        while let Some(&Reverse((at, i, generation))) = self.own_ttl.peek() {
            if at > now {
                break;
            }
            self.own_ttl.pop();
            let current = &self.slots[i];
            let live_record = current.generation == generation
                && matches!(&current.entry, Some(e) if e.own_ttl && e.expires_at <= now);
            if live_record {
                self.remove(i);
                self.stats.expirations += 1;
            }
        }
    }

    fn compact_heap(&mut self) {
        if self.own_ttl.len() > 2 * self.own_ttl_live + 64 {
            let slots = &self.slots;
            self.own_ttl.retain(|Reverse((at, i, generation))| {
                let s = &slots[*i];
                s.generation == *generation
                    && matches!(&s.entry, Some(e) if e.own_ttl && e.expires_at == *at)
            });
        }
    }

    fn alloc(&mut self, entry: Entry) -> usize {
        let fresh = |entry| Slot {
            entry: Some(entry),
            generation: 0,
            lru_prev: NIL,
            lru_next: NIL,
            exp_prev: NIL,
            exp_next: NIL,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i].entry = Some(entry);
                i
            }
            None => {
                self.slots.push(fresh(entry));
                self.slots.len() - 1
            }
        }
    }

    /// Files slot `i` (holding a freshly written entry) under its expiry structure.
    fn schedule(&mut self, i: usize) {
        let (own_ttl, at) = match &self.slots[i].entry {
            Some(e) => (e.own_ttl, e.expires_at),
            None => return,
        };
        if own_ttl {
            self.own_ttl_live += 1;
            self.own_ttl
                .push(Reverse((at, i, self.slots[i].generation)));
            self.compact_heap();
        } else {
            self.push_back(List::Expiry, i);
        }
    }

    fn live_index(&self, key: &[u8], now: u64) -> Option<usize> {
        let &i = self.map.get(key)?;
        match &self.slots[i].entry {
            Some(e) if e.expires_at > now => Some(i),
            _ => None,
        }
    }
}

/// The cache. `C` is the clock; `TtlCache::new` uses the real one.
#[derive(Debug)]
pub struct TtlCache<C: Clock = MonotonicClock> {
    capacity: usize,
    default_ttl_nanos: u64,
    default_ttl_seconds: f64,
    clock: C,
    inner: Mutex<Inner>,
}

impl TtlCache<MonotonicClock> {
    /// A cache of at most `capacity` entries (>= 1) whose entries live `ttl_seconds` (finite, > 0) by default.
    pub fn new(capacity: usize, ttl_seconds: f64) -> CoreResult<Self> {
        Self::with_clock(capacity, ttl_seconds, MonotonicClock::new())
    }
}

impl<C: Clock> TtlCache<C> {
    /// As `new`, reading time from `clock`.
    pub fn with_clock(capacity: usize, ttl_seconds: f64, clock: C) -> CoreResult<Self> {
        if capacity == 0 {
            return Err(CoreError::invalid("capacity", "must be >= 1, got 0"));
        }
        let default_ttl_nanos = check_ttl("ttl_seconds", ttl_seconds)?;
        let initial = capacity.min(1024);
        let inner = Inner {
            map: FxHashMap::with_capacity_and_hasher(initial, Default::default()),
            slots: Vec::with_capacity(initial),
            free: Vec::new(),
            recency: Ends::EMPTY,
            expiry: Ends::EMPTY,
            own_ttl: BinaryHeap::new(),
            own_ttl_live: 0,
            last_now: 0,
            stats: CacheStats::default(),
        };
        Ok(TtlCache {
            capacity,
            default_ttl_nanos,
            default_ttl_seconds: ttl_seconds,
            clock,
            inner: Mutex::new(inner),
        })
    }

    /// The most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The default time-to-live in seconds.
    pub fn ttl_seconds(&self) -> f64 {
        self.default_ttl_seconds
    }

    /// Locks, reads the clock and sweeps expired entries: the start of every operation.
    fn begin(&self) -> (parking_lot::MutexGuard<'_, Inner>, u64) {
        let mut inner = self.inner.lock();
        let now = inner.observe(self.clock.now_nanos());
        inner.sweep(now);
        (inner, now)
    }

    /// The live value under `key`, made most recently used; counts a hit or a miss.
    /// The value is shared, not copied.
    pub fn get(&self, key: &[u8]) -> Option<Arc<[u8]>> {
        let (mut inner, now) = self.begin();
        match inner.live_index(key, now) {
            Some(i) => {
                inner.stats.hits += 1;
                if inner.recency.head != i {
                    inner.unlink(List::Recency, i);
                    inner.push_front(List::Recency, i);
                }
                inner.slots[i].entry.as_ref().map(|e| Arc::clone(&e.value))
            }
            None => {
                inner.stats.misses += 1;
                None
            }
        }
    }

    /// Stores `value` under `key` as the most recently used entry, living `ttl_seconds` if given
    /// (finite, > 0) or the default TTL. A new key in a full cache evicts the least recently used entry.
    pub fn put(
        &self,
        key: impl Into<Arc<[u8]>> + AsRef<[u8]>,
        value: impl Into<Arc<[u8]>>,
        ttl_seconds: Option<f64>,
    ) -> CoreResult<()> {
        let ttl = match ttl_seconds {
            Some(seconds) => Some(check_ttl("ttl_seconds", seconds)?),
            None => None,
        };
        let (mut inner, now) = self.begin();
        let own_ttl = ttl.is_some();
        let expires_at = now.saturating_add(ttl.unwrap_or(self.default_ttl_nanos));
        let value = value.into();
        if let Some(&i) = inner.map.get(key.as_ref()) {
            // Overwrite in place: re-file under the expiry structure of the new write.
            let was_own = inner.slots[i].entry.as_ref().is_some_and(|e| e.own_ttl);
            if was_own {
                inner.own_ttl_live = inner.own_ttl_live.saturating_sub(1);
            } else {
                inner.unlink(List::Expiry, i);
            }
            let slot = &mut inner.slots[i];
            slot.generation = slot.generation.wrapping_add(1);
            if let Some(e) = slot.entry.as_mut() {
                e.value = value;
                e.expires_at = expires_at;
                e.own_ttl = own_ttl;
            }
            inner.schedule(i);
            if inner.recency.head != i {
                inner.unlink(List::Recency, i);
                inner.push_front(List::Recency, i);
            }
            return Ok(());
        }
        if inner.map.len() >= self.capacity {
            let lru = inner.recency.tail;
            if lru != NIL && inner.remove(lru).is_some() {
                inner.stats.evictions += 1;
            }
        }
        let key: Arc<[u8]> = key.into();
        let i = inner.alloc(Entry {
            key: Arc::clone(&key),
            value,
            expires_at,
            own_ttl,
        });
        inner.map.insert(key, i);
        inner.push_front(List::Recency, i);
        inner.schedule(i);
        Ok(())
    }

    /// Removes `key`; true if a live entry was there.
    pub fn delete(&self, key: &[u8]) -> bool {
        let (mut inner, _) = self.begin();
        match inner.map.get(key) {
            Some(&i) => inner.remove(i).is_some(),
            None => false,
        }
    }

    /// Whether a live entry is stored under `key`, without counting a hit or a miss or touching recency.
    pub fn contains(&self, key: &[u8]) -> bool {
        let (inner, now) = self.begin();
        inner.live_index(key, now).is_some()
    }

    /// Removes every entry; the counters are kept.
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.map.clear();
        inner.slots.clear();
        inner.free.clear();
        inner.recency = Ends::EMPTY;
        inner.expiry = Ends::EMPTY;
        inner.own_ttl.clear();
        inner.own_ttl_live = 0;
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        let (inner, _) = self.begin();
        inner.map.len()
    }

    /// True when no live entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters and the live size.
    pub fn stats(&self) -> CacheStats {
        let (inner, _) = self.begin();
        CacheStats {
            size: inner.map.len(),
            ..inner.stats
        }
    }

    /// Live keys from most to least recently used (O(n); for inspection and tests).
    pub fn keys_by_recency(&self) -> Vec<Vec<u8>> {
        let (inner, _) = self.begin();
        let mut out = Vec::with_capacity(inner.map.len());
        let mut i = inner.recency.head;
        while i != NIL {
            if let Some(e) = &inner.slots[i].entry {
                out.push(e.key.to_vec());
            }
            i = inner.slots[i].lru_next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    type TestCache = TtlCache<Arc<ManualClock>>;

    fn cache(capacity: usize, ttl: f64) -> CoreResult<(TestCache, Arc<ManualClock>)> {
        let clock = Arc::new(ManualClock::new());
        Ok((
            TtlCache::with_clock(capacity, ttl, Arc::clone(&clock))?,
            clock,
        ))
    }

    fn get(c: &TestCache, k: &str) -> Option<String> {
        c.get(k.as_bytes())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn put(c: &TestCache, k: &str, v: &str) -> CoreResult<()> {
        c.put(k.as_bytes(), v.as_bytes(), None)
    }

    fn keys(c: &TestCache) -> Vec<String> {
        c.keys_by_recency()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    #[test]
    fn rejects_bad_construction() {
        let field = |r: CoreResult<TtlCache>| r.err().map(|e| e.field().to_string());
        assert_eq!(field(TtlCache::new(0, 1.0)).as_deref(), Some("capacity"));
        for ttl in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(field(TtlCache::new(1, ttl)).as_deref(), Some("ttl_seconds"));
        }
        assert!(TtlCache::new(usize::MAX, 1e300).is_ok());
    }

    #[test]
    fn lru_order_and_eviction() -> CoreResult<()> {
        let (c, _) = cache(3, 60.0)?;
        put(&c, "a", "1")?;
        put(&c, "b", "2")?;
        put(&c, "c", "3")?;
        assert_eq!(keys(&c), ["c", "b", "a"]);
        assert_eq!(get(&c, "a").as_deref(), Some("1"));
        assert_eq!(keys(&c), ["a", "c", "b"]);
        put(&c, "d", "4")?; // evicts b
        assert_eq!(keys(&c), ["d", "a", "c"]);
        assert_eq!(get(&c, "b"), None);
        put(&c, "c", "33")?; // overwrite: no eviction, moves to front
        assert_eq!(keys(&c), ["c", "d", "a"]);
        assert_eq!(get(&c, "c").as_deref(), Some("33"));
        let s = c.stats();
        assert_eq!(
            (s.hits, s.misses, s.evictions, s.expirations, s.size),
            (2, 1, 1, 0, 3)
        );
        Ok(())
    }

    #[test]
    fn default_ttl_expires() -> CoreResult<()> {
        let (c, clock) = cache(10, 1.0)?;
        put(&c, "a", "1")?;
        clock.advance(0.5);
        put(&c, "b", "2")?;
        clock.advance(0.499);
        assert_eq!(c.len(), 2);
        clock.advance(0.001); // a is exactly 1 s old: expired
        assert_eq!(c.len(), 1);
        assert_eq!(get(&c, "a"), None);
        assert_eq!(get(&c, "b").as_deref(), Some("2"));
        put(&c, "b", "22")?; // rewriting renews the TTL
        clock.advance(0.9);
        assert!(c.contains(b"b"));
        clock.advance(0.1);
        assert!(!c.contains(b"b"));
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expirations, s.size), (1, 1, 2, 0));
        Ok(())
    }

    #[test]
    fn per_entry_ttl() -> CoreResult<()> {
        let (c, clock) = cache(10, 10.0)?;
        c.put(&b"short"[..], &b"s"[..], Some(1.0))?;
        c.put(&b"long"[..], &b"l"[..], Some(100.0))?;
        put(&c, "default", "d")?;
        clock.advance(1.0);
        assert_eq!(c.len(), 2);
        assert!(!c.contains(b"short"));
        clock.advance(9.0);
        assert_eq!(keys(&c), ["long"]);
        // switching a key between own and default TTL
        c.put(&b"long"[..], &b"l2"[..], None)?;
        clock.advance(10.0);
        assert_eq!(c.len(), 0);
        c.put(&b"k"[..], &b"v"[..], None)?;
        c.put(&b"k"[..], &b"v"[..], Some(0.5))?;
        clock.advance(0.5);
        assert_eq!(c.len(), 0);
        assert_eq!(c.stats().expirations, 4);
        let field = c
            .put(&b"k"[..], &b"v"[..], Some(-1.0))
            .err()
            .map(|e| e.field().to_string());
        assert_eq!(field.as_deref(), Some("ttl_seconds"));
        Ok(())
    }

    #[test]
    fn full_cache_sweeps_before_evicting() -> CoreResult<()> {
        let (c, clock) = cache(2, 1.0)?;
        put(&c, "a", "1")?;
        c.put(&b"b"[..], &b"2"[..], Some(50.0))?;
        clock.advance(2.0);
        put(&c, "c", "3")?; // a has expired: room without evicting
        let s = c.stats();
        assert_eq!((s.evictions, s.expirations, s.size), (0, 1, 2));
        Ok(())
    }

    #[test]
    fn delete_and_clear() -> CoreResult<()> {
        let (c, clock) = cache(4, 1.0)?;
        put(&c, "a", "1")?;
        put(&c, "b", "2")?;
        assert!(c.delete(b"a"));
        assert!(!c.delete(b"a"));
        assert_eq!(keys(&c), ["b"]);
        c.clear();
        assert!(c.is_empty());
        put(&c, "x", "1")?;
        clock.advance(5.0);
        assert!(!c.delete(b"x")); // expired before the delete
        assert_eq!(c.stats().expirations, 1);
        Ok(())
    }

    #[test]
    fn huge_ttl_does_not_overflow() -> CoreResult<()> {
        let (c, clock) = cache(2, 1e300)?;
        put(&c, "a", "1")?;
        clock.advance(1e9); // about 32 years
        assert!(c.contains(b"a"));
        Ok(())
    }

    /// A clock that runs backwards after its first reading.
    struct Backwards(AtomicU64);

    impl Clock for Backwards {
        fn now_nanos(&self) -> u64 {
            self.0.fetch_sub(1_000_000_000, Ordering::SeqCst)
        }
    }

    #[test]
    fn a_clock_going_back_is_held() -> CoreResult<()> {
        let c = TtlCache::with_clock(4, 1.5, Backwards(AtomicU64::new(100_000_000_000)))?;
        c.put(&b"a"[..], &b"1"[..], None)?;
        c.put(&b"b"[..], &b"2"[..], Some(0.5))?;
        for _ in 0..5 {
            assert_eq!(c.len(), 2);
        }
        Ok(())
    }

    #[test]
    fn concurrent_use_keeps_counters_consistent() -> CoreResult<()> {
        let c = Arc::new(TtlCache::new(100, 60.0)?);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let key = [t, (i % 50) as u8];
                        if c.get(&key).is_none() {
                            let _ = c.put(&key[..], &i.to_le_bytes()[..], None);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        let s = c.stats();
        assert_eq!(s.hits + s.misses, 8000);
        assert_eq!(s.size, 100);
        assert_eq!(s.misses - s.evictions, 100); // every miss inserted a key; all but 100 were evicted
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Put(u8, u8, Option<u8>),
        Delete(u8),
        Contains(u8),
        Advance(u8),
        Clear,
        Len,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12).prop_map(Op::Get),
            4 => (0u8..12, any::<u8>(), prop::option::of(1u8..20)).prop_map(|(k, v, t)| Op::Put(k, v, t)),
            1 => (0u8..12).prop_map(Op::Delete),
            1 => (0u8..12).prop_map(Op::Contains),
            2 => (0u8..8).prop_map(Op::Advance),
            1 => Just(Op::Clear),
            1 => Just(Op::Len),
        ]
    }

    /// The obvious model: a map with expiry times and last-use stamps, O(n) per operation.
    #[derive(Default)]
    struct Model {
        entries: HashMap<u8, (u8, u64, u64)>, // key -> (value, expires_at, last use)
        tick: u64,
        stats: CacheStats,
    }

    impl Model {
        fn sweep(&mut self, now: u64) {
            let before = self.entries.len();
            self.entries.retain(|_, (_, at, _)| *at > now);
            self.stats.expirations += (before - self.entries.len()) as u64;
        }
        fn touch(&mut self) -> u64 {
            self.tick += 1;
            self.tick
        }
    }

    proptest! {
        #[test]
        fn matches_model(capacity in 1usize..6, ops in prop::collection::vec(op(), 0..200)) {
            let (c, clock) = cache(capacity, 5.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut m = Model::default();
            let mut now = 0u64;
            let sec = 1_000_000_000u64;
            for op in ops {
                if !matches!(op, Op::Advance(_) | Op::Clear) {
                    m.sweep(now);
                }
                match op {
                    Op::Get(k) => {
                        let got = c.get(&[k]).map(|v| v.to_vec());
                        let tick = m.touch();
                        let want = m.entries.get_mut(&k).map(|e| { e.2 = tick; vec![e.0] });
                        if want.is_some() { m.stats.hits += 1 } else { m.stats.misses += 1 }
                        prop_assert_eq!(got, want);
                    }
                    Op::Put(k, v, ttl) => {
                        c.put(&[k][..], &[v][..], ttl.map(f64::from)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let tick = m.touch();
                        if !m.entries.contains_key(&k) && m.entries.len() >= capacity {
                            let lru = m.entries.iter().min_by_key(|(_, e)| e.2).map(|(k, _)| *k);
                            if let Some(lru) = lru {
                                m.entries.remove(&lru);
                                m.stats.evictions += 1;
                            }
                        }
                        let at = now + u64::from(ttl.unwrap_or(5)) * sec;
                        m.entries.insert(k, (v, at, tick));
                    }
                    Op::Delete(k) => prop_assert_eq!(c.delete(&[k]), m.entries.remove(&k).is_some()),
                    Op::Contains(k) => prop_assert_eq!(c.contains(&[k]), m.entries.contains_key(&k)),
                    Op::Advance(s) => {
                        clock.advance(f64::from(s) * 0.5);
                        now += u64::from(s) * sec / 2;
                    }
                    Op::Clear => {
                        c.clear();
                        m.entries.clear();
                    }
                    Op::Len => prop_assert_eq!(c.len(), m.entries.len()),
                }
            }
            m.sweep(now);
            let mut order: Vec<(u64, u8)> = m.entries.iter().map(|(k, e)| (e.2, *k)).collect();
            order.sort_unstable_by(|a, b| b.cmp(a));
            let want: Vec<Vec<u8>> = order.into_iter().map(|(_, k)| vec![k]).collect();
            prop_assert_eq!(c.keys_by_recency(), want);
            prop_assert_eq!(c.stats(), CacheStats { size: m.entries.len(), ..m.stats });
        }

        #[test]
        fn never_panics(capacity in 0usize..4, ttl in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(0.0), Just(1e-300), Just(1e300), 0.0f64..10.0],
                        entry_ttl in prop::option::of(prop_oneof![Just(f64::NAN), Just(-0.0), Just(1e-12), Just(1e308), -5.0f64..5.0]),
                        key in prop::collection::vec(any::<u8>(), 0..8), steps in 0usize..20) {
            if let Ok(c) = TtlCache::new(capacity, ttl) {
                for s in 0..steps {
                    let mut k = key.clone();
                    k.push(s as u8 % 3);
                    let _ = c.put(&k[..], &k[..], entry_ttl);
                    let _ = c.get(&k);
                    let _ = c.contains(&k);
                    if s % 4 == 3 { let _ = c.delete(&k); }
                }
                prop_assert!(c.len() <= capacity);
            }
        }
    }
}
