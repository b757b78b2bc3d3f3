//! SIGKILL at any moment leaves a consistent database: no half-written person, no event without
//! its projection, no projection without its events; a killed import resumes.

use dancu_domain::event::{PersonChange, apply};
use dancu_domain::person::Person;
use dancu_store::{Store, StreamId};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dancu");

fn dancu(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("DANCU_DATA_DIR", data_dir)
        .env_remove("DANCU_DATABASE_URL")
        .env("DANCU_LOG", "warn");
    c
}

/// Every person's projection equals the fold of its events, and SQLite's own check passes.
fn assert_consistent(db: &Path) -> u64 {
    // Opening the store first also rebuilds the indexes that a killed bulk load had dropped.
    let store = dancu_store::sqlite::SqliteStore::open(db).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM events e WHERE e.stream LIKE 'p:%' AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = substr(e.stream, 3))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "events without a projection");
    let mismatched: i64 = conn
        .query_row(
            "SELECT count(*) FROM persons p WHERE p.version <> (SELECT max(version) FROM events e WHERE e.stream = 'p:' || p.id)
               OR NOT EXISTS (SELECT 1 FROM events e WHERE e.stream = 'p:' || p.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        mismatched, 0,
        "projections whose version disagrees with their events"
    );
    drop(conn);
    let mut n = 0u64;
    let mut folded_checked = 0;
    store
        .for_each_person(&mut |p: Person| {
            n += 1;
            // Fold a sample fully (every person would make the test slow on big imports).
            if n % 97 == 1 || p.version > 1 {
                let mut state: Option<Person> = None;
                for e in store.events(&StreamId::Person(p.id), None).unwrap() {
                    let change: PersonChange = serde_json::from_value(e.change).unwrap();
                    state = Some(apply(state.as_ref(), &change).unwrap());
                }
                assert_eq!(
                    state.as_ref(),
                    Some(&p),
                    "projection differs from its event fold"
                );
                folded_checked += 1;
            }
            Ok(())
        })
        .unwrap();
    assert!(folded_checked > 0 || n == 0);
    n
}

