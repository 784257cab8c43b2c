//! The change callback: a thread of the library that calls C after each
//! change of a reloader's status.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use reload::CertificateStatus;
use tokio::sync::{watch, Notify};

use crate::boundary::UserData;
use crate::error::openssl_reload_result::*;
use crate::error::Failure;

/// Called with the new generation after each change of the status (a publish
/// or a failed attempt), on a thread of the library: it must be thread-safe and
/// must not free the reloader it is called for.
// SAFETY: only the signature: C's function, which the library calls with the
// caller's `userdata` and the generation.
pub type openssl_reload_change_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, generation: u64)>;

/// The callback itself, once checked for NULL.
// SAFETY: only the signature, as `openssl_reload_change_callback`'s.
type Callback = unsafe extern "C" fn(*mut c_void, u64);

/// A thread that calls a change callback until told to stop.
pub(crate) struct Watcher {
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    id: ThreadId,
    /// The process the thread runs in: a child made by `fork` has a copy of
    /// the watcher, not the thread.
    pid: u32,
}

impl Watcher {
    /// Starts the thread that calls `callback` with `userdata`, which the
    /// setter's contract keeps valid and thread-safe until the watcher stops.
    pub(crate) fn start(
        mut changes: watch::Receiver<CertificateStatus>,
        callback: Callback,
        userdata: *mut c_void,
    ) -> Result<Self, Failure> {
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let userdata = UserData::new(userdata);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| thread_failure("runtime", &e))?;
        changes.mark_unchanged();
        let thread = thread::Builder::new()
            .name("openssl-reload-change".into())
            .spawn(move || runtime.block_on(call_on_change(changes, &stopped, callback, &userdata)))
            .map_err(|e| thread_failure("thread", &e))?;
        let id = thread.thread().id();
        Ok(Self {
            stop,
            thread: Some(thread),
            id,
            pid: std::process::id(),
        })
    }
}

fn thread_failure(what: &str, error: &std::io::Error) -> Failure {
    Failure::new(
        OPENSSL_RELOAD_THREAD,
        format!("start the change callback's {what}: {error}"),
    )
}

/// Calls `callback` after each change, until the reloader is gone or `stop`
/// is notified.
async fn call_on_change(
    mut changes: watch::Receiver<CertificateStatus>,
    stop: &Notify,
    callback: Callback,
    userdata: &UserData,
) {
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let generation = changes.borrow_and_update().generation;
                // A panic cannot come out of C; a C callback that unwinds is
                // the caller's bug.
                // SAFETY: the callback's contract, which `Watcher::start`'s
                // caller keeps: valid and thread-safe, `userdata` included.
                unsafe { callback(userdata.get(), generation) };
            }
            () = stop.notified() => return,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A fork's copy: the thread is the parent's; joining it would
            // wait for ever, and its lock may have been held at the fork.
            std::mem::forget(self.thread.take());
            return;
        }
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            // From the callback itself (against the rule) the thread is left to
            // end on its own rather than joined into a deadlock.
            if thread::current().id() != self.id {
                let _ = thread.join();
            }
        }
    }
}

/// A handle's change callback slot.
pub(crate) type WatcherSlot = Mutex<Option<Watcher>>;
