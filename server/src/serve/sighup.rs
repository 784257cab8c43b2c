//! SIGHUP: reload the certificate files (and the ticket-key file) at once, and
//! say what came of it.

use openssl_reload::{Reload, ReloadingAcceptor, TicketKeyStatus};
use tokio::signal::unix::Signal;

/// Reloads on every SIGHUP, off the runtime threads, and logs the outcome.
pub(super) async fn reload_on_sighup(mut hangup: Signal, tls: ReloadingAcceptor) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the certificate files now");
        let before = tls.ticket_keys();
        let reloader = tls.clone();
        // Reading files and decrypting a key block; keep them off the runtime threads.
        match tokio::task::spawn_blocking(move || reloader.reload_now()).await {
            Ok(Ok(Reload::Published(generation))) => {
                tracing::info!(generation, "SIGHUP: new certificate in service");
            }
            Ok(Ok(Reload::Unchanged)) => {
                tracing::info!(
                    "SIGHUP: the files hold the certificate already in service; nothing to do"
                );
            }
            Ok(Ok(other)) => tracing::info!(outcome = ?other, "SIGHUP: reload done"),
            Ok(Err(error)) => {
                tracing::warn!(error = %error.report(), "SIGHUP: reload failed; keeping previous certificate");
            }
            Err(error) => {
                tracing::warn!(%error, "SIGHUP: the reload task failed; keeping previous certificate");
            }
        }
        log_ticket_reload(&before, &tls.ticket_keys());
    }
}

/// What a SIGHUP did to the ticket-key file, if there is one (`reload_now` reads
/// it too). The library logs a failure only when it differs from the last one;
/// whoever sent the signal wants an answer every time.
fn log_ticket_reload(before: &TicketKeyStatus, after: &TicketKeyStatus) {
    let Some(file) = &after.file else { return };
    let file = file.display();
    if after.rotations > before.rotations {
        tracing::info!(%file, keys = after.keys, "SIGHUP: new session ticket keys in service");
    } else if after.failures > before.failures {
        let error = after.last_error.as_ref().map(|e| e.message.as_str());
        tracing::warn!(
            %file,
            error,
            "SIGHUP: ticket-key file not usable; keeping the ticket keys in service"
        );
    } else {
        tracing::info!(%file, "SIGHUP: the ticket-key file holds the keys already in service");
    }
}
