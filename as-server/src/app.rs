//! The application state every handler shares, and how it is opened from the data folder.
//!
//! Routes depend on this module, never on the server that runs them, so the HTTP layer
//! (`server`, `routes`) has no import circle.

use std::sync::{Arc, Mutex};

use kt_log::log::{Log, LogError};
use kt_log::store::StoreError;
use kt_protocol::identity::IdentityPolicy;

use crate::admission::Limits;
use crate::as_log::{database_roots, open_store, AsLog};
use crate::ca::Ca;
use crate::config::{Config, StoreChoice};
use crate::directory::snapshot::FileMapStore;
use crate::directory::{empty_map_entry, Directory};
use crate::metrics::Metrics;
use crate::rotation::RotationBudget;
use crate::sequencer::{Sequencer, SequencerConfig};
use crate::setup::{self, DataPaths};
use crate::shared_enrollments::SharedEnrollments;
use crate::state::shared::SharedState;
use crate::tokens::AdminTokens;
use crate::witnessing::cosigner::Cosigner;
use crate::witnessing::Witnessing;

/// A built CRL and what it was built from.
pub struct CachedCrl {
    /// The latest revocation entry it reflects (`None`: built before any).
    pub last_revocation: Option<u64>,
    /// When it was built.
    pub built_at: u64,
    /// Its CRL number (RFC 5280 §5.2.3: strictly increasing; see [`crate::ca::crl_number`]).
    pub number: u128,
    /// The [`SharedState::generation`] of the store it was built from: a store that failed a
    /// write may have held part of a batch, so a reopened one builds it again.
    pub state_generation: u64,
    /// Its DER.
    pub der: Vec<u8>,
}

/// What every handler shares.
pub struct AppState {
    /// The transparency log (read side; the sequencer is its only writer).
    pub log: Arc<AsLog>,
    /// The AS state (replaced by a reopened store after a storage fault, [`crate::resync`]).
    pub state: Arc<SharedState>,
    /// The directory: the map, its keys, and the proofs of identities.
    pub directory: Arc<Directory>,
    /// The writer.
    pub sequencer: Sequencer,
    /// The CA.
    pub ca: Ca,
    /// Accepted admin tokens.
    pub admin_tokens: AdminTokens,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Credential lifetime, seconds.
    pub credential_lifetime: u64,
    /// The log's note verifier key, text form.
    pub verifier_key: String,
    /// The latest CRL, rebuilt when revocations change or it gets old.
    pub crl: Mutex<Option<CachedCrl>>,
    /// What new enrollments may name.
    pub identity_policy: IdentityPolicy,
    /// How often one identity may rotate (checked early here, decided by the sequencer).
    pub rotation_budget: RotationBudget,
    /// Deadline for a request body.
    pub body_timeout: std::time::Duration,
    /// Witness cosigning, with a witness policy.
    pub witnessing: Option<Arc<Witnessing>>,
    /// The enrollments every frontend sees, when the log is on PostgreSQL.
    pub shared_enrollments: Option<Arc<SharedEnrollments>>,
    /// The thread that asks the witnesses (stopped when the state is dropped).
    _cosigner: Option<Cosigner>,
    /// The data folder's lock, held for as long as the server runs (see [`setup`]).
    _folder_lock: std::fs::File,
}

