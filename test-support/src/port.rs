//! A free loopback port, for a process that must be told its port before it starts (and keep
//! it across a restart), unlike `as-server`, which takes port 0 and prints what it got.

/// A port on 127.0.0.1 that was free a moment ago (the OS's pick for port 0). Another process
/// could take it before the caller binds it; on loopback in a test that is rare enough.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}
