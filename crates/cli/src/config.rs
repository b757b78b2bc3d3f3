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
        Ok(Config {
            listen,
            data_dir,
            database_url,
            log_json,
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
