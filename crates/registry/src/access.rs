//! The read-access log (nhật ký truy cập): every read of a person's data is recorded before the
//! data is released. Entries from concurrent readers are written together in one transaction
//! (group commit), so logging costs one write per batch, not per read. A store on a database
//! server asks for several writers ([`Store::access_log_writers`]), so one batch is sent while
//! another waits for its commit.
//!
//! A reader hands its entries over and gets an [`AccessReceipt`]; the data it read is held in a
//! [`Logged`] that gives the data up only once the receipt says the entries are committed, by
//! blocking ([`Logged::wait`]) or by awaiting ([`Logged::release`]) without holding a thread.
//!
//! When the store appends locally without a sync per append (the embedded store's journal
//! under normal durability), entries are written on the reader's own thread instead: a
//! `write` is cheaper than waking the writer and being woken back.

use dancu_store::{AccessEntry, Store, StoreError};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Ack = oneshot::Sender<Result<(), String>>;

/// The promise that submitted access entries will be committed (or fail).
#[derive(Debug)]
pub struct AccessReceipt(Option<oneshot::Receiver<Result<(), String>>>);

impl AccessReceipt {
    /// A receipt for nothing (no entries to log).
    pub(crate) fn none() -> Self {
        Self(None)
    }

    fn outcome(r: Result<Result<(), String>, oneshot::error::RecvError>) -> Result<(), StoreError> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Backend(e)),
            Err(_) => Err(StoreError::Backend("access-log writer stopped".into())),
        }
    }

    /// Waits on this thread. Not for use on an async runtime's worker thread.
    pub fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => Self::outcome(rx.blocking_recv()),
        }
    }

    /// Waits without holding a thread.
    pub async fn committed(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => Self::outcome(rx.await),
        }
    }
}

/// Data read from the register, released only once its reads are in the access log.
#[derive(Debug)]
#[must_use = "the data is released by wait() or release()"]
pub struct Logged<T> {
    value: T,
    receipt: AccessReceipt,
}

impl<T> Logged<T> {
    pub(crate) fn new(value: T, receipt: AccessReceipt) -> Self {
        Self { value, receipt }
    }

    /// Transforms the held data, keeping the receipt.
    pub fn try_map<U>(self, f: impl FnOnce(T) -> crate::Result<U>) -> crate::Result<Logged<U>> {
        Ok(Logged {
            value: f(self.value)?,
            receipt: self.receipt,
        })
    }

    /// Blocks until the reads are logged, then gives the data.
    pub fn wait(self) -> crate::Result<T> {
        self.receipt.wait().map_err(crate::RegistryError::Store)?;
        Ok(self.value)
    }

    /// Awaits the log, then gives the data.
    pub async fn release(self) -> crate::Result<T> {
        self.receipt
            .committed()
            .await
            .map_err(crate::RegistryError::Store)?;
        Ok(self.value)
    }
}

/// Handle to the access-log writer threads (one, or as many as the store asks for).
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<(Vec<AccessEntry>, Ack)>,
    /// The store itself when its appends are local and cheap: entries are then written on the
    /// reader's thread instead of being handed to the writer.
    inline: Option<Arc<dyn Store>>,
}

/// Most entries written in one transaction.
const MAX_BATCH: usize = 4096;

impl AccessLog {
    /// Starts the writer thread over a store.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = sync_channel::<(Vec<AccessEntry>, Ack)>(8192);
        let inline = store.access_append_is_local().then(|| store.clone());
        let weak = Arc::downgrade(&store);
        // On a database server a second writer sends its rows while the first waits for the
        // WAL flush, instead of after it.
        let writers = store.access_log_writers().max(1);
        let rx = Arc::new(Mutex::new(rx));
        let mut spawned = Ok(());
        for n in 0..writers {
            let (store, rx) = (store.clone(), rx.clone());
            if let Err(e) = std::thread::Builder::new()
                .name(format!("access-log-{n}"))
                .spawn(move || writer(store, &rx))
            {
                spawned = Err(e);
            }
        }
        let weak_compact = weak.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("access-log-upkeep".into())
            .spawn(move || upkeep(weak))
        {
            tracing::warn!(error = %e, "could not start the access-log upkeep thread");
        }
        if let Err(e) = std::thread::Builder::new()
            .name("access-compact".into())
            .spawn(move || compact(weak_compact))
        {
            tracing::warn!(error = %e, "could not start the access-log merging thread");
        }
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the access-log writer; reads will be refused");
        }
        Self { tx, inline }
    }

    /// Hands entries to the writer; the receipt says when they are committed. If the log cannot
    /// be written the receipt fails, and the caller must then not release the data.
    pub fn submit(&self, entries: Vec<AccessEntry>) -> Result<AccessReceipt, StoreError> {
        if let Some(store) = &self.inline {
            store.record_access(&entries)?;
            return Ok(AccessReceipt::none());
        }
        let (ack_tx, ack_rx) = oneshot::channel();
        self.tx
            .send((entries, ack_tx))
            .map_err(|_| StoreError::Backend("access-log writer stopped".into()))?;
        Ok(AccessReceipt(Some(ack_rx)))
    }

    /// Records entries and returns once they are committed (blocking).
    pub fn record(&self, entries: Vec<AccessEntry>) -> Result<(), StoreError> {
        self.submit(entries)?.wait()
    }
}

