//! Graceful shutdown: stop accepting, then let the connections still open
//! finish their requests, for at most `--shutdown-grace`.

use std::convert::Infallible;
use std::time::Duration;

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::metrics::Stats;
use crate::timefmt::human_duration;

/// The first step of a graceful shutdown: tells every task that it has begun
/// and waits for the accept loops to end, which closes the listeners.
pub(super) async fn stop_accepting(
    signal: &str,
    grace: Duration,
    shutdown: &watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
) {
    tracing::info!(
        signal,
        grace = %human_duration(grace),
        "shutting down: no longer accepting connections; letting requests in flight finish"
    );
    let _ = shutdown.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
}

/// Waits for the connections still open, for at most `grace` or until a second signal.
pub(super) async fn drain(
    open: &mut mpsc::Receiver<Infallible>,
    grace: Duration,
    stats: &Stats,
    sigterm: &mut Signal,
    sigint: &mut Signal,
) {
    tokio::select! {
        _ = open.recv() => tracing::info!("all connections closed; exiting"),
        () = tokio::time::sleep(grace) => tracing::warn!(
            connections = Stats::get(&stats.connections_open),
            "grace period over; closing the remaining connections"
        ),
        _ = sigterm.recv() => tracing::warn!("second signal; exiting now"),
        _ = sigint.recv() => tracing::warn!("second signal; exiting now"),
    }
}
