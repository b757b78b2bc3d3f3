//! The HTTP surface: JSON APIs for officers, the data-sharing hub's APIs for member systems
//! (module `hub`), the OpenAPI 3.1 document, health and metrics, and (in [`oidc`]) the OpenID
//! Connect provider with its pages.
//!
//! Handlers only translate: they authenticate the caller, parse the body, run the use-case on a
//! blocking thread and turn its answer or [`dancu_registry::RegistryError`] into JSON or
//! problem+json. Rules live in `dancu-domain` and `dancu-registry`, never here. Personal data
//! travels only in POST bodies, never in URLs.

mod hub;
mod metrics;
pub mod oidc;
pub mod portal;
mod posted;
mod problem;

pub use metrics::Metrics;
use posted::Posted;
pub use problem::{ApiError, ProblemBody};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dancu_domain::officer::Officer;
use dancu_registry::commands::*;
use dancu_registry::{Command, Idempotency, Logged, PersonSearch, Registry, Written, credentials};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use utoipa::OpenApi;

/// Shared state of the server: one reference-counted block, so that handing it to a handler
/// (axum clones the state for every request that asks for it) costs one atomic increment and
/// one decrement, not one per field on counters that every request on every core touches.
#[derive(Debug, Clone)]
pub struct AppState(Arc<StateFields>);

impl std::ops::Deref for AppState {
    type Target = StateFields;
    fn deref(&self) -> &StateFields {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug, Clone)]
pub struct StateFields {
    /// The register's use-cases.
    pub registry: Arc<Registry>,
    /// The e-ID service and OpenID Connect provider, when the server runs one.
    pub idp: Option<Arc<dancu_idp::Idp>>,
    /// The data-sharing hub, when configured.
    pub hub: Option<Arc<dancu_hub::service::Hub>>,
    metrics: Arc<Metrics>,
    tokens: Arc<RwLock<OfficerTokens>>,
    /// The web portals' sessions.
    portal: Arc<portal::Portal>,
    /// Run point reads on the async worker instead of the blocking pool: set for the embedded
    /// store, whose reads are memory-mapped page lookups of a few microseconds, where handing
    /// the work to another thread costs more than the work.
    inline_reads: bool,
}

/// Officers by their API token's SHA-256, each with when the store last confirmed it.
type OfficerTokens = HashMap<[u8; 32], (Arc<Officer>, Instant)>;

/// How long a verified token is trusted without asking the store again.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

impl AppState {
    /// State over a registry.
    pub fn new(registry: Arc<Registry>) -> Self {
        let inline_reads = registry.store().backend() == "sqlite";
        Self(Arc::new(StateFields {
            registry,
            idp: None,
            hub: None,
            metrics: Arc::new(Metrics::new()),
            tokens: Arc::default(),
            portal: Arc::default(),
            inline_reads,
        }))
    }

    /// The same state with the e-ID service and OpenID Connect provider.
    pub fn with_idp(mut self, idp: Arc<dancu_idp::Idp>) -> Self {
        let fields = Arc::make_mut(&mut self.0);
        fields.portal = Arc::new(portal::Portal::over(idp.clone(), fields.inline_reads));
        fields.idp = Some(idp);
        self
    }

    /// The same state with the data-sharing hub's services.
    pub fn with_hub(mut self, hub: Arc<dancu_hub::service::Hub>) -> Self {
        Arc::make_mut(&mut self.0).hub = Some(hub);
        self
    }

    async fn officer(&self, headers: &HeaderMap) -> Result<Arc<Officer>, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() < 200)
            .ok_or_else(ApiError::unauthenticated)?;
        let digest = credentials::token_digest(token);
        if let Ok(cache) = self.tokens.read()
            && let Some((o, at)) = cache.get(&digest)
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(o.clone());
        }
        let registry = self.registry.clone();
        let hash = credentials::digest_hash(&digest);
        let officer =
            blocking(move || registry.store().officer_by_token(&hash).map_err(Into::into))
                .await?
                .ok_or_else(ApiError::unauthenticated)?;
        let officer = Arc::new(officer);
        if let Ok(mut cache) = self.tokens.write() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(digest, (officer.clone(), Instant::now()));
        }
        Ok(officer)
    }
}

