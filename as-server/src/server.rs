//! The HTTPS service: its middleware, and `serve`, which opens the application state
//! ([`crate::app`]) and runs the routes over it.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, App, HttpServer};

use crate::app::{self, AppState};
use crate::config::Config;
use crate::metrics::MethodLabel;
use crate::routes;
use crate::setup;
use crate::tls;

/// Records every answer in the metrics, by route pattern and method label, and logs it at
/// debug level. actix accepts any token as a method (30 KB ones too): a method the API does
/// not use is replaced here by [`OTHER_METHOD`] before anything else sees it, so that the
/// route's own 405 problem document (with its `Allow`) answers it, no handler runs, and
/// neither the metrics nor the log ever hold the client's token: the label set stays fixed
/// ([`MethodLabel`]).
async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = MethodLabel::of(req.method());
    if method == MethodLabel::Other {
        req.head_mut().method = OTHER_METHOD.clone();
    }
    let app = req.app_data::<web::Data<AppState>>().cloned();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(app) = app {
        app.metrics.record_request(&route, method, status, seconds);
    }
    let method = method.as_str();
    tracing::debug!(%method, %route, status, micros = (seconds * 1e6) as u64, "request");
    Ok(response)
}

/// What a method the API does not use becomes: a token no route accepts.
static OTHER_METHOD: std::sync::LazyLock<actix_web::http::Method> =
    std::sync::LazyLock::new(|| {
        actix_web::http::Method::from_bytes(b"OTHER").unwrap_or(actix_web::http::Method::TRACE)
    });

/// Each worker's share of `total` connections (`total` is at least `workers`, so the shares
/// add up to at most `total`).
fn per_worker(total: usize, workers: usize) -> usize {
    (total / workers.max(1)).max(1)
}

/// Runs the service until it is stopped. Prints `listening: https://<addr>` on stdout once
/// bound (and a newly created admin token before that).
pub async fn serve(config: Config) -> Result<(), String> {
    let material = setup::load_or_create(&config)?;
    let tls_config = tls::server_config(&material.tls_files.0, &material.tls_files.1)?;
    tls::warn_if_expiring(&material.tls_files.0);
    if let Some(token) = &material.new_admin_token {
        println!("admin-token: {token}");
        println!("(shown once; only its hash is stored — keep it safe)");
    } else if material.admin_token_written {
        if let Some(out) = &config.admin_token_out {
            tracing::info!(file = %out.display(), "new admin token written (mode 0600)");
        }
    }
    let app = web::Data::new(app::open(&config, material)?);
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    if config.max_connections < workers {
        return Err(format!(
            "max_connections ({}) must be at least the number of workers ({workers}): each \
             worker takes its share",
            config.max_connections
        ));
    }
    tracing::info!(origin = %app.log.origin(), size = app.log.size(), "log open");
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            .wrap(actix_web::middleware::from_fn(observe))
            // Outermost, so that the answer holds the request body until it is sent.
            .wrap(actix_web::middleware::from_fn(
                crate::unread_body::close_if_unread,
            ))
            .configure(routes::configure)
    })
    // Connections are bounded (all workers together; more wait in the accept backlog, so the
    // process never runs out of file descriptors), and so is the time a client may take for its
    // head (actix's request timeout) and body (`body_timeout`, in the handlers).
    .max_connections(per_worker(config.max_connections, workers))
    .client_request_timeout(std::time::Duration::from_secs(config.body_timeout))
    .workers(workers)
    .bind_rustls_0_23(config.listen.as_str(), tls_config)
    .map_err(|e| format!("listen on {}: {e}", config.listen))?;
    for addr in server.addrs() {
        println!("listening: https://{addr}");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    server.run().await.map_err(|e| e.to_string())
}
