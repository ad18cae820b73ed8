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
//! **Schema** (created at first open; `schema_version` row `('as-enrollments', 1)`, another
//! version refused): `as_enrollments(id text primary key, identity text, expires_at bigint,
//! epoch bigint)`, the fields of a [`JournalRecord`]. Rows expired for more than a day are
//! deleted at open.

use std::sync::Mutex;

use kt_log::store::{describe_postgres_error as describe, off_runtime};
use postgres::{Client, Config, NoTls};

use crate::enrollment_journal::JournalRecord;

/// The version of the enrollment table this build reads and writes.
const SCHEMA_VERSION: i32 = 1;
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
    epoch bigint NOT NULL CHECK (epoch >= 0)
);";

/// The shared enrollment table; see the module documentation.
pub struct SharedEnrollments {
    config: Config,
    /// One connection, replaced if a failure closed it.
    client: Mutex<Option<Client>>,
}

/// A connection whose commits are durable (`synchronous_commit` on for the session).
fn connect(config: &Config) -> Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute("SET synchronous_commit = on")?;
    Ok(client)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Drop for SharedEnrollments {
    /// Closes the connection off any async runtime (see kt-log's `off_runtime`).
    fn drop(&mut self) {
        let client = self.client.get_mut().map(Option::take).ok().flatten();
        off_runtime(move || drop(client));
    }
}

impl SharedEnrollments {
    /// Connects to the database at `url`, creates the table if it has none (refusing another
    /// version), and deletes long-expired rows. The URL is not repeated in an error.
    pub fn open(url: &str) -> Result<SharedEnrollments, String> {
        off_runtime(|| Self::open_here(url))
    }

    fn open_here(url: &str) -> Result<SharedEnrollments, String> {
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            format!("the store URL does not parse: {}", describe(&e))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("as-server");
        }
        let mut client = connect(&config).map_err(|e| describe(&e))?;
        let mut tx = client.transaction().map_err(|e| describe(&e))?;
        let created: Result<Option<i32>, postgres::Error> = (|| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(CREATE)?;
            let version = tx
                .query_opt(
                    "SELECT version FROM schema_version WHERE component = 'as-enrollments'",
                    &[],
                )?
                .map(|row| row.get(0));
            if version.is_none() {
                tx.batch_execute(CREATE_TABLE)?;
                tx.execute(
                    "INSERT INTO schema_version (component, version) \
                     VALUES ('as-enrollments', $1)",
                    &[&SCHEMA_VERSION],
                )?;
            }
            Ok(version)
        })();
        match created.map_err(|e| describe(&e))? {
            None | Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(format!(
                    "the database's enrollment table is version {found}; this build reads \
                     version {SCHEMA_VERSION} only (a newer build wrote it?)"
                ))
            }
        }
        tx.commit().map_err(|e| describe(&e))?;
        let cutoff = to_i64(crate::unix_now()) - KEEP_EXPIRED_FOR;
        client
            .execute(
                "DELETE FROM as_enrollments WHERE expires_at < $1",
                &[&cutoff],
            )
            .map_err(|e| describe(&e))?;
        Ok(SharedEnrollments {
            config,
            client: Mutex::new(Some(client)),
        })
    }

    /// Runs `work` on the connection, reconnecting first if a failure closed it.
    fn with_client<T: Send>(
        &self,
        work: impl FnMut(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, String> {
        off_runtime(|| self.with_client_here(work))
    }

    /// Runs `work` on the connection; if the server had closed it meanwhile (a restart), once
    /// more on a new one: `work` must be safe to repeat.
    fn with_client_here<T>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        let mut held = self.client.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if held.as_ref().is_none_or(Client::is_closed) {
                *held = None;
                *held = Some(connect(&self.config).map_err(|e| describe(&e))?);
            }
            let client = held.as_mut().ok_or("no connection")?;
            match work(client) {
                Err(_) if attempt == 0 && client.is_closed() => continue,
                done => return done.map_err(|e| describe(&e)),
            }
        }
        Err("the database closed the connection twice".into())
    }

    /// Stores `records` in one transaction, durable when it returns: all or none. Ids are
    /// digests of fresh random tokens, so one already there can only be this call's own, made
    /// again after a connection broke as it committed.
    pub fn add(&self, records: &[JournalRecord]) -> Result<(), String> {
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let identities: Vec<&str> = records.iter().map(|r| r.identity.as_str()).collect();
        let expiries: Vec<i64> = records.iter().map(|r| to_i64(r.expires_at)).collect();
        let epochs: Vec<i64> = records.iter().map(|r| to_i64(r.epoch)).collect();
        self.with_client(|client| {
            client.execute(
                "INSERT INTO as_enrollments (id, identity, expires_at, epoch) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
                 ON CONFLICT (id) DO NOTHING",
                &[&ids, &identities, &expiries, &epochs],
            )?;
            Ok(())
        })
    }

    /// The enrollment `id` (the token's digest, lowercase hex), if any frontend made it.
    pub fn find(&self, id: &str) -> Result<Option<JournalRecord>, String> {
        let row = self.with_client(|client| {
            client.query_opt(
                "SELECT identity, expires_at, epoch FROM as_enrollments WHERE id = $1",
                &[&id],
            )
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (expires_at, epoch): (i64, i64) = (row.get(1), row.get(2));
        Ok(Some(JournalRecord {
            id: id.to_owned(),
            identity: row.get(0),
            expires_at: u64::try_from(expires_at).unwrap_or(0),
            epoch: u64::try_from(epoch).map_err(|_| format!("enrollment {id}: negative epoch"))?,
        }))
    }
}
