//! `dancu bench`: the register's performance targets, each measured beside a reference taken in
//! the same run on the same machine, printed as one JSON document.
//!
//! * generation: synthetic people per minute (one thread);
//! * bulk import: people per second through the store's import path, beside a bare INSERT loop
//!   of the same rows into a table with no index, no event and no projection;
//! * get-person over HTTP (keep-alive, loopback): throughput and latency beside an empty JSON
//!   handler on the same server;
//! * name search over HTTP: latency percentiles.
//!
//! `dancu bench --idp` measures the e-ID provider instead (see [`idp`]).

mod idp;

use crate::config::Config;
use dancu_domain::event::EventMeta;
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_domain::person::Person;
use dancu_registry::credentials;
use dancu_store::{ImportRow, Importer, OfficerRecord, Store};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod hub;
mod portal;

/// Options of `dancu bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// People in the synthetic population.
    #[arg(long, default_value_t = 1_000_000)]
    pub people: u64,
    /// Seconds per HTTP measurement.
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Measure HTTP only, over the database already in `--work-dir` (or at DANCU_DATABASE_URL)
    /// from an earlier run: no generation, no import.
    #[arg(long)]
    pub reuse: bool,
    /// Skip the HTTP measurements (generation and import only).
    #[arg(long)]
    pub skip_http: bool,
    /// Measure the data-sharing hub (attribute match over HTTP beside the empty handler, batch
    /// verification) instead of the register's HTTP reads.
    #[arg(long)]
    pub hub: bool,
    /// Keep the benchmark database in this directory instead of a temporary one.
    #[arg(long)]
    pub work_dir: Option<std::path::PathBuf>,
    /// Measure the e-ID provider (client-credentials tokens, passcode logins beside raw
    /// Argon2id, code-exchange latency) instead of the register; uses `--seconds` and
    /// `--connections`.
    #[arg(long)]
    pub idp: bool,
    /// Measure the web portals' main pages (p50/p99 per page) over the SQLite register in
    /// `--work-dir`, filled with `--people` people first when it is empty.
    #[arg(long)]
    pub portal: bool,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Runs the suite and prints the JSON report on standard output.
