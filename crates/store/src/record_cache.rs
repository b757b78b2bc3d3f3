//! Rendered person records kept in memory by the embedded store, so that a read by ID need not
//! descend three B-trees (the ID index, the projection row, the event holding an imported
//! record) of a file larger than the CPU's caches.
//!
//! Measured at 1M people (`docs/benchmarks.md`, session 14): the SQLite read was about 12 µs of
//! a get-person's CPU and took its throughput from 0.69 of the empty handler to 0.40. Answered
//! from this cache, get-person gave 0.55–0.60 (CPU 21–23 µs against 36–40).
//!
//! The cache is exact for every commit this process makes: a commit forgets the records of the
//! people it wrote (imports forget everything), and a reader offers what it read only if no
//! commit happened between the moment before its read and the offer (an epoch compared under
//! the shard's lock, which the forgetting also takes after moving the epoch). Since every
//! commit moves the epoch exactly once, the store also gives it out as its count of commits
//! ([`crate::Store::register_writes`]), which the hub's match index follows. So a record read
//! before a commit is never kept after it. Only the embedded store has one: its register is
//! written by this process alone (another process may only add people, through `dancu import`;
//! those are read from the file at their first read, since the cache keeps no misses).
//!
//! It holds at most a byte budget (`DANCU_RECORD_CACHE_MB`, default 1024; 0 turns it off): a
//! record read when the budget is spent is not kept. [`crate::Store::fill_record_cache`] loads
//! the register in file order until the budget is spent; the server runs it on a thread at
//! start.

use dancu_domain::id::PersonalId;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shards of the map: each has its own lock, so that the request threads rarely meet.
const SHARDS: usize = 16;
/// What an entry costs beyond its text (map slot, allocation headers), for the budget.
const ENTRY_OVERHEAD: usize = 64;
/// The budget when `DANCU_RECORD_CACHE_MB` is not set.
const DEFAULT_BUDGET_MB: usize = 1024;

/// A record and its home commune in one allocation (the commune first), so that a hit costs
/// one memory access fewer.
#[derive(Debug)]
struct Entry {
    text: Box<str>,
    /// Length of the commune at the start of `text`; `None` when the person has none.
    commune: Option<u16>,
}

impl Entry {
    fn new(json: &str, commune: Option<&str>) -> Option<Self> {
        let c = commune.unwrap_or("");
        Some(Self {
            text: [c, json].concat().into(),
            commune: match commune {
                Some(c) => Some(u16::try_from(c.len()).ok()?),
                None => None,
            },
        })
    }

    fn parts(&self) -> (&str, Option<&str>) {
        let at = self.commune.map_or(0, usize::from);
        let (c, json) = self.text.split_at(at);
        (json, self.commune.map(|_| c))
    }

    fn cost(&self) -> usize {
        self.text.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: rustc_hash::FxHashMap<PersonalId, Entry>,
    hits: u64,
    misses: u64,
}

/// What the cache holds and how it answered, for operators and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordCacheStats {
    /// Records held.
    pub records: usize,
    /// Bytes counted against the budget.
    pub bytes: usize,
    /// The budget.
    pub budget: usize,
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that went to the file.
    pub misses: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RecordCache {
    shards: Vec<Mutex<Shard>>,
    /// Moved once by every commit, before it forgets anything: the count of this process's
    /// register commits.
    epoch: AtomicU64,
    bytes: AtomicUsize,
    budget: usize,
}

impl RecordCache {
    /// A cache of at most `budget` bytes (0: keeps nothing).
    pub fn new(budget: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: AtomicU64::new(0),
            bytes: AtomicUsize::new(0),
            budget,
        }
    }

    /// The budget from `DANCU_RECORD_CACHE_MB` (MiB), else 1 GiB; an unreadable value is
    /// refused rather than guessed.
    pub fn budget_from_env() -> crate::Result<usize> {
        match std::env::var("DANCU_RECORD_CACHE_MB") {
            Err(_) => Ok(DEFAULT_BUDGET_MB << 20),
            Ok(v) => v
                .trim()
                .parse::<usize>()
                .map(|mb| mb.saturating_mul(1 << 20))
                .map_err(|_| {
                    crate::StoreError::Backend(format!(
                        "DANCU_RECORD_CACHE_MB must be a whole number of MiB (0 turns the cache off), not {v:?}"
                    ))
                }),
        }
    }

    fn shard(&self, id: &PersonalId) -> &Mutex<Shard> {
        let mut h = rustc_hash::FxHasher::default();
        id.hash(&mut h);
        // The high bits: FxHash mixes them best.
        &self.shards[(h.finish() >> 32) as usize % SHARDS]
    }

