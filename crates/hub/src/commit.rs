//! Group commit: many callers, one disk sync per group.
//!
//! [`GroupLog`] is the exchange log's: a caller hands its record to the log's writer thread and
//! holds a receipt. The writer takes every record waiting, writes them to the log in the order
//! they were handed over, syncs once and answers each receipt; records that arrive meanwhile
//! form the next group. So the hash chain follows the order of hand-over, nobody is answered
//! before its record is durable, and a failed write fails exactly the callers of the group it
//! hit (see [`AuditLog::append_group`]). A receipt is awaited by the HTTP layer (no thread is
//! parked per exchange) or waited on by blocking callers.
//!
//! [`Batcher`] does the same without a thread of its own, for work done by whichever caller
//! finds no group in progress (the replay check of client assertions).

use crate::audit::{AuditError, AuditLog};
use chrono::{DateTime, Utc};
use dancu_exchange::log::record::AuditRecord;
use dancu_exchange::log::segment::Appended;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Hands items of many threads to one writer at a time: a caller submits its item and waits;
/// whoever finds no group in progress takes every item waiting (its own among them), runs the
/// group's work once and publishes one result per item. Items keep their submission order.
///
/// Each caller sleeps on its own condition variable, so the end of a group wakes only that
/// group's callers and the one caller that leads the next group: with a hundred callers in
/// flight, waking them all at every group cost more than the work itself.
#[derive(Debug)]
pub struct Batcher<T, R> {
    queue: Mutex<Queue<T, R>>,
}

#[derive(Debug)]
struct Queue<T, R> {
    next_ticket: u64,
    waiting: Vec<(u64, T)>,
    busy: bool,
    results: HashMap<u64, R>,
    /// Each waiting caller's wake-up, by ticket.
    wakers: HashMap<u64, Arc<Condvar>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic (results are published in one step).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes a group's results when its work is done, or `lost` results if the work
/// panicked or returned too few, so that nobody waits for ever.
struct Publish<'a, T, R> {
    owner: &'a Batcher<T, R>,
    tickets: Vec<u64>,
    results: Vec<R>,
    lost: &'a dyn Fn() -> R,
}

impl<T, R> Drop for Publish<'_, T, R> {
    fn drop(&mut self) {
        let mut q = lock(&self.owner.queue);
        let mut results = std::mem::take(&mut self.results).into_iter();
        let mut wake = Vec::with_capacity(self.tickets.len() + 1);
        for t in self.tickets.drain(..) {
            let r = results.next().unwrap_or_else(self.lost);
            q.results.insert(t, r);
            wake.extend(q.wakers.get(&t).cloned());
        }
        q.busy = false;
        // The first caller still waiting leads the next group.
        if let Some((t, _)) = q.waiting.first() {
            wake.extend(q.wakers.get(t).cloned());
        }
        drop(q);
        for w in wake {
            w.notify_one();
        }
    }
}

impl<T, R> Default for Batcher<T, R> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Queue {
                next_ticket: 0,
                waiting: Vec::new(),
                busy: false,
                results: HashMap::new(),
                wakers: HashMap::new(),
            }),
        }
    }
}