pub fn run(config: &Config, args: BenchArgs) -> Result<(), String> {
    // The bulk load's own split of its time (encoding, inserting, committing, indexing).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "dancu_store::sqlite_bulk=info",
        ))
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
    if args.idp {
        return idp::run(config, &args);
    }
    if args.portal {
        return portal::run(config, &args);
    }
    let dir = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            None
        }
        None => Some(tempfile_dir()?),
    };
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| dir.clone().unwrap_or_default());
    let today = (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive();
    let mut report = serde_json::Map::new();
    report.insert("machine".into(), machine());
    report.insert("people".into(), json!(args.people));

    if args.reuse {
        let store = match &config.database_url {
            Some(url) => dancu_store::open(url).map_err(|e| e.to_string())?,
            None => dancu_store::open(work.join("dancu.sqlite3").to_str().unwrap_or_default())
                .map_err(|e| e.to_string())?,
        };
        // A sample of people in ID order (500,000, or 1,000,000 for the hub): their IDs, and
        // every 97th name.
        let mut ids = Vec::new();
        let mut names = Vec::new();
        let mut after = None;
        let sample = if args.hub { 1_000_000 } else { 500_000 };
        while ids.len() < sample {
            let page = store
                .persons_after(after.as_ref(), 5_000)
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for p in page {
                ids.push(p.id.to_string());
                if ids.len() % 97 == 0 {
                    names.push((p.name.full(), p.date_of_birth.year()));
                }
            }
        }
        report.insert(
            "people_in_database".into(),
            json!(store.count_people().map_err(|e| e.to_string())?),
        );
        if args.hub {
            let db = match &config.database_url {
                Some(url) => url.clone(),
                None => work.join("dancu.sqlite3").to_string_lossy().into_owned(),
            };
            let hub = hub::bench_hub(store, &db, &work, &ids, &args)?;
            report.insert("hub".into(), hub);
        } else {
            let token = bench_officer(store.as_ref())?;
            let http = bench_http(store, &token, &ids, &names, &args)?;
            report.insert("http".into(), http);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report))
                .map_err(|e| e.to_string())?
        );
        return Ok(());
    }

    // 1. Generation.
    eprintln!("[bench] generating {} people…", args.people);
    let start = Instant::now();
    let mut people: Vec<Person> = Vec::with_capacity(args.people as usize);
    let mut households = Vec::new();
    let mut index = 0;
    while (people.len() as u64) < args.people && index < dancu_synth::MAX_CHUNKS {
        for h in dancu_synth::chunk(7, index, today) {
            if people.len() as u64 >= args.people {
                break;
            }
            people.extend(h.members);
            people.extend(h.deceased);
            households.push(h.household);
        }
        index += 1;
    }
    let gen_secs = start.elapsed().as_secs_f64();
    report.insert(
        "generation".into(),
        json!({"seconds": round(gen_secs, 3), "people_per_minute": round(people.len() as f64 / gen_secs * 60.0, 0), "target_people_per_minute": 1_000_000}),
    );

    // 2. Import, beside a bare INSERT loop of the same rows.
    let (store, import) = match &config.database_url {
        None => bench_import_sqlite(&work, &people, &households)?,
        Some(url) => bench_import_postgres(url, &people, &households)?,
    };
    report.insert("import".into(), import);

    // 3. HTTP.
    if args.skip_http {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report))
                .map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if args.hub {
        let ids: Vec<String> = people.iter().map(|p| p.id.to_string()).collect();
        drop(people);
        let db = match &config.database_url {
            Some(url) => url.clone(),
            None => work.join("dancu.sqlite3").to_string_lossy().into_owned(),
        };
        let hub = hub::bench_hub(store, &db, &work, &ids, &args)?;
        report.insert("hub".into(), hub);
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report))
                .map_err(|e| e.to_string())?
        );
        if let Some(d) = dir {
            let _ = std::fs::remove_dir_all(d);
        }
        return Ok(());
    }
    let token = bench_officer(store.as_ref())?;
    let ids: Vec<String> = people.iter().map(|p| p.id.to_string()).collect();
    let names: Vec<(String, i32)> = people
        .iter()
        .step_by(97)
        .map(|p| (p.name.full(), p.date_of_birth.year()))
        .collect();
    drop(people);
    let http = bench_http(store, &token, &ids, &names, &args)?;
    report.insert("http".into(), http);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(report))
            .map_err(|e| e.to_string())?
    );
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

