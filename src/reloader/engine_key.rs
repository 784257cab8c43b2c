//! The engine's hardware key: probed every tick, opened again when it is
//! lost (`material/hardware/held.rs`), and reported in the status.

use super::Engine;
use crate::material::{key_status, needs_open};

impl<T> Engine<T> {
    /// Whether the hardware key in service must be opened again now: lost in
    /// an outage, opened before a fork, or never opened. Never true without one.
    pub(super) fn key_due(&self) -> bool {
        let uri = self.lock_poll_state().key_uri.clone();
        let Some(uri) = uri else {
            return false;
        };
        let interval = self.status.borrow().poll_interval;
        let due = needs_open(&uri, interval);
        self.note_key();
        due
    }

    /// Copies the hardware key's record into the status, if it changed.
    pub(super) fn note_key(&self) {
        let uri = self.lock_poll_state().key_uri.clone();
        let key = uri.as_ref().and_then(key_status);
        self.status.send_if_modified(|s| {
            let changed = s.key != key;
            s.key = key;
            changed
        });
    }
}
