//! A [`LogStore`] on PostgreSQL (feature `postgres`, issue 14): one log in one database,
//! which several frontends may open at once, with appends fenced so that the log never forks.
//!
//! **Schema** (created at the first open, in the connection's `search_path`; version 1):
//! - `schema_version(component text primary key, version integer)`: the row `('log', 1)`.
//!   A database whose log schema has another version is refused
//!   ([`StoreError::SchemaVersion`]): a newer one may not be readable by this build, and an
//!   older one does not exist yet;
//! - `log_state`: one row, the committed `size` and the latest `checkpoint` note;
//! - `log_entries(idx bigint primary key, data bytea)`: entry `idx`;
//! - `log_nodes(pos bigint primary key, hash bytea)`: the complete node at post-order `pos`.
//!
//! **Append** is one transaction: lock the `log_state` row (`SELECT … FOR UPDATE`), check that
//! its size is the size this store expects, then one statement inserts the entries and nodes
//! (multi-row `INSERT … SELECT FROM unnest(…)` in data-modifying `WITH` clauses, with binary
//! array parameters: one round trip whatever the batch's size; `COPY … (FORMAT binary)`
//! measured no faster for batches of 1,000) and sets the new size, then commit. The commit is
//! durable when it returns: the store refuses a server running with `fsync = off`
//! ([`StoreError::NotDurable`]) and turns `synchronous_commit` on for its own session if the
//! server's default is `off`.
//!
//! **Several frontends (fencing).** Each store instance knows the size it last read or wrote.
//! If another instance (another process, another machine) appended meanwhile, the stored size
//! differs and the append fails with [`StoreError::Fenced`], changing nothing, instead of
//! writing a second version of the same indices; `set_checkpoint` is fenced the same way (it
//! stores the note only while the log still has the size this instance signed). The row lock
//! makes the check and the write one step: of two instances appending at the same size,
//! exactly one succeeds. The primary keys would refuse a second write of an index anyway.
//!
//! **Serialising frontends.** Fencing keeps the log whole, but a frontend whose append is
//! fenced has done its batch's work for nothing. [`hold_writes`](LogStore::hold_writes) opens a
//! transaction that locks the state row and reads the state under it; the frontend then
//! decides its batch on the log's latest state, and its next append (or checkpoint) commits
//! in that same transaction. Other frontends' appends wait on the row meanwhile, as in
//! Trillian's and Tessera's sequencers. A frontend that stalls while it holds the row (stopped,
//! partitioned) loses its transaction after `idle_in_transaction_session_timeout` (5 s, set
//! on the writer's session), and the others go on; when it resumes, its append fails and
//! nothing of it is written.
//!
//! **What an instance sees.** [`size`](LogStore::size) and
//! [`checkpoint`](LogStore::checkpoint) answer from memory: the state as of the open, the
//! last [`refresh`](PostgresStore::refresh), or this instance's own last write, so they never
//! fail and never run ahead of committed data. Entries and nodes are read from the database,
//! below that size only. An instance learns of others' appends only through `refresh` (or by
//! being reopened): a writer that got [`StoreError::Fenced`] must rebuild its tree state from
//! the new size, which is what reopening the log does.
//!
//! **Failures.** A failed append or checkpoint rolls back and changes nothing this instance
//! answers. If the connection broke during `COMMIT`, whether the transaction committed is
//! unknown; the next append then finds out: it succeeds if the commit did not happen, and is
//! fenced if it did. A broken connection is replaced on the next call.
//!
//! Connections: one for writes, and a small pool for reads (readers run alongside the
//! writer, as the trait allows).
//!
//! **TLS.** Over TCP, every connection uses TLS as the URL's `sslmode` says: `require` (the
//! connection fails without it), `prefer` (the default: TLS if the server offers it) or
//! `disable`. The server's certificate is always verified, against the roots given to
//! [`PostgresStore::open_tls`] and for the URL's host name; a certificate that does not verify
//! fails the connection, never falls back to plain text. Only `require` resists an attacker
//! on the path, who could otherwise answer that the server offers no TLS. Unix sockets carry
//! no TLS.
//!
//! **Async callers.** The synchronous client drives a runtime of its own, which may not run on
//! a thread that already drives one (an async request handler). Such calls are made on a
//! short-lived scoped thread instead ([`off_runtime`]); calls from plain threads run in place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, GenericClient};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{check_entry_range, check_node_position, LogStore, StoreError};
use crate::hash::Hash;
use crate::tree::node_count;

