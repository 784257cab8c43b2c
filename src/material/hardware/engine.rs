//! The libp11 engine through which `pkcs11:` keys open where no provider
//! serves them: one per process, bound to one PKCS#11 module, and replaced
//! by a fresh instance when an outage left it unable to open a key again.
//!
//! libp11 0.4.12 keeps the module initialised, and its sessions and object
//! handles, as long as any key it handed out lives; and SoftHSM2, like other
//! modules, does not see a token that came back until it is finalised. So
//! after an outage the engine in service finds nothing, whatever it is told.
//! A standby instance is loaded from anonymous copies of the engine's library
//! and of the module (each with globals of its own). It tries the key at
//! each poll, restarted in between so that its module starts afresh, and is
//! put in service once it opens the key (docs/hardware-keys.md, "Outages").
//! Copies are never unloaded (`crate::ffi::engine`): one engine and module
//! per outage, not per try.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{HardwareKeyProblem, KeyUri};
use crate::ffi::engine::Engine;

/// The engine's id.
const ID: &CStr = c"pkcs11";

struct InService {
    /// The module the first key named (`module-path`); later keys must name
    /// the same one or none.
    bound: Option<String>,
    engine: Arc<Engine>,
    /// `engine pkcs11`, then `engine pkcs11 #2` and so on.
    name: String,
    /// How many instances there have been.
    made: u32,
    /// The instance made for the current outage, not in service yet.
    standby: Option<Arc<Engine>>,
}

static IN_SERVICE: Mutex<Option<InService>> = Mutex::new(None);
/// A fresh instance could not be made for a reason that stays.
static NOT_MADE_TOLD: AtomicBool = AtomicBool::new(false);

/// The engine a key is opened through, and its instance's name.
pub(super) struct Through {
    pub(super) engine: Arc<Engine>,
    pub(super) name: String,
    /// The standby: [`adopt`] it once it opened the key.
    fresh: bool,
}

/// The name of the engine instance in service, once one was loaded.
pub(super) fn in_service() -> Option<String> {
    let current = IN_SERVICE.lock().unwrap_or_else(PoisonError::into_inner);
    current.as_ref().map(|c| c.name.clone())
}

/// The engine in service, loaded on first use with `module` (`MODULE_PATH`;
/// without one, libp11's choice: `PKCS11_MODULE_PATH`, else p11-kit's
/// proxy). With `renew`, a fresh instance instead, if one can be made.
pub(super) fn through(
    module: Option<&str>,
    renew: bool,
    uri: &KeyUri,
) -> Result<Through, HardwareKeyProblem> {
    let mut current = IN_SERVICE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(c) = current.as_mut() else {
        let path = module
            .map(CString::new)
            .transpose()
            .map_err(|_| HardwareKeyProblem::Malformed("a NUL byte"))?;
        let engine =
            Arc::new(Engine::open(ID, path.as_deref()).map_err(HardwareKeyProblem::Engine)?);
        let name = "engine pkcs11".to_owned();
        *current = Some(InService {
            bound: module.map(str::to_owned),
            engine: Arc::clone(&engine),
            name: name.clone(),
            made: 1,
            standby: None,
        });
        return Ok(Through {
            engine,
            name,
            fresh: false,
        });
    };
    if let (Some(asked), Some(bound)) = (module, &c.bound) {
        if asked != bound {
            return Err(HardwareKeyProblem::ModuleConflict {
                bound: bound.clone(),
            });
        }
    }
    if renew {
        match c.standby() {
            Ok(engine) => {
                let name = format!("engine pkcs11 #{}", c.made + 1);
                return Ok(Through {
                    engine,
                    name,
                    fresh: true,
                });
            }
            Err(why) if !NOT_MADE_TOLD.swap(true, Ordering::Relaxed) => {
                tracing::warn!(uri = %uri, instance = %c.name, why = %why, "no standby engine instance: the key is tried again through the one in service, which may not see the token come back (restart the server once it is back)");
            }
            Err(_) => {}
        }
    }
    Ok(Through {
        engine: Arc::clone(&c.engine),
        name: c.name.clone(),
        fresh: false,
    })
}

/// Puts `through` in service if it is the standby: it opened a key that
/// passed its probe. The instance it replaces stays loaded while keys from
/// it live.
pub(super) fn adopt(through: &Through, uri: &KeyUri) {
    if !through.fresh {
        return;
    }
    let mut current = IN_SERVICE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = current.as_mut() {
        tracing::info!(uri = %uri, old = %c.name, new = %through.name, "engine instance replaced to open the key again after an outage");
        c.engine = Arc::clone(&through.engine);
        c.name.clone_from(&through.name);
        c.made += 1;
        c.standby = None;
    }
}

