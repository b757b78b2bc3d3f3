//! The change-event sender: takes the hub's due deliveries and carries each to its target, an
//! HTTP webhook or a NATS JetStream subject, then tells the hub the outcome (which moves the
//! subscription's cursor, or backs off and in the end dead-letters). The hub keeps all state,
//! so a restart resumes where the last acknowledged delivery ended.

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use dancu_hub::service::Hub;
use dancu_hub::webhooks::{Delivery, PushTarget};
use http_body_util::Full;
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long one delivery may take (HTTP answer, or the stream's acknowledgement).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the NATS publisher connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream created (or updated) to cover the subscriptions' subjects.
    pub stream: String,
}

/// Default stream name.
pub const DEFAULT_STREAM: &str = "DANCU_EVENTS";

/// How long JetStream remembers a delivery id to drop a second publish of it (a delivery
/// republished after a crash between the acknowledgement and the cursor's save).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// The NATS side: connects on first use, makes sure the stream exists, and reconnects after a
/// failure on the next attempt.
struct NatsPublisher {
    settings: NatsSettings,
    subjects: Vec<String>,
    conn: Option<(async_nats::Client, jetstream::Context)>,
}

impl NatsPublisher {
    fn new(settings: NatsSettings, hub: &Hub) -> Self {
        let subjects = hub.nats_subjects();
        Self {
            settings,
            subjects,
            conn: None,
        }
    }

    async fn context(&mut self) -> Result<jetstream::Context, String> {
        if let Some((client, js)) = &self.conn {
            if client.connection_state() == async_nats::connection::State::Connected {
                return Ok(js.clone());
            }
            // Lost: fail this delivery at once (it backs off) rather than wait on a buffer.
            self.conn = None;
            return Err(format!("not connected to {}", self.settings.url));
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.settings.url.as_str())
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.settings.url))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(DELIVERY_TIMEOUT);
        js.create_or_update_stream(jetstream::stream::Config {
            name: self.settings.stream.clone(),
            subjects: self.subjects.clone(),
            storage: jetstream::stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating stream {}: {e}", self.settings.stream))?;
        self.conn = Some((client, js.clone()));
        Ok(js)
    }

    /// Publishes one delivery and waits for the stream to store it.
    async fn publish(&mut self, subject: &str, d: &Delivery) -> Result<(), String> {
        let js = self.context().await?;
        let msg = PublishMessage::build()
            .payload(Bytes::from(d.body.clone()))
            .message_id(&d.id)
            .header("Content-Type", "application/jose")
            .header("Dancu-Subscription", d.subscription.as_str());
        let result = async {
            let ack = js
                .send_publish(subject.to_owned(), msg)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(DELIVERY_TIMEOUT, result).await {
            Ok(Ok(_ack)) => Ok(()),
            Ok(Err(e)) => {
                // Start afresh next time: the server may have lost the stream or restarted.
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err("no acknowledgement in time".into())
            }
        }
    }
}

/// Pushes change events to the subscriptions' webhooks and NATS subjects, polling for due
/// deliveries every `every`. Deliveries go one at a time, each with a 10-second limit. Without
/// `nats`, deliveries to NATS subjects fail (and back off) until a server is configured.
pub fn spawn(hub: Arc<Hub>, every: Duration, nats: Option<NatsSettings>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut publisher = nats.map(|n| NatsPublisher::new(n, &hub));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let h = hub.clone();
            let due = match tokio::task::spawn_blocking(move || h.webhook_due()).await {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "preparing event deliveries failed");
                    continue;
                }
                Err(_) => continue,
            };
            for d in due {
                let outcome = match &d.target {
                    PushTarget::Webhook(url) => post(&client, url, &d).await,
                    PushTarget::Nats(subject) => match publisher.as_mut() {
                        Some(p) => p.publish(subject, &d).await,
                        None => Err("no NATS server configured (DANCU_NATS_URL)".into()),
                    },
                };
                let ok = match outcome {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(subscription = %d.subscription, delivery = %d.id, error = %e, "event delivery failed");
                        false
                    }
                };
                let h = hub.clone();
                if let Ok(Err(e)) =
                    tokio::task::spawn_blocking(move || h.webhook_done(&d, ok)).await
                {
                    tracing::error!(error = %e, "recording a delivery outcome failed");
                }
            }
        }
    });
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn post(client: &HttpClient, url: &str, d: &Delivery) -> Result<(), String> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/jose")
        .header("idempotency-key", d.id.as_str())
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(DELIVERY_TIMEOUT, client.request(req)).await {
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("answered {}", resp.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}