/// The version of the log's tables this build reads and writes.
const SCHEMA_VERSION: i32 = 1;

/// Key of the advisory lock that serialises schema creation between concurrent opens.
const SCHEMA_LOCK: i64 = 0x6b74_5f6c_6f67; // "kt_log"

/// Milliseconds a writer's connection may sit idle inside a transaction before the server
/// ends it (see `connect_writer`).
const HELD_IDLE_TIMEOUT_MS: u64 = 5_000;

/// Reader connections kept open between reads.
const MAX_IDLE_READERS: usize = 8;

const CREATE_VERSION_TABLE: &str = "
CREATE TABLE schema_version (
    component text PRIMARY KEY,
    version integer NOT NULL
);";

const CREATE_LOG_TABLES: &str = "
CREATE TABLE log_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    size bigint NOT NULL CHECK (size >= 0),
    checkpoint bytea
);
INSERT INTO log_state (size) VALUES (0);
CREATE TABLE log_entries (
    idx bigint PRIMARY KEY CHECK (idx >= 0),
    data bytea NOT NULL
);
-- Entries are mostly sealed (random) bytes: do not try to compress them.
ALTER TABLE log_entries ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE log_nodes (
    pos bigint PRIMARY KEY CHECK (pos >= 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32)
);";

/// What this instance knows of the log: see the module documentation.
struct State {
    size: u64,
    checkpoint: Option<Vec<u8>>,
}

/// The log in a PostgreSQL database; see the module documentation.
pub struct PostgresStore {
    config: Config,
    tls: MakeRustlsConnect,
    /// The connection appends and checkpoints go through (`None` until reconnected after a
    /// failure closed it); its lock also serialises this instance's writes.
    writer: Mutex<Option<Client>>,
    /// Whether the writer connection is in a transaction that
    /// [`hold_writes`](LogStore::hold_writes) opened (changed under the writer lock only).
    held: AtomicBool,
    readers: Mutex<Vec<Client>>,
    state: RwLock<State>,
}

/// The server's message of a database error (severity, message, detail, SQLSTATE), or the
/// error with its cause: `postgres::Error`'s own `Display` says only "db error".
pub fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        text.push_str(&format!(" [SQLSTATE {}]", db.code().code()));
        return text;
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} does not fit a bigint")))
}

fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} is negative ({n})")))
}

/// A TLS connector that verifies servers against `roots` (see the module documentation), for
/// every PostgreSQL client of a process: rustls with *ring*, TLS 1.2 and 1.3.
pub fn tls_connector(roots: rustls::RootCertStore) -> Result<MakeRustlsConnect, StoreError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A connection that commits durably: refuses `fsync = off`, turns `synchronous_commit` on
/// for the session if the server has it off.
fn connect_writer(config: &Config, tls: &MakeRustlsConnect) -> Result<Client, StoreError> {
    let mut client = config.connect(tls.clone())?;
    let fsync: String = client.query_one("SHOW fsync", &[])?.get(0);
    if fsync != "on" {
        return Err(StoreError::NotDurable(format!(
            "the server runs with fsync = {fsync}: a commit could be lost on a crash"
        )));
    }
    let synchronous_commit: String = client.query_one("SHOW synchronous_commit", &[])?.get(0);
    if synchronous_commit == "off" {
        client.batch_execute("SET synchronous_commit = on")?;
    }
    // A writer that stalls (stopped, partitioned) inside a held transaction loses it, and the
    // state row's lock with it, after this long: other frontends go on.
    client.batch_execute(&format!(
        "SET idle_in_transaction_session_timeout = {}",
        HELD_IDLE_TIMEOUT_MS
    ))?;
    Ok(client)
}