/// How often the upkeep thread runs.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs the store's access-log upkeep beside the writer (so a checkpoint never holds up a
/// commit that readers wait for), until the store is gone.
fn upkeep(store: std::sync::Weak<dyn Store>) {
    loop {
        std::thread::sleep(UPKEEP_EVERY);
        let Some(store) = store.upgrade() else { return };
        if let Err(e) = store.access_log_upkeep() {
            tracing::warn!(error = %e, "access log upkeep failed");
        }
    }
}

/// The nice value of the access log's merging thread: the lowest priority there is.
#[cfg(target_os = "linux")]
const COMPACT_NICE: i32 = 19;

/// How long the merging thread waits after a failed merge before it tries again.
const COMPACT_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the store's access-log compaction (merging the sorted runs) at the lowest priority,
/// until the store is gone. A merge copies every entry of the runs it merges, hundreds of MB
/// at the upper levels; at nice 19 it runs on the CPU that requests leave idle instead of
/// taking a share of it from them. Should requests keep it from running for long, the upkeep
/// merges a level itself once runs pile up there (see the store's `access_log_upkeep`).
/// Raising a nice value needs no privilege.
fn compact(store: std::sync::Weak<dyn Store>) {
    #[cfg(target_os = "linux")]
    {
        if let Err(e) =
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), COMPACT_NICE)
        {
            tracing::warn!(error = %e, "could not lower the access-log merging thread's priority");
        }
    }
    loop {
        std::thread::sleep(UPKEEP_EVERY);
        let Some(store) = store.upgrade() else { return };
        if let Err(e) = store.access_log_compact() {
            tracing::warn!(error = %e, retry_in_s = COMPACT_RETRY.as_secs(), "merging access-log runs failed");
            drop(store);
            std::thread::sleep(COMPACT_RETRY);
        }
    }
}

/// Writers take turns at the queue: the one holding it waits for entries, takes what else is
/// queued, then lets the queue go before committing.
fn writer(store: Arc<dyn Store>, rx: &Mutex<Receiver<(Vec<AccessEntry>, Ack)>>) {
    loop {
        let (entries, acks) = {
            // Poisoning only means another writer panicked holding the queue; it is still sound.
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut entries = first.0;
            let mut acks = vec![first.1];
            while entries.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok((more, ack)) => {
                        entries.extend(more);
                        acks.push(ack);
                    }
                    Err(_) => break,
                }
            }
            (entries, acks)
        };
        let result = store.record_access(&entries).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, n = entries.len(), "access log write failed");
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The nice value of each of this process's threads called `name` (from the thread's
    /// `stat`: the name in parentheses, then nice as the 17th field after them).
    fn nice_of(name: &str) -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            .filter_map(|stat| {
                let (head, rest) = stat.rsplit_once(')')?;
                (head.split_once('(')?.1 == name)
                    .then(|| rest.split_whitespace().nth(16)?.parse().ok())
                    .flatten()
            })
            .collect()
    }

    #[test]
    fn merging_runs_at_the_lowest_priority_and_the_upkeep_at_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            dancu_store::sqlite::SqliteStore::open(&dir.path().join("r.sqlite3")).unwrap(),
        );
        let _log = AccessLog::start(store);
        // Each thread names itself and sets its priority as it starts. (Thread names are cut
        // to 15 bytes.)
        // Other tests of this process may run their own access logs meanwhile.
        let all = |name: &str, nice: i64| {
            let found = nice_of(name);
            !found.is_empty() && found.iter().all(|n| *n == nice)
        };
        let seen = || (nice_of("access-compact"), nice_of("access-log-upke"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !(all("access-compact", COMPACT_NICE.into()) && all("access-log-upke", 0)) {
            assert!(std::time::Instant::now() < deadline, "{:?}", seen());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
