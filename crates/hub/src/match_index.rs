//! The in-memory view attribute match answers from: for every person, only what the match
//! compares ([`MatchFacts`]: full name, date of birth, sex, whether dead, home commune), built
//! by one scan of the register when the hub opens and kept current from the register's event
//! stream.
//!
//! Reading the record from the store was about a quarter of an attribute match's CPU (three
//! B-tree descents into a file larger than the CPU caches, then decoding the JSON); a hash
//! lookup costs a small fraction of that. The view never answers from a stale copy: it exists
//! only over a store that counts every register commit of this process
//! ([`Store::register_writes`], the embedded SQLite register), and before each answer it
//! compares that count with the one it last caught up to; if a commit came in between, it
//! first reads the streams the new events moved and refreshes those people. Until the first
//! scan is done, for a person it does not hold (registered by another process, such as an
//! import run beside the server) and when the store fails, the caller reads the store as
//! before. A PostgreSQL register, which other nodes write to, has no view.
//!
//! Memory: the process's anonymous memory grew by 352 MB while the view of 1,000,003 people
//! was built (`RssAnon` before and after, `dancu bench --hub` over the 1M database): about
//! 360 bytes a person with the map's spare room and the allocator's.

use dancu_domain::id::PersonalId;
use dancu_exchange::matching::{Claims, FieldAnswer, MatchFacts, MatchRecord};
use dancu_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Events read per page while catching up.
const CATCH_UP_PAGE: u32 = 10_000;

/// See the module documentation.
#[derive(Debug)]
pub struct MatchIndex {
    store: Arc<dyn Store>,
    state: RwLock<State>,
    ready: AtomicBool,
    /// How long the first scan took and how many people it holds, once done; or why it failed.
    built: Mutex<Option<Result<(Duration, usize), String>>>,
}

#[derive(Debug, Default)]
struct State {
    facts: rustc_hash::FxHashMap<PersonalId, MatchFacts>,
    /// Every event up to this seq is reflected.
    cursor: i64,
    /// The store's count of register commits when the view last caught up.
    writes: u64,
}

impl MatchIndex {
    /// Starts building the view on a thread of its own, or answers `None` when the store cannot
    /// tell this process of every register change.
    pub fn start(store: Arc<dyn Store>) -> Option<Arc<Self>> {
        store.register_writes()?;
        let index = Arc::new(Self {
            store,
            state: RwLock::new(State::default()),
            ready: AtomicBool::new(false),
            built: Mutex::new(None),
        });
        let building = index.clone();
        let spawned = std::thread::Builder::new()
            .name("match-index".into())
            .spawn(move || {
                let outcome = building.build();
                *building.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            });
        // Without the thread the view stays unready and every match reads the store.
        spawned.ok()?;
        Some(index)
    }

