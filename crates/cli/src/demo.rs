//! `dancu demo`: a data directory with a synthetic population and demo officers, then the server.
//!
//! The population is made once (first run, empty database); later runs reuse it and print the
//! same credentials, which are kept in `<data dir>/demo-credentials.json` (readable by the owner
//! only).

use crate::config::Config;
use crate::server;
use dancu_domain::event::EventMeta;
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_registry::credentials;
use dancu_store::{ImportRow, Importer, OfficerRecord, Store};
use serde::{Deserialize, Serialize};
use std::sync::mpsc::sync_channel;

/// Credentials of the demo officers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCredentials {
    /// (officer id, role, jurisdiction, token).
    pub officers: Vec<(String, String, String, String)>,
    /// e-ID logins for the portals: (who, personal ID number, passcode, phone).
    #[serde(default)]
    pub eid: Vec<(String, String, String, String)>,
}

/// The passcode of the demo e-ID accounts.
const DEMO_PASSCODE: &str = "480916";

/// Gives two people of the demo commune an e-ID account for the portals: a household head
/// (citizen portal, level 1) and an adult linked to a `demo-desk` supervisor (officer desk,
/// level 2). One-time codes go through the development SMS outbox, read back from its file.
pub(crate) fn demo_eid(
    idp: &dancu_idp::Idp,
    store: &dyn Store,
    config: &Config,
    commune: &str,
) -> Result<Vec<(String, String, String, String)>, String> {
    use dancu_domain::person::{CardStatus, Relationship};
    let today = (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive();
    let people = store
        .persons_after(None, 5_000)
        .map_err(|e| e.to_string())?;
    // Adults of the commune whose card lets them open an account.
    let eligible = |p: &&dancu_domain::person::Person| {
        !p.is_dead()
            && p.date_of_birth.year() <= 1995
            && p.home_commune().as_deref() == Some(commune)
            && p.cards
                .iter()
                .any(|c| c.status == CardStatus::Valid && c.expires_on.is_none_or(|e| e > today))
    };
    // The citizen heads a household, so a newborn can join it.
    let citizen = people.iter().filter(eligible).find(|p| {
        p.household
            .as_ref()
            .is_some_and(|m| m.relationship == Relationship::Head)
    });
    let officer = people
        .iter()
        .filter(eligible)
        .find(|p| citizen.is_none_or(|c| c.id != p.id));
    let (Some(citizen), Some(officer)) = (citizen, officer) else {
        eprintln!("No two adults with a valid card in commune {commune}: no demo e-ID logins.");
        return Ok(vec![]);
    };
    let outbox = config.data_dir.join("sms-outbox.ndjson");
    let mut out = Vec::new();
    for (who, p, phone, level2) in [
        ("citizen", citizen, "0912000001", false),
        ("officer", officer, "0912000002", true),
    ] {
        if idp.account(&p.id).map_err(|e| e.to_string())?.is_none() {
            idp.set_face_reference(&p.id, b"demo portrait")
                .map_err(|e| e.to_string())?;
            let otp_id = idp.send_phone_code(phone).map_err(|e| e.to_string())?;
            let text = std::fs::read_to_string(&outbox).map_err(|e| e.to_string())?;
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
            idp.register_level1(&dancu_idp::Level1Registration {
                id: p.id,
                phone: phone.to_owned(),
                otp_id,
                code,
                face_image: b"demo portrait".to_vec(),
                passcode: DEMO_PASSCODE.to_owned(),
                guardian: None,
            })
            .map_err(|e| format!("demo e-ID account for {}: {e}", p.id))?;
            if level2 {
                idp.raise_level2(
                    "demo",
                    &dancu_idp::Level2Raise {
                        id: p.id,
                        place: "Công an xã (demo)".to_owned(),
                        face_checked: true,
                        fingerprints_checked: true,
                    },
                )
                .map_err(|e| e.to_string())?;
            }
        }
        if level2 {
            let record = OfficerRecord {
                officer: Officer {
                    id: "demo-desk".into(),
                    name: format!("{} (demo)", p.name.full()),
                    // A supervisor, so the demo desk can also apply corrections.
                    role: Role::Supervisor,
                    jurisdiction: Jurisdiction::Commune(commune.to_owned()),
                    person: Some(p.id),
                },
                token_hash: credentials::token_hash(&credentials::new_token()),
                created_at: chrono::Utc::now(),
            };
            match store.add_officer(&record) {
                Ok(()) | Err(dancu_store::StoreError::Exists(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        out.push((
            who.to_owned(),
            p.id.to_string(),
            DEMO_PASSCODE.to_owned(),
            format!("+84{}", &phone[1..]),
        ));
    }
    Ok(out)
}

/// Generates `people` synthetic people from `seed` and loads them, households included, using
/// one thread to generate and the caller's to write. Returns how many people were loaded.
pub fn load_synthetic(
    store: &dyn Store,
    seed: u64,
    people: u64,
    today: chrono::NaiveDate,
    progress: &indicatif::ProgressBar,
) -> Result<u64, String> {
    progress.set_length(people);
    let (tx, rx) = sync_channel::<Vec<dancu_synth::SynthHousehold>>(2);
    let generator = std::thread::spawn(move || {
        let mut made = 0u64;
        let mut index = 0u32;
        while made < people && index < dancu_synth::MAX_CHUNKS {
            let mut households = dancu_synth::chunk(seed, index, today);
            index += 1;
            // Stop at the household that reaches the requested number.
            let mut keep = 0;
            for h in &households {
                if made >= people {
                    break;
                }
                made += h.person_count() as u64;
                keep += 1;
            }
            households.truncate(keep);
            if tx.send(households).is_err() {
                return;
            }
        }
    });
    let meta = EventMeta {
        actor: "synth".into(),
        at: chrono::Utc::now(),
        reason: Some(format!("synthetic demo population, seed {seed}")),
        legal_basis: None,
        document_ref: None,
    };
    let import_id = format!("synth:{seed}:{people}");
    let mut loaded = 0u64;
    let mut line = 0u64;
    let mut importer = Importer::new(store, &import_id, &meta).map_err(|e| e.to_string())?;
    for chunk in rx {
        let mut rows = Vec::with_capacity(dancu_synth::CHUNK_PEOPLE + 16);
        let mut households = Vec::with_capacity(chunk.len());
        for h in chunk {
            for p in h.members.into_iter().chain(h.deceased) {
                line += 1;
                rows.push(ImportRow { line, person: p });
            }
            households.push(h.household);
        }
        let dupes = importer.people(&rows).map_err(|e| e.to_string())?;
        importer
            .households(&households)
            .map_err(|e| e.to_string())?;
        loaded += (rows.len() - dupes.len()) as u64;
        progress.inc(rows.len() as u64);
    }
    let _ = generator.join();
    importer.finish().map_err(|e| e.to_string())?;
    Ok(loaded)
}

fn credentials_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("demo-credentials.json")
}

/// Creates the demo officers, or reads their credentials back.
fn demo_officers(
    store: &dyn Store,
    config: &Config,
    commune: &str,
) -> Result<DemoCredentials, String> {
    let path = credentials_path(config);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(c) = serde_json::from_str::<DemoCredentials>(&text)
    {
        return Ok(c);
    }
    let officers = [
        (
            "demo-national",
            "Cán bộ Trung ương (demo)",
            Role::Supervisor,
            Jurisdiction::National,
        ),
        (
            "demo-commune",
            "Cán bộ cấp xã (demo)",
            Role::Registrar,
            Jurisdiction::Commune(commune.to_owned()),
        ),
    ];
    let mut creds = DemoCredentials {
        officers: vec![],
        eid: vec![],
    };
    for (id, name, role, jurisdiction) in officers {
        let token = credentials::new_token();
        let record = OfficerRecord {
            officer: Officer {
                id: id.into(),
                name: name.into(),
                role,
                jurisdiction: jurisdiction.clone(),
                person: None,
            },
            token_hash: credentials::token_hash(&token),
            created_at: chrono::Utc::now(),
        };
        match store.add_officer(&record) {
            Ok(()) | Err(dancu_store::StoreError::Exists(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        creds.officers.push((
            id.into(),
            format!("{role:?}").to_lowercase(),
            jurisdiction.to_string(),
            token,
        ));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&creds).map_err(|e| e.to_string())?;
    write_private(&path, &text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(creds)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(path)?, text.as_bytes())
}

/// Runs the demo.
pub fn run(config: &Config, people: u64, seed: u64, serve: bool) -> Result<(), String> {
    if people == 0 || people > 50_000_000 {
        return Err("--people must be between 1 and 50,000,000".into());
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating {}: {e}", config.data_dir.display()))?;
    let (store, docs) = server::open_stores(config)?;
    let existing = store.count_people().map_err(|e| e.to_string())?;
    if existing == 0 {
        eprintln!("Creating a synthetic population of {people} people (seed {seed})…");
        let bar = indicatif::ProgressBar::new(people).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} people {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let start = std::time::Instant::now();
        let today = (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive();
        let n = load_synthetic(store.as_ref(), seed, people, today, &bar)?;
        bar.finish_and_clear();
        eprintln!(
            "Loaded {n} people in {:.1} s.",
            start.elapsed().as_secs_f64()
        );
    } else {
        eprintln!(
            "Using the existing register of {existing} people in {}.",
            config.store_location()
        );
    }
    // The demo commune officer gets the commune with the most people.
    let commune = busiest_commune(store.as_ref()).unwrap_or_else(|| "00004".to_owned());
    let creds = demo_officers(store.as_ref(), config, &commune)?;
    if !serve {
        print_credentials(&creds, None);
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let registry = std::sync::Arc::new(dancu_registry::Registry::new(
        store.clone(),
        std::sync::Arc::new(dancu_domain::clock::SystemClock),
        None,
    ));
    server::spawn_record_cache_fill(store.clone());
    let idp = server::idp(registry.clone(), docs, config)?;
    let mut creds = creds;
    creds.eid = demo_eid(&idp, store.as_ref(), config, &commune)?;
    let app = dancu_http::router(dancu_http::AppState::new(registry).with_idp(idp));
    rt.block_on(async {
        let bound = server::Bound::bind(config.listen, app).await?;
        print_credentials(&creds, Some(bound.local_addr()));
        bound.serve(server::shutdown_signal()).await
    })
}

pub(crate) fn busiest_commune(store: &dyn Store) -> Option<String> {
    // A sample is enough: the first page of people in ID order, counted by commune.
    let mut counts = std::collections::HashMap::<String, u32>::new();
    for p in store.persons_after(None, 5_000).ok()? {
        if let Some(c) = p.home_commune() {
            *counts.entry(c).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(c, n)| (*n, std::cmp::Reverse(c.clone())))
        .map(|(c, _)| c)
}

fn print_credentials(creds: &DemoCredentials, addr: Option<std::net::SocketAddr>) {
    println!();
    if let Some(addr) = addr {
        println!("dancu demo is serving on http://{addr}");
        println!("  OpenAPI document: http://{addr}/api/openapi.json");
        println!(
            "  Health:           http://{addr}/healthz   Ready: http://{addr}/readyz   Metrics: http://{addr}/metrics"
        );
    }
    if let Some(addr) = addr {
        println!(
            "  Citizen portal:   http://{addr}/portal/me   Officer desk: http://{addr}/portal/desk"
        );
    }
    if !creds.eid.is_empty() {
        println!("e-ID logins for the portals (one-time codes: <data dir>/sms-outbox.ndjson):");
        for (who, id, passcode, phone) in &creds.eid {
            println!("  {who:<8} ID {id}  passcode {passcode}  phone {phone}");
        }
    }
    println!("Demo officers (Authorization: Bearer <token>):");
    for (id, role, jurisdiction, token) in &creds.officers {
        println!("  {id:<14} {role:<10} {jurisdiction:<16} {token}");
    }
    if let (Some(addr), Some((_, _, _, token))) = (addr, creds.officers.first()) {
        println!("Try:");
        println!(
            "  curl -s -X POST http://{addr}/api/v1/persons/search -H 'Authorization: Bearer {token}' \\\n    -H 'X-Purpose: demo' -H 'Content-Type: application/json' -d '{{\"name\":\"nguyen van an\"}}'"
        );
    }
    println!();
}
