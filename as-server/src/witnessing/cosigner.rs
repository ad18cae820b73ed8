//! The thread that asks the witnesses to cosign each new published checkpoint, once per
//! cadence, until the server stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Witnessing;
use crate::as_log::AsLog;
use crate::directory::Directory;

/// How often the thread looks at the stop flag while it waits.
const TICK: Duration = Duration::from_millis(20);

/// The running cosigner; stops its thread when dropped.
pub struct Cosigner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cosigner {
    /// Starts the thread: every cadence, if the directory has published a checkpoint newer
    /// than the cosigned one, one round ([`Witnessing::cosign`]).
    pub fn start(
        witnessing: Arc<Witnessing>,
        directory: Arc<Directory>,
        log: Arc<AsLog>,
    ) -> std::io::Result<Cosigner> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cosigner".into())
            .spawn(move || {
                let mut next = Instant::now() + witnessing.cadence();
                while !stopping.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep(TICK.min(next - now));
                        continue;
                    }
                    next = now + witnessing.cadence();
                    let checkpoint = Arc::clone(&directory.read().checkpoint);
                    let served = witnessing.cosigned().map_or(0, |c| c.size);
                    if checkpoint.checkpoint.size > served {
                        witnessing.cosign(&checkpoint, &log);
                    }
                }
            })?;
        Ok(Cosigner {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Cosigner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