/// Drops `through` if it is the standby: it opened a key that failed its
/// probe, and libp11 keeps that key (and so its view of the token) cached,
/// so that a restart would not start its module afresh. The next try makes
/// a new standby.
pub(super) fn discard(through: &Through) {
    if through.fresh {
        let mut current = IN_SERVICE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = current.as_mut() {
            c.standby = None;
        }
    }
}

impl InService {
    /// The standby, made on first need and restarted before each later try.
    fn standby(&mut self) -> Result<Arc<Engine>, String> {
        if let Some(standby) = &self.standby {
            standby.restart().map_err(|e| e.to_string())?;
            return Ok(Arc::clone(standby));
        }
        let library = self
            .engine
            .library()
            .ok_or("the engine's library file is not known")?;
        let module = self
            .bound
            .clone()
            .or_else(|| std::env::var("PKCS11_MODULE_PATH").ok())
            .ok_or(
                "the PKCS#11 module is not named (module-path in the URI, or PKCS11_MODULE_PATH)",
            )?;
        let module = CString::new(module).map_err(|_| "a NUL byte in the module path")?;
        let standby =
            Arc::new(Engine::fresh_copy(ID, &library, &module).map_err(|e| e.to_string())?);
        self.standby = Some(Arc::clone(&standby));
        Ok(standby)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::sign::Signer;

    use super::*;

    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    const URI: &CStr = c"pkcs11:token=standby;object=k;type=private";

    fn run(program: &str, args: &[&str]) {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
    }

    /// A SoftHSM2 token `standby` (PIN 1234) in `dir` with an EC key `k`.
    fn token(dir: &Path) {
        let conf = dir.join("softhsm2.conf");
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        );
        std::fs::write(&conf, text).unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let key = dir.join("k.pem").display().to_string();
        let init = [
            "--init-token",
            "--free",
            "--label",
            "standby",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ];
        run("softhsm2-util", &init);
        let ec = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ];
        run("openssl", &ec);
        let import = [
            "--import", &key, "--token", "standby", "--label", "k", "--id", "01", "--pin", "1234",
        ];
        run("softhsm2-util", &import);
    }

    fn signs(through: &Through) -> PKey<Private> {
        let key = through.engine.private_key(URI, Some(b"1234")).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
        assert!(!signer.sign_oneshot_to_vec(b"standby").unwrap().is_empty());
        key
    }

    /// Loads the engine and its copies for the rest of the process, and sets
    /// SOFTHSM2_CONF: ignored in `cargo test`; ci/valgrind.sh runs it alone,
    /// under memcheck (the `memfd_create`, `dladdr`, dynamic engine and
    /// restart calls of `crate::ffi::engine`).
    #[test]
    #[ignore = "needs SoftHSM2 and the libp11 engine, keeps engine copies: run alone by ci/valgrind.sh"]
    fn a_standby_from_copies_opens_the_key_restarts_and_goes_in_service() {
        let dir = tempfile::tempdir().unwrap();
        token(dir.path());
        let uri = KeyUri::new(URI.to_str().unwrap()).unwrap();
        let first = through(Some(MODULE), false, &uri).unwrap();
        assert_eq!((first.name.as_str(), first.fresh), ("engine pkcs11", false));
        let key = signs(&first);
        // The standby of an outage, tried three times, restarted in between.
        for _ in 0..3 {
            let standby = through(Some(MODULE), true, &uri).unwrap();
            assert_eq!(
                (standby.name.as_str(), standby.fresh),
                ("engine pkcs11 #2", true)
            );
            drop(signs(&standby));
        }
        let standby = through(Some(MODULE), true, &uri).unwrap();
        let fresh = signs(&standby);
        adopt(&standby, &uri);
        assert_eq!(in_service().as_deref(), Some("engine pkcs11 #2"));
        drop((key, first, standby));
        // The next outage's standby is copied from the copy in service.
        let next = through(Some(MODULE), true, &uri).unwrap();
        assert_eq!(next.name, "engine pkcs11 #3");
        drop(signs(&next));
        let in_service = through(Some(MODULE), false, &uri).unwrap();
        assert_eq!(in_service.name, "engine pkcs11 #2");
        drop(signs(&in_service));
        drop(fresh);
    }
}
