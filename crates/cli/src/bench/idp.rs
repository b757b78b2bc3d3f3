//! `dancu bench --idp`: the e-ID provider's targets, measured over HTTP against the real server
//! on loopback (no TLS), each beside a reference taken in the same run:
//!
//! * client-credentials token issuance (`POST /token`, `client_secret_basic`) beside the empty
//!   handler (`/api/ping`) on the same server and connections;
//! * passcode logins (`GET /authorize` then `POST /authorize/login` with ID number and
//!   passcode, answered by a redirect with a code) beside raw Argon2id hashing at the same
//!   parameters on as many threads as cores, in alternating slices so that load from other
//!   processes falls on both alike;
//! * authorization-code exchange (`POST /token` with PKCE, signing the ID and access tokens)
//!   latency, one request at a time on one keep-alive connection, beside the empty handler's.
//!
//! The register and the e-ID records live in a temporary SQLite database; people come from the
//! synthetic population and get level-1 accounts through the real registration use-case.

use super::{BenchArgs, cpu_seconds, machine, percentile, round};
use crate::config::Config;
use chrono::Datelike;
use dancu_domain::clock::{Clock, SystemClock};
use dancu_domain::event::EventMeta;
use dancu_domain::person::Person;
use dancu_idp::{ClientRegistration, Idp, IdpConfig, IdpDeps, Level1Registration};
use dancu_registry::Registry;
use dancu_store::ImportRow;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSCODE: &str = "480916";
const REDIRECT: &str = "https://rp.bench.example/cb";
const VERIFIER: &str = "bench-pkce-code-verifier-0123456789-abcdefghijklmnopqrstuv";

/// One keep-alive HTTP/1.1 connection of the load generator.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

/// An answer: status, `Location`, `Set-Cookie` and body.
struct Answer {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: Bytes,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        Self::open_from(addr, None).await
    }

    /// A connection from a chosen loopback address: people log in from their own addresses,
    /// and the per-source throttle is one record per address.
    async fn open_from(addr: SocketAddr, local: Option<[u8; 4]>) -> Result<Self, String> {
        let stream = match local {
            None => tokio::net::TcpStream::connect(addr).await,
            Some(ip) => {
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind(SocketAddr::from((ip, 0)))
                    .map_err(|e| e.to_string())?;
                socket.connect(addr).await
            }
        }
        .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self { sender })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<Answer, String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {}: {e}", path.split('?').next().unwrap_or(path)))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = resp.status().as_u16();
        let location = header("location");
        let cookie = header("set-cookie").and_then(|c| {
            c.split(';')
                .next()
                .map(str::to_owned)
                .filter(|p| !p.ends_with('='))
        });
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            location,
            cookie,
            body,
        })
    }
}

/// Percent-encodes a form or query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn basic(id: &str, secret: &str) -> String {
    use base64ct::Encoding;
    format!(
        "Basic {}",
        base64ct::Base64::encode_string(format!("{}:{}", enc(id), enc(secret)).as_bytes())
    )
}

/// The value of `name` in the query of a URL.
fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// The `tx` hidden field of a login page.
fn tx_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("name=\"tx\" value=\"")? + 17;
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_owned())
}

fn authorize_path() -> String {
    format!(
        "/authorize?response_type=code&client_id=bench-rp&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={}&code_challenge_method=S256",
        enc(REDIRECT),
        dancu_eid::oidc::pkce::challenge_s256(VERIFIER)
    )
}

/// One passcode login over HTTP: the authorization request, then the login form; returns the
/// redirect with the code and the session cookie.
async fn login(c: &mut Conn, id: &str) -> Result<(String, Option<String>), String> {
    let page = c.send("GET", &authorize_path(), &[], String::new()).await?;
    let tx = tx_of(&page.body).ok_or_else(|| format!("no login page ({})", page.status))?;
    let form = format!("tx={}&id_number={id}&passcode={PASSCODE}", enc(&tx));
    let a = c
        .send(
            "POST",
            "/authorize/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await?;
    match a.location {
        Some(l) if a.status == 303 || a.status == 302 => Ok((l, a.cookie)),
        _ => Err(format!(
            "login answered {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        )),
    }
}

/// Requests per second of `connections` connections each repeating `one` for `seconds`.
async fn throughput<F, Fut>(
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
    one: F,
) -> Result<(u64, u64, f64), String>
where
    F: Fn(Conn) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(u64, u64), String>> + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let c = Conn::open(addr).await?;
            one(c).await
        }));
    }
    let (mut ok, mut err) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.map_err(|e| e.to_string())??;
        ok += o;
        err += e;
    }
    Ok((ok, err, start.elapsed().as_secs_f64().max(seconds)))
}

