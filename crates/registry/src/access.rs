//! The read-access log (nhật ký truy cập): every read of a person's data is recorded before the
//! data is released. Entries from concurrent readers are written together in one transaction
//! (group commit), so logging costs one write per batch, not per read.

use dancu_store::{AccessEntry, Store, StoreError};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

type Ack = SyncSender<Result<(), String>>;

/// Handle to the access-log writer thread.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: SyncSender<(Vec<AccessEntry>, Ack)>,
}

/// Most entries written in one transaction.
const MAX_BATCH: usize = 4096;

impl AccessLog {
    /// Starts the writer thread over a store.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = sync_channel::<(Vec<AccessEntry>, Ack)>(8192);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer(store, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the access-log writer; reads will be refused");
        }
        Self { tx }
    }

    /// Records entries and returns once they are committed. Fails if the log cannot be written:
    /// the caller must then not release the data.
    pub fn record(&self, entries: Vec<AccessEntry>) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = sync_channel(1);
        self.tx
            .send((entries, ack_tx))
            .map_err(|_| StoreError::Backend("access-log writer stopped".into()))?;
        match ack_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Backend(e)),
            Err(_) => Err(StoreError::Backend("access-log writer stopped".into())),
        }
    }
}

fn writer(store: Arc<dyn Store>, rx: Receiver<(Vec<AccessEntry>, Ack)>) {
    while let Ok(first) = rx.recv() {
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
        let result = store.record_access(&entries).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, n = entries.len(), "access log write failed");
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}