/// Runs blocking register work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, dancu_registry::RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::internal("a blocking task failed")),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_body(&e))
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn purpose(headers: &HeaderMap) -> String {
    headers
        .get("x-purpose")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn run_command(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    cmd: Command,
) -> Result<Response, ApiError> {
    let officer = state.officer(&headers).await?;
    let idem = match headers.get("idempotency-key") {
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_invalid",
                    "Idempotency-Key không hợp lệ",
                    "Invalid Idempotency-Key",
                )
            })?;
            Some(Idempotency::new(key, &body)?)
        }
        None => None,
    };
    let registry = state.registry.clone();
    let written: Written = blocking(move || registry.run(&officer, idem.as_ref(), cmd)).await?;
    let mut resp = json_response(written.status, written.body);
    if written.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Declares one command endpoint: a POST route that parses its body into the command type.
macro_rules! command_endpoint {
    ($fn_name:ident, $path:literal, $ty:ty, $variant:ident, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "commands", summary = $summary,
            request_body = $ty,
            params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first answer instead of acting twice")),
            responses(
                (status = 200, description = "The record as it now stands", body = dancu_domain::person::Person),
                (status = 201, description = "Created: the new record", body = dancu_domain::person::Person),
                (status = 403, description = "Outside the officer's jurisdiction or role", body = ProblemBody, content_type = "application/problem+json"),
                (status = 409, description = "Stale version or a register rule refused the change", body = ProblemBody, content_type = "application/problem+json"),
                (status = 422, description = "Invalid input", body = ProblemBody, content_type = "application/problem+json"),
            ),
            security(("bearer" = [])))]
        async fn $fn_name(State(state): State<AppState>, Posted { headers, body }: Posted) -> Result<Response, ApiError> {
            let cmd: $ty = parse(&body)?;
            run_command(state, headers, body, Command::$variant(cmd)).await
        }
    };
}

command_endpoint!(
    register_birth,
    "/api/v1/births",
    RegisterBirth,
    RegisterBirth,
    "Register a birth (đăng ký khai sinh) and assign a personal ID number"
);
command_endpoint!(
    register_permanent,
    "/api/v1/residences/permanent",
    RegisterPermanentResidence,
    RegisterPermanentResidence,
    "Register a permanent residence (đăng ký thường trú); the previous one closes"
);
command_endpoint!(
    register_temporary,
    "/api/v1/residences/temporary",
    RegisterTemporaryResidence,
    RegisterTemporaryResidence,
    "Register a temporary residence (đăng ký tạm trú) with its end date"
);
command_endpoint!(
    declare_absence,
    "/api/v1/absences",
    DeclareTemporaryAbsence,
    DeclareTemporaryAbsence,
    "Declare a temporary absence (khai báo tạm vắng)"
);
command_endpoint!(
    notify_stay,
    "/api/v1/stays",
    NotifyStay,
    NotifyStay,
    "Notify a stay (thông báo lưu trú)"
);
command_endpoint!(
    register_marriage,
    "/api/v1/marriages",
    RegisterMarriage,
    RegisterMarriage,
    "Register a marriage (đăng ký kết hôn)"
);
command_endpoint!(
    register_divorce,
    "/api/v1/divorces",
    RegisterDivorce,
    RegisterDivorce,
    "Record a divorce (ly hôn)"
);
command_endpoint!(
    register_death,
    "/api/v1/deaths",
    RegisterDeath,
    RegisterDeath,
    "Register a death (đăng ký khai tử): residences close, cards become invalid"
);
command_endpoint!(
    correct_field,
    "/api/v1/corrections",
    CorrectField,
    CorrectField,
    "Correct a recorded field (điều chỉnh thông tin); reason and legal basis required"
);
command_endpoint!(
    link_cmnd,
    "/api/v1/cmnd-links",
    LinkCmnd,
    LinkCmnd,
    "Link a legacy CMND number to a person"
);
command_endpoint!(
    record_card,
    "/api/v1/cards",
    RecordCard,
    RecordCard,
    "Record an issued identity card"
);
command_endpoint!(
    create_household,
    "/api/v1/households",
    CreateHousehold,
    CreateHousehold,
    "Create a household (hộ gia đình) with its head"
);
command_endpoint!(
    add_household_member,
    "/api/v1/households/members",
    AddHouseholdMember,
    AddHouseholdMember,
    "Add a member to a household"
);
command_endpoint!(
    change_household_head,
    "/api/v1/households/head",
    ChangeHouseholdHead,
    ChangeHouseholdHead,
    "Change the head of a household"
);
command_endpoint!(
    split_household,
    "/api/v1/households/split",
    SplitHousehold,
    SplitHousehold,
    "Split a household (tách hộ)"
);