impl<T, R> Batcher<T, R> {
    /// Submits `item` and waits for its result. `work` gets a whole group in submission
    /// order and must answer one result per item, in order; `lost` stands for a missing one.
    pub fn submit(&self, item: T, work: impl FnOnce(Vec<T>) -> Vec<R>, lost: &dyn Fn() -> R) -> R {
        let mut q = lock(&self.queue);
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push((ticket, item));
        let waker = Arc::new(Condvar::new());
        q.wakers.insert(ticket, waker.clone());
        let mut work = Some(work);
        loop {
            if let Some(r) = q.results.remove(&ticket) {
                q.wakers.remove(&ticket);
                return r;
            }
            // Our item is still waiting (results are published before `busy` drops), so once
            // nobody is busy it is ours to write, with everything waiting beside it.
            if q.busy || work.is_none() {
                q = waker.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            q.busy = true;
            let group = std::mem::take(&mut q.waiting);
            drop(q);
            let (tickets, items): (Vec<u64>, Vec<T>) = group.into_iter().unzip();
            let mut publish = Publish {
                owner: self,
                tickets,
                results: Vec::new(),
                lost,
            };
            if let Some(work) = work.take() {
                publish.results = work(items);
            }
            drop(publish);
            q = lock(&self.queue);
        }
    }
}

/// What the log writer answers for one record.
type Ack = tokio::sync::oneshot::Sender<Result<Appended, AuditError>>;

/// Most records written in one group (one sync).
const MAX_GROUP: usize = 4096;

/// The exchange log shared by the request threads, written by a thread of its own.
///
/// A caller hands its record to the writer and gets a [`LogReceipt`] at once; the writer takes
/// every record waiting, writes them in the order they were handed over, syncs once and then
/// answers each receipt. A caller may block on the receipt ([`LogReceipt::wait`]) or await it
/// ([`LogReceipt::committed`]) without holding a thread: an HTTP exchange then costs no parked
/// thread and no thread wake-up of its own, only its share of one sync.
#[derive(Debug)]
pub struct GroupLog {
    log: Arc<Mutex<AuditLog>>,
    tx: Option<std::sync::mpsc::Sender<(AuditRecord, Ack)>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// The promise of a log record: its place in the log once it is durable, or why it is not.
#[derive(Debug)]
#[must_use = "an exchange may be answered only once its record is in the log"]
pub struct LogReceipt(
    Result<tokio::sync::oneshot::Receiver<Result<Appended, AuditError>>, AuditError>,
);

impl LogReceipt {
    fn outcome(
        r: Result<Result<Appended, AuditError>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<Appended, AuditError> {
        r.unwrap_or_else(|_| Err(stopped()))
    }

    /// Blocks this thread until the record is durable. Not for an async runtime's worker.
    pub fn wait(self) -> Result<Appended, AuditError> {
        match self.0 {
            Ok(rx) => Self::outcome(rx.blocking_recv()),
            Err(e) => Err(e),
        }
    }

    /// Awaits the record without holding a thread.
    pub async fn committed(self) -> Result<Appended, AuditError> {
        match self.0 {
            Ok(rx) => Self::outcome(rx.await),
            Err(e) => Err(e),
        }
    }
}

fn stopped() -> AuditError {
    AuditError::Damaged("the log writer stopped".into())
}

impl GroupLog {
    /// Shares `log` and starts its writer thread (which ends when this is dropped).
    pub fn new(log: AuditLog) -> Self {
        let log = Arc::new(Mutex::new(log));
        let (tx, rx) = std::sync::mpsc::channel::<(AuditRecord, Ack)>();
        let shared = log.clone();
        let writer = std::thread::Builder::new()
            .name("exchange-log".into())
            .spawn(move || write_groups(&shared, &rx))
            .ok();
        Self {
            log,
            // Without a writer nothing can be logged, so nothing is served.
            tx: writer.as_ref().map(|_| tx),
            writer,
        }
    }

    /// The log itself, for work that needs it whole (batches, checkpoints). Records appended
    /// through it are ordered with the groups by this lock.
    pub fn lock(&self) -> MutexGuard<'_, AuditLog> {
        lock(&self.log)
    }

    /// Hands one record to the writer; the receipt tells when it is durable (or refused).
    pub fn submit(&self, record: AuditRecord) -> LogReceipt {
        let (ack, rx) = tokio::sync::oneshot::channel();
        match &self.tx {
            Some(tx) if tx.send((record, ack)).is_ok() => LogReceipt(Ok(rx)),
            _ => LogReceipt(Err(stopped())),
        }
    }

