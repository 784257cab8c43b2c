//! What a reloader reports to C: a status struct, the status as JSON, and a
//! change callback run on a thread of the library.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::UNIX_EPOCH;

use reload::{CertificateStatus, Reload, SiteStatus};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::args::{arg, arg_mut};
use crate::boundary::{copy_out, guard};
use crate::error::openssl_reload_result::{self, *};
use crate::error::Failure;

/// Length of [`openssl_reload_status::serial`]: a serial of up to 20 bytes in
/// hex, its NUL, and room to spare.
pub const OPENSSL_RELOAD_SERIAL_LEN: usize = 64;

/// A reloader's status at one moment, filled by `_status`.
#[repr(C)]
#[derive(Debug)]
pub struct openssl_reload_status {
    /// Moves on every publish; 1 for the material loaded at start-up.
    pub generation: u64,
    /// Successful reloads since start-up.
    pub reloads: u64,
    /// Failed reload attempts since start-up.
    pub failures: u64,
    /// Failed attempts since the last success: 0 when the files on disk are in service.
    pub consecutive_failures: u64,
    /// The certificate in service's notAfter, in seconds since the Unix epoch
    /// (0 without a certificate).
    pub not_after: i64,
    /// The CA certificates of the trust bundle in service (0 without one).
    pub ca_certificates: u64,
    /// The certificate in service's serial number, upper-case hex, NUL-terminated
    /// (empty without a certificate).
    pub serial: [c_char; OPENSSL_RELOAD_SERIAL_LEN],
}

pub(crate) fn fill(status: &CertificateStatus, out: &mut openssl_reload_status) {
    out.generation = status.generation;
    out.reloads = status.reloads;
    out.failures = status.failures;
    out.consecutive_failures = status.consecutive_failures;
    out.ca_certificates = status.ca_certificates as u64;
    out.serial = [0; OPENSSL_RELOAD_SERIAL_LEN];
    out.not_after = 0;
    if let Some(cert) = &status.certificate {
        out.not_after = cert.not_after_unix;
        for (slot, byte) in out
            .serial
            .iter_mut()
            .zip(cert.serial.bytes().take(OPENSSL_RELOAD_SERIAL_LEN - 1))
        {
            *slot = byte as c_char;
        }
    }
}

/// The last failure's text, or "" when nothing has failed.
pub(crate) fn last_error(status: &CertificateStatus) -> String {
    status
        .last_error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

fn unix(at: std::time::SystemTime) -> Value {
    at.duration_since(UNIX_EPOCH)
        .map_or(Value::Null, |d| json!(d.as_secs()))
}

/// The status as JSON for `_status_json`: the C interface's own schema, not
/// the demo server's `/status`. Times are Unix seconds (`not_after_unix`,
/// `last_reload_unix`, ...) where `/status` writes RFC 3339 strings, and
/// `not_before`/`not_after` are as OpenSSL prints them; an OCSP staple's
/// `stapled` is whether it passed its checks when it was loaded, where
/// `/status` also asks whether it is still current. The field names are
/// pinned by a test below.
pub(crate) fn to_json(status: &CertificateStatus, sites: Option<&[SiteStatus]>) -> String {
    let mut value = status_value(status);
    if let Some(sites) = sites {
        value["sites"] = sites
            .iter()
            .map(|site| {
                json!({
                    "name": site.name,
                    "path": site.path,
                    "names": site.names,
                    "key_type": site.key_type,
                    "default": site.default,
                    "serving": site.serving,
                    "status": status_value(&site.status),
                })
            })
            .collect();
    }
    value.to_string()
}

fn status_value(status: &CertificateStatus) -> Value {
    json!({
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "consecutive_failures": status.consecutive_failures,
        "certificate": status.certificate.as_ref().map(|c| json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial,
            "subject_alt_names": c.subject_alt_names,
            "not_before": c.not_before,
            "not_after": c.not_after,
            "not_after_unix": c.not_after_unix,
            "sha256": c.sha256,
            "ocsp": c.ocsp.as_ref().map(|o| json!({
                "path": o.path,
                "stapled": o.stapled,
                "status": o.status,
                "this_update_unix": o.this_update_unix,
                "next_update_unix": o.next_update_unix,
                "error": o.error,
            })),
        })),
        "ca_certificates": status.ca_certificates,
        "crls": status.crls.iter().map(|crl| json!({
            "path": crl.path,
            "issuer": crl.issuer,
            "number": crl.number,
            "revoked": crl.revoked,
            "next_update_unix": crl.next_update_unix,
        })).collect::<Vec<_>>(),
        "last_error": status.last_error.as_ref().map(|e| json!({
            "message": e.message,
            "path": e.path,
            "at_unix": unix(e.at),
        })),
        "last_reload_unix": unix(status.last_reload),
        "last_poll_unix": status.last_poll.map_or(Value::Null, unix),
        "poll_interval_ms": status.poll_interval.as_millis() as u64,
        "fips_enabled": status.fips_enabled,
    })
}

