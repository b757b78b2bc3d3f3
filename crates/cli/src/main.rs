//! `dancu`: the population register in one binary. See `dancu --help`.

use clap::{Parser, Subcommand};
use dancu::config::{Config, ConfigArgs};
use dancu::transfer::{self, Format};
use dancu::{audit, bench, demo, server};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_registry::credentials;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "dancu",
    version,
    about = "National population register, e-identification and data sharing (Đề án 06)"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the APIs.
    Serve,
    /// Create a data directory with a synthetic population and a demo officer (first run only),
    /// then serve and print the URLs and credentials.
    Demo {
        /// How many synthetic people.
        #[arg(long, default_value_t = 100_000)]
        people: u64,
        /// Seed of the synthetic population.
        #[arg(long, default_value_t = 6)]
        seed: u64,
        /// Prepare the data and exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Load person records from an NDJSON or CSV file; every row is validated, rejects are
    /// reported with line numbers, and a killed import resumes where it stopped.
    Import {
        /// The file.
        file: PathBuf,
        /// Format (default: from the extension, .csv or NDJSON).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Write every person record to a file or standard output.
    Export {
        /// Format.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: Format,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Officers of the register.
    Officer {
        #[command(subcommand)]
        command: OfficerCmd,
    },
    /// Run the benchmark suite and print JSON.
    Bench(bench::BenchArgs),
    /// OpenID Connect clients (relying parties) of the e-ID provider.
    Client {
        #[command(subcommand)]
        command: ClientCmd,
    },
    /// The data-sharing hub's tamper-evident exchange log.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Verify the exchange log of the data directory: every record, its chain and the signed
    /// checkpoints. Prints a JSON report; names the first bad record and exits non-zero when
    /// the log is not intact.
    Verify {
        /// Checkpoint public key (JWK file) kept outside the data directory; default: the
        /// one in the log directory.
        #[arg(long)]
        trusted_key: Option<PathBuf>,
    },
    /// Move old segments of the exchange log to `audit/archive/` (retention): only those under
    /// the last signed checkpoint, never one with a covert access still under embargo, never
    /// the newest. Prints the plan as JSON.
    Archive {
        /// Keep records at least this many days.
        #[arg(long, default_value_t = 1825)]
        keep_days: u32,
        /// Also archive (oldest first) while the live log is over this many bytes.
        #[arg(long)]
        max_live_bytes: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Register a client; prints it as JSON, with the generated secret for
    /// client_secret_basic (shown once; only its hash is stored).
    Add {
        /// Client ID.
        #[arg(long)]
        id: String,
        /// Name shown on the consent page.
        #[arg(long)]
        name: String,
        /// Redirect URI, matched exactly (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// client_secret_basic or private_key_jwt.
        #[arg(long, default_value = "private_key_jwt")]
        auth: String,
        /// A JSON file with the client's public keys ({"keys": [...]}) for private_key_jwt.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Authorization requests only through PAR.
        #[arg(long)]
        require_par: bool,
        /// Tokens only DPoP-bound.
        #[arg(long)]
        require_dpop: bool,
        /// Public subject identifiers (dancu's own pages) instead of pairwise.
        #[arg(long)]
        public_subject: bool,
        /// Scope the client may ask for (repeat; default openid and profile).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// May use the client-credentials grant.
        #[arg(long)]
        machine: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OfficerCmd {
    /// Create an officer and print their API token (shown once; only its hash is stored).
    Add {
        /// Officer id (login or staff number).
        #[arg(long)]
        id: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// viewer, registrar or supervisor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// national, province:NN or commune:NNNNN (2025 codes).
        #[arg(long, value_parser = Jurisdiction::parse)]
        jurisdiction: Jurisdiction,
        /// The officer's own personal ID number: lets them log in to the officer desk with
        /// their e-ID account (level 2).
        #[arg(long, value_parser = parse_person)]
        person: Option<dancu_domain::PersonalId>,
    },
    /// List officers.
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "viewer" => Ok(Role::Viewer),
        "registrar" => Ok(Role::Registrar),
        "supervisor" => Ok(Role::Supervisor),
        _ => Err(format!(
            "role must be viewer, registrar or supervisor, got {s:?}"
        )),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DANCU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    let config = cli.config.resolve()?;
    match cli.command {
        Cmd::Serve => {
            init_logging(&config);
            let (store, docs) = server::open_stores(&config)?;
            let backend = store.backend();
            let hub = server::open_hub(&config, store.clone(), docs.clone())?;
            let app = server::app_full(store, docs, &config, hub.clone())?;
            runtime()?.block_on(async {
                if let Some(h) = &hub {
                    server::spawn_checkpoint_timer(h.clone());
                    server::spawn_webhook_sender(
                        h.clone(),
                        std::time::Duration::from_millis(500),
                        config.nats.clone(),
                    );
                }
                let bound = server::Bound::bind(config.listen, app).await?;
                tracing::info!(addr = %bound.local_addr(), backend, "serving");
                eprintln!(
                    "dancu serving on http://{} (database: {backend})",
                    bound.local_addr()
                );
                bound.serve(server::shutdown_signal()).await
            })
        }
        Cmd::Demo {
            people,
            seed,
            no_serve,
        } => demo::run(&config, people, seed, !no_serve),
        Cmd::Import { file, format } => {
            let store = server::open_store(&config)?;
            let format = format.unwrap_or_else(|| Format::from_path(&file));
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let (report, rejects) = transfer::import_file(
                store.as_ref(),
                &file,
                format,
                "import",
                chrono::Utc::now(),
                &bar,
            )?;
            bar.finish_and_clear();
            for r in rejects.iter().take(20) {
                eprintln!("line {}: {}: {}", r.line, r.code, r.reason);
            }
            if rejects.len() > 20 {
                eprintln!("… and {} more", rejects.len() - 20);
            }
            if !rejects.is_empty() {
                let path = transfer::write_rejects(&file, &rejects)
                    .map_err(|e| format!("writing rejects: {e}"))?;
                eprintln!("all rejects: {}", path.display());
            }
            println!(
                "{}",
                serde_json::to_string(&report).map_err(|e| e.to_string())?
            );
            if rejects.is_empty() {
                Ok(())
            } else {
                Err(format!("{} rows rejected", rejects.len()))
            }
        }
        Cmd::Export { format, out } => {
            let store = server::open_store(&config)?;
            let n = match out {
                Some(path) => {
                    let f = std::fs::File::create(&path)
                        .map_err(|e| format!("creating {}: {e}", path.display()))?;
                    let mut w = std::io::BufWriter::new(f);
                    let n = transfer::export(store.as_ref(), format, &mut w)?;
                    std::io::Write::flush(&mut w).map_err(|e| e.to_string())?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    let n = transfer::export(store.as_ref(), format, &mut w)?;
                    std::io::Write::flush(&mut w).map_err(|e| e.to_string())?;
                    n
                }
            };
            eprintln!("exported {n} people");
            Ok(())
        }
        Cmd::Officer {
            command:
                OfficerCmd::Add {
                    id,
                    name,
                    role,
                    jurisdiction,
                    person,
                },
        } => {
            let store = server::open_store(&config)?;
            let token = add_officer(
                store.as_ref(),
                Officer {
                    id,
                    name,
                    role,
                    jurisdiction,
                    person,
                },
            )?;
            println!("{token}");
            eprintln!(
                "Keep this token: it is shown only once. Use it as `Authorization: Bearer <token>`."
            );
            Ok(())
        }
        Cmd::Officer {
            command: OfficerCmd::List,
        } => {
            let store = server::open_store(&config)?;
            for o in store.officers().map_err(|e| e.to_string())? {
                println!("{}\t{}\t{:?}\t{}", o.id, o.name, o.role, o.jurisdiction);
            }
            Ok(())
        }
        Cmd::Bench(args) => bench::run(&config, args),
        Cmd::Audit {
            command: AuditCmd::Verify { trusted_key },
        } => audit::verify(&config, trusted_key.as_deref()),
        Cmd::Audit {
            command:
                AuditCmd::Archive {
                    keep_days,
                    max_live_bytes,
                },
        } => audit::archive(&config, keep_days, max_live_bytes),
        Cmd::Client {
            command:
                ClientCmd::Add {
                    id,
                    name,
                    redirect_uris,
                    auth,
                    jwks,
                    require_par,
                    require_dpop,
                    public_subject,
                    scopes,
                    machine,
                },
        } => {
            let jwks = match jwks {
                None => Vec::new(),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("reading {}: {e}", path.display()))?;
                    #[derive(serde::Deserialize)]
                    struct Keys {
                        keys: Vec<dancu_eid::oidc::jws::Jwk>,
                    }
                    serde_json::from_str::<Keys>(&text)
                        .map_err(|e| format!("{}: {e}", path.display()))?
                        .keys
                }
            };
            let reg = dancu_idp::ClientRegistration {
                id,
                name,
                redirect_uris,
                token_endpoint_auth_method: auth,
                jwks,
                require_par,
                require_dpop,
                subject_type: Some(if public_subject { "public" } else { "pairwise" }.into()),
                scopes: (!scopes.is_empty()).then_some(scopes),
                machine,
            };
            let (store, docs) = server::open_stores(&config)?;
            let registry = std::sync::Arc::new(dancu_registry::Registry::new(
                store,
                std::sync::Arc::new(dancu_domain::clock::SystemClock),
                None,
            ));
            let idp = server::idp(registry, docs, &config)?;
            let out = idp.register_client(&reg).map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
            );
            if out.client_secret.is_some() {
                eprintln!("Keep the client_secret: it is shown only once.");
            }
            Ok(())
        }
    }
}

fn parse_person(s: &str) -> Result<dancu_domain::PersonalId, String> {
    dancu_domain::PersonalId::parse(s)
        .map_err(|e| format!("{s:?} is not a personal ID number: {e}"))
}

/// Creates an officer and returns their new token.
fn add_officer(store: &dyn dancu_store::Store, officer: Officer) -> Result<String, String> {
    if officer.id.trim().is_empty() || officer.name.trim().is_empty() {
        return Err("officer id and name must not be empty".into());
    }
    let token = credentials::new_token();
    store
        .add_officer(&dancu_store::OfficerRecord {
            officer,
            token_hash: credentials::token_hash(&token),
            created_at: chrono::Utc::now(),
        })
        .map_err(|e| e.to_string())?;
    Ok(token)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
