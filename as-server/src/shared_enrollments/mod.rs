//! Enrollments on the shared PostgreSQL database, for several frontends (`--store
//! postgres://…`): a token given out by one frontend can be redeemed at any other.
//!
//! Enrollments are the one thing the AS stores that is not in the log (their tokens are
//! secrets; only their digests are stored). With one server they live in the data folder's
//! enrollment journal ([`crate::enrollment_journal`]). With several, each enrollment is also
//! written here, durably, before its token is answered; a frontend asked to redeem a token it
//! does not know looks it up here and takes it into its own state
//! ([`crate::state::State::import_enrollment`]).
//!
//! **Single use across frontends.** Which enrollment an issuance used is in its log entry, and
//! the log has one order (kt-log's fenced appends): a frontend admits an issuance only against
//! a state that has applied the whole log, and an append made against an older log is refused
//! and admitted again after the state has caught up. So of two frontends redeeming one token
//! at once, the second finds it used. An issuance applied before its enrollment was taken in
//! leaves a used record ([`crate::state::Overlay::apply_entry`]), which the import never
//! overwrites.
//!
//! **Async, one connection.** Requests await their query on their own runtime: nothing blocks a
//! worker thread, and concurrent queries are pipelined on the one connection. The connection
//! is driven by a runtime on a thread of its own (`Driver`), so that it depends on no
//! request's runtime.
//!
//! **Announced.** Each frontend also announces the ids of the enrollments it makes, and takes
//! in those the others announce, as they are made ([`announced`]): a redemption at another
//! frontend then usually finds the token in that frontend's state, with no lookup here.
//!
//! **Schema** (created at first open; `schema_version` row `('as-enrollments', 2)`; version 1
//! is migrated, a newer one refused): `as_enrollments(id text primary key, identity text,
//! expires_at bigint, epoch bigint, label bytea)`, the fields of a [`JournalRecord`] and the
//! identity's VRF label and proof prepared at enrollment (112 bytes, or null: see
//! [`crate::state::EnrollmentRecord::prepared_label`]), so that the frontend that redeems
//! the token need not compute them (the label is trusted as the row is: whoever can write
//! the table can enroll anyone, which is more; a wrong label would only make the answers for
//! that identity fail their clients' VRF check). Version 1 lacked `label`. Rows expired for
//! more than a day are deleted at open.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use kt_log::store::{describe_postgres_error as describe, tls_connector};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use kt_protocol::directory::vrf::{Label, PROOF_LEN};

use crate::enrollment_journal::JournalRecord;
use crate::state::directory::LabelRow;
use crate::state::shared::SharedState;

/// The version of the enrollment table this build reads and writes.
const SCHEMA_VERSION: i32 = 2;
/// Advisory lock key serialising schema creation between frontends starting at once.
const SCHEMA_LOCK: i64 = 0x6173_5f65_6e72; // "as_enr"
/// Enrollments expired this long ago are deleted at open.
const KEEP_EXPIRED_FOR: i64 = 86_400;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    component text PRIMARY KEY,
    version integer NOT NULL
);";

const CREATE_TABLE: &str = "
CREATE TABLE as_enrollments (
    id text PRIMARY KEY,
    identity text NOT NULL,
    expires_at bigint NOT NULL,
    epoch bigint NOT NULL CHECK (epoch >= 0),
    label bytea
);";

/// From version 1, which had no prepared labels.
const MIGRATE_FROM_1: &str = "
ALTER TABLE as_enrollments ADD COLUMN label bytea;
UPDATE schema_version SET version = 2 WHERE component = 'as-enrollments';";

mod announced;

/// The notification channel on which frontends announce the ids of the enrollments they
/// make (see [`announced`]).
const ANNOUNCEMENTS: &str = "as_enrollments";

/// Most ids in one announcement (a notification's payload holds at most 8,000 bytes; an id
/// is 64 hex digits).
const IDS_PER_ANNOUNCEMENT: usize = 100;

