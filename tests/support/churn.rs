//! Rotations under load, for the framework integrations: clients that run
//! without pause and count every request and failure, while a rotator renames
//! new files into place and waits, with a deadline, until each is served.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::wait::DEADLINE;

/// Clients that send requests one after another until [`Load::stop`].
pub struct Load {
    counts: Arc<Shared>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

/// What the clients of a [`Load`] did.
#[derive(Debug, Clone)]
pub struct Counts {
    pub requests: u64,
    pub failures: u64,
    /// The first failure's text, to show when the test fails.
    pub first_failure: Option<String>,
}

/// Starts `clients` tasks, each calling `request` in a loop: `Ok` counts a
/// request, `Err` a request and a failure.
pub fn load<F, Fut>(clients: usize, request: F) -> Load
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let counts = Arc::new(Shared::default());
    let stop = Arc::new(AtomicBool::new(false));
    let request = Arc::new(request);
    let tasks = (0..clients)
        .map(|client| {
            let (counts, stop, request) = (counts.clone(), stop.clone(), request.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = request(client).await;
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = outcome {
                        counts.failures.fetch_add(1, Ordering::Relaxed);
                        counts.first_failure.lock().unwrap().get_or_insert(e);
                    }
                }
            })
        })
        .collect();
    Load {
        counts,
        stop,
        tasks,
    }
}

impl Load {
    /// The counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            requests: self.counts.requests.load(Ordering::Relaxed),
            failures: self.counts.failures.load(Ordering::Relaxed),
            first_failure: self.counts.first_failure.lock().unwrap().clone(),
        }
    }

    /// Stops the clients after their request in flight and returns the counts.
    pub async fn stop(mut self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            task.await.unwrap();
        }
        self.counts()
    }
}

/// What a run of [`rotate`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Rotated {
    pub rotations: usize,
    /// The longest time from a rename to the new file being served.
    pub slowest: Duration,
}

/// `count` rotations: `write(i)` renames rotation `i`'s files into place and
/// returns the serial that must be served next; then `served()` is polled
/// (each poll a fresh connection) until it reports that serial. Fails the test
/// when one is not served within [`DEADLINE`].
pub async fn rotate<W, S, Fut>(count: usize, mut write: W, mut served: S) -> Rotated
where
    W: FnMut(usize) -> String,
    S: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let want = write(i);
        let start = Instant::now();
        loop {
            if served().await.as_deref() == Some(want.as_str()) {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "rotation {i}: serial {want} not served after {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        slowest = slowest.max(start.elapsed());
    }
    Rotated {
        rotations: count,
        slowest,
    }
}

/// The poll interval of the rotation runs: 50 ms.
pub const ROTATION_POLL: Duration = Duration::from_millis(50);
/// What a rotation may take beyond the poll interval on a loaded 2-core
/// machine, before the test calls it not picked up.
pub const ROTATION_MARGIN: Duration = Duration::from_secs(1);

/// Prints what a run of rotations under load saw, in one line
/// (`NAME: N requests, F failures, R rotations, slowest S ms`), and fails the
/// test unless no request failed, there were at least 200 rotations, each was
/// served within [`ROTATION_POLL`] + [`ROTATION_MARGIN`], and the clients made
/// more requests than there were rotations.
pub fn assert_clean(name: &str, counts: &Counts, rotated: &Rotated) {
    println!(
        "{name}: {} requests, {} failures, {} rotations, slowest {}ms",
        counts.requests,
        counts.failures,
        rotated.rotations,
        rotated.slowest.as_millis()
    );
    assert_eq!(
        counts.failures, 0,
        "first failure: {:?}",
        counts.first_failure
    );
    assert!(rotated.rotations >= 200, "{} rotations", rotated.rotations);
    assert!(
        rotated.slowest < ROTATION_POLL + ROTATION_MARGIN,
        "slowest rotation {:?}",
        rotated.slowest
    );
    assert!(counts.requests > rotated.rotations as u64);
}