    /// The first scan: the commit count, then the last seq, then every person. A commit after
    /// the count was read moves it, so the first answer catches up from that seq; one the scan
    /// already saw is read again, which changes nothing.
    fn build(&self) -> Result<(Duration, usize), String> {
        let clock = Instant::now();
        let writes = self
            .store
            .register_writes()
            .ok_or("the store no longer counts its commits")?;
        let cursor = self.store.last_event_seq().map_err(|e| e.to_string())?;
        let mut facts = rustc_hash::FxHashMap::default();
        self.store
            .scan_persons_json(&mut |id, json, commune| {
                // A record that does not decode is left to the store read, which reports it.
                if let Ok(record) = serde_json::from_str::<MatchRecord>(json) {
                    facts.insert(id, MatchFacts::new(&record, commune));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        facts.shrink_to_fit();
        let people = facts.len();
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = State {
            facts,
            cursor,
            writes,
        };
        self.ready.store(true, Ordering::Release);
        Ok((clock.elapsed(), people))
    }

    /// The first scan's duration and size once it is done, or why it failed; `None` while it
    /// runs.
    pub fn built(&self) -> Option<Result<(Duration, usize), String>> {
        self.built.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers the claims about `id` from the view, current as of every commit this process
    /// has made; `None` when the caller must read the store instead (see the module
    /// documentation).
    pub fn answer(&self, id: &PersonalId, claims: &Claims) -> Option<Vec<FieldAnswer>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        let now = self.store.register_writes()?;
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if state.writes >= now {
                return state.facts.get(id).map(|f| f.answer(claims));
            }
        }
        let state = self.catch_up(now).ok()?;
        state.facts.get(id).map(|f| f.answer(claims))
    }

    /// Refreshes the people whose streams moved since the cursor, so that the view reflects
    /// every commit counted up to `now`.
    fn catch_up(
        &self,
        now: u64,
    ) -> Result<std::sync::RwLockReadGuard<'_, State>, dancu_store::StoreError> {
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            if state.writes < now {
                let mut cursor = state.cursor;
                let mut moved = Vec::new();
                loop {
                    let page = self.store.streams_after(cursor, CATCH_UP_PAGE)?;
                    let Some((last, _)) = page.last() else {
                        break;
                    };
                    cursor = *last;
                    moved.extend(
                        page.iter()
                            .filter_map(|(_, s)| s.strip_prefix("p:"))
                            .filter_map(|id| PersonalId::parse(id).ok()),
                    );
                }
                moved.sort_unstable();
                moved.dedup();
                for id in moved {
                    let fresh = self.store.person_json(&id)?.and_then(|(json, commune)| {
                        serde_json::from_str::<MatchRecord>(&json)
                            .ok()
                            .map(|r| MatchFacts::new(&r, commune.as_deref()))
                    });
                    match fresh {
                        Some(f) => state.facts.insert(id, f),
                        None => state.facts.remove(&id),
                    };
                }
                state.cursor = cursor;
                state.writes = now;
            }
        }
        Ok(self.state.read().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::Utc;
    use dancu_domain::PartialDate;
    use dancu_domain::event::{EventMeta, PersonChange};
    use dancu_domain::person::{Person, VitalStatus};
    use dancu_exchange::matching::{MatchRecord, Verdict, attribute_match};
    use dancu_store::{Append, Commit, ImportRow};

    fn person(serial: u32, given: &str) -> Person {
        let id = format!("095097{serial:06}");
        serde_json::from_value(serde_json::json!({
            "id": id, "version": 1,
            "name": {"family": "Đỗ", "middle": "Thị", "given": given}, "other_names": [],
            "date_of_birth": "1997-02-20", "sex": "female",
            "birth_registration": {"scheme": "legacy", "commune_code": "31960", "detail": "",
                                   "effective_from": "1997-03-03"},
            "ethnicity": "Kinh", "religion": "Không", "nationality": "VN",
            "marital_status": "single", "legacy_cmnd": [], "cards": [],
            "vital_status": {"status": "alive"}
        }))
        .unwrap()
    }

    fn meta() -> EventMeta {
        EventMeta {
            actor: "test".into(),
            at: Utc::now(),
            reason: None,
            legal_basis: None,
            document_ref: None,
        }
    }

    fn claims(name: &str) -> Claims {
        serde_json::from_value(serde_json::json!({
            "name": name, "date_of_birth": "1997-02", "sex": "female", "commune_code": "00004"
        }))
        .unwrap()
    }

    fn built(index: &MatchIndex) -> usize {
        for _ in 0..1000 {
            if let Some(done) = index.built() {
                return done.unwrap().1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the view was not built");
    }

    /// The answers a store read gives (the path the view replaces).
    fn from_store(store: &dyn Store, id: &PersonalId, c: &Claims) -> Vec<FieldAnswer> {
        let (json, home) = store.person_json(id).unwrap().unwrap();
        let record: MatchRecord = serde_json::from_str(&json).unwrap();
        MatchFacts::new(&record, home.as_deref()).answer(c)
    }

    #[test]
    fn answers_as_the_store_and_follows_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            dancu_store::docs::open_with_docs(dir.path().join("db.sqlite3").to_str().unwrap())
                .unwrap();
        let rows: Vec<ImportRow> = (0..300)
            .map(|i| ImportRow {
                line: u64::from(i) + 1,
                person: person(i, "Hoà"),
            })
            .collect();
        store.import_batch("t", &rows, &meta()).unwrap();
        let index = MatchIndex::start(store.clone()).expect("an embedded register has a view");
        assert_eq!(built(&index), 300);
        let first = rows[7].person.clone();
        let c = claims("Do Thi Hoa");
        let answered = index.answer(&first.id, &c).expect("held");
        assert_eq!(answered, from_store(&*store, &first.id, &c));
        assert_eq!(answered, attribute_match(&first, &c));

        // A name correction and a death, committed after the scan: the next answer has them.
        let mut changed = first.clone();
        changed.name = serde_json::from_value(
            serde_json::json!({"family": "Đỗ", "middle": "Thị", "given": "Lan"}),
        )
        .unwrap();
        changed.version = 2;
        store
            .commit(&Commit {
                meta: meta(),
                appends: vec![Append::Person {
                    expected: 1,
                    change: PersonChange::DeathRegistered {
                        date_of_death: PartialDate::parse("2024").unwrap(),
                    },
                    state: {
                        let mut dead = changed.clone();
                        dead.vital_status = VitalStatus::Dead {
                            date_of_death: PartialDate::parse("2024").unwrap(),
                        };
                        dead
                    },
                }],
                idempotency: None,
            })
            .unwrap();
        let after = index.answer(&first.id, &c).expect("held");
        assert_eq!(after, from_store(&*store, &first.id, &c));
        assert_ne!(after, answered, "the change is seen");
        assert_eq!(after[0].verdict, Verdict::NoMatch, "Hoa against Lan");

        // A person born after the scan is held too; one nobody registered is left to the store.
        let born = person(900, "Mai");
        store
            .commit(&Commit {
                meta: meta(),
                appends: vec![Append::Person {
                    expected: 0,
                    change: PersonChange::BirthRegistered {
                        record: Box::new(born.clone()),
                    },
                    state: born.clone(),
                }],
                idempotency: None,
            })
            .unwrap();
        assert_eq!(
            index.answer(&born.id, &c).expect("held"),
            attribute_match(&born, &c)
        );
        assert_eq!(index.answer(&person(901, "X").id, &c), None);
    }

    #[test]
    fn people_another_process_imports_are_left_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let (store, _) = dancu_store::docs::open_with_docs(path.to_str().unwrap()).unwrap();
        let index = MatchIndex::start(store.clone()).unwrap();
        assert_eq!(built(&index), 0);
        // A second handle stands for another process: this one's count does not move.
        let (other, _) = dancu_store::docs::open_with_docs(path.to_str().unwrap()).unwrap();
        let p = person(5, "Hoà");
        other
            .import_batch(
                "other",
                &[ImportRow {
                    line: 1,
                    person: p.clone(),
                }],
                &meta(),
            )
            .unwrap();
        assert_eq!(index.answer(&p.id, &claims("Do Thi Hoa")), None);
        assert!(store.person_json(&p.id).unwrap().is_some());
    }
}
