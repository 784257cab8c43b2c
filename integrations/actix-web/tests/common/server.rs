//! The program's actix-web server, run by its own actix system on a thread
//! of its own, as actix wants it; the tests drive it from tokio.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use openssl_reload::ReloadingAcceptor;

/// A running server; [`Running::stop`] stops it and waits for its thread.
pub struct Running {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

/// Starts `openssl_reload_actix_web::bind` on 127.0.0.1:0 with one worker.
pub fn start(tls: ReloadingAcceptor) -> Running {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            let (server, bound) = openssl_reload_actix_web::bind(&tls, addr, 1).unwrap();
            tx.send((bound, server.handle())).unwrap();
            server.await.unwrap();
        });
    });
    let (addr, handle) = rx.recv().expect("the server starts");
    Running {
        addr,
        handle,
        thread: Some(thread),
    }
}

impl Running {
    /// Stops the server (`ServerHandle::stop`, not graceful) and joins its thread.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join().unwrap())
                .await
                .unwrap();
        }
    }
}

impl Drop for Running {
    /// A test that failed before [`Running::stop`] still stops the server:
    /// the stop command is sent when `stop` is called.
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
