//! A light HTTPS/1.1 keep-alive client for the load generator: every connection is a task on
//! one tokio thread (rustls over a TCP stream, requests written whole, answers read by their
//! `Content-Length`). A blocking client with a thread per connection cost as much CPU per
//! request as the server's own work, which on two shared cores measured the client, not the
//! server. It only speaks to our own server: no chunked answers, no redirects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// One request: method, path, body.
pub(crate) struct Request {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
    /// The `Accept` header, if any.
    pub(crate) accept: Option<&'static str>,
}

/// Where to connect and whom to trust.
pub(crate) struct Target {
    address: String,
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    /// `base` is `https://host:port`; `ca_pem` the server's certificate.
    pub(crate) fn new(base: &str, ca_pem: &[u8]) -> Target {
        let address = base.trim_start_matches("https://").trim_end_matches('/');
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Target {
            address: address.to_owned(),
            name: ServerName::try_from(host.to_owned()).unwrap(),
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        Ok(Connection {
            stream,
            host: self.address.clone(),
            buffer: Vec::with_capacity(16 * 1024),
        })
    }
}

struct Connection {
    stream: TlsStream<TcpStream>,
    host: String,
    /// Bytes read past the previous answer (none, as requests are not pipelined).
    buffer: Vec<u8>,
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl Connection {
    /// Sends `request` and reads the whole answer; returns its status.
    async fn send(&mut self, request: &Request) -> std::io::Result<u16> {
        let accept = request
            .accept
            .map(|accept| format!("Accept: {accept}\r\n"))
            .unwrap_or_default();
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n{accept}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            request.method,
            request.path,
            self.host,
            request.body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&request.body);
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;

        let header_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..header_end]).map_err(|_| invalid("head"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("status line"))?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| invalid("no Content-Length"))?;
        while self.buffer.len() < header_end + length {
            self.fill().await?;
        }
        self.buffer.drain(..header_end + length);
        Ok(status)
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(invalid("connection closed"));
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// Sends every request over `clients` connections, spread evenly over `targets` (each takes
/// the next unsent request when its previous answer is in). Returns (elapsed, the latency of each answer with status
/// `expected`, errors): other statuses, failed connections, and requests never sent because
/// every connection failed all count as errors, so `latencies.len()` is what succeeded.
/// Connections are opened before the clock starts.
pub(crate) fn run(
    targets: Vec<Target>,
    clients: usize,
    requests: Vec<Request>,
    expected: u16,
) -> (Duration, Vec<Duration>, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut connections = Vec::with_capacity(clients);
        for i in 0..clients {
            connections.push(targets[i % targets.len()].connect().await.unwrap());
        }
        let total = requests.len();
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = connections
            .into_iter()
            .map(|mut connection| {
                let (requests, next) = (Arc::clone(&requests), Arc::clone(&next));
                tokio::task::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let sent = Instant::now();
                        match connection.send(request).await {
                            Ok(status) if status == expected => latencies.push(sent.elapsed()),
                            Ok(_) => errors += 1,
                            Err(_) => {
                                // The connection is gone; the others take the rest.
                                errors += 1;
                                break;
                            }
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (l, e) = task.await.unwrap();
            latencies.extend(l);
            errors += e;
        }
        let elapsed = started.elapsed();
        let unsent = total.saturating_sub(latencies.len() + errors);
        (elapsed, latencies, errors + unsent)
    })
}