/// Creates the schema if the database has none; refuses another version.
fn ensure_schema(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    let has_versions: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
        .get(0);
    if !has_versions {
        tx.batch_execute(CREATE_VERSION_TABLE)?;
    }
    let version: Option<i32> = tx
        .query_opt(
            "SELECT version FROM schema_version WHERE component = 'log'",
            &[],
        )?
        .map(|row| row.get(0));
    match version {
        // Plain CREATE TABLE: tables of the same names that are not ours make the open fail.
        None => {
            tx.batch_execute(CREATE_LOG_TABLES)?;
            tx.execute(
                "INSERT INTO schema_version (component, version) VALUES ('log', $1)",
                &[&SCHEMA_VERSION],
            )?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(StoreError::SchemaVersion {
                found: i64::from(found),
                supported: i64::from(SCHEMA_VERSION),
            })
        }
    }
    tx.commit()?;
    Ok(())
}

/// The committed size and checkpoint, read together.
fn read_state(client: &mut Client) -> Result<State, StoreError> {
    let row = client.query_one("SELECT size, checkpoint FROM log_state", &[])?;
    Ok(State {
        size: to_u64(row.get(0), "the stored size")?,
        checkpoint: row.get(1),
    })
}

/// Runs `work` where a blocking PostgreSQL client may run: on this thread, or, if this
/// thread drives (or is entered into) an async runtime, on a scoped thread of its own, waited
/// for. For every synchronous `postgres` client of a process that also runs async code.
pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for PostgresStore {
    /// Closes the connections off any async runtime (see [`off_runtime`]).
    fn drop(&mut self) {
        let writer = self.writer.get_mut().map(Option::take).ok().flatten();
        let readers = self
            .readers
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        off_runtime(move || drop((writer, readers)));
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a libpq-style URL or key=value string, e.g.
    /// `postgresql://user@/db?host=/run/postgresql`), creates the log's schema if it has none,
    /// and reads the committed state. Refuses a schema of another version and a server that
    /// does not make commits durable.
    ///
    /// No root is trusted: a server that offers TLS is refused unless the URL says
    /// `sslmode=disable`. For a Unix socket; over a network, [`open_tls`](Self::open_tls).
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open_tls(url, rustls::RootCertStore::empty())
    }

    /// [`open`](Self::open), with TLS verified against `roots` (see the module documentation).
    pub fn open_tls(url: &str, roots: rustls::RootCertStore) -> Result<PostgresStore, StoreError> {
        let tls = tls_connector(roots)?;
        off_runtime(|| Self::open_here(url, tls))
    }

    fn open_here(url: &str, tls: MakeRustlsConnect) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse()?;
        if config.get_application_name().is_none() {
            config.application_name("kt-log");
        }
        let mut writer = connect_writer(&config, &tls)?;
        ensure_schema(&mut writer)?;
        let state = read_state(&mut writer)?;
        Ok(PostgresStore {
            config,
            tls,
            writer: Mutex::new(Some(writer)),
            held: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
            state: RwLock::new(state),
        })
    }

    /// Re-reads the committed size and checkpoint, so that this instance sees what other
    /// instances appended; returns the size. Waits for this instance's own write in progress.
    fn refresh_state(&self) -> Result<u64, StoreError> {
        off_runtime(|| self.refresh_here())
    }

    fn refresh_here(&self) -> Result<u64, StoreError> {
        let mut writer = self.lock_writer();
        let fresh = match read_state(self.writer_client(&mut writer)?) {
            // The server closed the connection meanwhile (it restarted): read on a new one.
            Err(_) if writer.as_ref().is_some_and(Client::is_closed) => {
                read_state(self.writer_client(&mut writer)?)?
            }
            read => read?,
        };
        self.take_state(fresh)
    }

    /// Opens the transaction that holds the state row (see [`LogStore::hold_writes`]) and
    /// reads the state under it.
    fn hold_here(&self) -> Result<u64, StoreError> {
        let mut writer = self.lock_writer();
        let client = self.writer_client(&mut writer)?;
        if self.held.swap(false, Ordering::AcqRel) {
            client.batch_execute("ROLLBACK")?;
        }
        let client = match client.batch_execute("BEGIN") {
            Ok(()) => client,
            // The server closed the connection meanwhile (it restarted): begin on a new one.
            Err(_) if client.is_closed() => {
                let client = self.writer_client(&mut writer)?;
                client.batch_execute("BEGIN")?;
                client
            }
            Err(e) => return Err(e.into()),
        };
        let row = match client
            .query_typed_one("SELECT size, checkpoint FROM log_state FOR UPDATE", &[])
        {
            Ok(row) => row,
            Err(e) => {
                if !client.is_closed() {
                    let _ = client.batch_execute("ROLLBACK");
                }
                return Err(e.into());
            }
        };
        self.held.store(true, Ordering::Release);
        self.take_state(State {
            size: to_u64(row.get(0), "the stored size")?,
            checkpoint: row.get(1),
        })
    }

    /// Ends the transaction [`hold_here`](Self::hold_here) opened, if an append did not.
    fn release_here(&self) -> Result<(), StoreError> {
        let mut writer = self.lock_writer();
        if !self.held.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        match writer.as_mut() {
            Some(client) if !client.is_closed() => Ok(client.batch_execute("ROLLBACK")?),
            _ => Ok(()),
        }
    }

    /// Answers with `fresh` from now on; refuses a size that went back.
    fn take_state(&self, fresh: State) -> Result<u64, StoreError> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if fresh.size < state.size {
            return Err(StoreError::Corrupt(format!(
                "the stored size went back from {} to {}",
                state.size, fresh.size
            )));
        }
        *state = fresh;
        Ok(state.size)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Option<Client>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer connection, replaced if a failure closed it.
    fn writer_client<'a>(
        &self,
        writer: &'a mut MutexGuard<'_, Option<Client>>,
    ) -> Result<&'a mut Client, StoreError> {
        if writer.as_ref().is_none_or(Client::is_closed) {
            // A held transaction ended with its connection.
            self.held.store(false, Ordering::Release);
            **writer = None;
            **writer = Some(connect_writer(&self.config, &self.tls)?);
        }
        writer
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("no writer connection".into()))
    }

    /// Runs `read` on a pooled reader connection.
    fn read<T: Send>(
        &self,
        read: impl FnMut(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| self.read_here(read))
    }

    fn read_here<T>(
        &self,
        mut read: impl FnMut(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let (mut client, fresh) = match pooled {
            Some(client) if !client.is_closed() => (client, false),
            _ => (self.config.connect(self.tls.clone())?, true),
        };
        let mut result = read(&mut client);
        if result.is_err() && !fresh && client.is_closed() {
            // A pooled connection the server closed meanwhile (it restarted): a read changes
            // nothing, so it is made again on a new one.
            client = self.config.connect(self.tls.clone())?;
            result = read(&mut client);
        }
        if !client.is_closed() {
            let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < MAX_IDLE_READERS {
                pool.push(client);
            }
        }
        result
    }

    /// The append transaction, storing `note` as the checkpoint in it if given; the caller
    /// holds the writer lock. `held`: the connection is in the transaction
    /// [`hold_writes`](LogStore::hold_writes) opened, which this one commits (or rolls back).
    fn append_tx(
        client: &mut Client,
        held: bool,
        size: u64,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        if !held {
            let mut tx = client.transaction()?;
            let new_size = Self::append_rows(&mut tx, true, size, entries, nodes, note)?;
            tx.commit()?;
            return Ok(new_size);
        }
        // The held transaction read the size under the row's lock: no check needed again.
        let appended = Self::append_rows(client, false, size, entries, nodes, note)
            .and_then(|new_size| Ok((client.batch_execute("COMMIT")?, new_size).1));
        if appended.is_err() && !client.is_closed() {
            // Best effort: the held transaction ends either way.
            let _ = client.batch_execute("ROLLBACK");
        }
        appended
    }

    /// The append's statements, in the transaction `tx`; `lock` first locks the state row and
    /// checks its size (fencing), unless the transaction holds it already.
    fn append_rows(
        tx: &mut impl GenericClient,
        lock: bool,
        size: u64,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let new_size = size + entries.len() as u64;
        if lock {
            let found: i64 = tx
                .query_typed_one("SELECT size FROM log_state FOR UPDATE", &[])?
                .get(0);
            let found = to_u64(found, "the stored size")?;
            if found != size {
                // Dropping the transaction rolls it back.
                return Err(StoreError::Fenced {
                    expected: size,
                    found,
                });
            }
        }
        if entries.is_empty() && note.is_none() {
            return Ok(size);
        }
        let indices = (size..new_size)
            .map(to_i64)
            .collect::<Result<Vec<_>, _>>()?;
        let first_node = node_count(size);
        let positions = (first_node..first_node + nodes.len() as u64)
            .map(to_i64)
            .collect::<Result<Vec<_>, _>>()?;
        let hashes: Vec<&[u8]> = nodes.iter().map(|h| &h.0[..]).collect();
        let new_size_param = to_i64(new_size)?;
        // One statement, one round trip: the entries, the nodes (data-modifying WITH clauses
        // always run to completion), then the size and the checkpoint (kept if none is given).
        let params: [(&(dyn ToSql + Sync), Type); 6] = [
            (&indices, Type::INT8_ARRAY),
            (&entries, Type::BYTEA_ARRAY),
            (&positions, Type::INT8_ARRAY),
            (&hashes, Type::BYTEA_ARRAY),
            (&new_size_param, Type::INT8),
            (&note, Type::BYTEA),
        ];
        tx.execute_typed(
            "WITH new_entries AS (\
                 INSERT INTO log_entries (idx, data) \
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])), \
             new_nodes AS (\
                 INSERT INTO log_nodes (pos, hash) \
                 SELECT * FROM unnest($3::bigint[], $4::bytea[])) \
             UPDATE log_state SET size = $5, checkpoint = COALESCE($6, checkpoint)",
            &params,
        )?;
        Ok(new_size)
    }
}

