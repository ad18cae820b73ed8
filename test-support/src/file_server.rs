//! A static file server for tests that need a log's tiles served over HTTP from a folder
//! (a mirror, a forged log), without an AS behind them.

/// A minimal HTTP/1.1 server of the files under a folder (GET only, one request per
/// connection; paths with `..` are 404), stopped when dropped: a log's static tiles, or a
/// mirror's.
pub struct FileServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl FileServer {
    /// Serves `root` on a free loopback port.
    pub fn start(root: &std::path::Path) -> FileServer {
        Self::start_on(root, 0)
    }

    /// On a given port (0: any), so that a stopped server can come back at the same URL.
    pub fn start_on(root: &std::path::Path, port: u16) -> FileServer {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot listen on port {port}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (root, flag) = (root.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let mut reader = BufReader::new(clone);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or_default();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let file = root.join(path.trim_start_matches('/'));
                let mut stream = stream;
                let _ = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        stream
                            .write_all(head.as_bytes())
                            .and_then(|()| stream.write_all(&body))
                    }
                    _ => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    ),
                };
            }
        });
        FileServer {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            thread: Some(thread),
            port,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
