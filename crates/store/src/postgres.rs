//! The scale-out backend: PostgreSQL, through a pool of blocking connections.
//!
//! It keeps the contract of the SQLite backend exactly; the differences are in how it gets there:
//!
//! * **Concurrent writers.** Many nodes and threads commit at once, so an optimistic version is
//!   enforced by the primary key `(stream, version)` of `events`: two commits that read the same
//!   version both try to insert the next one, and the loser's unique violation (SQLSTATE 23505)
//!   becomes [`StoreError::Conflict`] (or [`StoreError::Exists`] for a creation), after the whole
//!   transaction is rolled back.
//! * **Outbox order.** `seq` comes from a sequence, and sequence values are handed out before
//!   commit, so without care a reader of [`Store::events_after`] could see seq 8 committed while
//!   seq 7 is still in flight, move past it and never deliver it. Every transaction that appends
//!   events therefore takes a transaction-scoped advisory lock (one per schema) just before its
//!   event inserts and keeps it until its commit is visible: seq values become visible in
//!   increasing order. Projections and idempotency records are written before that lock, so the
//!   serialised part of a commit is short.
//! * **No deadlocks between commits.** Projection rows are upserted in stream order, then the
//!   idempotency record, then the advisory lock: every writer takes its locks in one order.
//! * **Layout.** Tables are keyed by personal ID or stream so they can be distributed by it. Key
//!   columns use `COLLATE "C"` so text sorts by bytes as in SQLite (the prefix search is a range
//!   up to `key + U+FFFF`). JSON is kept as `text`: it is written and read as-is and parsed by
//!   serde in the process, which is faster than a round-trip through `jsonb`.
//! * **Read path.** A blocking call such as [`Store::person_json`] checks a connection out of
//!   the pool, runs its prepared statement and returns it; each costs a round trip. For the hot
//!   get-person path the store says [`Store::reads_gather`], and the registry then does not call
//!   it per read: its reader threads gather the reads waiting at one moment and answer them with
//!   one [`Store::persons_json`] (`SELECT id, data, commune FROM persons WHERE id = ANY($1)`),
//!   so the server parses, plans and answers once per group. The record comes back as the
//!   stored text and goes to the client as-is. Each released read is then written to
//!   `access_log` by the registry's access-log writer, which inserts all rows waiting in one
//!   statement (`unnest` of arrays, autocommitted with `synchronous_commit` as configured):
//!   the answer leaves only after that commit, so a group of readers shares one WAL flush.
//!   With `durability=normal` in the URL that one statement's commit does not wait for the
//!   flush (`set_config('synchronous_commit', 'off', true)`, which ends with its transaction):
//!   as the embedded store's journal, whose sync is left to its upkeep every half second, a
//!   crash of this process loses no entry and a crash of the database server may lose the
//!   last few hundred milliseconds of them (three `wal_writer_delay`s); the register's own
//!   writes wait for their flush either way.
//!   Several writers commit at once ([`Store::access_log_writers`]): one sends its rows while
//!   another waits for the flush, and the server flushes the waiting commits together.
//! * **URL.** A `postgres://` URL as libpq takes it (`options=-csearch_path%3Dname` selects a
//!   schema, which must exist), plus `pool_max=N` for the pool size (default 16; a second pool
//!   of at most 8 serves the gathered reads and the access-log inserts, see `HOT_OPTIONS`) and
//!   `durability=full|normal` for the access log's commits (default `full`, see above). The
//!   schema is created on open if missing.

use crate::sqlite::Durability;
use crate::*;
use ::postgres::error::SqlState;
use ::postgres::types::ToSql;
use ::postgres::{Client, Config, GenericClient, NoTls, Row, Statement};
use dancu_domain::event::{Household, HouseholdChange};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// Connections in the pool unless the URL says `pool_max=N`.
pub const DEFAULT_POOL_MAX: u32 = 16;

/// Threads committing access-log batches at once (see [`Store::access_log_writers`]). Measured
/// at 1,000,000 people over 32 connections: one writer left get-person's median latency near
/// two WAL flushes; two cut it by about a third; four did a little better again, for about the
/// same CPU per read.
const ACCESS_LOG_WRITERS: usize = 4;

/// Advisory lock taken while the schema is created, so concurrent first starts do not race on
/// `CREATE TABLE IF NOT EXISTS` (which is not safe against itself).
const SCHEMA_LOCK: i64 = 0x6461_6e63_7500_0001;