    fn lock<'a>(m: &'a Mutex<Shard>) -> std::sync::MutexGuard<'a, Shard> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record and home commune of `id` if held, counting the hit or miss.
    pub fn get(&self, id: &PersonalId) -> Option<(String, Option<String>)> {
        if self.budget == 0 {
            return None;
        }
        let mut s = Self::lock(self.shard(id));
        match s.map.get(id) {
            Some(e) => {
                let (json, commune) = e.parts();
                let found = (json.to_owned(), commune.map(str::to_owned));
                s.hits += 1;
                Some(found)
            }
            None => {
                s.misses += 1;
                None
            }
        }
    }

    /// The epoch to take before reading a record from the file, for [`Self::offer`]; also the
    /// number of commits so far.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps a record read from the file after [`Self::epoch`] gave `epoch`, unless a commit
    /// came in between or the budget is spent. Returns whether it was kept.
    pub fn offer(&self, epoch: u64, id: PersonalId, json: &str, commune: Option<&str>) -> bool {
        // The cheap refusals first, before copying the record: a register larger than the
        // budget would otherwise pay a copy on every read that misses.
        if self.epoch.load(Ordering::Acquire) != epoch || !self.has_room() {
            return false;
        }
        let Some(entry) = Entry::new(json, commune) else {
            return false;
        };
        let cost = entry.cost();
        let mut s = Self::lock(self.shard(&id));
        if self.epoch.load(Ordering::Acquire) != epoch
            || self.bytes.load(Ordering::Relaxed) + cost > self.budget
        {
            return false;
        }
        if let Some(old) = s.map.insert(id, entry) {
            self.bytes.fetch_sub(old.cost(), Ordering::Relaxed);
        }
        self.bytes.fetch_add(cost, Ordering::Relaxed);
        true
    }

    /// Forgets the records of people a commit wrote. Call after the commit, whether it
    /// succeeded or not.
    pub fn forget(&self, ids: impl IntoIterator<Item = PersonalId>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            let mut s = Self::lock(self.shard(&id));
            if let Some(old) = s.map.remove(&id) {
                self.bytes.fetch_sub(old.cost(), Ordering::Relaxed);
            }
        }
    }

    /// Forgets every record (after an import, which may write any person).
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            let mut s = Self::lock(shard);
            let freed: usize = s.map.values().map(Entry::cost).sum();
            s.map = Default::default();
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
    }

    /// What it holds and how it answered so far.
    pub fn stats(&self) -> RecordCacheStats {
        let mut st = RecordCacheStats {
            bytes: self.bytes.load(Ordering::Relaxed),
            budget: self.budget,
            ..Default::default()
        };
        for shard in &self.shards {
            let s = Self::lock(shard);
            st.records += s.map.len();
            st.hits += s.hits;
            st.misses += s.misses;
        }
        st
    }

    /// Whether the budget leaves room for more.
    pub fn has_room(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) + ENTRY_OVERHEAD < self.budget
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u32) -> PersonalId {
        format!("0010900{n:05}").parse().unwrap()
    }

    #[test]
    fn a_record_read_before_a_commit_is_not_kept_after_it() {
        let c = RecordCache::new(1 << 20);
        let before = c.epoch();
        // A commit writes the person between the read and the offer.
        c.forget([id(1)]);
        assert!(!c.offer(before, id(1), "{\"old\":1}", None));
        assert_eq!(c.get(&id(1)), None);
        // Read after the commit: kept.
        let after = c.epoch();
        assert!(c.offer(after, id(1), "{\"new\":1}", Some("00004")));
        assert_eq!(
            c.get(&id(1)),
            Some(("{\"new\":1}".to_owned(), Some("00004".to_owned())))
        );
        // The next commit of that person forgets it.
        c.forget([id(1)]);
        assert_eq!(c.get(&id(1)), None);
        let st = c.stats();
        assert_eq!((st.records, st.bytes, st.hits, st.misses), (0, 0, 1, 2));
    }

    #[test]
    fn the_budget_bounds_what_is_kept_and_forgetting_frees_it() {
        let json = "x".repeat(100);
        let cost = 100 + ENTRY_OVERHEAD;
        let c = RecordCache::new(3 * cost);
        let e = c.epoch();
        for n in 0..5 {
            c.offer(e, id(n), &json, None);
        }
        let st = c.stats();
        assert_eq!((st.records, st.bytes), (3, 3 * cost));
        assert!(!c.has_room());
        c.forget_all();
        assert_eq!(c.stats().bytes, 0);
        let e = c.epoch();
        assert!(c.offer(e, id(7), &json, None));
        // Offering a record again replaces it without counting it twice.
        assert!(c.offer(e, id(7), &json, None));
        assert_eq!(c.stats().bytes, cost);
        // Off: keeps nothing.
        let off = RecordCache::new(0);
        assert!(!off.offer(off.epoch(), id(1), &json, None));
        assert_eq!(off.get(&id(1)), None);
    }
}
