//! `kt-witness`: runs the C2SP tlog-witness over HTTPS (or plain HTTP behind a proxy).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kt_witness::config::Config;
use kt_witness::evidence::Evidence;
use kt_witness::http::{configure, AppState};
use kt_witness::metrics::Metrics;
use kt_witness::witness::Witness;

/// A C2SP tlog-witness: cosigns checkpoints of the configured logs that are consistent with
/// everything it cosigned before.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves add-checkpoint, the monitoring GET, /healthz and /metrics.
    Serve(ServeArgs),
    /// Re-checks an evidence file against the log keys of the configuration (exit 0: the
    /// file shows what it says; 1: it does not).
    CheckEvidence {
        /// The configuration file (its log keys are used).
        #[arg(long, env = "WITNESS_CONFIG")]
        config: PathBuf,
        /// The evidence file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file: the witness name and the logs (TOML).
    #[arg(long, env = "WITNESS_CONFIG")]
    config: PathBuf,
    /// The data folder: key, state, evidence, TLS certificate.
    #[arg(long, env = "WITNESS_DATA", default_value = "witness-data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "WITNESS_LISTEN", default_value = "127.0.0.1:7380")]
    listen: String,
    /// Serve plain HTTP (behind a TLS-terminating proxy) instead of HTTPS.
    #[arg(long, env = "WITNESS_PLAIN_HTTP")]
    plain_http: bool,
    /// TLS certificate chain (PEM); default: a self-signed one in the data folder.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Extra DNS names or addresses of the generated certificate.
    #[arg(long)]
    tls_name: Vec<String>,
    /// HTTP worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::CheckEvidence { config, file } => check_evidence(&config, &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kt-witness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_evidence(config: &std::path::Path, file: &std::path::Path) -> Result<(), String> {
    let config = Config::load(config)?;
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let evidence = Evidence::parse(&bytes)?;
    let keys = config
        .logs
        .iter()
        .find(|l| l.origin == evidence.origin)
        .map(|l| l.keys.clone())
        .ok_or_else(|| format!("origin {:?} is not in the configuration", evidence.origin))?;
    let finding = evidence.check(&keys)?;
    println!("{}: {finding:?}", evidence.origin);
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = Config::load(&args.config)?;
    let witness = Witness::open(&config, &args.data)?;
    // The one line a log operator needs: this witness's public key.
    println!("witness-key: {}", witness.verifier_key());
    tracing::info!(
        name = witness.name(),
        logs = witness.log_count(),
        listen = %args.listen,
        "kt-witness starting"
    );
    let tls = if args.plain_http {
        None
    } else {
        let (cert, key) = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => {
                let (cert, key) = (
                    args.data.join("tls-cert.pem"),
                    args.data.join("tls-key.pem"),
                );
                if !cert.exists() || !key.exists() {
                    kt_witness::tls::generate_self_signed(&args.tls_name, &cert, &key)?;
                }
                (cert, key)
            }
        };
        Some(kt_witness::tls::server_config(&cert, &key)?)
    };
    let state = Arc::new(AppState {
        witness,
        metrics: Metrics::new(),
    });
    let runtime = actix_web::rt::System::new();
    runtime
        .block_on(async move {
            let mut server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure(state.clone()))
            });
            if let Some(workers) = args.workers {
                server = server.workers(workers);
            }
            let server = match tls {
                Some(tls) => server.bind_rustls_0_23(args.listen.as_str(), tls)?,
                None => server.bind(args.listen.as_str())?,
            };
            server.run().await
        })
        .map_err(|e| format!("server: {e}"))
}
