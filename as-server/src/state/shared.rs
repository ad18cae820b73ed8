//! The state store the server runs on, which the sequencer replaces by a reopened one after a
//! storage fault ([`crate::resync`]): sled takes no write after one failed until it is
//! reopened, and it holds a lock on its files, so the failed store must be closed (every clone
//! of it dropped) before the same folder can be opened again.
//!
//! Guarantee: [`SharedState::get`] gives the current store, or, only while a reopened one is
//! being opened and brought level with the log (after the disk took writes again), a
//! `storage-unavailable` refusal, never a store that is half open or behind what the map
//! shows. Each replacement counts one [`SharedState::generation`], so that what was derived
//! from a replaced store (the CRL) is derived again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::State;
use crate::refusal::Refusal;

/// The current state store; see the module documentation.
pub struct SharedState {
    current: RwLock<Option<State>>,
    generation: AtomicU64,
}

impl SharedState {
    /// Runs on `state`.
    pub fn new(state: State) -> SharedState {
        SharedState {
            current: RwLock::new(Some(state)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current store (a cheap clone; drop it when done, since a reopen waits for every
    /// clone of the store it replaces), or a refusal while it is being reopened.
    pub fn get(&self) -> Result<State, Refusal> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                Refusal::storage_unavailable(
                    "the state store is being reopened after a storage fault",
                    1,
                )
            })
    }

    /// How many times the store was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Takes the store out to reopen it: [`SharedState::get`] refuses until
    /// [`SharedState::put`].
    pub fn take(&self) -> Option<State> {
        self.current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Puts a (reopened) store in place.
    pub fn put(&self, state: State) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(state);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