/// A person, by ID (in the body, never the URL).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PersonRef {
    /// Personal ID.
    pub id: dancu_domain::PersonalId,
}

/// A person as of an instant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AsOfQuery {
    /// Personal ID.
    pub id: dancu_domain::PersonalId,
    /// The instant (RFC 3339) or a date (the end of that day, UTC+7).
    pub at: String,
}

/// A household, by number.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct HouseholdRef {
    /// Household number.
    pub household_id: String,
}

/// A page of a commune's people.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CommunePage {
    /// Commune code (2025 scheme).
    pub commune: String,
    /// Continue after this ID.
    #[serde(default)]
    pub after: Option<dancu_domain::PersonalId>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A household with its members.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HouseholdView {
    /// The household.
    pub household: dancu_domain::event::Household,
    /// Members' records.
    pub members: Vec<dancu_domain::person::Person>,
}

/// One page of people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PeoplePage {
    /// The people.
    pub people: Vec<dancu_domain::person::Person>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Runs a query: authenticates the officer, parses the body, passes the X-Purpose header and
/// runs the use-case on a blocking thread.
async fn query<Q, R>(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&Registry, &Officer, &str, Q) -> dancu_registry::Result<R> + Send + 'static,
) -> Result<R, ApiError>
where
    Q: DeserializeOwned + Send + 'static,
    R: Send + 'static,
{
    let officer = state.officer(&headers).await?;
    let q: Q = parse(&body)?;
    let purpose = purpose(&headers);
    let registry = state.registry.clone();
    blocking(move || f(&registry, &officer, &purpose, q)).await
}

/// Runs a read whose answer is released once the access log has it: inline on the async worker
/// for the embedded store, else on a blocking thread; the wait for the log never holds a thread.
async fn logged_read<Q>(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&Registry, &Officer, &str, Q) -> dancu_registry::Result<Logged<String>>
    + Send
    + 'static,
) -> Result<Response, ApiError>
where
    Q: DeserializeOwned + Send + 'static,
{
    let officer = state.officer(&headers).await?;
    let q: Q = parse(&body)?;
    let purpose = purpose(&headers);
    let logged = if state.inline_reads {
        f(&state.registry, &officer, &purpose, q)?
    } else {
        let registry = state.registry.clone();
        blocking(move || f(&registry, &officer, &purpose, q)).await?
    };
    Ok(json_response(200, logged.release().await?))
}

fn to_json<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    serde_json::to_string(v)
        .map(|s| json_response(200, s))
        .map_err(|_| ApiError::internal("encoding a response"))
}

/// Reads a person's current record (X-Purpose header required; the read is logged).
#[utoipa::path(post, path = "/api/v1/persons/get", tag = "queries", request_body = PersonRef,
    params(("X-Purpose" = String, Header, description = "Why the data is read; recorded in the access log")),
    responses((status = 200, body = dancu_domain::person::Person), (status = 404, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = [])))]
