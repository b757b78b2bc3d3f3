//! The SQLite store's read-only connections, each keeping its read transaction open from one
//! checkout to the next while nothing has been committed.
//!
//! Starting a read transaction in WAL mode costs more than a small read itself: on this
//! machine a point read of a person took 10.6 µs in a transaction of its own and 4.4 µs inside
//! one already open (`fcntl` locks on the file and the WAL index, a look at the WAL header and
//! the file size). So a connection here keeps its transaction (its snapshot) and reuses it
//! while it is as good as a new one, that is while no commit has finished since it began:
//! - every commit of this process's writer bumps a generation, which the store reads before
//!   each checkout; a snapshot begun under an older generation is renewed, so a read always
//!   sees every write this process has finished;
//! - commits of other connections (another process, another handle on the file) are seen in
//!   the WAL index (the `-shm` file): its header, which SQLite rewrites at the end of every
//!   commit and of every WAL restart, is read (48 bytes, one `pread`) before a snapshot begins
//!   and compared at each checkout; any difference renews the snapshot. This relies only on
//!   the header's place in the file (<https://www.sqlite.org/walformat.html>), not on its
//!   fields. A header being rewritten reads as different, which only costs a renewal. The
//!   file is opened once per process and never closed (see [`wal_index_file`] for why);
//! - a snapshot older than [`SNAPSHOT_MAX_AGE`] is renewed anyway;
//! - idle connections give up snapshots older than [`IDLE_MAX_AGE`] (a background sweep), so
//!   that a connection nobody uses cannot keep a checkpoint from reaching the end of the WAL.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use std::fs::File;
use std::os::unix::fs::FileExt;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, StoreError};

/// Read connections per store; a checkout beyond waits for one to come back.
const MAX_READERS: usize = 16;
/// How long a checkout waits for a free connection before giving up.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// The oldest snapshot a checkout reuses, whatever the WAL index says.
pub(crate) const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(10);
/// The WAL index header's first copy: bytes 0–47 of the `-shm` file.
const WAL_INDEX_HEADER: usize = 48;
/// The oldest snapshot an idle connection keeps.
pub(crate) const IDLE_MAX_AGE: Duration = Duration::from_millis(100);

/// What a connection's open read transaction was begun after.
#[derive(Debug)]
struct Snapshot {
    generation: u64,
    since: Instant,
    /// The WAL index and its header as read before the snapshot began; without them (no
    /// `-shm` file, a failed read) the snapshot is not reused.
    wal_index: Option<(Arc<File>, [u8; WAL_INDEX_HEADER])>,
}

impl Snapshot {
    fn current(&self, generation: u64, now: Instant) -> bool {
        self.generation == generation
            && now.duration_since(self.since) < SNAPSHOT_MAX_AGE
            && self
                .wal_index
                .as_ref()
                .is_some_and(|(f, header)| wal_index_header(f).is_some_and(|h| h == *header))
    }
}

/// The WAL index file at `path`, opened once for the process and never closed.
///
/// Never closed because closing any descriptor of a file drops every `fcntl` lock the process
/// holds on it (POSIX record locks belong to the process and the file, not to the
/// descriptor), SQLite's own among them: a reader's lock on its WAL read mark would vanish and
/// a checkpoint could overwrite pages under it. When the file at `path`
/// is another one than the one held (removed and made again once every connection closed),
/// the new one is opened and the old one kept open too.
fn wal_index_file(path: &Path) -> Option<Arc<File>> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    type Held = Mutex<HashMap<PathBuf, (Arc<File>, Vec<Arc<File>>)>>;
    static HELD: std::sync::OnceLock<Held> = std::sync::OnceLock::new();
    let on_disk = std::fs::metadata(path).ok()?;
    let mut held = HELD
        .get_or_init(Held::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((f, _)) = held.get(path)
        && f.metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == (on_disk.dev(), on_disk.ino()))
    {
        return Some(f.clone());
    }
    let f = Arc::new(File::open(path).ok()?);
    match held.get_mut(path) {
        Some((current, old)) => old.push(std::mem::replace(current, f.clone())),
        None => {
            held.insert(path.to_owned(), (f.clone(), Vec::new()));
        }
    }
    Some(f)
}

fn wal_index_header(f: &File) -> Option<[u8; WAL_INDEX_HEADER]> {
    let mut h = [0; WAL_INDEX_HEADER];
    f.read_exact_at(&mut h, 0).ok().map(|()| h)
}

/// A read-only connection and its open read transaction, if any.
#[derive(Debug)]
pub(crate) struct Reader {
    conn: Connection,
    snapshot: Option<Snapshot>,
    wal_index: PathBuf,
}