/// High half of the per-schema advisory lock that orders event appends; the low half is the oid
/// of the schema's `events` table.
const APPEND_LOCK_TAG: i64 = 0x6463_7601;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq bigserial NOT NULL,
    stream text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    meta text NOT NULL,
    change text NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (stream, version)
);
CREATE INDEX IF NOT EXISTS events_seq ON events (seq);
CREATE TABLE IF NOT EXISTS persons (
    id text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL,
    name_key text COLLATE "C" NOT NULL,
    birth_year integer NOT NULL,
    commune text COLLATE "C",
    province text COLLATE "C",
    alive boolean NOT NULL,
    data text NOT NULL
);
CREATE INDEX IF NOT EXISTS persons_name ON persons (name_key, birth_year, id) INCLUDE (commune, province);
CREATE INDEX IF NOT EXISTS persons_commune ON persons (commune, id);
CREATE TABLE IF NOT EXISTS households (
    id text COLLATE "C" PRIMARY KEY, version bigint NOT NULL, data text NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    actor text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, request_hash text NOT NULL,
    status integer NOT NULL, body text NOT NULL, PRIMARY KEY (actor, key)
);
CREATE TABLE IF NOT EXISTS officers (
    id text COLLATE "C" PRIMARY KEY, data text NOT NULL, token_hash text COLLATE "C" NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS access_log (
    seq bigserial NOT NULL, person text COLLATE "C" NOT NULL, actor text NOT NULL,
    at timestamptz NOT NULL, purpose text NOT NULL, action text NOT NULL,
    PRIMARY KEY (person, seq)
);
CREATE TABLE IF NOT EXISTS imports (
    id text COLLATE "C" PRIMARY KEY, last_line bigint NOT NULL, updated_at timestamptz NOT NULL
);
-- Documents, one-shot keys and usage logs of `crate::docs` (the e-ID service's records).
CREATE TABLE IF NOT EXISTS docs (
    kind text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, version bigint NOT NULL,
    json text NOT NULL, expires_at timestamptz, PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS docs_expiry ON docs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS seen_once (
    kind text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS seen_once_expiry ON seen_once (expires_at);
CREATE TABLE IF NOT EXISTS usage_log (
    subject text COLLATE "C" NOT NULL, seq bigserial NOT NULL, at timestamptz NOT NULL,
    json text NOT NULL, PRIMARY KEY (subject, seq)
);
CREATE INDEX IF NOT EXISTS usage_log_subject ON usage_log (subject, at, seq);
CREATE INDEX IF NOT EXISTS usage_log_at ON usage_log (at);
"#;

const SELECT_VERSIONS: &str =
    "SELECT stream, max(version) FROM events WHERE stream = ANY($1) GROUP BY stream";
const UPSERT_PERSON: &str =
    "INSERT INTO persons (id, version, name_key, birth_year, commune, province, alive, data)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (id) DO UPDATE SET version = excluded.version, name_key = excluded.name_key,
       birth_year = excluded.birth_year, commune = excluded.commune, province = excluded.province,
       alive = excluded.alive, data = excluded.data";
const UPSERT_HOUSEHOLD: &str = "INSERT INTO households (id, version, data) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data";
const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (actor, key, request_hash, status, body)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const APPEND_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const INSERT_EVENT: &str = "INSERT INTO events (stream, version, kind, at, meta, change)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";
const STREAM_VERSION: &str = "SELECT coalesce(max(version), 0) FROM events WHERE stream = $1";
const SELECT_PERSON: &str = "SELECT data FROM persons WHERE id = $1";
const SELECT_PERSON_JSON: &str = "SELECT data, commune FROM persons WHERE id = $1";
const SELECT_PERSONS_JSON: &str = "SELECT id, data, commune FROM persons WHERE id = ANY($1)";
const SELECT_PERSONS: &str = "SELECT id, data FROM persons WHERE id = ANY($1)";
const SELECT_HOUSEHOLD: &str = "SELECT data FROM households WHERE id = $1";
const HOUSEHOLD_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE stream = $1)";
const SELECT_EVENTS: &str = "SELECT seq, stream, version, kind, meta, change FROM events
     WHERE stream = $1 AND ($2::timestamptz IS NULL OR at <= $2) ORDER BY version";
const SELECT_EVENTS_AFTER: &str = "SELECT seq, stream, version, kind, meta, change FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
/// Name search, one statement per combination of filters. A single statement with
/// `($3 IS NULL OR birth_year = $3)` filters gets a generic plan after a few executions that
/// cannot use the name index's order: it fetches every row of the name range and sorts them,
/// tens of milliseconds for a common name. Without the `OR`s every variant's generic plan is
/// an ordered scan of `persons_name` that stops at the limit.
macro_rules! search_sql {
    ($filters:literal, $limit:literal) => {
        concat!(
            "SELECT data, id FROM persons WHERE name_key >= $1 AND name_key <= $2",
            $filters,
            " ORDER BY name_key, birth_year, id LIMIT ",
            $limit
        )
    };
}
/// The eight statements, indexed by `4 * year + 2 * commune + province` (each 1 when that
/// filter is given); the filters' parameters follow the name range in that order. `$l0`..`$l3`
/// is the LIMIT written after zero to three filters.
macro_rules! search_set {
    ($l0:literal, $l1:literal, $l2:literal, $l3:literal) => {
        [
            search_sql!("", $l0),
            search_sql!(" AND province = $3", $l1),
            search_sql!(" AND commune = $3", $l1),
            search_sql!(" AND commune = $3 AND province = $4", $l2),
            search_sql!(" AND birth_year = $3", $l1),
            search_sql!(" AND birth_year = $3 AND province = $4", $l2),
            search_sql!(" AND birth_year = $3 AND commune = $4", $l2),
            search_sql!(
                " AND birth_year = $3 AND commune = $4 AND province = $5",
                $l3
            ),
        ]
    };
}
/// With the limit bound as the last parameter.
const SEARCH: [&str; 8] = search_set!("$3", "$4", "$5", "$6");
/// The page most searches ask for (the registry's default).
const SEARCH_PAGE: u32 = 20;
/// [`SEARCH`] with [`SEARCH_PAGE`] written into the statement rather than bound. With the
/// limit a parameter, the generic plan's cost is reckoned for a tenth of the matching rows, so
/// PostgreSQL plans every execution anew (about a fifth of its CPU per search); with it written
/// in, the name-only search settles on the generic plan (the same ordered index scan) and is not
/// planned again.
const SEARCH_PAGED: [&str; 8] = search_set!("20", "20", "20", "20");
// `concat!` takes only literals: the "20" above must be SEARCH_PAGE.
const _: () = assert!(SEARCH_PAGE == 20);
const PEOPLE_OF_COMMUNE: &str =
    "SELECT data FROM persons WHERE commune = $1 AND id > $2 ORDER BY id LIMIT $3";
const COUNT_PEOPLE: &str = "SELECT count(*) FROM persons";
const SELECT_IDEMPOTENCY: &str =
    "SELECT request_hash, status, body FROM idempotency WHERE actor = $1 AND key = $2";
const INSERT_OFFICER: &str = "INSERT INTO officers (id, data, token_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const OFFICER_BY_TOKEN: &str = "SELECT data FROM officers WHERE token_hash = $1";
const SELECT_OFFICERS: &str = "SELECT data FROM officers ORDER BY id";
const INSERT_ACCESS: &str = "INSERT INTO access_log (person, actor, at, purpose, action)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])";
/// [`INSERT_ACCESS`] under [`Durability::Normal`]: the statement's own transaction commits
/// without waiting for its WAL flush (`set_config(…, true)` holds until that transaction ends,
/// so nothing else the connection runs later is relaxed). The server's WAL writer flushes it
/// within three `wal_writer_delay`s (600 ms by default).
const INSERT_ACCESS_RELAXED: &str =
    "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
     INSERT INTO access_log (person, actor, at, purpose, action)
     SELECT u.person, u.actor, u.at, u.purpose, u.action
     FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
          AS u (person, actor, at, purpose, action), relaxed";
const SELECT_ACCESS: &str = "SELECT actor, at, purpose, action FROM access_log WHERE person = $1 ORDER BY seq DESC LIMIT $2";
const IMPORT_PERSONS: &str = "INSERT INTO persons (id, version, name_key, birth_year, commune, province, alive, data)
     SELECT id, 1, name_key, birth_year, commune, province, alive, data
     FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::boolean[], $7::text[])
       AS r (id, name_key, birth_year, commune, province, alive, data)
     ON CONFLICT (id) DO NOTHING RETURNING id";
const IMPORT_EVENTS: &str = "INSERT INTO events (stream, version, kind, at, meta, change)
     SELECT stream, 1, 'record_imported', $2, $3, change FROM unnest($1::text[], $4::text[]) AS r (stream, change)";
const IMPORT_HOUSEHOLDS: &str = "INSERT INTO households (id, version, data)
     SELECT id, 1, data FROM unnest($1::text[], $2::text[]) AS r (id, data)
     ON CONFLICT (id) DO NOTHING RETURNING id";
const IMPORT_HOUSEHOLD_EVENTS: &str = "INSERT INTO events (stream, version, kind, at, meta, change)
     SELECT stream, 1, 'household_created', $2, $3, change FROM unnest($1::text[], $4::text[]) AS r (stream, change)";
const IMPORT_MARK: &str = "INSERT INTO imports (id, last_line, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET last_line = excluded.last_line, updated_at = excluded.updated_at";
const IMPORT_PROGRESS: &str = "SELECT last_line FROM imports WHERE id = $1";
const PERSON_PAGE: &str = "SELECT id, data FROM persons WHERE id > $1 ORDER BY id LIMIT $2";

pub(crate) fn pg(e: ::postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn count(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{n} does not fit a bigint")))
}

/// A pooled connection with the statements already prepared on it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    pub(crate) statements: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

/// Prepares `sql` once per connection; prepared statements outlive transactions, even aborted ones.
pub(crate) fn prepared(
    cache: &mut HashMap<&'static str, Statement>,
    client: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).map_err(pg)?;
    cache.insert(sql, s.clone());
    Ok(s)
}

impl PgConn {
    pub(crate) fn stmt(&mut self, sql: &'static str) -> Result<Statement> {
        prepared(&mut self.statements, &mut self.client, sql)
    }
}

/// Opens `postgres::Client`s for the pool.
#[derive(Debug)]
pub(crate) struct Manager(Config);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ::postgres::Error;
    fn connect(&self) -> Result<PgConn, ::postgres::Error> {
        Ok(PgConn {
            client: self.0.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }
    fn is_valid(&self, conn: &mut PgConn) -> Result<(), ::postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }
    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// Connections of the pool for the two statements every get-person runs ([`HOT_POOL_MAX`]).
const HOT_POOL_MAX: u32 = 8;

/// What the hot pool's sessions set: plan each prepared statement once. The gathered read
/// (`id = ANY($1)`) and the access-log insert (`unnest` of arrays) have one sensible plan
/// whatever their parameters, yet PostgreSQL kept planning the read anew for each group (3 % of
/// its CPU under get-person). Measured at 1M people on 2 cores (PostgreSQL on the same cores),
/// alternating builds three times: get-person 18,269–18,934 req/s against 17,234–18,070.
/// Searches stay on the ordinary pool, whose plans may depend on the values (the setting on
/// every connection gave searches 10–14 % more throughput in the bench's mix, but a generic
/// plan ignores how common the searched name is).
const HOT_OPTIONS: &str = "-c plan_cache_mode=force_generic_plan";

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: r2d2::Pool<Manager>,
    /// Connections for the gathered get-person reads and the access log's inserts, whose
    /// sessions plan each statement once ([`HOT_OPTIONS`]).
    hot: r2d2::Pool<Manager>,
    /// How the access log commits (the register's own writes always wait for their flush).
    durability: Durability,
    /// Key of the advisory lock that orders event appends in this schema.
    append_lock: i64,
}

/// Runs [`INSERT_ACCESS`] or [`INSERT_ACCESS_RELAXED`] (prepared as `stmt`) for `entries`: one
/// statement, so atomic without an explicit transaction, and seq follows the slice order.
fn insert_access(
    c: &mut impl GenericClient,
    stmt: &Statement,
    entries: &[AccessEntry],
) -> std::result::Result<u64, ::postgres::Error> {
    let persons: Vec<&str> = entries.iter().map(|e| e.person.as_str()).collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = entries.iter().map(|e| e.at).collect();
    let purposes: Vec<&str> = entries.iter().map(|e| e.purpose.as_str()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    c.execute(stmt, &[&persons, &actors, &ats, &purposes, &actions])
}

/// Our own parameters of a database URL, beside libpq's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UrlOptions {
    /// `pool_max=N`: connections in the pool.
    pool_max: u32,
    /// `durability=full|normal`: whether access-log commits wait for their WAL flush (`full`,
    /// the default) or leave it to the server's WAL writer (`normal`).
    durability: Durability,
}

/// Splits our own parameters (`pool_max`, `durability`) off a URL and parses the rest as libpq
/// would.
fn parse_url(url: &str) -> Result<(Config, UrlOptions)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut pool_max = DEFAULT_POOL_MAX;
    let mut durability = Durability::Full;
    let mut kept = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("pool_max", n)) => {
                pool_max = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::Backend(format!(
                        "pool_max in the database URL must be a positive number, not {n:?}"
                    ))
                })?;
            }
            Some(("durability", d)) => {
                durability = match d {
                    "normal" => Durability::Normal,
                    "full" => Durability::Full,
                    _ => {
                        return Err(StoreError::Backend(format!(
                            "durability in the database URL must be normal or full, not {d:?}"
                        )));
                    }
                };
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // The error names the bad part of the URL; the URL itself (with its password) is not repeated.
    let mut config = Config::from_str(&url)
        .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name("dancu");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok((
        config,
        UrlOptions {
            pool_max,
            durability,
        },
    ))
}