/// A national supervisor for the load generator; returns its token.
fn bench_officer(store: &dyn Store) -> Result<String, String> {
    let token = credentials::new_token();
    let officer = OfficerRecord {
        officer: Officer {
            id: format!("bench-{}", &token[4..12]),
            name: "Bench".into(),
            role: Role::Supervisor,
            jurisdiction: Jurisdiction::National,
            person: None,
        },
        token_hash: credentials::token_hash(&token),
        created_at: chrono::Utc::now(),
    };
    store.add_officer(&officer).map_err(|e| e.to_string())?;
    Ok(token)
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let d = std::env::temp_dir().join(format!("dancu-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    Ok(d)
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    json!({"cpu": cpu, "cores": cores, "os": std::env::consts::OS})
}

fn import_meta() -> EventMeta {
    EventMeta {
        actor: "bench".into(),
        at: chrono::Utc::now(),
        reason: Some("benchmark".into()),
        legal_basis: None,
        document_ref: None,
    }
}

fn bench_import_sqlite(
    work: &std::path::Path,
    people: &[Person],
    households: &[dancu_domain::event::Household],
) -> Result<(Arc<dyn Store>, serde_json::Value), String> {
    // Reference: the same rows (serialized records) into a bare table, same batch size.
    let bare_path = work.join("bare.sqlite3");
    let _ = std::fs::remove_file(&bare_path);
    let mut bare = rusqlite::Connection::open(&bare_path).map_err(|e| e.to_string())?;
    bare.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    bare.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())?;
    bare.execute_batch("CREATE TABLE bare (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        .map_err(|e| e.to_string())?;
    eprintln!("[bench] bare INSERT loop…");
    let start = Instant::now();
    for batch in people.chunks(crate::transfer::BATCH) {
        let tx = bare.transaction().map_err(|e| e.to_string())?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO bare (id, data) VALUES (?1, ?2)")
                .map_err(|e| e.to_string())?;
            for p in batch {
                let data = serde_json::to_string(p).map_err(|e| e.to_string())?;
                stmt.execute(rusqlite::params![p.id.as_str(), data])
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    let bare_secs = start.elapsed().as_secs_f64();
    drop(bare);
    let _ = std::fs::remove_file(&bare_path);

    let db_path = work.join("dancu.sqlite3");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let store: Arc<dyn Store> =
        Arc::new(dancu_store::sqlite::SqliteStore::open(&db_path).map_err(|e| e.to_string())?);
    eprintln!("[bench] store import…");
    let (import_secs, bulk) = import_all(store.as_ref(), people, households)?;
    let n = people.len() as f64;
    Ok((
        store,
        json!({
            "backend": "sqlite",
            "path": if bulk { "bulk load into an empty register: rollback journal, indexes built at the end (counted)" } else { "batch by batch" },
            "people_per_second": round(n / import_secs, 0),
            "bare_insert_rows_per_second": round(n / bare_secs, 0),
            "ratio_to_bare_insert": round(bare_secs / import_secs, 3),
            "what": "per person: validated record serialized once into its record_imported event, projection row with the name/birth-year/commune index columns referring to that event until the first change; households loaded separately and not counted",
            "target_people_per_second": 200_000,
        }),
    ))
}

/// CPU seconds (user + system) of this process so far, from /proc (0 where unavailable).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// The whole machine's CPU time so far, in seconds: (busy, all), from the first line of
/// /proc/stat. Busy counts user, nice, system, irq and softirq time of every process and kernel
/// thread; all adds idle, iowait and steal. Zero where unavailable.
fn machine_cpu_seconds() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return (0.0, 0.0);
    }
    let busy = f[0] + f[1] + f[2] + f[5] + f[6];
    (busy / 100.0, f.iter().sum::<f64>() / 100.0)
}

/// CPU use over one measured phase, beside its requests.
#[derive(Debug, Default, Clone, Copy)]
struct PhaseCpu {
    /// This process's CPU seconds (server and load generator).
    process: f64,
    /// Busy CPU seconds of the whole machine.
    machine_busy: f64,
    /// All CPU seconds of the whole machine (busy, idle, iowait and steal).
    machine_all: f64,
}

impl PhaseCpu {
    /// The readings now (cumulative since the process and the machine started).
    fn now() -> Self {
        let (busy, all) = machine_cpu_seconds();
        Self {
            process: cpu_seconds(),
            machine_busy: busy,
            machine_all: all,
        }
    }

    /// The account of the time since `start`.
    fn since(start: Self) -> Self {
        let mut account = Self::default();
        account.add_since(start);
        account
    }

    /// Adds the time since `start` to this account.
    fn add_since(&mut self, start: Self) {
        let now = Self::now();
        self.process += now.process - start.process;
        self.machine_busy += now.machine_busy - start.machine_busy;
        self.machine_all += now.machine_all - start.machine_all;
    }

    /// The process's CPU microseconds per request.
    fn us_per(&self, requests: u64) -> f64 {
        self.process * 1e6 / requests.max(1) as f64
    }

    /// Shares of the machine's CPU time: busy in all, and this process's in all.
    fn shares(&self) -> serde_json::Value {
        if self.machine_all <= 0.0 {
            return serde_json::Value::Null;
        }
        json!({
            "machine_busy": round(self.machine_busy / self.machine_all, 3),
            "this_process": round(self.process / self.machine_all, 3),
        })
    }
}

fn import_all(
    store: &dyn Store,
    people: &[Person],
    households: &[dancu_domain::event::Household],
) -> Result<(f64, bool), String> {
    let meta = import_meta();
    // The rows as a file parser would hand them over, made before the clock starts.
    let rows: Vec<ImportRow> = people
        .iter()
        .zip(1..)
        .map(|(p, line)| ImportRow {
            line,
            person: p.clone(),
        })
        .collect();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut importer = Importer::new(store, "bench", &meta).map_err(|e| e.to_string())?;
    for batch in rows.chunks(crate::transfer::BATCH) {
        importer.people(batch).map_err(|e| e.to_string())?;
    }
    // Households are loaded after the people and are not counted, but the index build at the
    // end is.
    let cpu1 = cpu_seconds();
    let households_start = Instant::now();
    for batch in households.chunks(crate::transfer::BATCH) {
        importer.households(batch).map_err(|e| e.to_string())?;
    }
    let households_secs = households_start.elapsed().as_secs_f64();
    let bulk = importer.is_bulk();
    let finish_start = Instant::now();
    let cpu2 = cpu_seconds();
    importer.finish().map_err(|e| e.to_string())?;
    eprintln!(
        "[bench] import CPU: people {:.2} s, indexes {:.2} s",
        cpu1 - cpu0,
        cpu_seconds() - cpu2
    );
    eprintln!(
        "[bench] import: people {:.2} s, households {households_secs:.2} s (not counted), indexes {:.2} s",
        (households_start - start).as_secs_f64(),
        finish_start.elapsed().as_secs_f64()
    );
    Ok((start.elapsed().as_secs_f64() - households_secs, bulk))
}

fn bench_import_postgres(
    url: &str,
    people: &[Person],
    households: &[dancu_domain::event::Household],
) -> Result<(Arc<dyn Store>, serde_json::Value), String> {
    let store = dancu_store::open(url).map_err(|e| e.to_string())?;
    if store.count_people().map_err(|e| e.to_string())? > 0 {
        return Err("the PostgreSQL database for the benchmark must be empty".into());
    }
    // Reference: the same rows into a bare table through one connection, in the same batches.
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| e.to_string())?;
    client
        .batch_execute("DROP TABLE IF EXISTS bench_bare; CREATE UNLOGGED TABLE bench_bare (id text PRIMARY KEY, data text NOT NULL)")
        .map_err(|e| e.to_string())?;
    eprintln!("[bench] bare INSERT loop (PostgreSQL)…");
    let start = Instant::now();
    for batch in people.chunks(crate::transfer::BATCH) {
        let mut tx = client.transaction().map_err(|e| e.to_string())?;
        let stmt = tx
            .prepare("INSERT INTO bench_bare (id, data) VALUES ($1, $2)")
            .map_err(|e| e.to_string())?;
        for p in batch {
            let data = serde_json::to_string(p).map_err(|e| e.to_string())?;
            tx.execute(&stmt, &[&p.id.as_str(), &data])
                .map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    let bare_secs = start.elapsed().as_secs_f64();
    let _ = client.batch_execute("DROP TABLE IF EXISTS bench_bare");
    eprintln!("[bench] store import (PostgreSQL)…");
    let (import_secs, _) = import_all(store.as_ref(), people, households)?;
    let n = people.len() as f64;
    Ok((
        store,
        json!({
            "backend": "postgres",
            "people_per_second": round(n / import_secs, 0),
            "bare_insert_rows_per_second": round(n / bare_secs, 0),
            "ratio_to_bare_insert": round(bare_secs / import_secs, 3),
        }),
    ))
}

/// Makes the next request of a load run: path, JSON body and one extra header if any (e.g.
/// X-Purpose, X-Client-Assertion).
type MakeRequest = Arc<
    dyn Fn(&mut rand::rngs::StdRng) -> (&'static str, String, Option<(&'static str, String)>)
        + Send
        + Sync,
>;

#[derive(Default)]
struct LoadResult {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl LoadResult {
    fn merge(&mut self, other: LoadResult) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latencies_us.extend(other.latencies_us);
    }

    fn summary(&mut self) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        json!({
            "requests_per_second": round(self.requests as f64 / self.seconds, 0),
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": round(percentile(&self.latencies_us, 0.50), 3),
            "p99_ms": round(percentile(&self.latencies_us, 0.99), 3),
            "max_ms": round(percentile(&self.latencies_us, 1.0), 3),
        })
    }
}

/// One endpoint of [`interleaved`]: a label for the progress line, the bearer token, the
/// requests.
type Phase<'a> = (&'a str, Arc<str>, MakeRequest);

