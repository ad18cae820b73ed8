//! The HTTPS service: shared application state, middleware, and `serve`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpServer};
use kt_log::log::Log;
use kt_log::store::FileStore;

use crate::ca::Ca;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes;
use crate::sequencer::{AsLog, Sequencer, SequencerConfig};
use crate::setup::{self, DataPaths};
use crate::state::State;
use crate::tls;
use crate::tokens::AdminTokens;

/// A built CRL and what it was built from.
pub struct CachedCrl {
    /// How many revocations it lists.
    pub revocations: usize,
    /// When it was built.
    pub built_at: u64,
    /// Its CRL number (RFC 5280 §5.2.3: strictly increasing).
    pub number: u64,
    /// Its DER.
    pub der: Vec<u8>,
}

/// What every handler shares.
pub struct AppState {
    /// The transparency log (read side; the sequencer is its only writer).
    pub log: Arc<AsLog>,
    /// The AS state.
    pub state: State,
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
}

/// Opens the log and the state in the data folder, brings the state level with the log, and
/// starts the sequencer.
pub fn open(config: &Config, material: setup::Material) -> Result<AppState, String> {
    let paths = DataPaths::new(&config.data);
    let store = FileStore::open(paths.file("log")).map_err(|e| format!("log store: {e}"))?;
    let verifier_key = material.log_signer.verifier().to_vkey();
    let log = Arc::new(Log::open(store, material.log_signer).map_err(|e| format!("log: {e}"))?);
    // A crash between a batch's append and its checkpoint leaves entries no checkpoint covers:
    // cover them now, before the state (and so lookups and proofs) can show them.
    log.sign_checkpoint()
        .map_err(|e| format!("signing a checkpoint over the stored log: {e}"))?;
    let state = State::open(&paths.file("state")).map_err(|e| e.to_string())?;
    let replayed = state
        .catch_up(log.size(), |i| log.entry(i).map_err(|e| e.to_string()))
        .map_err(|e| e.to_string())?;
    if replayed > 0 {
        tracing::info!(replayed, "state caught up with the log");
    }
    let metrics = Arc::new(Metrics::new());
    metrics.set_log_size(log.size());
    let sequencer = Sequencer::start(
        Arc::clone(&log),
        state.clone(),
        SequencerConfig {
            queue_capacity: config.queue_capacity,
            max_batch: config.max_batch,
            max_credentials: config.max_credentials,
        },
        Arc::clone(&metrics),
    )
    .map_err(|e| format!("sequencer thread: {e}"))?;
    Ok(AppState {
        log,
        state,
        sequencer,
        ca: material.ca,
        admin_tokens: material.admin_tokens,
        metrics,
        credential_lifetime: config.credential_lifetime,
        verifier_key,
        crl: Mutex::new(None),
    })
}

/// Records every answer in the metrics, by route pattern, and logs it at debug level.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let app = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(app) = app {
        app.metrics.record_request(&route, &method, status, seconds);
    }
    tracing::debug!(%method, %route, status, micros = (seconds * 1e6) as u64, "request");
    Ok(response)
}

/// Runs the service until it is stopped. Prints `listening: https://<addr>` on stdout once
/// bound (and a newly created admin token before that).
pub async fn serve(config: Config) -> Result<(), String> {
    let material = setup::load_or_create(&config)?;
    let tls_config = tls::server_config(&material.tls_files.0, &material.tls_files.1)?;
    if let Some(token) = &material.new_admin_token {
        println!("admin-token: {token}");
        println!("(shown once; only its hash is stored — keep it safe)");
    } else if material.admin_token_written {
        if let Some(out) = &config.admin_token_out {
            tracing::info!(file = %out.display(), "new admin token written (mode 0600)");
        }
    }
    let app = web::Data::new(open(&config, material)?);
    tracing::info!(origin = %app.log.origin(), size = app.log.size(), "log open");
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            .wrap(actix_web::middleware::from_fn(observe))
            .configure(routes::configure)
    })
    .bind_rustls_0_23(config.listen.as_str(), tls_config)
    .map_err(|e| format!("listen on {}: {e}", config.listen))?;
    if let Some(workers) = config.workers {
        server = server.workers(workers.max(1));
    }
    for addr in server.addrs() {
        println!("listening: https://{addr}");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    server.run().await.map_err(|e| e.to_string())
}
