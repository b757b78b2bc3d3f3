//! Wiring: open the store, build the registry, the e-ID service, the data-sharing hub and the
//! router, serve until Ctrl-C or SIGTERM.

use crate::config::Config;
use dancu_domain::clock::SystemClock;
use dancu_hub::audit::AuditSettings;
use dancu_hub::cards::CardTrust;
use dancu_hub::members::HubConfig;
use dancu_hub::service::Hub;
use dancu_idp::{Idp, IdpConfig, IdpDeps};
use dancu_registry::Registry;
use dancu_store::docs::DocStore;
use std::sync::Arc;

/// Opens the configured store.
pub fn open_store(config: &Config) -> Result<Arc<dyn dancu_store::Store>, String> {
    dancu_store::open(&config.store_location()).map_err(|e| format!("opening the database: {e}"))
}

/// Builds the application over a store.
pub fn app(store: Arc<dyn dancu_store::Store>) -> axum::Router {
    let registry = Arc::new(Registry::new(store, Arc::new(SystemClock), None));
    dancu_http::router(dancu_http::AppState::new(registry))
}

/// The register store and the e-ID document store over one set of connections.
pub type Stores = (Arc<dyn dancu_store::Store>, Arc<dyn DocStore>);

/// Opens the configured store as both the register store and the e-ID document store.
pub fn open_stores(config: &Config) -> Result<Stores, String> {
    dancu_store::docs::open_with_docs(&config.store_location())
        .map_err(|e| format!("opening the database: {e}"))
}

/// The e-ID service over the register: SMS through the configured relay, or the development
/// outbox file in the data directory; the demo face verifier.
pub fn idp(
    registry: Arc<Registry>,
    docs: Arc<dyn DocStore>,
    config: &Config,
) -> Result<Arc<Idp>, String> {
    let sms: Arc<dyn dancu_idp::SmsGateway> = match &config.sms_url {
        Some(url) => Arc::new(dancu_idp::sms::HttpGateway::new(url)?),
        None => Arc::new(dancu_idp::sms::OutboxGateway::new(
            config.data_dir.join("sms-outbox.ndjson"),
        )),
    };
    let deps = IdpDeps {
        docs,
        clock: registry.clock().clone(),
        registry,
        sms,
        face: Arc::new(dancu_eid::face::DemoFaceVerifier),
        seed: None,
    };
    let mut cfg = IdpConfig::new(&config.issuer);
    cfg.passcode = config.passcode;
    let idp = Idp::open(cfg, deps)
        .map(Arc::new)
        .map_err(|e| format!("starting the e-ID service: {e}"))?;
    spawn_purge(Arc::downgrade(&idp));
    Ok(idp)
}

/// Every ten minutes, deletes expired e-ID records (codes, sessions, pushed requests, replay
/// keys) and usage entries past the five-year retention, until the service is dropped.
fn spawn_purge(idp: std::sync::Weak<Idp>) {
    let _ = std::thread::Builder::new()
        .name("eid-purge".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(600));
                let Some(idp) = idp.upgrade() else { return };
                match idp.purge() {
                    Ok(n) => tracing::debug!(rows = n, "e-ID purge"),
                    Err(e) => tracing::warn!(error = %e, "e-ID purge failed"),
                }
            }
        });
}

/// Builds the application with the e-ID service and OpenID Connect provider.
pub fn app_with_idp(
    store: Arc<dyn dancu_store::Store>,
    docs: Arc<dyn DocStore>,
    config: &Config,
) -> Result<axum::Router, String> {
    app_full(store, docs, config, None)
}

/// Builds the whole application: the register, the e-ID service and OpenID Connect provider,
/// and the data-sharing hub when given.
pub fn app_full(
    store: Arc<dyn dancu_store::Store>,
    docs: Arc<dyn DocStore>,
    config: &Config,
    hub: Option<Arc<Hub>>,
) -> Result<axum::Router, String> {
    let registry = Arc::new(Registry::new(store, Arc::new(SystemClock), None));
    spawn_record_cache_fill(registry.store().clone());
    let idp = idp(registry.clone(), docs, config)?;
    let state = dancu_http::AppState::new(registry).with_idp(idp);
    Ok(dancu_http::router(match hub {
        Some(h) => state.with_hub(h),
        None => state,
    }))
}