/// A pool of `max` connections made with `config`.
fn open_pool(config: Config, max: u32) -> Result<r2d2::Pool<Manager>> {
    r2d2::Pool::builder()
        .max_size(max)
        .min_idle(Some(1))
        // A checkout test costs a round trip on every call; a dead connection is noticed by
        // `has_broken` when it is returned instead.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(30))
        .build(Manager(config))
        .map_err(|e| StoreError::Backend(format!("opening the PostgreSQL pool: {e}")))
}

impl PgStore {
    /// Connects, creates the schema if it is missing and opens a pool of connections.
    pub fn open(url: &str) -> Result<Self> {
        let (
            config,
            UrlOptions {
                pool_max,
                durability,
            },
        ) = parse_url(url)?;
        let mut client = config
            .connect(NoTls)
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        let mut tx = client.transaction().map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(pg)?;
        tx.batch_execute(SCHEMA)
            .map_err(|e| StoreError::Backend(format!("creating the schema: {e}")))?;
        let version = crate::SCHEMA_VERSION.to_string();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1) ON CONFLICT DO NOTHING",
            &[&version],
        )
        .map_err(pg)?;
        let found: String = tx
            .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .map_err(pg)?
            .get(0);
        crate::check_schema_version(&found)?;
        if found == "1" {
            // Version 2 changed only the SQLite layout; a PostgreSQL database of version 1 is
            // already in the version-2 layout.
            tx.execute(
                "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
                &[],
            )
            .map_err(pg)?;
        }
        let oid: i64 = tx
            .query_one("SELECT 'events'::regclass::oid::bigint", &[])
            .map_err(pg)?
            .get(0);
        tx.commit().map_err(pg)?;
        drop(client);
        let mut hot_config = config.clone();
        hot_config.options(&match config.get_options() {
            Some(given) => format!("{given} {HOT_OPTIONS}"),
            None => HOT_OPTIONS.to_owned(),
        });
        let pool = open_pool(config, pool_max)?;
        let hot = open_pool(hot_config, pool_max.min(HOT_POOL_MAX))?;
        Ok(Self {
            pool,
            hot,
            durability,
            append_lock: (APPEND_LOCK_TAG << 32) | oid,
        })
    }

    pub(crate) fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))
    }

    /// A connection of the hot pool (see [`HOT_OPTIONS`]).
    fn hot_conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        self.hot
            .get()
            .map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))
    }

    pub(crate) fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        Self::query_on(self.conn()?, sql, params)
    }

    /// [`Self::query`] on a given connection (of the hot pool, say).
    fn query_on(
        mut c: r2d2::PooledConnection<Manager>,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let stmt = c.stmt(sql)?;
        c.client.query(&stmt, params).map_err(pg)
    }

    pub(crate) fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let mut c = self.conn()?;
        let stmt = c.stmt(sql)?;
        c.client.query_opt(&stmt, params).map_err(pg)
    }

    fn query_one(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let mut c = self.conn()?;
        let stmt = c.stmt(sql)?;
        c.client.query_one(&stmt, params).map_err(pg)
    }
}

