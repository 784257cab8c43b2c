//! A connection's and a context's certificate slots, compared and filled
//! object by object: what lets an attached context's own certificates stand
//! for a per-connection install (`attach/modes.rs`).

use std::ffi::{c_int, c_long, c_void};
use std::ptr;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::pkey::{PKeyRef, Private};
use openssl::ssl::{SslContextRef, SslRef};
use openssl::stack::Stack;
use openssl::x509::{X509Ref, X509};

use super::cvt;

/// `SSL_CTX_set1_chain` is this ctrl with `larg` 1 (ssl.h).
const SSL_CTRL_CHAIN: c_int = 88;
/// `SSL_get0_chain_certs` (ssl.h).
const SSL_CTRL_GET_CHAIN_CERTS: c_int = 115;
/// `SSL_set_current_cert` (ssl.h), with `SSL_CERT_SET_FIRST` and `_NEXT`.
const SSL_CTRL_SET_CURRENT_CERT: c_int = 117;
const SSL_CERT_SET_FIRST: c_long = 1;
const SSL_CERT_SET_NEXT: c_long = 2;

/// One certificate slot: certificate, key and chain.
pub(crate) type Slot<'a> = (&'a X509Ref, &'a PKeyRef<Private>, &'a [X509]);

/// Whether the slots of `ssl` that hold a certificate and a key are exactly
/// `slots`: the very same objects (equal pointers are one object, since both
/// sides hold a reference to theirs), chains included, and no other. The
/// connection's current certificate is left as it was.
pub(crate) fn carries_exactly<'a>(
    ssl: &mut SslRef,
    slots: impl Iterator<Item = Slot<'a>> + Clone,
) -> bool {
    let ssl = ssl.as_ptr();
    // SAFETY: `ssl` is live and borrowed mutably; the getters return the
    // connection's own objects without a reference, compared by address only.
    let original = unsafe { openssl_sys::SSL_get_certificate(ssl) };
    let set_current = |op| {
        // SAFETY: `ssl` is live; the ctrl only moves the current-slot index.
        unsafe { openssl_sys::SSL_ctrl(ssl, SSL_CTRL_SET_CURRENT_CERT, op, ptr::null_mut()) == 1 }
    };
    let (mut seen, mut same) = (0, true);
    let mut more = set_current(SSL_CERT_SET_FIRST);
    while more && same {
        seen += 1;
        // SAFETY: as above.
        let (cert, key) = unsafe {
            (
                openssl_sys::SSL_get_certificate(ssl),
                openssl_sys::SSL_get_privatekey(ssl),
            )
        };
        same = slots.clone().any(|(c, k, chain)| {
            c.as_ptr() == cert && k.as_ptr() == key && current_chain_is(ssl, chain)
        });
        more = set_current(SSL_CERT_SET_NEXT);
    }
    if !original.is_null() {
        let mut ok = set_current(SSL_CERT_SET_FIRST);
        // SAFETY: as above.
        while ok && unsafe { openssl_sys::SSL_get_certificate(ssl) } != original {
            ok = set_current(SSL_CERT_SET_NEXT);
        }
    }
    same && seen == slots.count()
}

/// Whether the chain of `ssl`'s current slot is `chain`, object by object.
fn current_chain_is(ssl: *mut openssl_sys::SSL, chain: &[X509]) -> bool {
    let mut stack: *mut openssl_sys::stack_st_X509 = ptr::null_mut();
    // SAFETY: `ssl` is live; the ctrl writes the slot's own stack (or NULL)
    // to `stack`, without a reference.
    unsafe {
        openssl_sys::SSL_ctrl(
            ssl,
            SSL_CTRL_GET_CHAIN_CERTS,
            0,
            ptr::from_mut(&mut stack).cast::<c_void>(),
        )
    };
    let stack = stack.cast::<openssl_sys::OPENSSL_STACK>();
    let len = if stack.is_null() {
        0
    } else {
        // SAFETY: a non-NULL stack is the slot's, live while `ssl` is.
        unsafe { openssl_sys::OPENSSL_sk_num(stack) }
    };
    usize::try_from(len).is_ok_and(|len| len == chain.len())
        && chain.iter().enumerate().all(|(i, cert)| {
            // SAFETY: `i` is below the stack's length (checked above).
            let item = unsafe { openssl_sys::OPENSSL_sk_value(stack, i as c_int) };
            item.cast::<openssl_sys::X509>() == cert.as_ptr()
        })
}

/// Puts `slots` on a context, each in the slot of its key type: what every
/// connection made on it afterwards starts with.
///
/// The caller must be the only one using `ctx`: no connection may be made on
/// it from another thread meanwhile (`SSL_new` reads what this writes).
pub(crate) fn set_context_slots<'a>(
    ctx: &SslContextRef,
    slots: impl Iterator<Item = Slot<'a>>,
) -> Result<(), ErrorStack> {
    let ctx = ctx.as_ptr();
    for (cert, key, chain) in slots {
        let mut stack = Stack::new()?;
        for link in chain {
            stack.push(link.clone())?;
        }
        // SAFETY: `ctx` is live and, by the contract, used by no other thread;
        // each call takes references of its own (set1 copies the stack, with
        // a reference to each certificate), so ours are dropped safely.
        unsafe {
            cvt(openssl_sys::SSL_CTX_use_certificate(ctx, cert.as_ptr()))?;
            cvt(openssl_sys::SSL_CTX_use_PrivateKey(ctx, key.as_ptr()))?;
            let set = openssl_sys::SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN, 1, stack.as_ptr().cast());
            cvt(c_int::from(set == 1))?;
        }
    }
    Ok(())
}
