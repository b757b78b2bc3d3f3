//! Gathered reads of single records: when the store pays a network round trip per read
//! ([`Store::reads_gather`], PostgreSQL), concurrent get-person reads are not run one by one on
//! blocking threads. Each reader hands its ID to a small set of reader threads through a channel
//! and awaits the answer on a oneshot; a reader thread takes every request waiting at that moment
//! and answers them all with one [`Store::persons_json`] query.
//!
//! Nothing holds a thread while it waits, and under load one query serves many readers, so the
//! database parses, plans and sends once per group instead of once per read. With no load a
//! group is a single read, and the cost is one wake-up of a reader thread.
//!
//! Reader threads take turns as leader: the one holding the queue waits for the next request,
//! takes what else is queued (up to [`MAX_GROUP`]), lets the queue go to the next thread and
//! queries. So while one group is on its round trip the next one is already gathering.

use dancu_domain::PersonalId;
use dancu_store::{PersonJson, Store, StoreError};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A record's stored JSON with its home commune, or `None` for an unknown ID.
pub(crate) type Found = Option<PersonJson>;

struct Request {
    id: PersonalId,
    reply: oneshot::Sender<Result<Found, String>>,
}

/// Most reads answered by one query.
const MAX_GROUP: usize = 256;

/// Reader threads sharing the queue: while one group is on its round trip, the next gathers.
const READERS: usize = 2;

/// Handle to the reader threads.
#[derive(Debug)]
pub(crate) struct Gatherer {
    tx: Sender<Request>,
}

impl Gatherer {
    /// Starts the reader threads over a store; they stop when the handle is dropped.
    pub(crate) fn start(store: &Arc<dyn Store>) -> Result<Self, StoreError> {
        let (tx, rx) = channel::<Request>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..READERS {
            let store = store.clone();
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("person-reader-{n}"))
                .spawn(move || reader(&*store, &rx))
                .map_err(|e| StoreError::Backend(format!("starting a reader thread: {e}")))?;
        }
        Ok(Self { tx })
    }

    /// The stored JSON and home commune of a person, read together with whatever other reads
    /// are waiting.
    pub(crate) async fn read(&self, id: PersonalId) -> Result<Found, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { id, reply })
            .map_err(|_| StoreError::Backend("the person readers stopped".into()))?;
        match answer.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(StoreError::Backend(e)),
            Err(_) => Err(StoreError::Backend("a person reader stopped".into())),
        }
    }
}

/// Takes the next group off the queue: waits for one request, then takes what else is queued.
/// `None` once every sender is gone.
fn next_group(rx: &Mutex<Receiver<Request>>) -> Option<Vec<Request>> {
    // A poisoned lock only means another reader panicked while holding the queue; the queue
    // itself is still sound.
    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let first = rx.recv().ok()?;
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(r) => group.push(r),
            Err(_) => break,
        }
    }
    Some(group)
}

fn reader(store: &dyn Store, rx: &Mutex<Receiver<Request>>) {
    while let Some(group) = next_group(rx) {
        let ids: Vec<PersonalId> = group.iter().map(|r| r.id).collect();
        match store.persons_json(&ids) {
            Ok(found) if found.len() == group.len() => {
                for (r, f) in group.into_iter().zip(found) {
                    // The asker may have gone (its connection closed); nothing to do then.
                    let _ = r.reply.send(Ok(f));
                }
            }
            result => {
                let e = match result {
                    Err(e) => e.to_string(),
                    Ok(found) => format!(
                        "the store answered {} reads for {} asked",
                        found.len(),
                        group.len()
                    ),
                };
                tracing::error!(error = %e, n = group.len(), "gathered person read failed");
                for r in group {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
