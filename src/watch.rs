//! The poller: file fingerprints and the thread that compares them every interval.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

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

/// A plain thread that calls `tick` every interval until dropped.
///
/// No async runtime is needed, so blocking servers can use the crate as well. Dropping
/// the `Poller` wakes the thread, which exits after the tick in progress, and joins it.
#[derive(Debug)]
pub(crate) struct Poller {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub(crate) fn spawn<F>(interval: Duration, tick: F) -> io::Result<Self>
    where
        F: Fn() + Send + 'static,
    {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("openssl-reload-poll".to_owned())
            .spawn(move || {
                let (lock, cvar) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    // wait_timeout returns early on a stop or a spurious wake-up;
                    // either way checking again costs one stat per file.
                    stopped = cvar
                        .wait_timeout(stopped, interval)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    tick();
                    stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            // A reload callback that drops the last handle runs on the poller
            // thread itself; joining there would wait forever.
            if thread.thread().id() != thread::current().id() {
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

    #[test]
    fn fingerprint_sees_older_mtime_and_same_size_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"aaaa").unwrap();
        let first = Fingerprint::of(&path);
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let older = Fingerprint::of(&path);
        assert_ne!(first, older, "an older mtime is a change");
        // Same size, same (restored) mtime: only ctime differs.
        fs::write(&path, b"bbbb").unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
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
}
