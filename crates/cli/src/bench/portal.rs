//! `dancu bench --portal`: how long the web portals' main pages take over a large register.
//!
//! Over the SQLite register in `--work-dir` (filled with `--people` synthetic people first if
//! it is empty, as `dancu demo` does), it gives the demo's citizen and officer an e-ID account,
//! serves the application in-process on a loopback port, logs both in through the real
//! OpenID Connect pages (passcode, and the SMS code of the level-2 login read from the
//! development outbox), then requests each main page `ROUNDS` times in a row on one keep-alive
//! connection and prints p50/p99/max per page as JSON. The time is measured at the client on
//! loopback, so it bounds the server's time from above.

use crate::config::Config;
use crate::server;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Requests per page.
const ROUNDS: usize = 200;
/// The goal per page, server side.
const GOAL_MS: f64 = 50.0;

struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("[bench] connection: {e}");
            }
        });
        Ok(Self {
            sender,
            cookies: HashMap::new(),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: Option<String>,
    ) -> Result<Answer, String> {
        // Absolute redirects (the provider's) are followed on this same server.
        let path = match path.find("://") {
            Some(i) => path[i + 3..].find('/').map_or("/", |j| &path[i + 3 + j..]),
            None => path,
        };
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench")
            .header("cookie", jar.join("; "));
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        // The connection takes the next request only once it has finished the last one.
        self.sender
            .ready()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        for v in resp.headers().get_all("set-cookie") {
            if let Some((k, v)) = v
                .to_str()
                .ok()
                .and_then(|c| c.split(';').next())
                .and_then(|p| p.split_once('='))
            {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            location,
            body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        })
    }

    async fn follow(&mut self, mut a: Answer) -> Result<Answer, String> {
        for _ in 0..10 {
            match a.location.clone() {
                Some(l) if (300..400).contains(&a.status) => a = self.send("GET", &l, None).await?,
                _ => return Ok(a),
            }
        }
        Err("too many redirects".into())
    }
}

fn hidden(body: &str, name: &str) -> Result<String, String> {
    let key = format!("name=\"{name}\" value=\"");
    let at = body.find(&key).ok_or(format!("no {name} on the page"))? + key.len();
    let end = body[at..].find('"').ok_or("unterminated value")?;
    Ok(body[at..at + end].to_owned())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Logs in through the provider's pages; returns the landing page.
async fn login(
    c: &mut Client,
    side: &str,
    id: &str,
    passcode: &str,
    outbox: &std::path::Path,
) -> Result<Answer, String> {
    let r = c
        .send("GET", &format!("/portal/login?as={side}"), None)
        .await?;
    let page = c.follow(r).await?;
    let tx = hidden(&page.body, "tx")?;
    let mut r = c
        .send(
            "POST",
            "/authorize/login",
            Some(form(&[
                ("tx", &tx),
                ("id_number", id),
                ("passcode", passcode),
            ])),
        )
        .await?;
    if r.status == 200 && r.body.contains("/authorize/otp") {
        let tx = hidden(&r.body, "tx")?;
        let text = std::fs::read_to_string(outbox).map_err(|e| e.to_string())?;
        let code = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_owned))
            .find_map(|t| {
                t.split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .map(str::to_owned)
            })
            .ok_or("no one-time code in the SMS outbox")?;
        r = c
            .send(
                "POST",
                "/authorize/otp",
                Some(form(&[("tx", &tx), ("code", &code)])),
            )
            .await?;
    }
    if r.status == 200 && r.body.contains("/authorize/consent") {
        let tx = hidden(&r.body, "tx")?;
        r = c
            .send(
                "POST",
                "/authorize/consent",
                Some(form(&[("tx", &tx), ("decision", "allow")])),
            )
            .await?;
    }
    let landed = c.follow(r).await?;
    if landed.status != 200 {
        return Err(format!("{side} login ended with {}", landed.status));
    }
    Ok(landed)
}

