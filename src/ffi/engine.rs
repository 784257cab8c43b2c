//! OpenSSL engines (libp11's `pkcs11`): loaded by id, or as a fresh instance
//! from anonymous copies of the engine's library and of the PKCS#11 module it
//! binds, so that neither shares state with the copies loaded before
//! (docs/hardware-keys.md, "Outages").
//!
//! A copy is never unloaded: libp11 0.4.12 leaves error strings of its own
//! registered with libcrypto when its engine is destroyed, and libcrypto's
//! error-string table would then point into unmapped memory (a crash at the
//! next error lookup that hashes near them).

use std::ffi::{c_void, CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};

use super::store::PinUi;
use super::{cvt, cvt_p, sys};

/// The engines loaded from copies that went out of use, by address, and
/// their files: never released (the module's note).
static KEPT: Mutex<Vec<(usize, Vec<OwnedFd>)>> = Mutex::new(Vec::new());

/// An engine: a functional reference while `initialised` (all its life but
/// for a failed [`restart`](Self::restart)), released on drop, and a
/// structural one, also released unless the engine was loaded from copies
/// (see the module's note); and the anonymous files it was loaded from, if
/// any, open for the life of the process: the module is loaded again by its
/// path, and no later file may take its number (see `Drop`).
pub(crate) struct Engine {
    engine: NonNull<openssl_sys::ENGINE>,
    initialised: AtomicBool,
    copies: Vec<OwnedFd>,
}

// SAFETY: OpenSSL's ENGINE functions lock internally; the engine's own key
// operations are as thread-safe as the engine (libp11 locks its sessions).
unsafe impl Send for Engine {}
// SAFETY: as above; `&Engine` only loads keys, which libp11 serialises.
unsafe impl Sync for Engine {}

impl Engine {
    /// The engine `id`, with `MODULE_PATH` set to `module_path` if given,
    /// initialised.
    pub(crate) fn open(id: &CStr, module_path: Option<&CStr>) -> Result<Self, ErrorStack> {
        // SAFETY: `id` is NUL-terminated; a structural reference is returned.
        let e = cvt_p(unsafe { sys::ENGINE_by_id(id.as_ptr()) })?;
        let mut commands = Vec::new();
        if let Some(path) = module_path {
            commands.push((c"MODULE_PATH", Some(path)));
        }
        // SAFETY: a structural reference of ours, handed over.
        unsafe { Self::initialise(e, &commands, Vec::new()) }
    }

    /// A new instance of the engine `id` whose code is in `library`, bound
    /// to the PKCS#11 module `module`: both loaded from anonymous copies
    /// (`memfd_create`), which the dynamic linker takes for libraries of
    /// their own, with their own globals. Not added to OpenSSL's engine list.
    pub(crate) fn fresh_copy(id: &CStr, library: &CStr, module: &CStr) -> io::Result<Self> {
        let library = anonymous_copy(library)?;
        let module = anonymous_copy(module)?;
        let (so_path, module_path) = (proc_path(&library), proc_path(&module));
        // SAFETY: "dynamic" is built into libcrypto; a structural reference.
        let e =
            cvt_p(unsafe { sys::ENGINE_by_id(c"dynamic".as_ptr()) }).map_err(io::Error::other)?;
        let commands = [
            (c"SO_PATH", Some(so_path.as_c_str())),
            (c"ID", Some(id)),
            (c"LIST_ADD", Some(c"0")),
            (c"LOAD", None),
            (c"MODULE_PATH", Some(module_path.as_c_str())),
        ];
        // SAFETY: as in `open`.
        unsafe { Self::initialise(e, &commands, vec![library, module]) }.map_err(io::Error::other)
    }

    /// Sends `commands` to `e` and initialises it; on failure releases it.
    ///
    /// # Safety
    ///
    /// `e` must be a structural reference the caller hands over.
    unsafe fn initialise(
        e: *mut openssl_sys::ENGINE,
        commands: &[(&CStr, Option<&CStr>)],
        copies: Vec<OwnedFd>,
    ) -> Result<Self, ErrorStack> {
        let init = || -> Result<(), ErrorStack> {
            for (name, arg) in commands {
                let arg = arg.map_or(std::ptr::null(), |a| a.as_ptr());
                // SAFETY: `e` is live; the strings are NUL-terminated (or NULL
                // for a command without argument) and copied by the engine.
                cvt(unsafe { sys::ENGINE_ctrl_cmd_string(e, name.as_ptr(), arg, 0) })?;
            }
            // SAFETY: `e` is live; on success we hold a functional reference.
            cvt(unsafe { sys::ENGINE_init(e) }).map(drop)
        };
        if let Err(error) = init() {
            // SAFETY: the caller's structural reference, released once.
            unsafe { sys::ENGINE_free(e) };
            return Err(error);
        }
        let engine = NonNull::new(e).ok_or_else(ErrorStack::get)?;
        Ok(Self {
            engine,
            initialised: AtomicBool::new(true),
            copies,
        })
    }

