//! The TLS side of `serve`: the policy replayed on every context, and the
//! flags' settings on the acceptor's builder.

use openssl::ssl::{select_next_proto, AlpnError, SslContextBuilder, SslMode};
use openssl_reload::openssl::error::ErrorStack;
use openssl_reload::{ClientAuth, CrlCheck, ReloadingAcceptorBuilder, StaleCrl};

use crate::cli::serve::ServeArgs;
use crate::cli::{ClientAuthArg, CrlCheckArg, StaleCrlArg};

/// ALPN protocols offered, in the server's order of preference (wire format).
const ALPN: &[u8] = b"\x02h2\x08http/1.1";

/// The TLS policy replayed on the front context and every reloaded one: ALPN,
/// and how records are read and buffered (taken from the front context at
/// `SSL_new`, so the same for every certificate):
/// - read-ahead: one `read(2)` fetches as many records as have arrived, where
///   OpenSSL otherwise reads each record's 5-byte header and then its body;
/// - the record buffers are kept for the connection's life
///   (`SSL_MODE_RELEASE_BUFFERS`, which `SslAcceptor`'s profiles set, is
///   cleared): with keep-alive, freeing and reallocating them around every
///   request cost more than the rest of the request's handling. An idle
///   connection holds them until `--idle-timeout` closes it.
/// - `SSL_MODE_NO_AUTO_CHAIN`: the chain file is sent as it is, as nginx does;
///   OpenSSL does not try to complete it from the context's store at every
///   handshake (with `--ca`, that store holds the client CAs).
fn policy(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    ctx.set_alpn_select_callback(|_, client| {
        select_next_proto(ALPN, client).ok_or(AlpnError::NOACK)
    });
    ctx.set_read_ahead(true);
    keep_record_buffers(ctx);
    ctx.set_mode(SslMode::NO_AUTO_CHAIN);
    Ok(())
}

/// Clears `SSL_MODE_RELEASE_BUFFERS`, which the openssl crate has no call for.
fn keep_record_buffers(ctx: &mut SslContextBuilder) {
    const SSL_CTRL_CLEAR_MODE: libc::c_int = 78;
    let mode = SslMode::RELEASE_BUFFERS.bits() as libc::c_long;
    // SAFETY: `ctx` is a valid SSL_CTX that we hold exclusively; SSL_CTX_ctrl
    // with SSL_CTRL_CLEAR_MODE only clears bits of its mode and reads no pointer.
    #[allow(unsafe_code)]
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_CLEAR_MODE,
            mode,
            std::ptr::null_mut(),
        );
    }
}

/// The flags' settings on top of the identity: polling, the handshake timeout
/// (enforced by `ReloadingAcceptor::accept`), ALPN, mutual TLS, ticket keys.
pub(super) fn configure(
    builder: ReloadingAcceptorBuilder,
    args: &ServeArgs,
) -> ReloadingAcceptorBuilder {
    let mut builder = builder
        .poll_interval(args.poll_interval)
        .handshake_timeout(args.handshake_timeout)
        .policy(policy);
    if let Some(ca) = &args.ca {
        let auth = match args.client_auth.unwrap_or(ClientAuthArg::Required) {
            ClientAuthArg::Required => ClientAuth::Required,
            ClientAuthArg::Optional => ClientAuth::Optional,
        };
        builder = builder
            .ca(ca)
            .client_auth(auth)
            .check_chain_against_ca(args.require_chain_to_ca);
        if let Some(crl) = &args.crl {
            builder = builder
                .crl(crl)
                .crl_check(match args.crl_check.unwrap_or(CrlCheckArg::Leaf) {
                    CrlCheckArg::Leaf => CrlCheck::Leaf,
                    CrlCheckArg::Chain => CrlCheck::Chain,
                })
                .stale_crl(match args.stale_crl.unwrap_or(StaleCrlArg::Enforce) {
                    StaleCrlArg::Enforce => StaleCrl::KeepEnforcing,
                    StaleCrlArg::Refuse => StaleCrl::RefuseAll,
                });
        }
    }
    let tickets = &args.tickets;
    match &tickets.ticket_keys {
        Some(file) => builder.ticket_key_file(file),
        None => builder.ticket_key_rotation(
            tickets.ticket_key_rotation,
            usize::try_from(tickets.ticket_keys_kept).unwrap_or(usize::MAX),
        ),
    }
}