/// Opens the log and the state in the data folder, brings the state level with the log, and
/// starts the sequencer.
pub fn open(config: &Config, material: setup::Material) -> Result<AppState, String> {
    let paths = DataPaths::new(&config.data);
    let database_roots = match &config.store {
        StoreChoice::Embedded => rustls::RootCertStore::empty(),
        StoreChoice::Postgres(_) => database_roots(config.store_ca.as_deref())?,
    };
    let store = open_store(&config.store, &paths.file("log"), &database_roots)?;
    let shared_enrollments = match &config.store {
        StoreChoice::Embedded => None,
        StoreChoice::Postgres(url) => Some(Arc::new(
            SharedEnrollments::open(url, database_roots)
                .map_err(|e| format!("enrollments on PostgreSQL: {e}"))?,
        )),
    };
    let log_key = material.log_signer.verifier();
    let verifier_key = log_key.to_vkey();
    let log = Arc::new(Log::open(store, material.log_signer).map_err(|e| format!("log: {e}"))?);
    if log.size() == 0 {
        // A new log starts with the empty map's entry, so that every checkpoint it signs ends
        // in a map entry. On a shared store another frontend may have started it meanwhile.
        match log.append_and_sign(&[empty_map_entry()]) {
            Ok(_) => {}
            Err(LogError::Store(StoreError::Fenced { .. })) => {
                log.refresh()
                    .map_err(|e| format!("reading the log another frontend started: {e}"))?;
            }
            Err(e) => return Err(format!("starting the log: {e}")),
        }
    }
    // A crash between a batch's append and its checkpoint leaves entries no checkpoint covers:
    // cover them now, before the state (and so lookups and proofs) can show them.
    let checkpoint = log
        .sign_checkpoint()
        .map_err(|e| format!("signing a checkpoint over the stored log: {e}"))?;
    let keys = material.directory_keys;
    // The state and the map are each made from the log alone: opened side by side, a start
    // at a million identities waits for the slower of the two (sled's open) rather than for
    // both in turn.
    let snapshots = Arc::new(FileMapStore::new(&paths.file("directory.snapshot")));
    let (state, directory) = std::thread::scope(|scope| {
        let directory = scope.spawn(|| {
            Directory::open(keys.clone(), snapshots, &log, checkpoint)
                .map_err(|e| format!("directory: {e}"))
        });
        let state = crate::recovery::open_state(
            &paths.file("state"),
            &paths.file("enrollments"),
            &log,
            &keys,
        );
        let directory = directory
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (state, directory)
    });
    let (mut state, replayed) = state?;
    state.keep_log(Arc::clone(&log), keys);
    if replayed > 0 {
        tracing::info!(replayed, "state caught up with the log");
    }
    let (directory, replayed) = directory?;
    if replayed > 0 {
        tracing::info!(replayed, "directory map caught up with the log");
    }
    let directory = Arc::new(directory);
    let metrics = Arc::new(Metrics::new());
    metrics.set_log_size(log.size());
    let state = Arc::new(SharedState::new(state));
    if let Some(shared) = &shared_enrollments {
        shared.take_in_announced(Arc::clone(&state));
    }
    let sequencer = Sequencer::start(
        Arc::clone(&log),
        Arc::clone(&state),
        Arc::clone(&directory),
        SequencerConfig {
            queue_capacity: config.queue_capacity,
            max_batch: config.max_batch,
            limits: Limits {
                max_credentials: config.max_credentials,
                rotation_budget: config.rotation_budget,
            },
        },
        Arc::clone(&metrics),
        &config.data,
        config.store != StoreChoice::Embedded,
    )
    .map_err(|e| format!("sequencer thread: {e}"))?;
    let witnessing = match &config.witnessing {
        Some(settings) => Some(Arc::new(Witnessing::open(
            settings,
            &config.data,
            &log,
            log_key,
        )?)),
        None => None,
    };
    let cosigner = match &witnessing {
        Some(w) => Some(
            Cosigner::start(Arc::clone(w), Arc::clone(&directory), Arc::clone(&log))
                .map_err(|e| format!("cosigner thread: {e}"))?,
        ),
        None => None,
    };
    Ok(AppState {
        log,
        state,
        directory,
        sequencer,
        ca: material.ca,
        admin_tokens: material.admin_tokens,
        metrics,
        credential_lifetime: config.credential_lifetime,
        verifier_key,
        crl: Mutex::new(None),
        identity_policy: config.identity_policy.clone(),
        rotation_budget: config.rotation_budget,
        body_timeout: std::time::Duration::from_secs(config.body_timeout),
        witnessing,
        shared_enrollments,
        _cosigner: cosigner,
        _folder_lock: material.folder_lock,
    })
}