fn decode_persons(rows: &[Row]) -> Result<Vec<Person>> {
    rows.iter()
        .map(|r| from_json(r.get::<_, &str>(0)))
        .collect()
}

fn decode_event(row: &Row) -> Result<RecordedEvent> {
    let version: i64 = row.get(2);
    Ok(RecordedEvent {
        seq: row.get(0),
        stream: row.get(1),
        version: version as u64,
        kind: row.get(3),
        meta: from_json(row.get::<_, &str>(4))?,
        change: from_json(row.get::<_, &str>(5))?,
    })
}

/// Why a commit's transaction failed.
enum CommitFailure {
    /// A rule of the contract or the database refused it.
    Store(StoreError),
    /// The insert of `stream`'s next version collided with a concurrent commit.
    Raced { stream: String, expected: u64 },
}

impl From<StoreError> for CommitFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn is_unique_violation(e: &::postgres::Error, constraint: &str) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error()
            .and_then(|d| d.constraint())
            .is_none_or(|c| c == constraint)
}

impl PgStore {
    fn try_commit(
        &self,
        conn: &mut PgConn,
        commit: &Commit,
        meta_json: &str,
    ) -> std::result::Result<Vec<i64>, CommitFailure> {
        let PgConn { client, statements } = conn;
        let mut tx = client.transaction().map_err(pg)?;

        // Check every stream's version, chaining several appends to one stream.
        let streams: Vec<String> = commit
            .appends
            .iter()
            .map(|a| a.stream().to_string())
            .collect();
        let mut distinct: Vec<&str> = streams.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let stmt = prepared(statements, &mut tx, SELECT_VERSIONS)?;
        let mut versions: HashMap<String, u64> = HashMap::with_capacity(distinct.len());
        for row in tx.query(&stmt, &[&distinct]).map_err(pg)? {
            let v: Option<i64> = row.get(1);
            versions.insert(row.get(0), v.unwrap_or(0) as u64);
        }
        let mut planned = Vec::with_capacity(commit.appends.len());
        // Final state of each stream: the last append to it wins. Sorted, so that every writer
        // locks projection rows in the same order.
        let mut last: BTreeMap<&str, &Append> = BTreeMap::new();
        for (a, stream) in commit.appends.iter().zip(&streams) {
            let actual = versions.get(stream.as_str()).copied().unwrap_or(0);
            let expected = a.expected();
            if expected == 0 && actual > 0 {
                return Err(StoreError::Exists(stream.clone()).into());
            }
            if actual != expected {
                return Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual,
                }
                .into());
            }
            versions.insert(stream.clone(), expected + 1);
            planned.push((stream.as_str(), expected));
            last.insert(stream.as_str(), a);
        }

        for a in last.values() {
            match a {
                Append::Person { state, .. } => {
                    let ix = PersonIndex::of(state);
                    let stmt = prepared(statements, &mut tx, UPSERT_PERSON)?;
                    tx.execute(
                        &stmt,
                        &[
                            &state.id.as_str(),
                            &count(state.version)?,
                            &ix.name_key,
                            &ix.birth_year,
                            &ix.commune,
                            &ix.province,
                            &ix.alive,
                            &to_json(state)?,
                        ],
                    )
                    .map_err(pg)?;
                }
                Append::Household { state, .. } => {
                    let stmt = prepared(statements, &mut tx, UPSERT_HOUSEHOLD)?;
                    tx.execute(
                        &stmt,
                        &[&state.id, &count(state.version)?, &to_json(state)?],
                    )
                    .map_err(pg)?;
                }
            }
        }

        if let Some(i) = &commit.idempotency {
            let stmt = prepared(statements, &mut tx, INSERT_IDEMPOTENCY)?;
            let n = tx
                .execute(
                    &stmt,
                    &[
                        &i.actor,
                        &i.key,
                        &i.request_hash,
                        &i32::from(i.status),
                        &i.body,
                    ],
                )
                .map_err(pg)?;
            if n == 0 {
                return Err(StoreError::IdempotencyMismatch.into());
            }
        }

        let mut seqs = Vec::with_capacity(commit.appends.len());
        if !commit.appends.is_empty() {
            let stmt = prepared(statements, &mut tx, APPEND_LOCK)?;
            tx.execute(&stmt, &[&self.append_lock]).map_err(pg)?;
            let stmt = prepared(statements, &mut tx, INSERT_EVENT)?;
            for (a, (stream, expected)) in commit.appends.iter().zip(planned) {
                let row = tx.query_one(
                    &stmt,
                    &[
                        &stream,
                        &count(expected + 1)?,
                        &a.kind(),
                        &commit.meta.at,
                        &meta_json,
                        &a.change_json()?,
                    ],
                );
                match row {
                    Ok(row) => seqs.push(row.get(0)),
                    Err(e) if is_unique_violation(&e, "events_pkey") => {
                        return Err(CommitFailure::Raced {
                            stream: stream.to_owned(),
                            expected,
                        });
                    }
                    Err(e) => return Err(pg(e).into()),
                }
            }
        }
        tx.commit().map_err(pg)?;
        Ok(seqs)
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<()> {
        let mut c = self.conn()?;
        c.client.simple_query("SELECT 1").map(|_| ()).map_err(pg)
    }

    fn commit(&self, commit: &Commit) -> Result<Vec<i64>> {
        let meta_json = to_json(&commit.meta)?;
        let mut conn = self.conn()?;
        match self.try_commit(&mut conn, commit, &meta_json) {
            Ok(seqs) => Ok(seqs),
            Err(CommitFailure::Store(e)) => Err(e),
            // The transaction is rolled back; the winner has committed (a unique violation is
            // only raised once it has), so its version is visible now.
            Err(CommitFailure::Raced { stream, expected }) => {
                let stmt = conn.stmt(STREAM_VERSION)?;
                let actual: i64 = conn.client.query_one(&stmt, &[&stream]).map_err(pg)?.get(0);
                if expected == 0 {
                    Err(StoreError::Exists(stream))
                } else {
                    Err(StoreError::Conflict {
                        stream,
                        expected,
                        actual: actual as u64,
                    })
                }
            }
        }
    }

    fn person(&self, id: &PersonalId) -> Result<Option<Person>> {
        self.query_opt(SELECT_PERSON, &[&id.as_str()])?
            .map(|r| from_json(r.get::<_, &str>(0)))
            .transpose()
    }

    fn person_json(&self, id: &PersonalId) -> Result<Option<(String, Option<String>)>> {
        Ok(self
            .query_opt(SELECT_PERSON_JSON, &[&id.as_str()])?
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1))))
    }

    fn persons_json(&self, ids: &[PersonalId]) -> Result<Vec<Option<PersonJson>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = ids.iter().map(PersonalId::as_str).collect();
        let rows = Self::query_on(self.hot_conn()?, SELECT_PERSONS_JSON, &[&keys])?;
        let found: HashMap<&str, (&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        Ok(keys
            .iter()
            .map(|k| {
                found
                    .get(k)
                    .map(|(data, commune)| ((*data).to_owned(), commune.map(str::to_owned)))
            })
            .collect())
    }

    fn reads_gather(&self) -> bool {
        true
    }

    fn access_log_writers(&self) -> usize {
        ACCESS_LOG_WRITERS
    }

    fn persons(&self, ids: &[PersonalId]) -> Result<Vec<Person>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = ids.iter().map(PersonalId::as_str).collect();
        let rows = self.query(SELECT_PERSONS, &[&keys])?;
        let found: HashMap<&str, &str> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // In the order asked for, as the SQLite backend answers.
        keys.iter()
            .filter_map(|k| found.get(k))
            .map(|data| from_json(data))
            .collect()
    }

    fn household(&self, id: &str) -> Result<Option<Household>> {
        self.query_opt(SELECT_HOUSEHOLD, &[&id])?
            .map(|r| from_json(r.get::<_, &str>(0)))
            .transpose()
    }

    fn household_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .query_one(HOUSEHOLD_EXISTS, &[&format!("h:{id}")])?
            .get(0))
    }

    fn events(
        &self,
        stream: &StreamId,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<RecordedEvent>> {
        self.query(SELECT_EVENTS, &[&stream.to_string(), &until])?
            .iter()
            .map(decode_event)
            .collect()
    }

    fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<RecordedEvent>> {
        self.query(SELECT_EVENTS_AFTER, &[&seq, &i64::from(limit)])?
            .iter()
            .map(decode_event)
            .collect()
    }

    fn search_json(&self, q: &SearchQuery) -> Result<Vec<(PersonalId, String)>> {
        // Prefix match as a range on the index: [key, key + U+FFFF], bytewise under COLLATE "C".
        let hi = if q.prefix {
            format!("{}\u{ffff}", q.name_key)
        } else {
            q.name_key.clone()
        };
        let limit = i64::from(q.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&q.name_key, &hi];
        let mut which = 0;
        if let Some(y) = &q.birth_year {
            params.push(y);
            which += 4;
        }
        if let Some(c) = &q.commune {
            params.push(c);
            which += 2;
        }
        if let Some(p) = &q.province {
            params.push(p);
            which += 1;
        }
        let sql = if q.limit == SEARCH_PAGE {
            SEARCH_PAGED[which]
        } else {
            params.push(&limit);
            SEARCH[which]
        };
        let rows = self.query(sql, &params)?;
        rows.iter()
            .map(|r| Ok((stored_id(r.get(1))?, r.get::<_, String>(0))))
            .collect()
    }

    fn people_of_commune(
        &self,
        commune: &str,
        after: Option<&PersonalId>,
        limit: u32,
    ) -> Result<Vec<Person>> {
        let after = after.map(PersonalId::as_str).unwrap_or("");
        decode_persons(&self.query(PEOPLE_OF_COMMUNE, &[&commune, &after, &i64::from(limit)])?)
    }

    fn count_people(&self) -> Result<u64> {
        let n: i64 = self.query_one(COUNT_PEOPLE, &[])?.get(0);
        Ok(n as u64)
    }

    fn idempotent(&self, actor: &str, key: &str) -> Result<Option<IdempotentResponse>> {
        let Some(r) = self.query_opt(SELECT_IDEMPOTENCY, &[&actor, &key])? else {
            return Ok(None);
        };
        let status: i32 = r.get(1);
        Ok(Some(IdempotentResponse {
            key: key.to_owned(),
            actor: actor.to_owned(),
            request_hash: r.get(0),
            status: u16::try_from(status)
                .map_err(|_| StoreError::Backend(format!("stored status {status}")))?,
            body: r.get(2),
        }))
    }

    fn add_officer(&self, o: &OfficerRecord) -> Result<()> {
        let mut c = self.conn()?;
        let stmt = c.stmt(INSERT_OFFICER)?;
        let n = c
            .client
            .execute(
                &stmt,
                &[
                    &o.officer.id,
                    &to_json(&o.officer)?,
                    &o.token_hash,
                    &o.created_at,
                ],
            )
            .map_err(pg)?;
        if n == 0 {
            Err(StoreError::Exists(format!("officer {}", o.officer.id)))
        } else {
            Ok(())
        }
    }

    fn officer_by_token(&self, token_hash: &str) -> Result<Option<Officer>> {
        self.query_opt(OFFICER_BY_TOKEN, &[&token_hash])?
            .map(|r| from_json(r.get::<_, &str>(0)))
            .transpose()
    }

    fn officers(&self) -> Result<Vec<Officer>> {
        self.query(SELECT_OFFICERS, &[])?
            .iter()
            .map(|r| from_json(r.get::<_, &str>(0)))
            .collect()
    }

    fn record_access(&self, entries: &[AccessEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.hot_conn()?;
        let stmt = c.stmt(match self.durability {
            Durability::Normal => INSERT_ACCESS_RELAXED,
            Durability::Full => INSERT_ACCESS,
        })?;
        insert_access(&mut c.client, &stmt, entries).map_err(pg)?;
        Ok(())
    }

    fn access_log(&self, person: &PersonalId, limit: u32) -> Result<Vec<AccessEntry>> {
        let rows = self.query(SELECT_ACCESS, &[&person.as_str(), &i64::from(limit)])?;
        Ok(rows
            .iter()
            .map(|r| AccessEntry {
                actor: r.get(0),
                at: r.get(1),
                person: *person,
                purpose: r.get(2),
                action: r.get(3),
            })
            .collect())
    }

    fn import_batch(
        &self,
        import_id: &str,
        rows: &[ImportRow],
        meta: &EventMeta,
    ) -> Result<Vec<u64>> {
        // Nothing to load: leave the progress mark where it is.
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let meta_json = to_json(meta)?;
        let last = rows.iter().map(|r| r.line).max().unwrap_or(0);

        // A second row with an ID seen earlier in the batch is a duplicate like one already stored.
        let mut seen = HashSet::with_capacity(rows.len());
        let fresh: Vec<bool> = rows.iter().map(|r| seen.insert(r.person.id)).collect();
        // Rows are written in ID order: it is the order in which commits lock projection rows (so
        // an import and a commit touching the same people cannot deadlock), and it keeps index
        // inserts close together.
        let mut order: Vec<&Person> = rows
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(r, _)| &r.person)
            .collect();
        order.sort_unstable_by_key(|p| p.id);
        let n = order.len();
        let (mut ids, mut keys, mut years, mut communes, mut provinces, mut alive, mut data) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for p in &order {
            let ix = PersonIndex::of(p);
            ids.push(p.id.as_str());
            keys.push(ix.name_key);
            years.push(ix.birth_year);
            communes.push(ix.commune);
            provinces.push(ix.province);
            alive.push(ix.alive);
            data.push(to_json(p)?);
        }

        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = client.transaction().map_err(pg)?;
        let inserted: HashSet<String> = if ids.is_empty() {
            HashSet::new()
        } else {
            let stmt = prepared(statements, &mut tx, IMPORT_PERSONS)?;
            let returned = tx
                .query(
                    &stmt,
                    &[&ids, &keys, &years, &communes, &provinces, &alive, &data],
                )
                .map_err(pg)?;
            returned.iter().map(|r| r.get(0)).collect()
        };
        let mut streams = Vec::with_capacity(inserted.len());
        let mut changes = Vec::with_capacity(inserted.len());
        for (p, json) in order.iter().zip(&data) {
            if inserted.contains(p.id.as_str()) {
                streams.push(StreamId::Person(p.id).to_string());
                changes.push(format!(r#"{{"type":"record_imported","record":{json}}}"#));
            }
        }
        // Duplicates in the order of the source: later repeats, and IDs that were stored already.
        let dupes: Vec<u64> = rows
            .iter()
            .zip(&fresh)
            .filter(|(r, f)| !**f || !inserted.contains(r.person.id.as_str()))
            .map(|(r, _)| r.line)
            .collect();
        if !streams.is_empty() {
            let stmt = prepared(statements, &mut tx, APPEND_LOCK)?;
            tx.execute(&stmt, &[&self.append_lock]).map_err(pg)?;
            let stmt = prepared(statements, &mut tx, IMPORT_EVENTS)?;
            tx.execute(&stmt, &[&streams, &meta.at, &meta_json, &changes])
                .map_err(pg)?;
        }
        let stmt = prepared(statements, &mut tx, IMPORT_MARK)?;
        tx.execute(&stmt, &[&import_id, &count(last)?, &meta.at])
            .map_err(pg)?;
        tx.commit().map_err(pg)?;
        Ok(dupes)
    }

    fn import_households(&self, households: &[Household], meta: &EventMeta) -> Result<Vec<String>> {
        if households.is_empty() {
            return Ok(Vec::new());
        }
        let meta_json = to_json(meta)?;
        // As in `import_batch`: a number repeated in the batch is taken by its first row, and rows
        // are written in number order, the order in which commits lock household rows.
        let mut seen = HashSet::with_capacity(households.len());
        let fresh: Vec<bool> = households
            .iter()
            .map(|h| seen.insert(h.id.as_str()))
            .collect();
        let mut order: Vec<&Household> = households
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(h, _)| h)
            .collect();
        order.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = order.iter().map(|h| h.id.as_str()).collect();
        let data = order.iter().map(to_json).collect::<Result<Vec<_>>>()?;

        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = client.transaction().map_err(pg)?;
        let stmt = prepared(statements, &mut tx, IMPORT_HOUSEHOLDS)?;
        let inserted: HashSet<String> = tx
            .query(&stmt, &[&ids, &data])
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut streams = Vec::with_capacity(inserted.len());
        let mut changes = Vec::with_capacity(inserted.len());
        for h in order.iter().filter(|h| inserted.contains(&h.id)) {
            let change = HouseholdChange::Created {
                address: h.address.clone(),
                members: h.members.clone(),
            };
            streams.push(StreamId::Household(h.id.clone()).to_string());
            changes.push(to_json(&change)?);
        }
        if !streams.is_empty() {
            let stmt = prepared(statements, &mut tx, APPEND_LOCK)?;
            tx.execute(&stmt, &[&self.append_lock]).map_err(pg)?;
            let stmt = prepared(statements, &mut tx, IMPORT_HOUSEHOLD_EVENTS)?;
            tx.execute(&stmt, &[&streams, &meta.at, &meta_json, &changes])
                .map_err(pg)?;
        }
        tx.commit().map_err(pg)?;
        Ok(households
            .iter()
            .zip(&fresh)
            .filter(|(h, f)| !**f || !inserted.contains(&h.id))
            .map(|(h, _)| h.id.clone())
            .collect())
    }

    fn import_progress(&self, import_id: &str) -> Result<Option<u64>> {
        Ok(self
            .query_opt(IMPORT_PROGRESS, &[&import_id])?
            .map(|r| r.get::<_, i64>(0) as u64))
    }

    fn persons_after(&self, after: Option<&PersonalId>, limit: u32) -> Result<Vec<Person>> {
        let after = after.map(|a| a.as_str()).unwrap_or("");
        let rows = self.query(PERSON_PAGE, &[&after, &i64::from(limit)])?;
        rows.iter()
            .map(|row| from_json(row.get::<_, &str>(1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_max_is_taken_off_the_url() {
        let (config, o) =
            parse_url("postgres://u:p@127.0.0.1:5433/db?pool_max=4&options=-csearch_path%3Dx")
                .expect("parses");
        assert_eq!(o.pool_max, 4);
        assert_eq!(o.durability, Durability::Full);
        assert_eq!(config.get_dbname(), Some("db"));
        assert_eq!(config.get_options(), Some("-csearch_path=x"));
        assert_eq!(config.get_application_name(), Some("dancu"));
        let (_, o) = parse_url("postgres://u@localhost/db").expect("parses");
        assert_eq!(o.pool_max, DEFAULT_POOL_MAX);
        let (config, o) =
            parse_url("postgres://u@localhost/db?durability=normal&pool_max=2").expect("parses");
        assert_eq!((o.pool_max, o.durability), (2, Durability::Normal));
        assert_eq!(config.get_dbname(), Some("db"));
        assert!(parse_url("postgres://u@localhost/db?durability=off").is_err());
        assert!(parse_url("postgres://u@localhost/db?pool_max=0").is_err());
        assert!(parse_url("postgres://u@localhost/db?pool_max=lots").is_err());
    }

    /// For a test against the server named by `DANCU_TEST_DATABASE_URL` (as the contract
    /// tests; `None` without one): the URL, a fresh schema named `{prefix}_{pid}`, a client
    /// over the server, the server's own value of `setting`, and the separator that adds a
    /// parameter to the URL.
    fn test_schema(prefix: &str, setting: &str) -> Option<(String, String, Client, String, char)> {
        let admin = std::env::var("DANCU_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())?;
        let schema = format!("{prefix}_{}", std::process::id());
        let mut c = Client::connect(&admin, NoTls).expect("connect");
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .expect("schema");
        let server: String = c
            .query_one(&format!("SHOW {setting}"), &[])
            .expect("show")
            .get(0);
        let sep = if admin.contains('?') { '&' } else { '?' };
        Some((admin, schema, c, server, sep))
    }

    /// The hot pool's sessions plan each statement once and keep the options the URL gives
    /// (here the schema); the ordinary pool's plan as the server is set to. Against the server
    /// named by `DANCU_TEST_DATABASE_URL`; skipped without one.
    #[test]
    fn the_hot_pool_plans_once_and_keeps_the_url_options() {
        let Some((admin, schema, mut c, server, sep)) = test_schema("unit_hot", "plan_cache_mode")
        else {
            return;
        };
        let store = PgStore::open(&format!(
            "{admin}{sep}pool_max=2&options=-csearch_path%3D{schema}"
        ))
        .expect("open");
        let show = |conn: &mut PgConn, what: &str| -> String {
            conn.client
                .query_one(&format!("SHOW {what}"), &[])
                .expect("show")
                .get(0)
        };
        let mut hot = store.hot_conn().expect("hot connection");
        assert_eq!(show(&mut hot, "plan_cache_mode"), "force_generic_plan");
        assert_eq!(show(&mut hot, "search_path"), schema);
        let mut plain = store.conn().expect("connection");
        assert_eq!(show(&mut plain, "plan_cache_mode"), server);
        assert_eq!(show(&mut plain, "search_path"), schema);
        // The hot statements work on it: a gathered read of nobody, an access-log insert.
        drop((hot, plain));
        let nobody =
            PersonalId::compose("001", dancu_domain::person::Sex::Male, 1990, 7).expect("id");
        assert_eq!(store.persons_json(&[nobody]).expect("read"), vec![None]);
        drop(store);
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .expect("drop schema");
    }

    /// The relaxed access-log insert commits its own transaction without waiting for the WAL
    /// flush, and leaves the pooled connection as it found it, so a register write that later
    /// runs on the same connection still waits for its flush. Runs against the server named
    /// by `DANCU_TEST_DATABASE_URL` (as the contract tests); skipped without one.
    #[test]
    fn a_relaxed_access_log_commit_relaxes_nothing_after_it() {
        let Some((admin, schema, mut c, server, sep)) =
            test_schema("unit_relaxed", "synchronous_commit")
        else {
            return;
        };
        let person =
            PersonalId::compose("001", dancu_domain::person::Sex::Male, 1990, 1).expect("valid id");
        let entry = |n: u32| AccessEntry {
            actor: "officer-1".into(),
            at: DateTime::from_timestamp(1_760_000_000, 0).expect("time"),
            person,
            purpose: format!("check {n}"),
            action: "record".into(),
        };
        for durability in ["normal", "full"] {
            let store = PgStore::open(&format!(
                "{admin}{sep}pool_max=1&durability={durability}&options=-csearch_path%3D{schema}"
            ))
            .expect("open");
            store.record_access(&[entry(1)]).expect("log");
            // The access log writes through the hot pool (of one connection here).
            let mut conn = store.hot_conn().expect("the one connection");
            let after: String = conn
                .client
                .query_one("SHOW synchronous_commit", &[])
                .expect("show")
                .get(0);
            assert_eq!(
                after, server,
                "{durability}: the connection keeps its setting"
            );
            // Inside the insert's own transaction the commit is relaxed under `normal` only.
            let mut tx = conn.client.transaction().expect("begin");
            let stmt = tx
                .prepare(if durability == "normal" {
                    INSERT_ACCESS_RELAXED
                } else {
                    INSERT_ACCESS
                })
                .expect("prepare");
            insert_access(&mut tx, &stmt, &[entry(2)]).expect("insert");
            let during: String = tx
                .query_one("SHOW synchronous_commit", &[])
                .expect("show")
                .get(0);
            let relaxed = if durability == "normal" {
                "off"
            } else {
                server.as_str()
            };
            assert_eq!(during, relaxed, "{durability}");
            tx.rollback().expect("rollback");
            drop(conn);
            let logged = store.access_log(&person, 10).expect("read the log");
            assert_eq!(logged.len(), 1, "{durability}: the entry is committed");
            store
                .conn()
                .expect("connection")
                .client
                .batch_execute("DELETE FROM access_log")
                .expect("empty the log");
        }
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .expect("drop");
    }
}