#[test]
fn import_killed_midway_is_consistent_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let target = tmp.path().join("target");
    let file = tmp.path().join("people.ndjson");
    let st = dancu(&source)
        .args(["demo", "--people", "60000", "--no-serve"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let st = dancu(&source)
        .args(["export", "--out"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success());
    let total = std::fs::read_to_string(&file).unwrap().lines().count() as u64;
    assert!(total >= 60_000);

    // Kill the import as soon as the first batches are committed.
    let db = target.join("dancu.sqlite3");
    let mut child = dancu(&target)
        .arg("import")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The import loads an empty register in bulk, holding the file exclusively: watch the
    // file's size instead of reading the database. A batch's pages reach the file when it
    // commits (when the next batch starts), all at once; the file then keeps its size while
    // the next batch is parsed and inserted in memory. So a file past 10 MB whose size has
    // not moved for 100 ms holds at least one whole committed batch.
    let started = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        if size != last.0 {
            last = (size, Instant::now());
        }
        if (size > 10 << 20 && last.1.elapsed() > Duration::from_millis(100))
            || started.elapsed() > Duration::from_secs(60)
        {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let partial = assert_consistent(&db);
    assert!(
        partial > 0 && partial < total,
        "killed midway: {partial} of {total}"
    );
    assert_eq!(
        partial % dancu::transfer::BATCH as u64,
        0,
        "only whole batches are committed"
    );

    // Running the same import again resumes after the last committed batch.
    let out = dancu(&target).arg("import").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["resumed_after_line"].as_u64().unwrap(), partial);
    assert_eq!(report["imported"].as_u64().unwrap(), total - partial);
    assert_eq!(assert_consistent(&db), total);
}

#[test]
fn import_reports_rejects_with_line_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("people.csv");
    let header = dancu::transfer::CSV_COLUMNS.join(",");
    let rows = [
        "001090012345,Nguyễn,Văn,An,1990-05-01,male,Kinh,Không,VN,legacy,00001,1990-05-10,2025,00004,Số 1,2025-08-01,012345678",
        "001190012346,Nguyễn,Văn,Bình,1990-05-01,male,Kinh,Không,VN,legacy,00001,1990-05-10,2025,00004,Số 1,2025-08-01,",
        "001090012347,Trần,Thị,Cúc,1990-02-30,female,Kinh,Không,VN,legacy,00001,1990-05-10,,,,,",
        "001090012348,Lê,,Dũng,1990,male,Kinh,Không,VN,legacy,99999,1990-05-10,,,,,",
        "001090012345,Nguyễn,Văn,An,1990-05-01,male,Kinh,Không,VN,legacy,00001,1990-05-10,,,,,",
        "001190012349,Phạm,Thị,Én,1990-07-01,female,Kinh,Không,VN,legacy,00001,1990-07-10,,,,,",
    ];
    std::fs::write(&file, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let data = tmp.path().join("data");
    let out = dancu(&data).arg("import").arg(&file).output().unwrap();
    assert!(
        !out.status.success(),
        "rejects make the exit status non-zero"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3: id_sex_mismatch"), "{stderr}");
    assert!(stderr.contains("line 4: date_impossible"), "{stderr}");
    assert!(
        stderr.contains("line 5: address_commune_unknown"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6: duplicate_in_file"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["rejected"].as_u64()),
        (Some(2), Some(4))
    );
    let rejects = std::fs::read_to_string(tmp.path().join("people.csv.rejects.ndjson")).unwrap();
    assert_eq!(rejects.lines().count(), 4);
    assert_eq!(assert_consistent(&data.join("dancu.sqlite3")), 2);
}

#[test]
fn server_killed_during_writes_loses_nothing_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let st = dancu(&data)
        .args(["demo", "--people", "2000", "--no-serve"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let token = String::from_utf8(
        dancu(&data)
            .args([
                "officer",
                "add",
                "--id",
                "crash",
                "--name",
                "Crash Test",
                "--role",
                "supervisor",
                "--jurisdiction",
                "national",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = dancu(&data)
        .env("DANCU_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acknowledged = rt.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (http, base, token, ids) = (http.clone(), base.clone(), token.clone(), ids.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = serde_json::json!({"name": format!("Tạ Văn {} {}", ["An", "Bình", "Chi"][w % 3], ["Lộc", "Phúc"][i % 2]), "sex": "male",
                        "date_of_birth": "2026-01-01", "registration_commune": "00004"});
                    match http.post(format!("{base}/api/v1/births")).bearer_auth(&token).json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 201 => {
                            let v: serde_json::Value = match r.json().await { Ok(v) => v, Err(_) => return };
                            ids.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Readers beside the writers: every record released to them must be in the access log.
        let reads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        for _ in 0..4 {
            let (http, base, token, ids, reads) = (http.clone(), base.clone(), token.clone(), ids.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(id) = ids.lock().unwrap().last().cloned() else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let r = http.post(format!("{base}/api/v1/persons/get")).bearer_auth(&token)
                        .header("X-Purpose", "crash-check").json(&serde_json::json!({"id": id})).send().await;
                    let Ok(r) = r else { return };
                    if !r.status().is_success() || r.bytes().await.is_err() {
                        return;
                    }
                    reads.lock().unwrap().push(id);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill().unwrap(); // SIGKILL in the middle of the writes
        let _ = server.wait();
        for t in tasks {
            let _ = t.await;
        }
        let ids = ids.lock().unwrap().clone();
        (ids, reads.lock().unwrap().clone())
    });
    let (acknowledged, reads) = acknowledged;
    assert!(
        !reads.is_empty(),
        "some reads were answered before the kill"
    );
    assert!(
        !acknowledged.is_empty(),
        "some births were acknowledged before the kill"
    );
    let db = data.join("dancu.sqlite3");
    assert_consistent(&db);
    let store = dancu_store::sqlite::SqliteStore::open(&db).unwrap();
    for id in &acknowledged {
        let id = dancu_domain::PersonalId::parse(id).unwrap();
        assert!(
            store.person(&id).unwrap().is_some(),
            "acknowledged birth {id} was lost"
        );
    }
    let mut answered = std::collections::BTreeMap::<String, usize>::new();
    for id in reads {
        *answered.entry(id).or_default() += 1;
    }
    for (id, n) in answered {
        let logged = store
            .access_log(&dancu_domain::PersonalId::parse(&id).unwrap(), 10_000)
            .unwrap()
            .iter()
            .filter(|e| e.action == "record" && e.actor == "crash")
            .count();
        assert!(
            logged >= n,
            "{n} reads of {id} were answered but {logged} are in the access log"
        );
    }
}
