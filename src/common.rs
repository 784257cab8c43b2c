//! Helpers that the core and both sides share, below every other module, so
//! that imports only run down a layer.

use std::io;

/// The message a caught panic carried (`panic!` with a literal or a format).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A handshake error as the `io::Error` both sides return: the I/O error itself,
/// or an `Other` error whose source is OpenSSL's.
pub(crate) fn tls_to_io(error: openssl::ssl::Error) -> io::Error {
    match error.into_io_error() {
        Ok(io) => io,
        Err(tls) => io::Error::other(tls),
    }
}