/// Called with the new generation after each change of the status (a publish
/// or a failed attempt), on a thread of the library: it must be thread-safe and
/// must not free the reloader it is called for.
// SAFETY: only the signature; the library calls it with the caller's `userdata`.
pub type openssl_reload_change_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, generation: u64)>;

/// A thread that calls a change callback until told to stop.
pub(crate) struct Watcher {
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    id: ThreadId,
}

struct UserData(*mut c_void);
// SAFETY: the change callback's documented contract makes it and its userdata
// usable from the library's thread.
unsafe impl Send for UserData {}

impl Watcher {
    pub(crate) fn start(
        mut changes: watch::Receiver<CertificateStatus>,
        // SAFETY (of the type): as `openssl_reload_change_callback`.
        callback: unsafe extern "C" fn(*mut c_void, u64),
        userdata: *mut c_void,
    ) -> Result<Self, Failure> {
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let userdata = UserData(userdata);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| {
                Failure::new(
                    OPENSSL_RELOAD_THREAD,
                    format!("start the change callback's runtime: {e}"),
                )
            })?;
        changes.mark_unchanged();
        let thread = thread::Builder::new()
            .name("openssl-reload-change".into())
            .spawn(move || {
                let userdata = userdata;
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            changed = changes.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                                let generation = changes.borrow_and_update().generation;
                                // A panic cannot come out of C; a C callback that
                                // unwinds is the caller's bug.
                                // SAFETY: the callback's contract.
                                unsafe { callback(userdata.0, generation) };
                            }
                            () = stopped.notified() => return,
                        }
                    }
                });
            })
            .map_err(|e| {
                Failure::new(
                    OPENSSL_RELOAD_THREAD,
                    format!("start the change callback's thread: {e}"),
                )
            })?;
        let id = thread.thread().id();
        Ok(Self {
            stop,
            thread: Some(thread),
            id,
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            // From the callback itself (against the rule) the thread is left to
            // end on its own rather than joined into a deadlock.
            if thread::current().id() != self.id {
                let _ = thread.join();
            }
        }
    }
}

/// A handle's change callback slot.
pub(crate) type WatcherSlot = Mutex<Option<Watcher>>;

/// A reloader handle of either side, as the status calls see it: the server's
/// and the client's `_status`, `_reload_error`, `_status_json`, `_reload_now`
/// and `_set_change_callback` are these functions under two names each.
pub(crate) trait Reporter {
    /// `"server"` or `"client"`, for the NULL argument's error.
    const NAME: &'static str;
    fn status(&self) -> CertificateStatus;
    fn json(&self) -> String;
    fn reload_now(&self) -> Result<Reload, reload::Error>;
    fn subscribe(&self) -> watch::Receiver<CertificateStatus>;
    fn watcher(&self) -> &WatcherSlot;
}

/// `_reload_now`.
///
/// # Safety
///
/// `handle` is live; `changed` is NULL or writable.
// SAFETY: unsafe because it reads `handle` and may write through `changed`, raw pointers from C.
pub(crate) unsafe fn reload_now<R: Reporter>(
    handle: *const R,
    changed: *mut bool,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let reload = handle.reload_now()?;
        if !changed.is_null() {
            // SAFETY: `changed` is not NULL here, so by this function's contract it is writable.
            unsafe { *changed = matches!(reload, Reload::Published(_)) };
        }
        Ok(())
    })
}

/// `_status`.
///
/// # Safety
///
/// `handle` is live; `out` is writable.
// SAFETY: unsafe because it reads `handle` and writes the status through `out`, raw pointers from
// C.
pub(crate) unsafe fn status<R: Reporter>(
    handle: *const R,
    out: *mut openssl_reload_status,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live; `out` is writable (this function's contract); that is what
        // `arg` and `arg_mut` require.
        let (handle, out) = unsafe { (arg(handle, R::NAME)?, arg_mut(out, "out")?) };
        fill(&handle.status(), out);
        Ok(())
    })
}

