//! `dancu bench --hub`: the data-sharing hub's targets over the imported population, each
//! beside its reference in the same run:
//!
//! * attribute match over HTTP beside the empty handler on the same server: with a bearer access
//!   token from the hub's token endpoint (the target), and with a fresh client assertion per
//!   call (signature verified, replay refused); each exchange logged with the server's default
//!   log settings;
//! * batch verification: rows per second from a submitted job to its last saved chunk, every
//!   row decided, answered and logged;
//! * webhook fan-out: change events (the import's `record_imported`) per second delivered as
//!   signed webhooks to a local receiver, to [`FAN_OUT`] subscriptions.

use super::{MakeRequest, interleaved, load, round};
use dancu_hub::audit::{AuditSettings, load_or_create_key};
use dancu_hub::members::HubConfig;
use dancu_hub::service::{Client, Hub};
use rand::RngExt;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Subscriptions the webhook measurement delivers to.
const FAN_OUT: usize = 4;

const META: &str =
    r#"{"purpose":"account_opening","end_user":"bench-operator","case_ref":"BENCH-1"}"#;

fn claims_body(id: &str, n: usize) -> String {
    // Alternate claims so that both match and no-match answers are computed.
    let sex = if n.is_multiple_of(2) {
        "male"
    } else {
        "female"
    };
    format!(r#"{{"id":"{id}","claims":{{"sex":"{sex}","alive":true,"date_of_birth":"1990"}}}}"#)
}

/// Runs both measurements; `db` is the benchmark database (SQLite path or PostgreSQL URL).
pub(super) fn bench_hub(
    store: Arc<dyn dancu_store::Store>,
    db: &str,
    work: &Path,
    ids: &[String],
    args: &super::BenchArgs,
) -> Result<serde_json::Value, String> {
    let hub_dir = work.join("hub-bench");
    let _ = std::fs::remove_dir_all(&hub_dir);
    let client_key = load_or_create_key(&hub_dir, "client-key.hex", "client-key.jwk.json")
        .map_err(|e| e.to_string())?;
    let jwk = dancu_eid::oidc::jws::Jwk::from_p256(client_key.verifying_key());
    // The webhook receiver's socket, bound first so the subscriptions can name it.
    let receiver = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    receiver.set_nonblocking(true).map_err(|e| e.to_string())?;
    let hook = format!(
        "http://{}/hook",
        receiver.local_addr().map_err(|e| e.to_string())?
    );
    // Delivery cursors live in the register's document store, which `--reuse` keeps: fresh
    // subscription ids each run, so that each run delivers the whole event table again rather
    // than carrying on where the last one stopped (and, after a few runs, finding nothing left).
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let subscriptions: Vec<_> = (0..FAN_OUT)
        .map(|i| {
            json!({"id": format!("fan-{run_id}-{i}"), "org": "bank-a", "subsystem": "ekyc",
                   "event_types": ["record_imported"], "purpose": "account_opening",
                   "webhook": {"url": hook}})
        })
        .collect();
    let config: HubConfig = serde_json::from_value(json!({
        "subscriptions": subscriptions,
        "members": [{"id": "bank-a", "name": "Bench bank", "class": "bank",
                     "subsystems": [{"id": "ekyc", "keys": [{"jwk": jwk}]}]}],
        "rights": [{"id": "r-attr", "org": "bank-a", "subsystem": "ekyc",
            "service": "verify_attributes",
            "fields": ["name", "date_of_birth", "sex", "commune_code", "alive"],
            "purpose": "account_opening", "legal_basis": "benchmark",
            "requires_consent": false, "requires_end_user": true,
            "requires_case_reference": true},
            {"id": "r-events", "org": "bank-a", "subsystem": "ekyc",
            "service": "change_events", "fields": ["record_imported"],
            "purpose": "account_opening", "legal_basis": "benchmark",
            "requires_consent": false, "requires_end_user": false,
            "requires_case_reference": false}],
    }))
    .map_err(|e| e.to_string())?;
    let (_, docs) = dancu_store::docs::open_with_docs(db).map_err(|e| e.to_string())?;
    let hub = Arc::new(Hub::open(
        config,
        store.clone(),
        docs,
        Arc::new(dancu_domain::clock::SystemClock),
        &hub_dir.join("audit"),
        &hub_dir.join("hub"),
        AuditSettings::default(),
    )?);
    // Attribute match answers from an in-memory view of the register once its first scan is
    // done: wait for it, so that the scan's work falls on no measurement.
    let match_index = match hub.match_index() {
        None => json!(null),
        Some(index) => {
            eprintln!("[bench] hub: building the attribute-match view of the register…");
            let built = loop {
                if let Some(done) = index.built() {
                    break done?;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            json!({"people": built.1, "build_seconds": round(built.0.as_secs_f64(), 3)})
        }
    };

    // 1. Batch verification, in-process (the upload is parsed and stored inside the timing).
    let rows = ids.len().min(1_000_000);
    let mut body = String::with_capacity(rows * 90);
    body.push_str(META);
    for (n, id) in ids.iter().take(rows).enumerate() {
        body.push('\n');
        body.push_str(&claims_body(id, n));
    }
    let client = Client {
        org: "bank-a".into(),
        subsystem: "ekyc".into(),
        key_not_after: None,
        scope: None,
    };
    eprintln!("[bench] hub: batch of {rows} rows…");
    let start = Instant::now();
    let job =
        dancu_hub::batch::submit(&hub, &client, body.as_bytes()).map_err(|e| e.to_string())?;
    let submit_secs = start.elapsed().as_secs_f64();
    drop(body);
    let st = loop {
        let st = dancu_hub::batch::status(&hub, &client, &job.id).map_err(|e| e.to_string())?;
        if st.state != dancu_hub::batch::JobState::Running {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let batch_secs = start.elapsed().as_secs_f64();
    if st.state != dancu_hub::batch::JobState::Done {
        return Err(format!("the batch job failed: {:?}", st.error));
    }
    let fetch = Instant::now();
    let answers = dancu_hub::batch::results(&hub, &client, &job.id).map_err(|e| e.to_string())?;
    let (results_secs, results_bytes) = (fetch.elapsed().as_secs_f64(), answers.len());
    drop(answers);
    // Not left in the database of a reused work directory for the next run.
    dancu_hub::batch::delete(&hub, &client, &job.id).map_err(|e| e.to_string())?;
    let batch = json!({
        "rows": rows,
        "seconds": round(batch_secs, 3),
        "accepting_seconds": round(submit_secs, 3),
        "results_download": {"bytes": results_bytes, "seconds": round(results_secs, 3),
                             "what": "the whole NDJSON answer file read back (Hub side, not counted in rows_per_second)"},
        "rows_per_second": round(rows as f64 / batch_secs, 0),
        "served": st.served, "refused": st.refused, "failed": st.failed,
        "target_rows_per_second": 50_000,
        "what": "upload parsed and stored, then per row: rights and limits decided, the compared fields taken from the in-memory view of the register as for a single call (else the records read from the store, 10,000 at a time), attribute match, one hash-chained log record (one fsync per chunk), answer written; per chunk, the answers, the progress and the lease stored in one transaction of the document store (the rows too, in one transaction before the job starts)",
    });

    // 2. Attribute match over HTTP beside the empty handler. Each call carries a fresh client
    // assertion (the hub refuses a reused jti); they are signed before the clock starts.
    let per_run = args.connections * 4000;
    eprintln!("[bench] hub: signing {per_run} client assertions…");
    let now = chrono::Utc::now().timestamp();
    let assertions: Vec<String> = (0..per_run)
        .map(|i| {
            dancu_eid::oidc::jws::sign_es256(
                &client_key,
                "JWT",
                None,
                false,
                &json!({"iss": "bank-a/ekyc", "sub": "bank-a/ekyc", "aud": "urn:dancu:hub",
                        "iat": now, "exp": now + 280, "jti": format!("bench-{now}-{i}")}),
            )
            .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let assertions = Arc::new(assertions);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bound = server_rt.block_on(crate::server::Bound::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        crate::server::app_with_hub(store, Some(hub.clone())),
    ))?;
    let addr = bound.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(bound.serve(async move {
        let _ = stop_rx.await;
    }));
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    // The access token a member would obtain once and reuse on all its connections.
    let access = hub
        .issue_token(
            &dancu_eid::oidc::jws::sign_es256(
                &client_key,
                "JWT",
                None,
                false,
                &json!({"iss": "bank-a/ekyc", "sub": "bank-a/ekyc", "aud": "urn:dancu:hub",
                        "iat": now, "exp": now + 280, "jti": format!("bench-token-{now}")}),
            )
            .map_err(|e| e.to_string())?,
            Some("verify_attributes"),
        )
        .map_err(|e| e.to_string())?;
    let attr_body = {
        let ids = ids.clone();
        move |rng: &mut rand::rngs::StdRng| {
            let n = rng.random_range(0..ids.len());
            format!(
                r#"{{"purpose":"account_opening","end_user":"bench-operator","case_ref":"BENCH-1","id":"{}","claims":{{"name":"Nguyễn Văn An","sex":"male","date_of_birth":"1990"}}}}"#,
                ids[n]
            )
        }
    };
    let attr_bearer: MakeRequest = {
        let attr_body = attr_body.clone();
        Arc::new(move |rng| ("/api/hub/v1/verify/attributes", attr_body(rng), None))
    };
    let attr: MakeRequest = {
        let (next, assertions) = (next.clone(), assertions.clone());
        Arc::new(move |rng| {
            let body = attr_body(rng);
            // Past the signed ones, a reused assertion is refused (counted as an error).
            let i = next.fetch_add(1, Ordering::Relaxed) % assertions.len();
            (
                "/api/hub/v1/verify/attributes",
                body,
                Some(("x-client-assertion", assertions[i].clone())),
            )
        })
    };
    let empty: MakeRequest = Arc::new(|_| ("/api/ping", String::from("{}"), None));
    let none: Arc<str> = Arc::from("none");
    let bearer: Arc<str> = Arc::from(access.access_token.as_str());
    let run = |label: &str, token: &Arc<str>, make: MakeRequest| {
        eprintln!(
            "[bench] hub http: {label} for {} s over {} connections…",
            args.seconds, args.connections
        );
        let cpu0 = super::PhaseCpu::now();
        let r = client_rt.block_on(load(
            addr,
            token.clone(),
            args.connections,
            args.seconds,
            make,
        ))?;
        let cpu_us = super::PhaseCpu::since(cpu0).us_per(r.requests);
        Ok::<_, String>((r, cpu_us))
    };
    // The reference and the target in alternating slices: the ratio between them is the
    // target, and on a shared host the load from elsewhere then weighs on both alike. (Each
    // exchange is durable before it is answered, so no work of one slice is left for the next.)
    let mut pair = interleaved(
        &client_rt,
        addr,
        args.connections,
        args.seconds,
        &[
            ("empty JSON handler", none.clone(), empty),
            ("attribute match, bearer token", bearer, attr_bearer),
        ],
    )?
    .into_iter();
    let (Some((mut empty_r, empty_use)), Some((mut bearer_r, bearer_use))) =
        (pair.next(), pair.next())
    else {
        return Err("the interleaved measurement lost a phase".into());
    };
    let (empty_cpu, bearer_cpu) = (
        empty_use.us_per(empty_r.requests),
        bearer_use.us_per(bearer_r.requests),
    );
    let (mut attr_r, attr_cpu) = run("attribute match, client assertion per call", &none, attr)?;

    // 3. Webhook fan-out to a local receiver that counts the events in each signed body.
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                let n = std::str::from_utf8(&body)
                    .ok()
                    .and_then(|t| t.split('.').nth(1))
                    .and_then(dancu_hub::audit::base64url_decode)
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["events"].as_array().map(Vec::len))
                    .unwrap_or(0);
                counter.fetch_add(n as u64, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = {
        let _g = client_rt.enter();
        tokio::net::TcpListener::from_std(receiver).map_err(|e| e.to_string())?
    };
    client_rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let expected = (ids.len() * FAN_OUT) as u64;
    eprintln!("[bench] hub: webhook fan-out of {expected} events…");
    let start = Instant::now();
    let tracker_hub = hub.clone();
    {
        let _g = server_rt.enter();
        crate::server::spawn_webhook_sender(hub, std::time::Duration::from_millis(1), None);
    }
    let limit = std::time::Duration::from_secs(args.seconds * 3);
    while received.load(Ordering::Relaxed) < expected && start.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let fan_secs = start.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed);
    let _ = stop_tx.send(());
    drop(server_rt);
    let citizen_tracker = bench_tracker(&tracker_hub, &hub_dir.join("audit"), &ids)?;
    let empty_rps = empty_r.requests as f64 / empty_r.seconds;
    let attr_rps = attr_r.requests as f64 / attr_r.seconds;
    let bearer_rps = bearer_r.requests as f64 / bearer_r.seconds;
    let bearer_p99_ms = bearer_r.summary()["p99_ms"].as_f64().unwrap_or(f64::MAX);
    Ok(json!({
        "batch_verification": batch,
        "attribute_match_view": match_index,
        "http": {
            "connections": args.connections,
            "seconds_each": args.seconds,
            "order": "empty handler and attribute match with a bearer token in alternating 1 s slices, then attribute match with a client assertion",
            "empty_handler": empty_r.summary(),
            "attribute_match": bearer_r.summary(),
            "attribute_match_ratio_to_empty": round(bearer_rps / empty_rps, 3),
            "cpu_us_per_request": {"empty_handler": round(empty_cpu, 1), "attribute_match": round(bearer_cpu, 1), "attribute_match_with_client_assertion": round(attr_cpu, 1)},
            "attribute_match_cpu_ratio_to_empty": round(empty_cpu / bearer_cpu, 3),
            "note_cpu": "process CPU (server and load generator together) per request: steadier than throughput when other work shares the machine",
            "cpu_shares": {"empty_handler": empty_use.shares(), "attribute_match": bearer_use.shares()},
            "note_cpu_shares": "shares of the machine's CPU time (cores × wall time, from /proc/stat) over each phase's slices: busy (any process or kernel thread) and this process's; where the machine is not all busy, throughput is bound by waiting, not by CPU",
            "targets": {"attribute_match_ratio_to_empty": 0.5, "attribute_match_p99_ms": 10.0},
            "targets_met": bearer_rps / empty_rps >= 0.5 && bearer_p99_ms < 10.0,
            "note": "attribute match with Authorization: Bearer (one access token from the hub's token endpoint, scope verify_attributes, checked per call from memory), the right decided, the person's compared fields looked up in the in-memory view of the register (kept current with every commit; SQLite only, else read from the store), the claims compared and a hash-chained log record appended with the server's default settings (durable before answering; concurrent records share one fsync by group commit); server 2 worker threads, load generator 1 thread, same machine",
            "attribute_match_with_client_assertion": attr_r.summary(),
            "attribute_match_with_client_assertion_ratio_to_empty": round(attr_rps / empty_rps, 3),
            "signed_assertions": per_run,
            "note_client_assertion": "the compatible path: every attribute match verifies an ES256 client assertion, records its jti in the document store (replay refusal; concurrent calls share one transaction), decides the right and appends a hash-chained log record with the server's default settings (durable before answering; concurrent records share one fsync by group commit); server 2 worker threads, load generator 1 thread, same machine",
        },
        "webhook_fan_out": {
            "subscriptions": FAN_OUT,
            "events_delivered": delivered,
            "events_expected": expected,
            "seconds": round(fan_secs, 3),
            "events_per_second": round(delivered as f64 / fan_secs, 0),
            "target_events_per_second": 10_000,
            "what": "record_imported events of the import, read from the register's event table, filtered per subscription, rights decided and logged per delivery (fsync), signed ES256 in batches of up to 100, POSTed to a local receiver, cursor stored; subscriptions served in turn by one sender",
        },
        "citizen_tracker": citizen_tracker,
    }))
}

/// Queries the citizen's tracker makes in the measurement.
const TRACKER_QUERIES: usize = 2000;

/// The citizen's tracker over the whole log the run wrote: per-person queries through the
/// index, beside one full read of the log (what every query cost before the index). The
/// answers of the first 100 people are checked against the full read.
fn bench_tracker(hub: &Hub, audit_dir: &Path, ids: &[String]) -> Result<serde_json::Value, String> {
    eprintln!("[bench] hub: citizen tracker…");
    let start = Instant::now();
    hub.tracker().settle();
    let settle_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let all = dancu_hub::audit::read_entries(audit_dir).map_err(|e| e.to_string())?;
    let full_read_secs = start.elapsed().as_secs_f64();
    let records = all.len();
    let segments = dancu_hub::audit::list_segments(audit_dir)
        .map_err(|e| e.to_string())?
        .len();
    let today = dancu_exchange::rights::vietnam_date(chrono::Utc::now());
    for id in ids.iter().take(100) {
        let want = dancu_exchange::log::tracker::person_view(&all, id, today);
        let got = hub.person_accesses(id).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "the tracker of {id} gave {} lines, a full read {}",
                got.len(),
                want.len()
            ));
        }
    }
    drop(all);
    let mut rng = rand::rng();
    // Nanoseconds: `percentile` reports a thousandth of what it is given.
    let mut nanos = Vec::with_capacity(TRACKER_QUERIES);
    let mut lines = 0;
    let start = Instant::now();
    for _ in 0..TRACKER_QUERIES {
        let id = &ids[rng.random_range(0..ids.len())];
        let t = Instant::now();
        lines += hub.person_accesses(id).map_err(|e| e.to_string())?.len();
        nanos.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let mean_us = start.elapsed().as_secs_f64() * 1e6 / TRACKER_QUERIES as f64;
    nanos.sort_unstable();
    Ok(json!({
        "records_in_log": records,
        "segments": segments,
        "index_settle_seconds": round(settle_secs, 3),
        "queries": TRACKER_QUERIES,
        "lines_per_query": round(lines as f64 / TRACKER_QUERIES as f64, 2),
        "mean_us": round(mean_us, 1),
        "p50_us": round(super::percentile(&nanos, 0.5), 1),
        "p99_us": round(super::percentile(&nanos, 0.99), 1),
        "full_read_ms": round(full_read_secs * 1e3, 1),
        "speed_up_over_full_read": round(full_read_secs * 1e6 / mean_us, 0),
        "what": "one person's accesses (Hub::person_accesses, in-process) for random people of the register: index lookups per segment, each record read back from its segment and decoded, embargo applied; beside one full read of the live log, which every query cost before the index; the first 100 people's answers are checked against that full read",
    }))
}