/// Measures the phases in alternating one-second slices (A, B, C, A, B, C, …) until each has had
/// `seconds`, so that load from anything else on the machine, which comes and goes, falls on all
/// of them alike rather than on whichever ran while it lasted. Returns each phase's merged
/// result and its CPU use over its slices.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    connections: usize,
    seconds: u64,
    phases: &[Phase<'_>],
) -> Result<Vec<(LoadResult, PhaseCpu)>, String> {
    let labels: Vec<&str> = phases.iter().map(|p| p.0).collect();
    eprintln!(
        "[bench] http: {} in alternating 1 s slices, {seconds} s each, over {connections} connections…",
        labels.join(" / ")
    );
    let mut out: Vec<(LoadResult, PhaseCpu)> = phases
        .iter()
        .map(|_| (LoadResult::default(), PhaseCpu::default()))
        .collect();
    for _ in 0..seconds.max(1) {
        for ((_, token, make), (acc, cpu)) in phases.iter().zip(out.iter_mut()) {
            let cpu0 = PhaseCpu::now();
            let r = rt.block_on(load(addr, token.clone(), connections, 1, make.clone()))?;
            cpu.add_since(cpu0);
            acc.merge(r);
        }
    }
    Ok(out)
}

/// Drives `connections` keep-alive connections for `seconds`, each sending the requests `make`
/// returns (path, body) one after another.
async fn load(
    addr: std::net::SocketAddr,
    token: Arc<str>,
    connections: usize,
    seconds: u64,
    make: MakeRequest,
) -> Result<LoadResult, String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let token = token.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64);
            let mut lat = Vec::with_capacity(100_000);
            let (mut ok, mut err) = (0u64, 0u64);
            while Instant::now() < deadline {
                let (path, body, extra) = make(&mut rng);
                let mut req = hyper::Request::post(path)
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {token}"));
                if let Some((name, value)) = extra {
                    req = req.header(name, value);
                }
                let req = req
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let _ = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if status.is_success() {
                    ok += 1
                } else {
                    err += 1
                }
            }
            Ok::<_, String>((ok, err, lat))
        }));
    }
    let start = Instant::now();
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let (ok, err, lat) = t.await.map_err(|e| e.to_string())??;
        result.requests += ok;
        result.errors += err;
        result.latencies_us.extend(lat);
    }
    result.seconds = start.elapsed().as_secs_f64().max(seconds as f64);
    Ok(result)
}