impl Reader {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "cache_size", -32_000)?;
        // Map the whole file (the build raises SQLite's 2 GB cap; see .cargo/config.toml).
        conn.pragma_update(None, "mmap_size", 1_i64 << 40)?;
        let mut wal_index = path.as_os_str().to_owned();
        wal_index.push("-shm");
        Ok(Self {
            conn,
            snapshot: None,
            wal_index: wal_index.into(),
        })
    }

    /// Ends the read transaction, if one is open.
    fn end(&mut self) {
        self.snapshot = None;
        if !self.conn.is_autocommit() {
            // A read-only transaction: nothing to lose. Should this fail, the connection is
            // still in a transaction and the next checkout tries again.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Makes the connection's snapshot fit for a read that must see generation `generation`.
    fn refresh(&mut self, generation: u64, now: Instant) -> rusqlite::Result<()> {
        if !self.conn.is_autocommit()
            && self
                .snapshot
                .as_ref()
                .is_some_and(|s| s.current(generation, now))
        {
            return Ok(());
        }
        self.end();
        let wal_index =
            wal_index_file(&self.wal_index).and_then(|f| wal_index_header(&f).map(|h| (f, h)));
        // `BEGIN` is deferred: the snapshot is taken by the first read, after `generation` and
        // the WAL index header were read, so it holds every commit they count.
        self.conn.execute_batch("BEGIN")?;
        self.snapshot = Some(Snapshot {
            generation,
            since: now,
            wal_index,
        });
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Slots {
    idle: Vec<Reader>,
    open: usize,
}

/// A store's read connections, opened on demand (none at first, so that a bulk load right
/// after opening finds the file to itself) and kept with their snapshots.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    slots: Mutex<Slots>,
    returned: Condvar,
}

impl ReaderPool {
    pub(crate) fn new(path: &Path) -> Arc<Self> {
        let pool = Arc::new(Self {
            path: path.to_owned(),
            slots: Mutex::new(Slots::default()),
            returned: Condvar::new(),
        });
        sweeper().register(&pool);
        pool
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection whose snapshot includes every commit counted by `generation` (read by the
    /// caller before this call).
    pub(crate) fn checkout(self: &Arc<Self>, generation: u64) -> Result<ReaderGuard> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut slots = self.slots();
        let reader = loop {
            if let Some(r) = slots.idle.pop() {
                break Some(r);
            }
            if slots.open < MAX_READERS {
                slots.open += 1;
                break None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Backend(
                    "no reader connection came free in 30 s".into(),
                ));
            }
            slots = self
                .returned
                .wait_timeout(slots, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(slots);
        // From here the guard gives the slot back (or the connection, once there is one)
        // whatever happens.
        let mut guard = ReaderGuard {
            pool: self.clone(),
            reader: None,
        };
        let mut reader = match reader {
            Some(r) => r,
            None => Reader::open(&self.path)
                .map_err(|e| StoreError::Backend(format!("opening a reader: {e}")))?,
        };
        // A connection that cannot begin a read is closed (the guard gives its slot back).
        reader
            .refresh(generation, Instant::now())
            .map_err(|e| StoreError::Backend(format!("beginning a read: {e}")))?;
        guard.reader = Some(reader);
        Ok(guard)
    }

    /// Ends the snapshots of idle connections older than `max_age`.
    fn sweep(&self, max_age: Duration) {
        let now = Instant::now();
        let mut slots = self.slots();
        for r in &mut slots.idle {
            if r.snapshot
                .as_ref()
                .is_some_and(|s| now.duration_since(s.since) >= max_age)
            {
                r.end();
            }
        }
    }

    /// Ends every idle connection's snapshot.
    #[cfg(test)]
    pub(crate) fn release_idle(&self) {
        self.sweep(Duration::ZERO);
    }

    /// Open connections (idle or checked out).
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.slots().open
    }
}

/// A checked-out read connection; it goes back to its pool, snapshot and all, when dropped.
#[derive(Debug)]
pub(crate) struct ReaderGuard {
    pool: Arc<ReaderPool>,
    reader: Option<Reader>,
}

impl Deref for ReaderGuard {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match &self.reader {
            Some(r) => &r.conn,
            None => unreachable!("a guard has its reader from checkout until dropped"),
        }
    }
}

impl DerefMut for ReaderGuard {
    fn deref_mut(&mut self) -> &mut Connection {
        match &mut self.reader {
            Some(r) => &mut r.conn,
            None => unreachable!("a guard has its reader from checkout until dropped"),
        }
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut slots = self.pool.slots();
        match self.reader.take() {
            Some(r) => slots.idle.push(r),
            None => slots.open -= 1,
        }
        drop(slots);
        self.pool.returned.notify_one();
    }
}

/// The process's one background thread that ends idle snapshots (see the module docs).
struct Sweeper {
    pools: Mutex<Vec<Weak<ReaderPool>>>,
}

impl Sweeper {
    fn register(&self, pool: &Arc<ReaderPool>) {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(pool));
    }

    fn run(&self) {
        loop {
            std::thread::sleep(IDLE_MAX_AGE / 2);
            let live: Vec<Arc<ReaderPool>> = {
                let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                pools.retain(|w| w.strong_count() > 0);
                pools.iter().filter_map(Weak::upgrade).collect()
            };
            for pool in live {
                pool.sweep(IDLE_MAX_AGE);
            }
        }
    }
}

fn sweeper() -> &'static Sweeper {
    static SWEEPER: std::sync::OnceLock<&'static Sweeper> = std::sync::OnceLock::new();
    SWEEPER.get_or_init(|| {
        let s: &'static Sweeper = Box::leak(Box::new(Sweeper {
            pools: Mutex::new(Vec::new()),
        }));
        // Should the thread not start, idle snapshots are still renewed by every checkout.
        let _ = std::thread::Builder::new()
            .name("dancu-sqlite-sweep".into())
            .spawn(|| s.run());
        s
    })
}

