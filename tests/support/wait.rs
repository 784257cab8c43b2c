//! Deadline loops: wait for something that should happen within a poll interval
//! or two, and fail the test with what was last seen when it does not.

use std::future::Future;
use std::time::{Duration, Instant};

use openssl_reload::{CertificateStatus, ReloadingAcceptor};

/// A poll interval short enough for tests, as the design intends.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// How long a test waits for something that should happen within an interval or two.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How long a loop sleeps between two looks.
const STEP: Duration = Duration::from_millis(5);

/// Polls `check` until it returns `Some`, failing the test after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(STEP).await;
    }
}

/// Polls `tls.status()` until `done` holds, failing the test (naming `what` and the
/// last status) after [`DEADLINE`].
pub async fn wait_status(
    tls: &ReloadingAcceptor,
    what: &str,
    done: impl Fn(&CertificateStatus) -> bool,
) -> CertificateStatus {
    let start = Instant::now();
    loop {
        let status = tls.status();
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: timed out; status is {status:#?}"
        );
        tokio::time::sleep(STEP).await;
    }
}