/// The shared enrollment table; see the module documentation.
pub struct SharedEnrollments {
    config: Config,
    driver: Driver,
    /// This frontend's mark on its announcements, random per process, so that its listener
    /// skips its own.
    origin: String,
    /// One connection, replaced if a failure closed it.
    client: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// A connection and its prepared lookup (parsed and planned once, not at every redemption).
struct Connection {
    client: Client,
    find: Statement,
}

/// The lookup of enrollments by id (the columns [`record_of`] reads): one at a redemption,
/// those announced together by their ids ([`announced`]).
const FIND: &str =
    "SELECT id, identity, expires_at, epoch, label FROM as_enrollments WHERE id = ANY($1)";

/// An enrollment as the table holds it.
pub struct SharedEnrollment {
    /// The enrollment.
    pub record: JournalRecord,
    /// Its identity's label and VRF proof, if they were prepared.
    pub label: Option<LabelRow>,
}

/// The enrollment in a row of `id, identity, expires_at, epoch, label`. A label that is not
/// 112 bytes (the label, then its VRF proof) is taken as none: it is only a shortcut.
fn record_of(row: &tokio_postgres::Row) -> Result<SharedEnrollment, String> {
    let id: String = row.get(0);
    let (expires_at, epoch): (i64, i64) = (row.get(2), row.get(3));
    let label = row.get::<_, Option<&[u8]>>(4).and_then(|bytes| {
        let label: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let proof: [u8; PROOF_LEN] = bytes.get(32..)?.try_into().ok()?;
        Some(LabelRow::new(&Label(label), &proof))
    });
    let record = JournalRecord {
        identity: row.get(1),
        expires_at: u64::try_from(expires_at).unwrap_or(0),
        epoch: u64::try_from(epoch).map_err(|_| format!("enrollment {id}: negative epoch"))?,
        id,
    };
    Ok(SharedEnrollment { record, label })
}

/// A prepared label's column: the label, then its VRF proof.
fn label_column(label: &LabelRow) -> Option<Vec<u8>> {
    let (label, proof) = label.decode()?;
    Some([&label.0[..], &proof[..]].concat())
}

/// `client`, its statements prepared (the table must exist).
async fn ready(client: Client) -> Result<Connection, String> {
    let find = client
        .prepare_typed(FIND, &[Type::TEXT_ARRAY])
        .await
        .map_err(|e| describe(&e))?;
    Ok(Connection { client, find })
}

/// A current-thread runtime on a thread of its own that drives the connections (a
/// tokio-postgres `Connection` is a future that must be polled for its `Client` to work).
/// It stops, closing them, when the `Driver` is dropped.
struct Driver {
    runtime: tokio::runtime::Handle,
    /// TLS as kt-log's `PostgresStore` does it (the URL's `sslmode`, certificates verified).
    tls: MakeRustlsConnect,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Driver {
    fn start(tls: MakeRustlsConnect) -> Result<Driver, String> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("pg-enrollments".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = handle_tx.send(Ok(runtime.handle().clone()));
                        // Runs the spawned connections until the driver is dropped.
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| format!("starting the database connection's thread: {e}"))?;
        let runtime = handle_rx
            .recv()
            .map_err(|_| "the database connection's thread stopped".to_owned())??;
        Ok(Driver {
            runtime,
            tls,
            _stop: stop,
        })
    }

    /// Runs `work` on the driver's runtime and awaits it from any runtime.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        self.runtime
            .spawn(work)
            .await
            .map_err(|e| format!("the database connection's thread failed: {e}"))
    }

    /// Runs `work` on the driver's runtime and blocks this thread until it is done (for the
    /// open, at start; a thread of an async runtime may wait, since the driver is not one).
    fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, String> {
        let (done, result) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = done.send(work.await);
        });
        result
            .recv()
            .map_err(|_| "the database connection's thread failed".to_owned())
    }

    /// A new connection whose commits are durable (`synchronous_commit` on for the session),
    /// driven on the driver's runtime.
    async fn connect(&self, config: &Config) -> Result<Connection, String> {
        let (config, tls) = (config.clone(), self.tls.clone());
        self.run(async move { ready(connect(config, tls).await?).await })
            .await?
    }
}