fn bench_http(
    store: Arc<dyn Store>,
    token: &str,
    ids: &[String],
    names: &[(String, i32)],
    args: &BenchArgs,
) -> Result<serde_json::Value, String> {
    // The record cache is loaded before measuring, as a server loads it after its start.
    eprintln!("[bench] http: loading the record cache…");
    let filled = store.fill_record_cache().map_err(|e| e.to_string())?;
    let cache_before = store.record_cache_stats();
    let stats_store = store.clone();
    // The server gets its own runtime and threads; the load generator another.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bound = server_rt.block_on(crate::server::Bound::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        crate::server::app(store),
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
    let token: Arc<str> = Arc::from(token);
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let names: Arc<Vec<(String, i32)>> = Arc::new(names.to_vec());
    let run = |label: &str, make: MakeRequest| {
        eprintln!(
            "[bench] http: {label} for {} s over {} connections…",
            args.seconds, args.connections
        );
        let cpu0 = PhaseCpu::now();
        let r = client_rt.block_on(load(
            addr,
            token.clone(),
            args.connections,
            args.seconds,
            make,
        ))?;
        // CPU of the whole process (server and load generator) per request: steadier than
        // throughput when other work shares the machine.
        Ok::<_, String>((r, PhaseCpu::since(cpu0)))
    };
    // Warm-up, then the reference and the measured endpoints.
    let ids2 = ids.clone();
    let get_person: MakeRequest = Arc::new(move |rng| {
        let id = &ids2[rng.random_range(0..ids2.len())];
        (
            "/api/v1/persons/get",
            format!(r#"{{"id":"{id}"}}"#),
            Some(("x-purpose", "benchmark".to_owned())),
        )
    });
    let empty: MakeRequest = Arc::new(|_| ("/api/ping", String::from("{}"), None));
    let names2 = names.clone();
    let search: MakeRequest = Arc::new(move |rng| {
        let (name, year) = &names2[rng.random_range(0..names2.len())];
        let key = dancu_domain::name::match_key(name);
        let body = if rng.random_range(0..2) == 0 {
            json!({"name": key, "birth_year": year})
        } else {
            json!({"name": name})
        };
        (
            "/api/v1/persons/search",
            body.to_string(),
            Some(("x-purpose", "benchmark".to_owned())),
        )
    });
    let _ = client_rt.block_on(load(
        addr,
        token.clone(),
        args.connections,
        1,
        get_person.clone(),
    ))?;
    let (mut empty_r, empty_use) = run("empty JSON handler", empty)?;
    let cache_at_get = stats_store.record_cache_stats();
    let (mut get_r, get_use) = run("get person by ID", get_person)?;
    let cache_after_get = stats_store.record_cache_stats();
    let (empty_cpu, get_cpu) = (
        empty_use.us_per(empty_r.requests),
        get_use.us_per(get_r.requests),
    );
    let (mut search_r, search_use) = run("name search", search)?;
    let search_cpu = search_use.us_per(search_r.requests);
    let _ = stop_tx.send(());
    drop(server_rt);
    let empty_rps = empty_r.requests as f64 / empty_r.seconds;
    let get_rps = get_r.requests as f64 / get_r.seconds;
    Ok(json!({
        "connections": args.connections,
        "seconds_each": args.seconds,
        "empty_handler": empty_r.summary(),
        "get_person": get_r.summary(),
        "get_person_ratio_to_empty": round(get_rps / empty_rps, 3),
        "name_search": search_r.summary(),
        "cpu_us_per_request": {"empty_handler": round(empty_cpu, 1), "get_person": round(get_cpu, 1), "name_search": round(search_cpu, 1)},
        "get_person_cpu_ratio_to_empty": round(empty_cpu / get_cpu, 3),
        "cpu_shares": {"empty_handler": empty_use.shares(), "get_person": get_use.shares()},
        "record_cache": match (filled, cache_before, cache_at_get, cache_after_get) {
            (Some((records, took)), Some(before), Some(at), Some(after)) => json!({
                "loaded_records": records,
                "load_seconds": round(took.as_secs_f64(), 2),
                "bytes": before.bytes,
                "budget_bytes": before.budget,
                "get_person_hits": after.hits - at.hits,
                "get_person_misses": after.misses - at.misses,
            }),
            _ => json!(null),
        },
        "note_record_cache": "rendered records held in memory by the embedded store (DANCU_RECORD_CACHE_MB, default 1024; 0 turns it off), loaded before measuring; hits and misses count the get-person phase's reads",
        "order": "empty handler, then get-person, then name search, each for seconds_each (not in alternating slices: the access log's background work after get-person slices would fall into the empty handler's)",
        "note_cpu_shares": "shares of the machine's CPU time (cores × wall time, from /proc/stat) over each phase's slices: busy (any process or kernel thread) and this process's",
        "targets": {"get_person_ratio_to_empty": 0.6, "get_person_p99_ms": 5.0, "name_search_p99_ms": 20.0},
        "note": "server (2 worker threads) and load generator (1 thread) share the machine; every get-person and search result is written to the access log before it is returned",
    }))
}
