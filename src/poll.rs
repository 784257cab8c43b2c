//! The poller: file fingerprints and the thread that compares them every interval.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What identifies the version of a file that a path resolves to (symlinks followed).
///
/// Compared with `!=`, never "newer than": a restore from backup, `cp -p`, `tar x` or
/// `rsync -t` installs a file with an *older* mtime, and a rewrite within the same
/// timestamp tick keeps the mtime. The inode catches rename-over and Kubernetes'
/// `..data` symlink swap; ctime catches in-place rewrites that restore the mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fingerprint {
    File {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
    /// The path could not be resolved; the error kind tells "gone" from "forbidden".
    Unavailable(io::ErrorKind),
}

impl Fingerprint {
    /// One `stat(2)` of `path`; no file is opened or read.
    pub(crate) fn of(path: &Path) -> Self {
        match std::fs::metadata(path) {
            Ok(meta) => Self::File {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            },
            Err(e) => Self::Unavailable(e.kind()),
        }
    }
}

impl Fingerprint {
    /// Whether the file's mtime or ctime is less than `window` old (or in the
    /// future): a write within the same timestamp tick may then still come
    /// without changing the fingerprint.
    pub(crate) fn changed_within(&self, window: Duration) -> bool {
        let Self::File { mtime, ctime, .. } = self else {
            return false;
        };
        let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let now = now.as_secs_f64();
        let window = window.as_secs_f64();
        [mtime, ctime]
            .iter()
            .any(|(secs, nanos)| now - (*secs as f64 + *nanos as f64 * 1e-9) < window)
    }
}

