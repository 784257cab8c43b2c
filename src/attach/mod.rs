//! Reloading for contexts the application owns: the C interface's two modes,
//! also open to Rust callers that hold a foreign `SSL_CTX`.
//!
//! The crate's own acceptor switches each handshake to its trust context with
//! `SSL_set_SSL_CTX`. That is not an option for a context someone else
//! configured: OpenSSL reads the ALPN select callback (and others) from the
//! switched context, so the application's would be lost. Here nothing is
//! switched. A client hello callback binds the connection's sessions (as the
//! acceptor does, from one snapshot it pins on the `SSL`, and with the
//! context's own session id context and the SNI name: `session.rs`), and a
//! certificate callback (`SSL_CTX_set_cert_cb`), which OpenSSL runs after the
//! servername callback, puts the site's certificate, chain and key, and the
//! client CA store and names, on the `SSL`, and binds the session again to the
//! context the application's servername callback chose. The application's
//! options, protocol range, verify callback, ALPN and servername callbacks,
//! session id context, session cache and ticket keys stay its own.
//! `docs/c-api.md` has the rules for callers. Here: what an attached context
//! and a connection hold. `modes.rs`: `attach` and `install` themselves; the
//! certificate callback is in `callback.rs`, the connector's side in
//! `connector.rs`, the application's own status callback in `status.rs`.

mod callback;
mod connector;
mod modes;
mod status;

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    ClientHelloResponse, NameType, Ssl, SslAlert, SslContextBuilder, SslContextRef, SslRef,
    SslVerifyMode,
};

use crate::ffi;
use crate::material::{chain_stale_rule, status_callback};
use crate::session::{self, SidCtx};
use crate::sites::{client_hello_sni, normalize_into, Served, Snapshot};
use crate::{ClientAuth, Error, ReloadingAcceptor};

use self::status::AppStatus;

/// What stands for the application's session id context where
/// [`ReloadingAcceptor::install`] puts material on a context that is not attached.
const INSTALLED: &[u8] = b"openssl-reload install";

/// What an attached context holds (in its ex_data, freed with it): the acceptor,
/// whose poller keeps running as long as the context lives, and the context's
/// own session id context, which every binding on it starts from.
struct Attached {
    acceptor: ReloadingAcceptor,
    session_id: Arc<[u8]>,
    /// The default site's certificates last put on the context
    /// (`update_attached_contexts`): each publish is put there once.
    written: ArcSwapOption<Served>,
}

impl Attached {
    /// Makes `served` the context's own certificates, unless they were made
    /// so already: a context that also holds a slot the site lacks never
    /// carries it exactly, and would otherwise be written at every handshake.
    fn put_once(&self, ctx: &SslContextRef, served: &Arc<Served>) -> Result<(), ErrorStack> {
        let last = self.written.swap(Some(Arc::clone(served)));
        if last.is_some_and(|last| Arc::ptr_eq(&last, served)) {
            return Ok(());
        }
        served.put_on_context(ctx)
    }
}

/// The snapshot a handshake's client hello callback chose from, so that the
/// certificate callback installs what the session was bound to.
struct Pinned {
    snapshot: Arc<Snapshot>,
    /// Which reloader pinned it (the address of its snapshot cell): a second
    /// reloader's [`install`](ReloadingAcceptor::install) on the same
    /// connection ignores it.
    owner: usize,
    /// What the client hello callback bound the connection to.
    bound: Bound,
}

/// A connection's binding and what it was computed from, so that the
/// certificate callback of the same context, which binds again after the
/// application's servername callback, hashes only when something differs.
#[derive(Clone, Copy)]
struct Bound {
    sid: SidCtx,
    /// The application context's session id context (its address: one
    /// `Attached` each), the name's sites (their address), the verify mode
    /// and the name.
    context: usize,
    served: usize,
    verify: SslVerifyMode,
    name: [u8; 255],
    name_len: usize,
}

impl Bound {
    fn new(
        context: &[u8],
        served: &Served,
        verify: SslVerifyMode,
        name: Option<&str>,
    ) -> Result<Self, ErrorStack> {
        let name = name.unwrap_or("");
        let mut bound = Self {
            sid: session::bind(context, verify, served.sites(), Some(name))?,
            context: context.as_ptr().addr(),
            served: std::ptr::from_ref(served).addr(),
            verify,
            name: [0; 255],
            name_len: name.len(),
        };
        bound.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(bound)
    }

    fn is_for(
        &self,
        context: &[u8],
        served: &Served,
        verify: SslVerifyMode,
        name: Option<&str>,
    ) -> bool {
        self.context == context.as_ptr().addr()
            && self.served == std::ptr::from_ref(served).addr()
            && self.verify == verify
            && self.name[..self.name_len] == *name.unwrap_or("").as_bytes()
    }
}

fn pinned_index() -> Result<Index<Ssl, Pinned>, ErrorStack> {
    static INDEX: OnceLock<Index<Ssl, Pinned>> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return Ok(*index);
    }
    let index = Ssl::new_ex_index()?;
    // A racing thread may have made another index; either is valid, one is used.
    Ok(*INDEX.get_or_init(|| index))
}
