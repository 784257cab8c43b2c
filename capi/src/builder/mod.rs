//! The builders: what to load and how, for a server and for a client.
//!
//! Every setter takes effect at `_build`; a setter that fails changes nothing
//! (see `setters.rs`). A builder is not thread-safe (use it from one thread at
//! a time), and `_build` frees it.
//!
//! `server.rs` and `client.rs` hold each side's handle and exported functions;
//! a setter both sides have is written once, in `setters.rs`, and each side's
//! export is one call to it. `constants.rs` has the C enumerations the setters
//! take, `passphrase.rs` the passphrase callback.

// cbindgen writes the functions in the order it reads them: the server's
// first, as the header always had them.
mod server;

mod client;
mod constants;
mod passphrase;
mod setters;

pub use self::client::*;
pub use self::constants::*;
pub use self::passphrase::*;
pub use self::server::*;
pub(crate) use self::setters::build;

#[cfg(test)]
mod tests;