/// A plain thread that calls `tick` every interval until dropped.
///
/// No async runtime is needed, so blocking servers can use the crate as well.
/// Dropping the `Poller` returns at once whatever the interval: an idle thread is
/// woken and joined (it only has to return); a thread in the middle of a tick,
/// which may be stuck reading a hung mount, is told to stop and left to finish
/// that tick on its own, so `drop` never waits for file I/O.
///
/// A `Poller` dropped in a child process (a copy made by `fork(2)`, which does
/// not copy the thread) leaves the copy alone: its thread does not exist there,
/// so there is nothing to wake or join, and its lock may have been taken by
/// that thread when the process forked.
#[derive(Debug)]
pub(crate) struct Poller {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The process the thread runs in.
    pid: u32,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Phase>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Phase {
    stop: bool,
    ticking: bool,
    /// Tests ask for a tick now, whatever the interval.
    #[cfg(test)]
    tick_now: bool,
}

impl Poller {
    pub(crate) fn spawn<F>(interval: Duration, tick: F) -> io::Result<Self>
    where
        F: Fn() + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("openssl-reload-poll".to_owned())
            .spawn(move || run(&thread_shared, interval, &tick))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            pid: std::process::id(),
        })
    }

    /// The process the thread runs in: the one that spawned it.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Makes the thread tick now (tests only).
    #[cfg(test)]
    fn tick_now(&self) {
        self.shared.lock().tick_now = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run(shared: &Shared, interval: Duration, tick: &dyn Fn()) {
    let mut panics = 0_u64;
    loop {
        {
            let mut phase = shared.lock();
            // `None`: an interval too long to represent; only a stop ends the wait.
            let deadline = Instant::now().checked_add(interval);
            loop {
                if phase.stop {
                    return;
                }
                #[cfg(test)]
                if std::mem::take(&mut phase.tick_now) {
                    break;
                }
                let now = Instant::now();
                phase = match deadline {
                    Some(deadline) if now >= deadline => break,
                    Some(deadline) => {
                        shared
                            .wake
                            .wait_timeout(phase, deadline - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared
                        .wake
                        .wait(phase)
                        .unwrap_or_else(PoisonError::into_inner),
                };
            }
            phase.ticking = true;
        }
        // Anything that panics in a tick (a tracing layer, a dependency) is caught
        // here, so the poller goes on; the first panic is logged, later ones are
        // counted at debug level.
        // A tick hashes and parses with OpenSSL, which a key provider that is
        // not thread-safe (tpm2) may serve: it takes its turn with handshakes.
        let turn = crate::hardware_key_lock();
        let ticked = panic::catch_unwind(AssertUnwindSafe(tick));
        drop(turn);
        if let Err(payload) = ticked {
            panics += 1;
            let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                let message = crate::common::panic_message(&*payload);
                if panics == 1 {
                    tracing::error!(%message, "a poller tick panicked; polling goes on");
                } else {
                    tracing::debug!(%message, panics, "a poller tick panicked again");
                }
            }));
        }
        shared.lock().ticking = false;
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A fork's copy: joining a thread of the parent would wait for ever.
            std::mem::forget(self.thread.take());
            return;
        }
        let ticking = {
            let mut phase = self.shared.lock();
            phase.stop = true;
            phase.ticking
        };
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A reload callback that drops the last handle runs on the poller
            // thread itself; joining there would wait forever. A thread in a tick
            // sees the stop when the tick ends.
            if !ticking && thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Instant, SystemTime};

    fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    #[test]
    fn fingerprint_sees_older_mtime_and_same_size_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"aaaa").unwrap();
        let first = Fingerprint::of(&path);
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        set_mtime(&path, old);
        let older = Fingerprint::of(&path);
        assert_ne!(first, older, "an older mtime is a change");
        // Same size, same (restored) mtime: only ctime differs.
        fs::write(&path, b"bbbb").unwrap();
        set_mtime(&path, old);
        assert_ne!(older, Fingerprint::of(&path), "ctime catches the rewrite");
    }

    #[test]
    fn fingerprint_of_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Fingerprint::of(&dir.path().join("nope")),
            Fingerprint::Unavailable(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn poller_ticks_and_stops_on_drop() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        let poller = Poller::spawn(Duration::from_millis(5), move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "poller did not tick");
            thread::sleep(Duration::from_millis(1));
        }
        drop(poller);
        let after = count.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(30));
        assert_eq!(after, count.load(Ordering::SeqCst), "no tick after drop");
    }

    /// Drop returns at once with an hour's interval, idle or in the middle of a tick.
    #[test]
    fn drop_returns_at_once_whatever_the_interval() {
        let idle = Poller::spawn(Duration::from_secs(3600), || {}).unwrap();
        let start = Instant::now();
        drop(idle);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "idle drop took {:?}",
            start.elapsed()
        );

        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let busy = Poller::spawn(Duration::from_secs(3600), move || {
            let _ = started_tx.send(());
            // A tick stuck for up to 10 s, as on a hung mount.
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
        })
        .unwrap();
        busy.tick_now();
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the tick started");
        let start = Instant::now();
        drop(busy);
        let took = start.elapsed();
        let _ = release.send(());
        assert!(
            took < Duration::from_millis(100),
            "drop during a tick took {took:?}"
        );
    }

    /// A fork's copy of a poller (another process's) is dropped without waiting
    /// for its thread, which does not exist in the child, or taking its lock.
    #[test]
    fn a_copy_from_another_process_is_dropped_without_joining() {
        let mut poller = Poller::spawn(Duration::from_secs(3600), || {}).unwrap();
        let shared = Arc::clone(&poller.shared);
        poller.pid = std::process::id().wrapping_add(1);
        let held = shared.lock();
        let start = Instant::now();
        drop(poller);
        assert!(start.elapsed() < Duration::from_millis(100));
        drop(held);
        // The thread, alive here, ends as a stopped poller's does.
        shared.lock().stop = true;
        shared.wake.notify_all();
    }

    /// A panicking tick does not end the poller.
    #[test]
    fn a_panicking_tick_is_caught_and_polling_goes_on() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        let poller = Poller::spawn(Duration::from_millis(2), move || {
            if c.fetch_add(1, Ordering::SeqCst) < 3 {
                panic!("tick panics");
            }
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < 6 {
            assert!(
                Instant::now() < deadline,
                "poller stopped after {} ticks",
                count.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(1));
        }
        drop(poller);
    }
}
