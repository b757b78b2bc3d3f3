//! Configuration: command-line flags over `DANCU_*` environment variables over a TOML file over
//! defaults that work, so `dancu serve` alone runs.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./dancu-data";

/// Values a TOML file may set (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address, e.g. `0.0.0.0:8080`.
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// `postgres://` URL; unset means SQLite in the data directory.
    pub database_url: Option<String>,
    /// `json` (default) or `pretty`.
    pub log_format: Option<String>,
    /// OpenID Connect issuer URL (default `http://<listen>`).
    pub issuer: Option<String>,
    /// `http://` URL of an SMS relay; unset writes one-time codes to `sms-outbox.ndjson` in the
    /// data directory (development).
    pub sms_url: Option<String>,
    /// Argon2id memory of passcode hashes in KiB (default 19456, i.e. 19 MiB).
    pub passcode_memory_kib: Option<u32>,
    /// Argon2id passes of passcode hashes (default 2).
    pub passcode_iterations: Option<u32>,
    /// The data-sharing hub's members and rights (JSON); default `<data dir>/hub.json` if it
    /// exists (without one the hub's services answer `hub_not_configured`).
    pub hub_config: Option<PathBuf>,
    /// Most bytes the exchange log's live segments may take; exchanges past it are refused
    /// (default: no limit beyond the disk).
    pub audit_max_bytes: Option<u64>,
    /// NATS server that change-event subscriptions with a `nats` subject are published to.
    pub nats_url: Option<String>,
    /// JetStream stream covering those subjects (default `DANCU_EVENTS`).
    pub nats_stream: Option<String>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Data directory (SQLite database, demo credentials).
    pub data_dir: PathBuf,
    /// PostgreSQL URL, if any.
    pub database_url: Option<String>,
    /// Log format.
    pub log_json: bool,
    /// OpenID Connect issuer URL, no trailing slash.
    pub issuer: String,
    /// SMS relay URL; `None` means the development outbox file.
    pub sms_url: Option<String>,
    /// Argon2id parameters of passcode hashes.
    pub passcode: dancu_eid::authn::passcode::PasscodeParams,
    /// The hub's members and rights file, when given explicitly.
    pub hub_config: Option<PathBuf>,
    /// Byte budget of the exchange log.
    pub audit_max_bytes: Option<u64>,
    /// The NATS JetStream publisher of change events, when configured.
    pub nats: Option<crate::push::NatsSettings>,
}

/// What the command line and environment said (clap fills it).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "DANCU_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "DANCU_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Data directory [default: ./dancu-data].
    #[arg(long, env = "DANCU_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `postgres://…` for PostgreSQL; unset means SQLite in the data directory.
    #[arg(long, env = "DANCU_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Log format: json or pretty [default: json].
    #[arg(long, env = "DANCU_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// OpenID Connect issuer URL [default: http://<listen>].
    #[arg(long, env = "DANCU_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// SMS relay URL (http://…); unset writes codes to sms-outbox.ndjson in the data directory.
    #[arg(long, env = "DANCU_SMS_URL", global = true)]
    pub sms_url: Option<String>,
    /// Argon2id memory of passcode hashes in KiB [default: 19456].
    #[arg(long, env = "DANCU_PASSCODE_MEMORY_KIB", global = true)]
    pub passcode_memory_kib: Option<u32>,
    /// Argon2id passes of passcode hashes [default: 2].
    #[arg(long, env = "DANCU_PASSCODE_ITERATIONS", global = true)]
    pub passcode_iterations: Option<u32>,
    /// Data-sharing hub members and rights (JSON) [default: <data dir>/hub.json if present].
    #[arg(long, env = "DANCU_HUB_CONFIG", global = true)]
    pub hub_config: Option<PathBuf>,
    /// Most bytes the exchange log may take; exchanges past it are refused [default: none].
    #[arg(long, env = "DANCU_AUDIT_MAX_BYTES", global = true)]
    pub audit_max_bytes: Option<u64>,
    /// NATS server for change events to JetStream (nats://host:port) [default: none].
    #[arg(long, env = "DANCU_NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// JetStream stream name for change events [default: DANCU_EVENTS].
    #[arg(long, env = "DANCU_NATS_STREAM", global = true)]
    pub nats_stream: Option<String>,
}