    /// Appends one record and returns once it is durable (or refused).
    pub fn append(&self, record: AuditRecord) -> Result<Appended, AuditError> {
        self.submit(record).wait()
    }
}

impl Drop for GroupLog {
    fn drop(&mut self) {
        // The writer answers what it holds, sees the channel closed and ends, closing the
        // log's files before this returns (so the directory can be opened again at once).
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// How long a group takes at least, waiting included, when the last group showed that callers
/// are arriving together. A sync costs the kernel tens of microseconds of
/// CPU whatever it carries, so under load a slightly later sync of a larger group costs far less
/// than many small ones (as PostgreSQL's `commit_delay`); a lone caller is never delayed.
const GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// The nice value the log writer asks for: below the request threads' 0.
#[cfg(target_os = "linux")]
const WRITER_NICE: i32 = -10;

/// Asks the scheduler to run this thread ahead of the request threads. Every exchange waits
/// for the writer, and the time between a sync's end and the writer running again is time all
/// those callers wait: at 128 connections on 2 cores, four runs each way, the machine's busy
/// share under attribute match was 0.86–0.93 with it against 0.84–0.87 without (the empty
/// handler's 0.90–0.94), though throughput moved by no more than the runs' spread. Lowering a nice value needs the privilege
/// to (root or `CAP_SYS_NICE`); without it the thread keeps the default priority and nothing
/// else changes.
fn raise_writer_priority() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE);
    }
}

/// The writer thread: one group per turn, every record waiting (up to [`MAX_GROUP`]).
fn write_groups(log: &Mutex<AuditLog>, rx: &std::sync::mpsc::Receiver<(AuditRecord, Ack)>) {
    raise_writer_priority();
    let mut busy = false;
    let mut last_write = std::time::Duration::ZERO;
    while let Ok(first) = rx.recv() {
        if busy && last_write < GATHER {
            // Asleep rather than waiting on the channel, so that callers handing records over
            // meanwhile need not wake this thread one by one. A slow disk gathers groups by
            // itself: then the writer does not wait at all.
            std::thread::sleep(GATHER - last_write);
        }
        let started = std::time::Instant::now();
        let mut records = vec![first.0];
        let mut acks = vec![first.1];
        while records.len() < MAX_GROUP {
            let Ok((r, a)) = rx.try_recv() else { break };
            records.push(r);
            acks.push(a);
        }
        busy = records.len() > 1;
        let now: DateTime<Utc> = records
            .iter()
            .map(|r| r.time)
            .max()
            .unwrap_or_else(Utc::now);
        let mut results = lock(log).append_group(&records, now).into_iter();
        last_write = started.elapsed();
        for ack in acks {
            // A caller that gave up waiting is no longer there to answer.
            let _ = ack.send(results.next().unwrap_or_else(|| Err(stopped())));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::audit::{AuditSettings, list_segments, read_entries, segment_file_name, verify_dir};
    use dancu_exchange::log::checkpoint::CheckpointPolicy;
    use dancu_exchange::log::record::ExchangeResult;
    use std::collections::HashSet;

    fn record(thread: usize, i: usize) -> AuditRecord {
        AuditRecord {
            time: DateTime::from_timestamp(1_760_000_000 + i as i64, 0).unwrap(),
            caller_org: format!("org-{thread}"),
            subsystem: "s".into(),
            end_user: None,
            service: "verify_attributes".into(),
            person: Some(format!("{i:012}")),
            fields: vec!["name".into()],
            purpose: "test".into(),
            case_ref: None,
            result: ExchangeResult::Served,
            covert_until: None,
        }
    }

    fn settings() -> AuditSettings {
        AuditSettings {
            segment_max_bytes: 4096,
            fsync_each_record: true,
            checkpoint: CheckpointPolicy {
                every_records: 50,
                every: chrono::TimeDelta::hours(1),
            },
            max_live_bytes: None,
        }
    }

    /// The nice values of this process's threads named `name`, from /proc.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut out = Vec::new();
        for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
            // After the command's closing parenthesis, nice is the 17th field.
            let rest = stat.rsplit_once(')').unwrap().1;
            out.push(rest.split_whitespace().nth(16).unwrap().parse().unwrap());
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_log_writer_runs_ahead_of_the_request_threads_where_permitted() {
        // Whether this process may lower a nice value: a probe thread tries.
        let permitted = std::thread::spawn(|| {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), WRITER_NICE)
                .is_ok()
        })
        .join()
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = GroupLog::new(AuditLog::open(dir.path(), settings()).unwrap());
        log.append(record(0, 0)).unwrap();
        let nice = nice_of_threads("exchange-log");
        assert!(!nice.is_empty(), "the writer thread is named exchange-log");
        let expected = if permitted { WRITER_NICE } else { 0 };
        assert!(nice.contains(&expected), "{nice:?}, permitted: {permitted}");
    }

    #[test]
    fn concurrent_appends_are_each_logged_once_in_a_chain_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(GroupLog::new(
            AuditLog::open(dir.path(), settings()).unwrap(),
        ));
        let (threads, each) = (8, 60);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..each {
                        seqs.push(log.append(record(t, i)).unwrap().seq);
                    }
                    seqs
                })
            })
            .collect();
        let mut all = Vec::new();
        for (t, h) in handles.into_iter().enumerate() {
            let seqs = h.join().unwrap();
            // One thread's records keep their order in the chain.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "thread {t}: {seqs:?}");
            all.extend(seqs);
        }
        let unique: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(unique.len(), threads * each);
        assert_eq!(unique, (0..(threads * each) as u64).collect::<HashSet<_>>());
        log.lock()
            .checkpoint_now(DateTime::from_timestamp(1_800_000_000, 0).unwrap())
            .unwrap();
        drop(log);
        let v = verify_dir(dir.path(), None).unwrap();
        assert!(v.is_intact(), "{}", v.summary());
        assert_eq!(v.report.records, (threads * each) as u64);
        // Every record is there once, and the seq each caller got is where its record is.
        let entries = read_entries(dir.path()).unwrap();
        let mut seen = HashSet::new();
        for e in &entries {
            let key = (e.record.caller_org.clone(), e.record.person.clone());
            assert!(seen.insert(key), "a record is logged twice");
        }
        assert_eq!(seen.len(), threads * each);
    }

    #[test]
    fn a_failed_group_fails_every_caller_and_leaves_none_of_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings();
        // One record per segment: every append creates a segment, so a blocked name fails it.
        s.segment_max_bytes = 1;
        let log = GroupLog::new(AuditLog::open(dir.path(), s).unwrap());
        for i in 0..3 {
            log.append(record(0, i)).unwrap();
        }
        // The group's first record fills a new segment; the second needs the one after,
        // whose name is taken: the group fails after part of it was written.
        let next = list_segments(dir.path()).unwrap().last().unwrap().0 + 1;
        let blocker = dir.path().join(segment_file_name(next + 1));
        std::fs::create_dir(&blocker).unwrap();
        let group: Vec<AuditRecord> = (3..6).map(|i| record(1, i)).collect();
        let results = log.lock().append_group(&group, group[0].time);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_err));
        assert!(!dir.path().join(segment_file_name(next)).exists());
        std::fs::remove_dir(&blocker).unwrap();
        let v = verify_dir(dir.path(), None).unwrap();
        assert_eq!(v.report.records, 3, "{}", v.summary());
        assert!(v.report.first_bad.is_none(), "{}", v.summary());
        assert_eq!(log.append(record(2, 9)).unwrap().seq, 3);
        drop(log);
        let v = verify_dir(dir.path(), None).unwrap();
        assert!(v.report.first_bad.is_none(), "{}", v.summary());
        assert_eq!(v.report.records, 4);
        let orgs: Vec<String> = read_entries(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.record.caller_org)
            .collect();
        assert_eq!(orgs, ["org-0", "org-0", "org-0", "org-2"]);
    }

    #[test]
    fn a_failed_write_fails_the_waiting_callers_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings();
        s.segment_max_bytes = 1;
        let log = Arc::new(GroupLog::new(AuditLog::open(dir.path(), s).unwrap()));
        log.append(record(0, 0)).unwrap();
        // Block every segment name the next appends could take.
        let next = list_segments(dir.path()).unwrap().last().unwrap().0 + 1;
        for n in next..next + 64 {
            std::fs::create_dir(dir.path().join(segment_file_name(n))).unwrap();
        }
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || log.append(record(t, 1)).is_err())
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap(), "an append succeeded on a blocked log");
        }
        drop(log);
        for n in next..next + 64 {
            std::fs::remove_dir(dir.path().join(segment_file_name(n))).unwrap();
        }
        let v = verify_dir(dir.path(), None).unwrap();
        assert_eq!(v.report.records, 1);
        assert!(v.report.first_bad.is_none(), "{}", v.summary());
    }
}