impl PostgresStore {
    /// [`LogStore::append`], storing `note` as the checkpoint in the same transaction.
    fn append_with(
        &self,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        off_runtime(|| self.append_here(entries, nodes, note))
    }

    fn append_here(
        &self,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut writer = self.lock_writer();
        let size = self.size();
        let expected_nodes = node_count(size + entries.len() as u64) - node_count(size);
        if nodes.len() as u64 != expected_nodes {
            return Err(StoreError::Corrupt(format!(
                "append of {} entries at size {size} needs {expected_nodes} nodes, got {}",
                entries.len(),
                nodes.len()
            )));
        }
        let client = self.writer_client(&mut writer)?;
        let held = self.held.swap(false, Ordering::AcqRel);
        let new_size = Self::append_tx(client, held, size, entries, nodes, note)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.size = new_size;
        if let Some(note) = note {
            state.checkpoint = Some(note.to_vec());
        }
        Ok(())
    }
}

impl LogStore for PostgresStore {
    fn size(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).size
    }

    fn append(&self, entries: &[&[u8]], nodes: &[Hash]) -> Result<(), StoreError> {
        self.append_with(entries, nodes, None)
    }

    /// One transaction: the entries, the nodes, the new size and the checkpoint.
    fn append_checkpointed(
        &self,
        entries: &[&[u8]],
        nodes: &[Hash],
        note: &[u8],
    ) -> Result<(), StoreError> {
        self.append_with(entries, nodes, Some(note))
    }

    fn refresh(&self) -> Result<u64, StoreError> {
        self.refresh_state()
    }

    /// Opens a transaction that locks the state row (`SELECT … FOR UPDATE`) and reads the
    /// state under it: other frontends' appends wait until the next append commits it, or
    /// [`release_writes`](LogStore::release_writes) rolls it back.
    fn hold_writes(&self) -> Result<u64, StoreError> {
        off_runtime(|| self.hold_here())
    }

    fn release_writes(&self) -> Result<(), StoreError> {
        off_runtime(|| self.release_here())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        check_entry_range(start, end, self.size())?;
        if start == end {
            return Ok(Vec::new());
        }
        let rows = self.read(|client| {
            Ok(client.query_typed(
                "SELECT idx, data FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[(&to_i64(start)?, Type::INT8), (&to_i64(end)?, Type::INT8)],
            )?)
        })?;
        let mut entries = Vec::with_capacity(rows.len());
        for (expected, row) in (start..end).zip(&rows) {
            if to_u64(row.get(0), "an entry index")? != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
            entries.push(row.get(1));
        }
        if entries.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entry {} is missing",
                start + entries.len() as u64
            )));
        }
        Ok(entries)
    }

    fn node(&self, position: u64) -> Result<Hash, StoreError> {
        check_node_position(position, self.size())?;
        let row = self.read(|client| {
            Ok(client.query_typed_opt(
                "SELECT hash FROM log_nodes WHERE pos = $1",
                &[(&to_i64(position)?, Type::INT8)],
            )?)
        })?;
        let row = row.ok_or_else(|| StoreError::Corrupt(format!("node {position} is missing")))?;
        Hash::from_slice(row.get(0))
            .ok_or_else(|| StoreError::Corrupt(format!("node {position} is not 32 bytes")))
    }

    /// One query for all of them.
    fn nodes(&self, positions: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let size = self.size();
        let mut keys = Vec::with_capacity(positions.len());
        for &position in positions {
            check_node_position(position, size)?;
            keys.push(to_i64(position)?);
        }
        let rows = self.read(|client| {
            Ok(client.query_typed(
                "SELECT pos, hash FROM log_nodes WHERE pos = ANY($1)",
                &[(&keys, Type::INT8_ARRAY)],
            )?)
        })?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let position: i64 = row.get(0);
            let hash = Hash::from_slice(row.get(1))
                .ok_or_else(|| StoreError::Corrupt(format!("node {position} is not 32 bytes")))?;
            found.insert(position, hash);
        }
        keys.iter()
            .map(|key| {
                found
                    .get(key)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("node {key} is missing")))
            })
            .collect()
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint
            .clone())
    }

    fn set_checkpoint(&self, note: &[u8]) -> Result<(), StoreError> {
        off_runtime(|| self.set_checkpoint_here(note))
    }
}