/// `_reload_error` (`json` false) and `_status_json` (`json` true).
///
/// # Safety
///
/// `handle` is live; `buf` has room for `len` bytes (or is NULL); `out_len`
/// is writable.
// SAFETY: unsafe because it reads `handle` and writes up to `len` bytes to `buf` and the length to
// `out_len`, raw pointers from C.
pub(crate) unsafe fn text<R: Reporter>(
    handle: *const R,
    json: bool,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let text = if json {
            handle.json()
        } else {
            last_error(&handle.status())
        };
        // SAFETY: `buf` has room for `len` bytes (or is NULL) and `out_len` is writable (this
        // function's contract), as `copy_out` requires.
        unsafe { copy_out(&text, buf, len, out_len) }
    })
}

/// `_set_change_callback`.
///
/// # Safety
///
/// `handle` is live; `callback` and `userdata` follow
/// [`openssl_reload_change_callback`]'s rules until replaced or freed.
// SAFETY: unsafe because it reads `handle` and keeps `callback` and `userdata` to call from
// another thread later, which only the caller can keep valid.
pub(crate) unsafe fn set_change_callback<R: Reporter>(
    handle: *const R,
    callback: openssl_reload_change_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires; `callback` and
        // `userdata` are only stored here, for `Watcher::start`.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let mut slot = handle.watcher().lock().unwrap_or_else(|e| e.into_inner());
        slot.take();
        if let Some(callback) = callback {
            *slot = Some(Watcher::start(handle.subscribe(), callback, userdata)?);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use serde_json::Value;

    use crate::error::openssl_reload_result::*;
    use crate::test_support::{json, ok, Files};
    use crate::*;

    /// The names of an object's fields, sorted.
    fn fields(value: &Value) -> Vec<&str> {
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {value}"))
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// The C JSON is a schema of its own (Unix times, the raw `stapled`), not
    /// the demo server's `/status`: its field names change only with the ABI.
    #[test]
    fn the_status_json_keeps_its_field_names() {
        let files = Files::new("capi-json");
        files.write_crl();
        std::fs::write(files.0.join("staple.der"), b"not a response").unwrap();
        let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
        let (crl, staple) = (files.path("crl.pem"), files.path("staple.der"));
        let mut builder = ptr::null_mut();
        let mut server: *mut openssl_reload_server = ptr::null_mut();
        // SAFETY: every pointer passed below is live for its call: the builder
        // from `_new` until `_build` consumes it, the NUL-terminated paths, and
        // the server until it is freed.
        let status = unsafe {
            ok(openssl_reload_server_builder_new(&mut builder));
            ok(openssl_reload_server_builder_set_identity(
                builder,
                cert.as_ptr(),
                key.as_ptr(),
            ));
            ok(openssl_reload_server_builder_set_client_ca(
                builder,
                cert.as_ptr(),
                0,
            ));
            ok(openssl_reload_server_builder_set_crl(
                builder,
                crl.as_ptr(),
                0,
            ));
            ok(openssl_reload_server_builder_set_ocsp_staple(
                builder,
                staple.as_ptr(),
            ));
            ok(openssl_reload_server_builder_build(builder, &mut server));
            std::fs::write(files.0.join("cert.pem"), b"not a certificate").unwrap();
            let failed = openssl_reload_server_reload_now(server, ptr::null_mut());
            assert_eq!(failed, OPENSSL_RELOAD_MATERIAL);
            let status =
                json(|buf, len, out| openssl_reload_server_status_json(server, buf, len, out));
            openssl_reload_server_free(server);
            status
        };
        let status: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(
            fields(&status),
            [
                "ca_certificates",
                "certificate",
                "consecutive_failures",
                "crls",
                "failures",
                "fips_enabled",
                "generation",
                "last_error",
                "last_poll_unix",
                "last_reload_unix",
                "poll_interval_ms",
                "reloads",
                "sites",
            ]
        );
        let certificate = &status["certificate"];
        assert_eq!(
            fields(certificate),
            [
                "issuer",
                "not_after",
                "not_after_unix",
                "not_before",
                "ocsp",
                "serial",
                "sha256",
                "subject",
                "subject_alt_names",
            ]
        );
        assert_eq!(
            fields(&certificate["ocsp"]),
            [
                "error",
                "next_update_unix",
                "path",
                "stapled",
                "status",
                "this_update_unix"
            ]
        );
        assert_eq!(
            fields(&status["crls"][0]),
            ["issuer", "next_update_unix", "number", "path", "revoked"]
        );
        assert_eq!(
            fields(&status["last_error"]),
            ["at_unix", "message", "path"]
        );
        assert_eq!(
            fields(&status["sites"][0]),
            ["default", "key_type", "name", "names", "path", "serving", "status"]
        );
        assert_eq!(fields(&status["sites"][0]["status"]), {
            let mut top = fields(&status);
            top.retain(|name| *name != "sites");
            top
        });
    }
}