/// Runs the e-ID benchmark and prints the JSON report.
pub(super) fn run(config: &Config, args: &BenchArgs) -> Result<(), String> {
    let dir = super::tempfile_dir()?;
    let result = run_in(config, args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn run_in(
    config: &Config,
    args: &BenchArgs,
    dir: &std::path::Path,
) -> Result<serde_json::Value, String> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let seconds = args.seconds.max(1);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let issuer = format!("http://{addr}");

    // The register, the e-ID service and the people with accounts.
    let db = dir.join("idp.sqlite3");
    let (store, docs) = dancu_store::docs::open_with_docs(db.to_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let registry = Arc::new(Registry::new(store.clone(), clock.clone(), None));
    let outbox = dir.join("sms-outbox.ndjson");
    let mut cfg = IdpConfig::new(&issuer);
    cfg.passcode = config.passcode;
    let idp = Arc::new(
        Idp::open(
            cfg,
            IdpDeps {
                docs,
                registry: registry.clone(),
                clock: clock.clone(),
                sms: Arc::new(dancu_idp::sms::OutboxGateway::new(outbox.clone())),
                face: Arc::new(dancu_eid::face::DemoFaceVerifier),
                seed: None,
            },
        )
        .map_err(|e| e.to_string())?,
    );
    let login_connections = cores;
    eprintln!("[bench-idp] {login_connections} accounts…");
    let ids = accounts(store.as_ref(), &idp, &outbox, login_connections)?;
    let machine_secret = client(&idp, "bench-machine", true)?;
    let rp_secret = client(&idp, "bench-rp", false)?;

    let state = dancu_http::AppState::new(registry).with_idp(idp);
    let bound = crate::server::Bound::from_listener(listener, dancu_http::router(state));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(bound.serve(async move {
        let _ = stop_rx.await;
    }));
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // 1. Client credentials beside the empty handler.
    let secs = seconds as f64;
    let deadline = move || Instant::now() + Duration::from_secs(seconds);
    let empty = move |mut c: Conn| async move {
        let end = deadline();
        let (mut ok, mut err) = (0, 0);
        while Instant::now() < end {
            let a = c.send("POST", "/api/ping", &[], "{}".into()).await?;
            if a.status == 200 { ok += 1 } else { err += 1 }
        }
        Ok((ok, err))
    };
    let auth: Arc<str> = Arc::from(basic("bench-machine", &machine_secret));
    let tokens = move |mut c: Conn| {
        let auth = auth.clone();
        async move {
            let end = deadline();
            let (mut ok, mut err) = (0, 0);
            while Instant::now() < end {
                let a = c
                    .send(
                        "POST",
                        "/token",
                        &[
                            ("content-type", "application/x-www-form-urlencoded"),
                            ("authorization", &auth),
                        ],
                        "grant_type=client_credentials".into(),
                    )
                    .await?;
                if a.status == 200 { ok += 1 } else { err += 1 }
            }
            Ok((ok, err))
        }
    };
    let conns = args.connections;
    eprintln!("[bench-idp] empty handler, {seconds} s over {conns} connections…");
    let (e_ok, e_err, e_secs) = client_rt.block_on(throughput(addr, conns, secs, empty))?;
    eprintln!("[bench-idp] client credentials, {seconds} s over {conns} connections…");
    let cpu0 = cpu_seconds();
    let (t_ok, t_err, t_secs) = client_rt.block_on(throughput(addr, conns, secs, tokens))?;
    let cpu_tokens = cpu_seconds() - cpu0;
    if t_ok == 0 {
        return Err("no client-credentials token was issued".into());
    }
    let tokens_per_s = t_ok as f64 / t_secs;

    // 2. Passcode logins beside raw Argon2id, alternating slices.
    eprintln!("[bench-idp] passcode logins vs raw Argon2id, {seconds} s each…");
    let p = config.passcode;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(p.m_kib, p.t, p.p, Some(32)).map_err(|e| e.to_string())?,
    );
    const SLICES: u32 = 4;
    let slice = Duration::from_secs(seconds) / SLICES;
    let (mut logins, mut login_err, mut login_t) = (0u64, 0u64, 0f64);
    let (mut hashes, mut hash_t) = (0u64, 0f64);
    let ids = Arc::new(ids);
    for _ in 0..SLICES {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, id) in ids.iter().cloned().enumerate() {
            tasks.push(client_rt.spawn(async move {
                let mut c = Conn::open_from(addr, Some([127, 0, 1, 1 + i as u8])).await?;
                let (mut ok, mut err) = (0u64, 0u64);
                while start.elapsed() < slice {
                    match login(&mut c, &id).await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            if err == 0 {
                                eprintln!("[bench-idp] login failed: {e}");
                            }
                            err += 1;
                        }
                    }
                }
                Ok::<_, String>((ok, err))
            }));
        }
        for t in tasks {
            let (o, e) = client_rt.block_on(t).map_err(|e| e.to_string())??;
            logins += o;
            login_err += e;
        }
        login_t += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let n: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..cores)
                .map(|i| {
                    let argon = &argon;
                    s.spawn(move || {
                        let salt = [i as u8; 16];
                        let mut out = [0u8; 32];
                        let mut n = 0u64;
                        while start.elapsed() < slice {
                            if argon
                                .hash_password_into(PASSCODE.as_bytes(), &salt, &mut out)
                                .is_ok()
                            {
                                n += 1;
                            }
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        hashes += n;
        hash_t += start.elapsed().as_secs_f64();
    }
    let logins_per_s = logins as f64 / login_t;
    let hashes_per_s = hashes as f64 / hash_t;

    // 3. Code exchange latency, one at a time, beside the empty handler's.
    eprintln!("[bench-idp] authorization-code exchange latency…");
    let rp_auth = basic("bench-rp", &rp_secret);
    let first = ids.first().cloned().unwrap_or_default();
    let exchange_task = client_rt.spawn(async move {
        let mut c = Conn::open(addr).await?;
        let (_, cookie) = login(&mut c, &first).await?;
        let cookie = cookie.ok_or("no session cookie")?;
        let (mut lat, mut ping) = (Vec::new(), Vec::new());
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end {
            let a = c
                .send("GET", &authorize_path(), &[("cookie", &cookie)], String::new())
                .await?;
            let code = a
                .location
                .as_deref()
                .and_then(|l| query_param(l, "code"))
                .ok_or_else(|| format!("no code ({})", a.status))?;
            let form = format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(REDIRECT)
            );
            let t = Instant::now();
            let a = c
                .send(
                    "POST",
                    "/token",
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("authorization", &rp_auth),
                    ],
                    form,
                )
                .await?;
            lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if a.status != 200 {
                return Err(format!("code exchange answered {}", a.status));
            }
            let t = Instant::now();
            c.send("POST", "/api/ping", &[], "{}".into()).await?;
            ping.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
        lat.sort_unstable();
        ping.sort_unstable();
        Ok::<_, String>((lat, ping))
    });
    let (exchange, ping) = client_rt
        .block_on(exchange_task)
        .map_err(|e| e.to_string())??;
    let _ = stop_tx.send(());
    drop(server_rt);

    let passcode = config.passcode;
    Ok(json!({
        "machine": machine(),
        "transport": "HTTP/1.1 keep-alive on loopback, no TLS; server and load generator in one process",
        "client_credentials": {
            "connections": conns,
            "seconds": round(t_secs, 2),
            "tokens": t_ok,
            "errors": t_err,
            "tokens_per_second": round(tokens_per_s, 0),
            "tokens_per_second_per_core": round(tokens_per_s / cores as f64, 0),
            "tokens_per_cpu_second": round(t_ok as f64 / cpu_tokens.max(1e-9), 0),
            "cpu_note": "CPU seconds of the whole process (server and load generator) during the run",
            "empty_handler_requests_per_second": round(e_ok as f64 / e_secs, 0),
            "empty_handler_errors": e_err,
            "ratio_to_empty_handler": round(tokens_per_s / (e_ok as f64 / e_secs), 3),
            "target_tokens_per_second_per_core": 1000,
        },
        "passcode_logins": {
            "argon2id": {"m_kib": passcode.m_kib, "t": passcode.t, "p": passcode.p},
            "connections": login_connections,
            "sources": "each connection from its own loopback address (127.0.1.x), one account each",
            "what": "GET /authorize + POST /authorize/login (throttles, passcode, session, usage entry, code issued) per login",
            "logins_per_second": round(logins_per_s, 2),
            "logins": logins,
            "errors": login_err,
            "raw_argon2id_hashes_per_second": round(hashes_per_s, 2),
            "raw_threads": cores,
            "ratio_to_raw_argon2id": round(logins_per_s / hashes_per_s, 3),
            "target_ratio": 0.8,
        },
        "code_exchange": {
            "what": "POST /token authorization_code with PKCE and client_secret_basic, one at a time on one connection",
            "exchanges": exchange.len(),
            "p50_ms": round(percentile(&exchange, 0.50), 3),
            "p99_ms": round(percentile(&exchange, 0.99), 3),
            "max_ms": round(percentile(&exchange, 1.0), 3),
            "empty_handler_p50_ms": round(percentile(&ping, 0.50), 3),
            "empty_handler_p99_ms": round(percentile(&ping, 0.99), 3),
            "target_p99_ms": 10.0,
        },
    }))
}

/// Registers a client; returns its secret.
fn client(idp: &Idp, id: &str, machine: bool) -> Result<String, String> {
    let reg: ClientRegistration = serde_json::from_value(json!({
        "id": id,
        "name": "Bench",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_basic",
        "scopes": ["openid"],
        "machine": machine,
    }))
    .map_err(|e| e.to_string())?;
    idp.register_client(&reg)
        .map_err(|e| e.to_string())?
        .client_secret
        .ok_or_else(|| "no client secret".to_owned())
}

/// Imports `n` synthetic adults with a valid card and gives each a level-1 account through
/// the registration use-case (phone code read from the development outbox, demo face check).
fn accounts(
    store: &dyn dancu_store::Store,
    idp: &Idp,
    outbox: &std::path::Path,
    n: usize,
) -> Result<Vec<String>, String> {
    let now = chrono::Utc::now();
    let today = (now + chrono::Duration::hours(7)).date_naive();
    let adults: Vec<Person> = dancu_synth::chunk(7, 0, today)
        .into_iter()
        .flat_map(|h| h.members)
        .filter(|p| {
            dancu_eid::account::card_state(p, today) == dancu_eid::account::CardState::Valid
                && p.date_of_birth.year() <= today.year() - 20
        })
        .take(n * 4)
        .collect();
    let rows: Vec<ImportRow> = adults
        .iter()
        .zip(1..)
        .map(|(p, line)| ImportRow {
            line,
            person: p.clone(),
        })
        .collect();
    let meta = EventMeta {
        actor: "bench".into(),
        at: now,
        reason: Some("benchmark".into()),
        legal_basis: None,
        document_ref: None,
    };
    store
        .import_batch("bench-idp", &rows, &meta)
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    for (i, p) in adults.iter().enumerate() {
        if ids.len() == n {
            break;
        }
        let phone = format!("09120{i:05}");
        idp.set_face_reference(&p.id, b"bench face")
            .map_err(|e| e.to_string())?;
        let otp_id = idp.send_phone_code(&phone).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(outbox).map_err(|e| e.to_string())?;
        let line = text.lines().last().unwrap_or_default();
        let code = line
            .find(": ")
            .and_then(|at| line.get(at + 2..at + 8))
            .ok_or("no code in the outbox")?
            .to_owned();
        let reg = idp.register_level1(&Level1Registration {
            id: p.id,
            phone,
            otp_id,
            code,
            face_image: b"bench face".to_vec(),
            passcode: PASSCODE.into(),
            guardian: None,
        });
        match reg {
            Ok(_) => ids.push(p.id.to_string()),
            // Some people cannot take this passcode (their date of birth) or an account.
            Err(e) => eprintln!("[bench-idp] skipping {}: {e}", p.id),
        }
    }
    if ids.len() < n {
        return Err(format!("only {} accounts could be made", ids.len()));
    }
    Ok(ids)
}
