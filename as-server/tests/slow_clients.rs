//! Clients that send a request head and then stall or trickle the body: each gets 408 at the
//! body deadline, open connections stay within the configured bound (so the process never runs
//! out of file descriptors), and other clients are served meanwhile. Before, every such
//! connection was held for ever: with a 256-descriptor limit, 229 of them stopped `/healthz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::{parse_answer, raw_tls, Server};

const STALLERS: usize = 48;
const MAX_CONNECTIONS: usize = 16;
const HEAD: &str = "POST /v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";

/// Sends the head and one byte of body, then every `trickle` one more byte (or nothing, if
/// `None`), until the server answers; returns the answer's status and body.
fn stall(base: String, cert: std::path::PathBuf, trickle: Option<Duration>) -> (u16, Vec<u8>) {
    let mut stream = raw_tls(&base, &cert);
    stream.write_all(HEAD.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    match trickle {
        None => {
            let _ = stream.read_to_end(&mut answer);
        }
        Some(every) => {
            stream.sock.set_read_timeout(Some(every)).unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if !answer.is_empty()
                            || stream
                                .write_all(b" ")
                                .and_then(|()| stream.flush())
                                .is_err()
                        {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    parse_answer(&answer)
}

#[test]
fn stalled_bodies_get_408_within_a_bounded_number_of_connections() {
    let server = Server::start_with(&[
        "--workers",
        "1",
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
        "--body-timeout",
        "2",
    ]);
    assert_eq!(server.get("/healthz").status, 200);
    let baseline = server.open_fds();
    let cert = server.data.join("tls-cert.pem");
    let started = Instant::now();
    let mut clients: Vec<_> = (0..STALLERS)
        .map(|i| {
            let (base, cert) = (server.base.clone(), cert.clone());
            // One in eight trickles a byte every 300 ms instead of stalling.
            let trickle = (i % 8 == 0).then_some(Duration::from_millis(300));
            std::thread::spawn(move || stall(base, cert, trickle))
        })
        .collect();

    // While they stall: the connection bound holds, and another client is served.
    std::thread::sleep(Duration::from_millis(500));
    let mut most = 0;
    let health = {
        let base = server.base.clone();
        let client =
            as_server::admin_client::HttpsClient::new(&base, &std::fs::read(&cert).unwrap())
                .unwrap();
        std::thread::spawn(move || {
            let asked = Instant::now();
            (client.get("/healthz").unwrap().status, asked.elapsed())
        })
    };
    while started.elapsed() < Duration::from_secs(4) {
        most = most.max(server.open_fds());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most <= baseline + MAX_CONNECTIONS + 2,
        "{most} descriptors open, {baseline} before {STALLERS} stalled clients, bound {MAX_CONNECTIONS}"
    );
    let (status, waited) = health.join().unwrap();
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(30), "/healthz took {waited:?}");

    // Every stalled client got its 408 problem document.
    for client in clients.drain(..) {
        let (status, body) = client.join().unwrap();
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            problem["type"],
            "https://kt-as.dev/problems/request-timeout"
        );
    }
    // Nothing was logged, and the server serves as before.
    assert_eq!(server.changes(), 0);
    assert_eq!(server.get("/healthz").status, 200);
}

/// Sends `head` (chunked), then a one-byte chunk every 300 ms for up to 15 s, reading what
/// comes back; returns the answer's status, when it came, and when the server closed.
fn trickle_chunks(
    base: String,
    cert: std::path::PathBuf,
    head: &'static str,
) -> (u16, Duration, Option<Duration>) {
    let started = Instant::now();
    let mut stream = raw_tls(&base, &cert);
    stream.write_all(head.as_bytes()).unwrap();
    stream.flush().unwrap();
    stream
        .sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let (mut answer, mut answered, mut buf) = (Vec::new(), None, [0u8; 4096]);
    while started.elapsed() < Duration::from_secs(15) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                answered.get_or_insert(started.elapsed());
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if stream
                    .write_all(b"1\r\n \r\n")
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let closed = (started.elapsed() < Duration::from_secs(15)).then(|| started.elapsed());
    let answered = answered.unwrap_or_else(|| panic!("no answer: {answer:?}"));
    (parse_answer(&answer).0, answered, closed)
}

/// A chunked body trickled one byte at a time: the answer (408 at the deadline, or at once
/// where no body is wanted) is followed by closing the connection, not by draining the body
/// for as long as the client likes.
#[test]
fn chunked_trickles_are_answered_and_cut() {
    let server = Server::start_with(&[
        "--workers",
        "1",
        "--max-connections",
        "4",
        "--body-timeout",
        "2",
    ]);
    let cert = server.data.join("tls-cert.pem");
    const POST: &str = "POST /v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n";
    const GET: &str =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n \r\n";
    let clients: Vec<_> = [POST, POST, GET, GET]
        .into_iter()
        .map(|head| {
            let (base, cert) = (server.base.clone(), cert.clone());
            std::thread::spawn(move || trickle_chunks(base, cert, head))
        })
        .collect();
    // All four connection slots are taken by tricklers; another client is served once they
    // are cut.
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    assert_eq!(server.get("/healthz").status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    for (i, client) in clients.into_iter().enumerate() {
        let (status, answered, closed) = client.join().unwrap();
        assert_eq!(status, if i < 2 { 408 } else { 200 }, "client {i}");
        let closed = closed.unwrap_or_else(|| panic!("client {i}: still open after 15 s"));
        assert!(
            closed - answered < Duration::from_secs(3),
            "client {i}: answered at {answered:?}, closed at {closed:?}"
        );
    }
}
