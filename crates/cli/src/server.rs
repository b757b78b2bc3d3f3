//! Wiring: open the store, build the registry and the router, serve until Ctrl-C or SIGTERM.

use crate::config::Config;
use dancu_domain::clock::SystemClock;
use dancu_registry::Registry;
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
        axum::serve(self.listener, self.app)
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