impl ConfigArgs {
    /// Resolves the settings, reading the TOML file if one is named.
    pub fn resolve(&self) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = self
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .parse()
            .map_err(|e| format!("listen address {listen_text:?} is not host:port ({e})"))?;
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url)
            .filter(|s| !s.trim().is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "DANCU_DATABASE_URL must be a postgres:// URL (unset it for SQLite); got {url:?}"
            ));
        }
        let log_format = self
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "json".to_owned());
        let log_json = match log_format.as_str() {
            "json" => true,
            "pretty" => false,
            other => return Err(format!("log format must be json or pretty, got {other:?}")),
        };
        let issuer = self
            .issuer
            .clone()
            .or(file.issuer)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(format!("the issuer must be an http(s) URL; got {issuer:?}"));
        }
        let sms_url = self.sms_url.clone().or(file.sms_url);
        let defaults = dancu_eid::authn::passcode::PasscodeParams::default();
        let passcode = dancu_eid::authn::passcode::PasscodeParams {
            m_kib: self
                .passcode_memory_kib
                .or(file.passcode_memory_kib)
                .unwrap_or(defaults.m_kib),
            t: self
                .passcode_iterations
                .or(file.passcode_iterations)
                .unwrap_or(defaults.t),
            ..defaults
        };
        // Refuse parameters Argon2 would refuse now, not at the first registration.
        dancu_eid::authn::passcode::PasscodeHasher::new(passcode)
            .map_err(|e| format!("passcode hashing parameters: {e}"))?;
        let nats_url = self
            .nats_url
            .clone()
            .or(file.nats_url)
            .filter(|s| !s.trim().is_empty());
        let nats = match nats_url {
            None => None,
            Some(url) => {
                if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                    return Err(format!(
                        "DANCU_NATS_URL must be a nats:// or tls:// URL; got {url:?}"
                    ));
                }
                let stream = self
                    .nats_stream
                    .clone()
                    .or(file.nats_stream)
                    .unwrap_or_else(|| crate::push::DEFAULT_STREAM.to_owned());
                if stream.is_empty()
                    || !stream
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!(
                        "the NATS stream name must be letters, digits, '_' or '-'; got {stream:?}"
                    ));
                }
                Some(crate::push::NatsSettings { url, stream })
            }
        };
        Ok(Config {
            listen,
            data_dir,
            database_url,
            log_json,
            issuer,
            sms_url,
            passcode,
            hub_config: self.hub_config.clone().or(file.hub_config),
            audit_max_bytes: self.audit_max_bytes.or(file.audit_max_bytes),
            nats,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Config {
    /// Where the store lives: the PostgreSQL URL or the SQLite file in the data directory.
    pub fn store_location(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self
                .data_dir
                .join("dancu.sqlite3")
                .to_string_lossy()
                .into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_alone() {
        let c = ConfigArgs::default().resolve().unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.database_url.is_none());
        assert!(c.store_location().ends_with("dancu.sqlite3"));
        assert_eq!(c.issuer, format!("http://{DEFAULT_LISTEN}"));
        assert_eq!((c.passcode.m_kib, c.passcode.t), (19 * 1024, 2));
        let bad = ConfigArgs {
            passcode_iterations: Some(0),
            ..Default::default()
        };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn hub_settings_come_from_the_file_or_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dancu.toml");
        std::fs::write(
            &path,
            "hub_config = \"/etc/hub.json\"\naudit_max_bytes = 1000\n",
        )
        .unwrap();
        let c = ConfigArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.hub_config, Some(PathBuf::from("/etc/hub.json")));
        assert_eq!(c.audit_max_bytes, Some(1000));
        let c = ConfigArgs {
            config: Some(path),
            audit_max_bytes: Some(5),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.audit_max_bytes, Some(5));
        assert_eq!(
            ConfigArgs::default().resolve().unwrap().audit_max_bytes,
            None
        );
    }

    #[test]
    fn nats_publisher_is_off_unless_a_url_is_given_and_checked() {
        assert!(ConfigArgs::default().resolve().unwrap().nats.is_none());
        let c = ConfigArgs {
            nats_url: Some("nats://127.0.0.1:4222".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let n = c.nats.unwrap();
        assert_eq!(
            (n.url.as_str(), n.stream.as_str()),
            ("nats://127.0.0.1:4222", "DANCU_EVENTS")
        );
        for (url, stream) in [("http://127.0.0.1:4222", None), ("nats://x:1", Some("a.b"))] {
            let bad = ConfigArgs {
                nats_url: Some(url.into()),
                nats_stream: stream.map(str::to_owned),
                ..Default::default()
            };
            assert!(bad.resolve().is_err(), "{url} {stream:?}");
        }
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dancu.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        std::fs::write(&path, "lisen = 1\n").unwrap();
        assert!(
            ConfigArgs {
                config: Some(path),
                ..Default::default()
            }
            .resolve()
            .is_err()
        );
        let bad = ConfigArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(bad.resolve().unwrap_err().contains("postgres://"));
    }
}