impl PostgresStore {
    fn set_checkpoint_here(&self, note: &[u8]) -> Result<(), StoreError> {
        let mut writer = self.lock_writer();
        let size = self.size();
        let client = self.writer_client(&mut writer)?;
        // A held transaction (see `hold_writes`) ends here, committed with the checkpoint.
        let held = self.held.swap(false, Ordering::AcqRel);
        // Stored only while the log has the size this instance knows (see the module doc).
        let updated = client
            .execute_typed(
                "UPDATE log_state SET checkpoint = $1 WHERE size = $2",
                &[(&note, Type::BYTEA), (&to_i64(size)?, Type::INT8)],
            )
            .and_then(|updated| {
                if held {
                    client.batch_execute(if updated == 1 { "COMMIT" } else { "ROLLBACK" })?;
                }
                Ok(updated)
            });
        let updated = match updated {
            Ok(updated) => updated,
            Err(e) => {
                if held && !client.is_closed() {
                    let _ = client.batch_execute("ROLLBACK");
                }
                return Err(e.into());
            }
        };
        if updated != 1 {
            let found: i64 = client.query_one("SELECT size FROM log_state", &[])?.get(0);
            return Err(StoreError::Fenced {
                expected: size,
                found: to_u64(found, "the stored size")?,
            });
        }
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .checkpoint = Some(note.to_vec());
        Ok(())
    }
}
