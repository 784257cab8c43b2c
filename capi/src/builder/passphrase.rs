//! The passphrase callback: C code that produces a key's passphrase, called
//! by the loader at each load of an encrypted key.

use std::ffi::{c_char, c_int, c_void};

use reload::Passphrase;
use zeroize::Zeroizing;

use crate::boundary::UserData;

/// Produces a key's passphrase: writes it (no NUL needed) into `buf`, which has
/// room for `len` bytes, sets `*out_len` and returns 0; any other return value
/// is a failure. It runs on the library's poller thread at each load of an
/// encrypted key, never during a handshake, and must be thread-safe.
// SAFETY: only the signature: C's function, which the library calls with the
// caller's `userdata` and a buffer of `len` bytes it owns.
pub type openssl_reload_passphrase_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> c_int,
>;

/// The largest passphrase a callback may give.
const PASSPHRASE_MAX: usize = 1024;

/// The passphrase source that calls `callback` with `userdata`, which the
/// setter's contract keeps valid and thread-safe as long as the reloader runs.
pub(crate) fn from_callback(
    // SAFETY: only the signature of the callback, called as its type says.
    callback: unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut usize) -> c_int,
    userdata: *mut c_void,
) -> Passphrase {
    let userdata = UserData::new(userdata);
    Passphrase::from_callback(move || {
        let mut buf = Zeroizing::new(vec![0u8; PASSPHRASE_MAX]);
        let mut len = 0usize;
        // SAFETY: the buffer has PASSPHRASE_MAX bytes, `len` is writable, and the
        // callback's contract covers `userdata`.
        let rc = unsafe { callback(userdata.get(), buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        if rc != 0 {
            return Err(format!("the passphrase callback returned {rc}"));
        }
        if len > PASSPHRASE_MAX {
            return Err(format!(
                "the passphrase callback reported {len} bytes, more than the {PASSPHRASE_MAX} it was given"
            ));
        }
        Ok(buf[..len].to_vec())
    })
}
