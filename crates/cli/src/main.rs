//! `dancu`: the population register in one binary. See `dancu --help`.

use clap::{Parser, Subcommand};
use dancu::config::{Config, ConfigArgs};
use dancu::transfer::{self, Format};
use dancu::{bench, demo, server};
use dancu_domain::officer::{Jurisdiction, Officer, Role};
use dancu_registry::credentials;
use std::path::PathBuf;
use std::process::ExitCode;

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
            let store = server::open_store(&config)?;
            let backend = store.backend();
            runtime()?.block_on(async {
                let bound = server::Bound::bind(config.listen, server::app(store)).await?;
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
    }
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