/// Loads the store's in-memory record cache (embedded store only) on a thread of its own, so
/// that the server answers at once and reads go to the file until their records are in.
pub fn spawn_record_cache_fill(store: Arc<dyn dancu_store::Store>) {
    let spawned = std::thread::Builder::new()
        .name("record-cache".into())
        .spawn(move || match store.fill_record_cache() {
            Ok(Some((records, took))) => {
                let bytes = store.record_cache_stats().map_or(0, |s| s.bytes);
                tracing::info!(
                    records,
                    mib = bytes >> 20,
                    seconds = took.as_secs_f64(),
                    "record cache loaded"
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "loading the record cache failed; reads go to the database"),
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start loading the record cache");
    }
}

/// Builds the application over a store, with the data-sharing hub when given.
pub fn app_with_hub(store: Arc<dyn dancu_store::Store>, hub: Option<Arc<Hub>>) -> axum::Router {
    let registry = Arc::new(Registry::new(store, Arc::new(SystemClock), None));
    let state = dancu_http::AppState::new(registry);
    dancu_http::router(match hub {
        Some(h) => state.with_hub(h),
        None => state,
    })
}

/// Opens the data-sharing hub when its members-and-rights file exists (explicitly named, or
/// `hub.json` in the data directory). Its exchange log is in `<data dir>/audit`, its response
/// key in `<data dir>/hub`, the CSCA certificates and CRLs card verification trusts in
/// `<data dir>/card-trust` (`*.pem`, `*.crl`, `*.ml`).
pub fn open_hub(
    config: &Config,
    store: Arc<dyn dancu_store::Store>,
    docs: Arc<dyn DocStore>,
) -> Result<Option<Arc<Hub>>, String> {
    let path = match &config.hub_config {
        Some(p) => p.clone(),
        None => {
            let p = config.data_dir.join("hub.json");
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let hub_config = HubConfig::load(&path)?;
    let hub = Hub::open(
        hub_config,
        store,
        docs,
        Arc::new(SystemClock),
        &crate::audit::log_dir(config),
        &config.data_dir.join("hub"),
        AuditSettings {
            max_live_bytes: config.audit_max_bytes,
            ..AuditSettings::default()
        },
    )?
    .with_card_trust(CardTrust::load_dir(&config.data_dir.join("card-trust"))?)
    // Changes made through the rights admin API are written back to the same file.
    .with_config_file(&path);
    let hub = Arc::new(hub);
    // Batch jobs that were running when the process stopped carry on (and jobs kept as files
    // by earlier builds move into the store).
    let resumed = dancu_hub::batch::resume(&hub).map_err(|e| e.to_string())?;
    if resumed > 0 {
        tracing::info!(resumed, "resuming batch verification jobs");
    }
    Ok(Some(hub))
}

/// Pushes change events to the subscriptions' webhooks and NATS subjects (see [`crate::push`]).
pub fn spawn_webhook_sender(
    hub: Arc<Hub>,
    every: std::time::Duration,
    nats: Option<crate::push::NatsSettings>,
) {
    crate::push::spawn(hub, every, nats);
}

/// Every few seconds until the process ends: signs the hub's time-based checkpoints, and
/// takes over batch jobs whose node has stopped ([`dancu_hub::batch::resume`]).
pub fn spawn_checkpoint_timer(hub: Arc<Hub>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            let h = hub.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || h.tick()).await {
                tracing::error!(error = %e, "signing an exchange-log checkpoint failed");
            }
            let h = hub.clone();
            match tokio::task::spawn_blocking(move || dancu_hub::batch::resume(&h)).await {
                Ok(Ok(0)) | Err(_) => {}
                Ok(Ok(n)) => tracing::info!(jobs = n, "took over batch jobs of a stopped node"),
                Ok(Err(e)) => tracing::error!(error = %e, "looking for unfinished batch jobs"),
            }
        }
    });
}

/// A server bound to a socket, not yet serving.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    app: axum::Router,
}

impl Bound {
    /// Binds the listen address (port 0 picks a free port).
    pub async fn bind(addr: std::net::SocketAddr, app: axum::Router) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok(Self { listener, app })
    }

    /// A server on a listener bound already (tests that need the address to build the app).
    pub fn from_listener(listener: tokio::net::TcpListener, app: axum::Router) -> Self {
        Self { listener, app }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        // The peer address feeds the per-source login throttle.
        let app = self
            .app
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