async fn get_person(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    if !state.registry.store().reads_gather() {
        return logged_read(state, headers, body, |r, o, p, q: PersonRef| {
            r.read_person_json(o, p, &q.id)
        })
        .await;
    }
    // The store gathers concurrent reads into one query: the read is handed to its reader
    // threads and awaited, holding no blocking thread.
    let officer = state.officer(&headers).await?;
    let q: PersonRef = parse(&body)?;
    let purpose = purpose(&headers);
    let logged = state
        .registry
        .read_person_json_async(&officer, &purpose, &q.id)
        .await?;
    Ok(json_response(200, logged.release().await?))
}

/// A person's full history: every event with who, when, why and the legal basis.
#[utoipa::path(post, path = "/api/v1/persons/history", tag = "queries", request_body = PersonRef,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, description = "Events, oldest first")), security(("bearer" = [])))]
async fn person_history(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    to_json(
        &query(state, headers, body, |r, o, p, q: PersonRef| {
            r.history(o, p, &q.id)
        })
        .await?,
    )
}

fn parse_instant(s: &str) -> dancu_registry::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        // The end of that day in Vietnam (UTC+7).
        if let Some(t) = d.and_hms_opt(23, 59, 59) {
            return Ok(t.and_utc() - chrono::Duration::hours(7));
        }
    }
    Err(dancu_registry::RegistryError::invalid_msg(
        "instant_invalid",
        format!("Thời điểm {s:?} không hợp lệ (RFC 3339 hoặc YYYY-MM-DD)"),
        format!("The instant {s:?} is not valid (RFC 3339 or YYYY-MM-DD)"),
    ))
}

/// A person's record as it stood at an instant (from the event stream).
#[utoipa::path(post, path = "/api/v1/persons/as-of", tag = "queries", request_body = AsOfQuery,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, body = dancu_domain::person::Person), (status = 404, body = ProblemBody)), security(("bearer" = [])))]
async fn person_as_of(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let person = query(state, headers, body, |r, o, p, q: AsOfQuery| {
        let at = parse_instant(&q.at)?;
        r.as_of(o, p, &q.id, at)
    })
    .await?;
    to_json(&person)
}

/// Searches people by name (accents and tone placement ignored), birth year or date, commune.
#[utoipa::path(post, path = "/api/v1/persons/search", tag = "queries", request_body = PersonSearch,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, body = dancu_registry::SearchResult)), security(("bearer" = [])))]
async fn search_people(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    logged_read(state, headers, body, |r, o, p, q: PersonSearch| {
        r.read_search_json(o, p, &q)
    })
    .await
}

/// Who read a person's data, newest first.
#[utoipa::path(post, path = "/api/v1/persons/access-log", tag = "queries", request_body = PersonRef,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, description = "Access entries")), security(("bearer" = [])))]
async fn person_access_log(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    to_json(
        &query(state, headers, body, |r, o, p, q: PersonRef| {
            r.access_log(o, p, &q.id, 200)
        })
        .await?,
    )
}

/// A household with its members' records.
#[utoipa::path(post, path = "/api/v1/households/get", tag = "queries", request_body = HouseholdRef,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, body = HouseholdView)), security(("bearer" = [])))]
async fn get_household(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let (household, members) = query(state, headers, body, |r, o, p, q: HouseholdRef| {
        r.household(o, p, &q.household_id)
    })
    .await?;
    to_json(&HouseholdView { household, members })
}

/// People whose home is in a commune, one page at a time.
#[utoipa::path(post, path = "/api/v1/communes/people", tag = "queries", request_body = CommunePage,
    params(("X-Purpose" = String, Header, description = "Why the data is read")),
    responses((status = 200, body = PeoplePage)), security(("bearer" = [])))]