    /// The file the engine's code was loaded from, if the dynamic linker
    /// knows one.
    pub(crate) fn library(&self) -> Option<CString> {
        // SAFETY: the engine is live; the function pointer is only looked up.
        let function = unsafe { sys::ENGINE_get_load_privkey_function(self.engine.as_ptr()) }?;
        // SAFETY: all-zero is a valid `Dl_info` (null pointers), filled by dladdr.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads which mapped object holds the address.
        let found = unsafe { libc::dladdr(function as *const c_void, &mut info) };
        if found == 0 || info.dli_fname.is_null() {
            return None;
        }
        // SAFETY: `dli_fname` is a NUL-terminated name owned by the linker,
        // copied at once.
        Some(unsafe { CStr::from_ptr(info.dli_fname) }.to_owned())
    }

    /// Releases the functional reference and takes a new one. With no key
    /// of it alive, libp11 finalises and unloads its PKCS#11 module in
    /// between, so the module starts afresh at the next key it opens.
    /// Called by one thread at a time (the caller's lock).
    pub(crate) fn restart(&self) -> Result<(), ErrorStack> {
        if self.initialised.swap(false, Ordering::AcqRel) {
            // SAFETY: the engine is live; the functional reference we held.
            unsafe { sys::ENGINE_finish(self.engine.as_ptr()) };
        }
        // SAFETY: the engine is live; on success we hold a functional reference.
        cvt(unsafe { sys::ENGINE_init(self.engine.as_ptr()) })?;
        self.initialised.store(true, Ordering::Release);
        Ok(())
    }

    /// The private key `key_id` (a `pkcs11:` URI for libp11).
    pub(crate) fn private_key(
        &self,
        key_id: &CStr,
        pin: Option<&[u8]>,
    ) -> Result<PKey<Private>, ErrorStack> {
        PinUi::with(pin, |ui, data| {
            // SAFETY: the engine is initialised; `key_id` is NUL-terminated;
            // `ui`/`data` live until `with` returns; the key is ours.
            let pkey = cvt_p(unsafe {
                sys::ENGINE_load_private_key(self.engine.as_ptr(), key_id.as_ptr(), ui, data)
            })?;
            // SAFETY: one reference of ours, which `PKey` now owns.
            Ok(unsafe { PKey::from_ptr(pkey) })
        })?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if *self.initialised.get_mut() {
            // SAFETY: the functional reference we hold, released once.
            unsafe { sys::ENGINE_finish(self.engine.as_ptr()) };
        }
        if self.copies.is_empty() {
            // SAFETY: the structural reference, released once.
            unsafe { sys::ENGINE_free(self.engine.as_ptr()) };
        } else {
            // A copy keeps it, and with it its library mapped (the module's
            // note), and its files open: a file closed would let a later copy
            // take its number, and so the name (`/proc/self/fd/N`) under
            // which the dynamic linker knows a library still loaded, and
            // dlopen would hand back that library instead of the new copy.
            let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
            kept.push((
                self.engine.as_ptr() as usize,
                std::mem::take(&mut self.copies),
            ));
        }
    }
}

/// `file`'s bytes in a new anonymous file, closed on exec.
fn anonymous_copy(file: &CStr) -> io::Result<OwnedFd> {
    let name = file
        .to_str()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path that is not UTF-8"))?;
    let mut source = File::open(name)?;
    // SAFETY: a NUL-terminated name (for /proc listings only) and a flag.
    let fd = unsafe { libc::memfd_create(c"openssl-reload-copy".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just made and owned by no one else.
    let copy = unsafe { OwnedFd::from_raw_fd(fd) };
    io::copy(&mut source, &mut File::from(copy.try_clone()?))?;
    Ok(copy)
}

/// The path that opens `fd` in this process.
fn proc_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}