/// Connects with `config` (on the driver's runtime: the connection is spawned there).
async fn connect(config: Config, tls: MakeRustlsConnect) -> Result<Client, String> {
    let (client, connection) = config.connect(tls).await.map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server closes the connection; a query on a
        // closed connection reports it.
        let _ = connection.await;
    });
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .map_err(|e| describe(&e))?;
    Ok(client)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SharedEnrollments {
    /// Connects to the database at `url` (TLS verified against `roots`, as the log's store
    /// does), creates the table if it has none (refusing another version), and deletes
    /// long-expired rows. The URL is not repeated in an error.
    pub fn open(url: &str, roots: rustls::RootCertStore) -> Result<SharedEnrollments, String> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            format!("the store URL does not parse: {}", describe(&e))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("as-server");
        }
        let tls = tls_connector(roots).map_err(|e| e.to_string())?;
        let driver = Driver::start(tls.clone())?;
        let prepared = {
            let config = config.clone();
            driver.block_on(async move { ready(prepare(config, tls).await?).await })??
        };
        let mut mark = [0u8; 8];
        getrandom::fill(&mut mark).map_err(|e| format!("randomness: {e}"))?;
        Ok(SharedEnrollments {
            config,
            driver,
            origin: mark.iter().map(|b| format!("{b:02x}")).collect(),
            client: tokio::sync::Mutex::new(Some(Arc::new(prepared))),
        })
    }

    /// The connection, a new one if there is none or a failure closed it.
    async fn client(&self) -> Result<Arc<Connection>, String> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(client));
        }
        *held = None;
        let client = Arc::new(self.driver.connect(&self.config).await?);
        *held = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Runs the query `work` makes; if the server had closed the connection meanwhile (a
    /// restart), once more on a new one: `work` must be safe to repeat.
    async fn with_client<T, F>(&self, work: impl Fn(Arc<Connection>) -> F) -> Result<T, String>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        for attempt in 0..2 {
            let connection = self.client().await?;
            match work(Arc::clone(&connection)).await {
                Err(_) if attempt == 0 && connection.client.is_closed() => continue,
                done => return done.map_err(|e| describe(&e)),
            }
        }
        Err("the database closed the connection twice".into())
    }

    /// Stores `records`, each with its identity's prepared label from `labels` if it has
    /// one there, in one statement, durable when it returns: all or none. Ids are digests of
    /// fresh random tokens, so one already there can only be this call's own, made again
    /// after a connection broke as it committed.
    pub async fn add(
        &self,
        records: &[JournalRecord],
        labels: &HashMap<String, LabelRow>,
    ) -> Result<(), String> {
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let identities: Vec<&str> = records.iter().map(|r| r.identity.as_str()).collect();
        let expiries: Vec<i64> = records.iter().map(|r| to_i64(r.expires_at)).collect();
        let epochs: Vec<i64> = records.iter().map(|r| to_i64(r.epoch)).collect();
        let label_columns: Vec<Option<Vec<u8>>> = records
            .iter()
            .map(|r| labels.get(&r.identity).and_then(label_column))
            .collect();
        let announcements: Vec<String> = ids
            .chunks(IDS_PER_ANNOUNCEMENT)
            .map(|chunk| format!("{}:{}", self.origin, chunk.join(",")))
            .collect();
        self.with_client(|connection| {
            let (ids, identities, expiries, epochs) = (&ids, &identities, &expiries, &epochs);
            let label_columns = &label_columns;
            async move {
                connection
                    .client
                    .execute(
                        "INSERT INTO as_enrollments (id, identity, expires_at, epoch, label) \
                         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], \
                         $4::bigint[], $5::bytea[]) ON CONFLICT (id) DO NOTHING",
                        &[ids, identities, expiries, epochs, label_columns],
                    )
                    .await
            }
        })
        .await?;
        // Best effort, after the commit: a frontend that misses it looks the token up when it
        // is redeemed.
        let announced = self
            .with_client(|connection| {
                let announcements = &announcements;
                async move {
                    connection
                        .client
                        .execute(
                            "SELECT pg_notify($1, announcement) \
                             FROM unnest($2::text[]) AS announcement",
                            &[&ANNOUNCEMENTS, announcements],
                        )
                        .await
                }
            })
            .await;
        if let Err(error) = announced {
            tracing::debug!(%error, "announcing enrollments to the other frontends");
        }
        Ok(())
    }

    /// The enrollment `id` (the token's digest, lowercase hex), if any frontend made it.
    pub async fn find(&self, id: &str) -> Result<Option<SharedEnrollment>, String> {
        let row = self
            .with_client(|connection| async move {
                let ids = [id];
                connection
                    .client
                    .query_opt(&connection.find, &[&&ids[..]])
                    .await
            })
            .await?;
        row.as_ref().map(record_of).transpose()
    }

    /// Takes the enrollments the other frontends announce into `state` from now on, on the
    /// connections' thread (see [`announced`]).
    pub fn take_in_announced(&self, state: Arc<SharedState>) {
        self.driver.runtime.spawn(announced::listen(
            self.config.clone(),
            self.driver.tls.clone(),
            self.origin.clone(),
            state,
        ));
    }
}

/// Connects, creates the schema if the database has none (refusing another version) and
/// deletes long-expired rows; returns the connection.
async fn prepare(config: Config, tls: MakeRustlsConnect) -> Result<Client, String> {
    let mut client = connect(config, tls).await?;
    let tx = client.transaction().await.map_err(|e| describe(&e))?;
    let created: Result<Option<i32>, tokio_postgres::Error> = async {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        tx.batch_execute(CREATE).await?;
        let version = tx
            .query_opt(
                "SELECT version FROM schema_version WHERE component = 'as-enrollments'",
                &[],
            )
            .await?
            .map(|row| row.get(0));
        match version {
            None => {
                tx.batch_execute(CREATE_TABLE).await?;
                tx.execute(
                    "INSERT INTO schema_version (component, version) \
                     VALUES ('as-enrollments', $1)",
                    &[&SCHEMA_VERSION],
                )
                .await?;
            }
            Some(1) => {
                tx.batch_execute(MIGRATE_FROM_1).await?;
                tracing::info!("enrollment table migrated from version 1 to 2 (prepared labels)");
            }
            Some(_) => {}
        }
        Ok(version)
    }
    .await;
    match created.map_err(|e| describe(&e))? {
        None | Some(1) | Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(format!(
                "the database's enrollment table is version {found}; this build reads \
                 version {SCHEMA_VERSION} (and migrates version 1) only (a newer build wrote \
                 it?)"
            ))
        }
    }
    tx.commit().await.map_err(|e| describe(&e))?;
    let cutoff = to_i64(crate::unix_now()) - KEEP_EXPIRED_FOR;
    client
        .execute(
            "DELETE FROM as_enrollments WHERE expires_at < $1",
            &[&cutoff],
        )
        .await
        .map_err(|e| describe(&e))?;
    Ok(client)
}