/// A generation counter bumped after every commit of the writer connection.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database with one table, and its writer.
    fn database() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("r.sqlite3");
        let w = Connection::open(&path).expect("open");
        // A checkpoint reports a reader in the way rather than waiting for it to go.
        w.busy_timeout(Duration::ZERO).expect("busy timeout");
        w.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);",
        )
        .expect("schema");
        (dir, path, w)
    }

    fn count(r: &ReaderGuard) -> i64 {
        r.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    fn began(r: &ReaderGuard) -> Instant {
        r.reader
            .as_ref()
            .and_then(|r| r.snapshot.as_ref())
            .expect("a snapshot")
            .since
    }

    #[test]
    fn a_snapshot_is_kept_until_anyone_commits() {
        let (_dir, path, w) = database();
        let pool = ReaderPool::new(&path);
        let first = {
            let r = pool.checkout(0).expect("reader");
            assert_eq!(count(&r), 1);
            began(&r)
        };
        {
            let r = pool.checkout(0).expect("reader");
            assert_eq!(
                began(&r),
                first,
                "nothing was committed: the snapshot is reused"
            );
            assert_eq!(count(&r), 1);
        }
        // Another connection commits (as another process would): seen at once.
        w.execute("INSERT INTO t VALUES (2)", []).expect("insert");
        let r = pool.checkout(0).expect("reader");
        assert_ne!(began(&r), first, "a commit elsewhere renews the snapshot");
        assert_eq!(count(&r), 2);
        drop(r);
        // This process's writer bumps the generation: renewed too, even with the WAL index
        // unchanged.
        let again = began(&pool.checkout(0).expect("reader"));
        assert_ne!(began(&pool.checkout(1).expect("reader")), again);
    }

    #[test]
    fn an_old_snapshot_is_renewed() {
        let (_dir, path, _w) = database();
        let pool = ReaderPool::new(&path);
        let first = began(&pool.checkout(0).expect("reader"));
        std::thread::sleep(SNAPSHOT_MAX_AGE * 2);
        assert_ne!(began(&pool.checkout(0).expect("reader")), first);
    }

    #[test]
    fn idle_snapshots_do_not_hold_back_checkpoints() {
        let (_dir, path, w) = database();
        let pool = ReaderPool::new(&path);
        let truncate = || -> i64 {
            w.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .expect("checkpoint")
        };
        assert_eq!(count(&pool.checkout(0).expect("reader")), 1);
        w.execute("INSERT INTO t VALUES (2)", []).expect("insert");
        // The idle connection's snapshot predates the insert: the WAL cannot be emptied.
        assert_eq!(truncate(), 1, "the idle snapshot blocks the checkpoint");
        pool.release_idle();
        assert_eq!(truncate(), 0);
        // And without being asked: the background sweep ends it.
        assert_eq!(count(&pool.checkout(0).expect("reader")), 2);
        w.execute("INSERT INTO t VALUES (3)", []).expect("insert");
        std::thread::sleep(IDLE_MAX_AGE * 3);
        assert_eq!(truncate(), 0, "the sweep ended the idle snapshot");
    }

    #[test]
    fn renewing_one_snapshot_leaves_another_in_place() {
        let (_dir, path, w) = database();
        let pool = ReaderPool::new(&path);
        let a = pool.checkout(0).expect("reader");
        assert_eq!(count(&a), 1);
        w.execute("INSERT INTO t VALUES (2)", []).expect("insert");
        // Another connection renews its snapshot several times (each renewal reads the WAL
        // index file), then finishes.
        for generation in 1..4 {
            assert_eq!(count(&pool.checkout(generation).expect("reader")), 2);
        }
        pool.release_idle();
        // `a` still reads its snapshot, and its read mark still holds the checkpoint back.
        assert_eq!(count(&a), 1);
        let busy: i64 = w
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .expect("checkpoint");
        assert_eq!(busy, 1);
    }

    #[test]
    fn checkouts_beyond_the_limit_wait_for_a_return() {
        let (_dir, path, _w) = database();
        let pool = ReaderPool::new(&path);
        let held: Vec<_> = (0..MAX_READERS)
            .map(|_| pool.checkout(0).expect("reader"))
            .collect();
        assert_eq!(pool.open_count(), MAX_READERS);
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || count(&pool.checkout(0).expect("reader")))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "no connection is free yet");
        drop(held);
        assert_eq!(waiter.join().expect("waiter"), 1);
        assert_eq!(
            pool.open_count(),
            MAX_READERS,
            "connections are kept, not reopened"
        );
    }
}