/// Times `ROUNDS` requests of one page; every answer must be a 200.
async fn time_page(
    c: &mut Client,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<serde_json::Value, String> {
    let mut lat = Vec::with_capacity(ROUNDS);
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let a = c.send(method, path, body.clone()).await?;
        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if a.status != 200 {
            return Err(format!(
                "{method} {path}: {} {}",
                a.status,
                &a.body[..a.body.len().min(300)]
            ));
        }
        bytes = a.body.len();
    }
    lat.sort_unstable();
    let p99 = super::percentile(&lat, 0.99);
    Ok(json!({
        "method": method,
        "path": path,
        "requests": ROUNDS,
        "html_bytes": bytes,
        "p50_ms": super::round(super::percentile(&lat, 0.50), 2),
        "p99_ms": super::round(p99, 2),
        "max_ms": super::round(f64::from(*lat.last().unwrap_or(&0)) / 1000.0, 2),
        "goal_ms": GOAL_MS,
        "met": p99 <= GOAL_MS,
    }))
}

/// Runs the portal measurement and prints its JSON report.
pub fn run(config: &Config, args: &super::BenchArgs) -> Result<(), String> {
    let work = args
        .work_dir
        .clone()
        .ok_or("dancu bench --portal needs --work-dir (the register is kept there)")?;
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut config = config.clone();
    config.data_dir = work.clone();
    config.database_url = None;
    let (store, docs) = server::open_stores(&config)?;
    let mut people = store.count_people().map_err(|e| e.to_string())?;
    if people == 0 {
        eprintln!(
            "[bench] loading {} synthetic people into {}…",
            args.people,
            work.display()
        );
        let today = (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive();
        let bar = indicatif::ProgressBar::hidden();
        people = crate::demo::load_synthetic(store.as_ref(), 1, args.people, today, &bar)?;
    }
    eprintln!("[bench] {people} people in the register");
    let commune = crate::demo::busiest_commune(store.as_ref()).unwrap_or_else(|| "00004".into());
    let registry = Arc::new(dancu_registry::Registry::new(
        store.clone(),
        Arc::new(dancu_domain::clock::SystemClock),
        None,
    ));
    let idp = server::idp(registry.clone(), docs, &config)?;
    let logins = crate::demo::demo_eid(&idp, store.as_ref(), &config, &commune)?;
    let who = |w: &str| {
        logins
            .iter()
            .find(|l| l.0 == w)
            .cloned()
            .ok_or(format!("no demo {w} login"))
    };
    let (citizen, officer) = (who("citizen")?, who("officer")?);
    let name = store
        .person(&dancu_domain::PersonalId::parse(&citizen.1).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?
        .map(|p| p.name.full())
        .ok_or("the citizen is not in the register")?;
    let app = dancu_http::router(dancu_http::AppState::new(registry).with_idp(idp));
    let outbox = config.data_dir.join("sms-outbox.ndjson");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pages = rt.block_on(async move {
        let bound = server::Bound::bind("127.0.0.1:0".parse().map_err(|_| "address")?, app).await?;
        let addr = bound.local_addr();
        tokio::spawn(bound.serve(std::future::pending()));
        let mut pages = Vec::new();
        let mut c = Client::connect(addr).await?;
        login(&mut c, "citizen", &citizen.1, &citizen.2, &outbox).await?;
        for path in [
            "/portal/me",
            "/portal/me/account",
            "/portal/me/security",
            "/portal/me/documents",
            "/portal/me/residences",
            "/portal/me/consents",
            "/portal/me/tracker",
        ] {
            pages.push(time_page(&mut c, "GET", path, None).await?);
        }
        let mut d = Client::connect(addr).await?;
        let desk = login(&mut d, "officer", &officer.1, &officer.2, &outbox).await?;
        let csrf = hidden(&desk.body, "csrf")?;
        pages.push(time_page(&mut d, "GET", "/portal/desk", None).await?);
        let search = form(&[
            ("csrf", &csrf),
            ("name", &name),
            ("year", ""),
            ("commune", ""),
            ("purpose", "xac-minh-ho-so"),
        ]);
        pages.push(time_page(&mut d, "POST", "/portal/desk/search", Some(search)).await?);
        let person = form(&[
            ("csrf", &csrf),
            ("id", &citizen.1),
            ("purpose", "xac-minh-ho-so"),
        ]);
        pages.push(time_page(&mut d, "POST", "/portal/desk/person", Some(person)).await?);
        Ok::<_, String>(pages)
    })?;
    let all_met = pages.iter().all(|p| p["met"] == json!(true));
    let report = json!({
        "machine": super::machine(),
        "people": people,
        "backend": "sqlite",
        "rounds_per_page": ROUNDS,
        "measured_at": "client on loopback, one keep-alive connection, sequential (an upper bound of server time)",
        "pages": pages,
        "all_within_goal": all_met,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