async fn commune_people(
    State(state): State<AppState>,
    Posted { headers, body }: Posted,
) -> Result<Response, ApiError> {
    let (people, limit) = query(state, headers, body, |r, o, p, q: CommunePage| {
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        Ok((
            r.people_of_commune(o, p, &q.commune, q.after.as_ref(), limit)?,
            limit,
        ))
    })
    .await?;
    let next_after = if people.len() as u32 == limit {
        people.last().map(|p| p.id.to_string())
    } else {
        None
    };
    to_json(&PeoplePage { people, next_after })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, body = ProblemBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let registry = state.registry.clone();
    let backend = registry.store().backend();
    blocking(move || registry.store().ping().map_err(Into::into)).await?;
    Ok(json_response(
        200,
        format!(r#"{{"status":"ready","backend":"{backend}"}}"#),
    ))
}

/// An empty JSON answer: the reference handler benchmarks compare against.
#[utoipa::path(post, path = "/api/ping", tag = "operations", responses((status = 200, description = "{}")))]
async fn ping() -> Response {
    json_response(200, "{}".to_owned())
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// Administrative units of a scheme, for forms (not personal data).
async fn admin_provinces() -> Response {
    let units = dancu_domain::admin::AdminUnits::get();
    let list: Vec<_> = units
        .provinces(dancu_domain::admin::Scheme::Y2025)
        .iter()
        .map(|p| serde_json::json!({"code": p.code, "name": p.name}))
        .collect();
    Json(list).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dancu population register API", description = "Officer API of the national population register (CSDLQG về dân cư). Errors are RFC 9457 problem+json with a stable `code` and Vietnamese and English messages. Personal data is only sent in POST bodies."),
    paths(register_birth, register_permanent, register_temporary, declare_absence, notify_stay, register_marriage,
          register_divorce, register_death, correct_field, link_cmnd, record_card, create_household,
          add_household_member, change_household_head, split_household, get_person, person_history, person_as_of,
          search_people, person_access_log, get_household, commune_people, healthz, readyz, ping),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Officer API token from `dancu officer add`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(oidc::EidApi::openapi());
    doc.merge(<hub::HubApiDoc as OpenApi>::openapi());
    doc
}

async fn openapi_json() -> Response {
    match openapi().to_json() {
        Ok(s) => json_response(200, s),
        Err(_) => ApiError::internal("encoding the OpenAPI document").into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "Không có địa chỉ này; xem /api/openapi.json",
        "No such route; see /api/openapi.json",
    )
}

/// A known route called with a method it does not serve (axum keeps the `Allow` header).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Địa chỉ này không nhận phương thức này; xem tiêu đề Allow và /api/openapi.json",
        "This route does not take this method; see the Allow header and /api/openapi.json",
    )
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/api/v1/births", post(register_birth))
        .route("/api/v1/residences/permanent", post(register_permanent))
        .route("/api/v1/residences/temporary", post(register_temporary))
        .route("/api/v1/absences", post(declare_absence))
        .route("/api/v1/stays", post(notify_stay))
        .route("/api/v1/marriages", post(register_marriage))
        .route("/api/v1/divorces", post(register_divorce))
        .route("/api/v1/deaths", post(register_death))
        .route("/api/v1/corrections", post(correct_field))
        .route("/api/v1/cmnd-links", post(link_cmnd))
        .route("/api/v1/cards", post(record_card))
        .route("/api/v1/households", post(create_household))
        .route("/api/v1/households/members", post(add_household_member))
        .route("/api/v1/households/head", post(change_household_head))
        .route("/api/v1/households/split", post(split_household))
        .route("/api/v1/persons/get", post(get_person))
        .route("/api/v1/persons/history", post(person_history))
        .route("/api/v1/persons/as-of", post(person_as_of))
        .route("/api/v1/persons/search", post(search_people))
        .route("/api/v1/persons/access-log", post(person_access_log))
        .route("/api/v1/households/get", post(get_household))
        .route("/api/v1/communes/people", post(commune_people))
        .route("/api/v1/admin-units/provinces", get(admin_provinces))
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/ping", get(ping).post(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(oidc::router())
        .merge(portal::router())
        .merge(hub::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(256 * 1024))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
}
