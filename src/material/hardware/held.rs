//! The keys a process holds: each URI opened once per process (again after a
//! fork, an outage or a PIN change), never per reload or handshake; probed
//! on the poller thread so that an outage is seen, and the key opened again
//! once it can be (docs/hardware-keys.md, "Outages", has the limits).

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private};

use super::engine;
use super::probe::{probe, refused_or_open};
use super::providers::{self, NotReplaced};
use super::turn::{hardware_key_lock, serialise};
use super::uri::without_module_path;
use super::{HardwareKeyProblem, KeyRoute, KeyStatus, KeyUri};
use crate::ffi::provider::fips_properties_enabled;
use crate::ffi::store::{store_private_key, store_provider};
use crate::Error;

/// An open key and the number that tells its opening from any other.
pub(crate) struct HeldKey {
    pub(crate) key: PKey<Private>,
    pub(crate) generation: u64,
}

/// One URI's key and record.
struct Slot {
    pid: u32,
    /// SHA-256 of the PIN it was opened (or refused) with: a PIN change opens
    /// it again; the PIN itself is never kept.
    pin: [u8; 32],
    key: Option<PKey<Private>>,
    generation: u64,
    /// The PIN `pin` was refused: not offered again.
    pin_refused: bool,
    /// The provider instance the key was last opened (or tried) through.
    instance: Option<String>,
    probed: Option<Instant>,
    status: KeyStatus,
}

static SLOTS: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// A provider instance could not be replaced for a reason that stays.
static NOT_REPLACED_TOLD: AtomicBool = AtomicBool::new(false);

fn slots() -> MutexGuard<'static, HashMap<String, Slot>> {
    SLOTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn pin_digest(pin: Option<&[u8]>) -> [u8; 32] {
    let mut out = [0; 32];
    if let Some(pin) = pin {
        if let Ok(d) = hash(MessageDigest::sha256(), pin) {
            out.copy_from_slice(&d);
        }
    }
    out
}

/// The key `uri` names, opened with `pin` unless this process holds it
/// already (opened with the same PIN, and not lost in an outage).
pub(crate) fn open(uri: &KeyUri, pin: Option<&[u8]>) -> Result<HeldKey, Error> {
    let digest = pin_digest(pin);
    let pid = std::process::id();
    // Always the turn first, then the slots: the poller's tick holds its turn
    // when it asks for the slots.
    let turn = hardware_key_lock();
    let mut slots = slots();
    let held = slots
        .get(uri.secret_text())
        .and_then(|s| s.held(pid, digest));
    if let Some(held) = held {
        return Ok(held);
    }
    let serving = renewed_instance(&slots, uri);
    let renew_engine = serving.is_none() && engine_wedged(&slots, uri);
    let slot = slots
        .entry(uri.secret_text().to_owned())
        .or_insert_with(|| Slot::new(uri, pid, digest));
    // Opened in the parent of a fork: a PKCS#11 session is not the child's.
    slot.pid = pid;
    slot.pin = digest;
    slot.key = None;
    slot.instance = serving.clone().or_else(engine::in_service);
    // A handle that opens but cannot sign (a token half gone) is no key.
    let opened = load(uri, pin, serving, renew_engine).and_then(|opened| {
        if let KeyRoute::Provider { name } = &opened.route {
            serialise(name);
        }
        if let Err(problem) = probe(&opened.key, Some(&opened.route)) {
            // Its module cannot start afresh while libp11 caches that key.
            if let Via::Engine(through) = &opened.via {
                engine::discard(through);
            }
            return Err(problem);
        }
        Ok(opened)
    });
    let problem = match opened {
        Ok(opened) => {
            // A standby engine goes in service once a key of it passed the probe.
            if let Via::Engine(through) = &opened.via {
                engine::adopt(through, uri);
            }
            drop(turn);
            slot.instance = Some(opened.via.into_name());
            return Ok(slot.hold(uri, opened.key, opened.route));
        }
        Err(problem) => problem,
    };
    drop(turn);
    slot.pin_refused = matches!(problem, HardwareKeyProblem::PinRefused { .. });
    let error = Error::HardwareKey {
        uri: uri.to_string(),
        reason: problem,
    };
    mark_down(&mut slot.status, &error);
    Err(error)
}

/// Whether the poller must open `uri` again now: it is not held by this
/// process (never opened, lost, or opened before a fork), or it fails its
/// probe, a signature at most every `interval`. A PIN the token refused is
/// not offered again: the PIN must change first (its file is watched).
pub(crate) fn needs_open(uri: &KeyUri, interval: Duration) -> bool {
    let _turn = hardware_key_lock();
    let mut slots = slots();
    let Some(slot) = slots.get_mut(uri.secret_text()) else {
        return true;
    };
    if slot.pid != std::process::id() {
        return true;
    }
    let Some(key) = &slot.key else {
        return !slot.pin_refused;
    };
    if slot.probed.is_some_and(|at| at.elapsed() < interval) {
        return false;
    }
    slot.probed = Some(Instant::now());
    match probe(key, slot.status.route.as_ref()) {
        Ok(()) => false,
        Err(reason) => {
            let error = Error::HardwareKey {
                uri: uri.to_string(),
                reason,
            };
            if slot.status.available {
                tracing::warn!(uri = %uri, error = %error.report(), "hardware key unavailable; handshakes fail until it is opened again, tried every poll");
            }
            mark_down(&mut slot.status, &error);
            slot.key = None;
            true
        }
    }
}

/// Whether a key was opened by another process, the one this process was
/// forked from: it must be opened again here before this process signs.
pub(crate) fn opened_elsewhere() -> bool {
    let pid = std::process::id();
    SLOTS
        .get()
        .is_some_and(|_| slots().values().any(|s| s.pid != pid))
}

/// The status of `uri`'s key in this process, if it was ever asked for.
pub(crate) fn status(uri: &KeyUri) -> Option<KeyStatus> {
    slots().get(uri.secret_text()).map(|s| s.status.clone())
}

impl Slot {
    /// A URI's record before its first opening.
    fn new(uri: &KeyUri, pid: u32, pin: [u8; 32]) -> Self {
        Self {
            pid,
            pin,
            key: None,
            generation: 0,
            pin_refused: false,
            instance: None,
            probed: None,
            status: KeyStatus {
                uri: uri.to_string(),
                route: None,
                available: false,
                unavailable_since: None,
                outages: 0,
                opened: 0,
                last_error: None,
            },
        }
    }

    /// The key this process holds, opened with the PIN whose digest is `pin`.
    fn held(&self, pid: u32, pin: [u8; 32]) -> Option<HeldKey> {
        let key = self
            .key
            .as_ref()
            .filter(|_| self.pid == pid && self.pin == pin)?;
        Some(HeldKey {
            key: key.clone(),
            generation: self.generation,
        })
    }

    /// Records a key just opened, logging it and the end of an outage.
    fn hold(&mut self, uri: &KeyUri, key: PKey<Private>, route: KeyRoute) -> HeldKey {
        self.generation = next_generation();
        self.key = Some(key.clone());
        self.pin_refused = false;
        self.probed = Some(Instant::now());
        let s = &mut self.status;
        if let Some(since) = s.unavailable_since {
            let outage = since.elapsed().unwrap_or_default();
            tracing::info!(uri = %uri, route = %route, outage = ?outage, "hardware key opened again; the outage is over");
        } else if s.opened > 0 {
            tracing::info!(uri = %uri, route = %route, "hardware key opened again");
        } else {
            tracing::info!(uri = %uri, route = %route, "hardware key opened");
        }
        s.opened += 1;
        s.route = Some(route);
        s.available = true;
        s.unavailable_since = None;
        HeldKey {
            key,
            generation: self.generation,
        }
    }
}

fn mark_down(status: &mut KeyStatus, error: &Error) {
    if status.unavailable_since.is_none() {
        status.unavailable_since = Some(SystemTime::now());
        status.outages += 1;
    }
    status.available = false;
    status.last_error = Some(error.report().to_string());
}

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed) + 1
}

/// The provider instance whose store loader serves `uri`'s scheme, if one does.
fn serving_instance(uri: &KeyUri) -> Option<String> {
    CString::new(uri.scheme().0)
        .ok()
        .and_then(|scheme| store_provider(&scheme))
}

/// The provider instance to replace before `uri` is opened again: the one
/// serving it, if this process held `uri`'s key through it, the key is now
/// down, and no key opened through that instance is available. A key that
/// never opened (a wrong handle) is no sign of a wedged instance.
fn wedged(slots: &HashMap<String, Slot>, uri: &KeyUri, serving: Option<&str>) -> Option<String> {
    let serving = serving?;
    let slot = slots.get(uri.secret_text())?;
    let down = slot.status.opened > 0 && !slot.status.available;
    let healthy = slots
        .values()
        .any(|s| s.instance.as_deref() == Some(serving) && s.key.is_some() && s.status.available);
    (down && slot.instance.as_deref() == Some(serving) && !healthy).then(|| serving.to_owned())
}

/// Whether `uri`'s key, opened before, is down and was last tried through
/// the engine instance in service: then the engine's standby tries it.
/// Unlike a provider's, that instance may still serve other keys: libp11
/// caches what it found of a token, so a token it saw half restored stays
/// so for it.
fn engine_wedged(slots: &HashMap<String, Slot>, uri: &KeyUri) -> bool {
    let in_service = engine::in_service();
    slots.get(uri.secret_text()).is_some_and(|s| {
        s.status.opened > 0
            && !s.status.available
            && s.instance.is_some()
            && s.instance == in_service
    })
}

/// The provider instance serving `uri`, a fresh one if an outage may have
/// left the one serving it unusable ([`wedged`]); logs the replacement
/// (docs/hardware-keys.md, "Outages").
fn renewed_instance(slots: &HashMap<String, Slot>, uri: &KeyUri) -> Option<String> {
    let serving = serving_instance(uri);
    let Some(instance) = wedged(slots, uri, serving.as_deref()) else {
        return serving;
    };
    match providers::replace(&instance) {
        Ok(fresh) => {
            tracing::info!(uri = %uri, old = %instance, new = %fresh, "provider instance replaced to open the key again after an outage");
        }
        // Expected at every poll while the device is away.
        Err(why @ NotReplaced::CannotStart(_)) => {
            tracing::debug!(uri = %uri, %instance, why = %why, "provider instance not replaced yet");
        }
        // Once per process: it stays so.
        Err(why) if !NOT_REPLACED_TOLD.swap(true, Ordering::Relaxed) => {
            tracing::warn!(uri = %uri, %instance, why = %why, "provider instance not replaced: the key is opened again through the one in place");
        }
        Err(_) => {}
    }
    serving_instance(uri)
}

/// A key just opened, before its probe.
struct Opened {
    key: PKey<Private>,
    route: KeyRoute,
    via: Via,
}

/// The instance that opened a key.
enum Via {
    /// A provider instance, by name.
    Provider(String),
    /// An engine instance (the one in service or its standby).
    Engine(engine::Through),
}

impl Via {
    fn into_name(self) -> String {
        match self {
            Self::Provider(name) => name,
            Self::Engine(through) => through.name,
        }
    }
}

/// Opens the key by its route: the provider instance `serving` the scheme
/// through its store loader; for `pkcs11:` without one, the libp11 engine
/// (never in FIPS mode), its standby with `renew_engine`.
fn load(
    uri: &KeyUri,
    pin: Option<&[u8]>,
    serving: Option<String>,
    renew_engine: bool,
) -> Result<Opened, HardwareKeyProblem> {
    let (scheme, forced) = uri.scheme();
    let (text, module) = uri.for_loader();
    if let Some(instance) = serving {
        let name = providers::configured_name(&instance).to_owned();
        let route = KeyRoute::Provider { name };
        let text = CString::new(text).map_err(|_| HardwareKeyProblem::Malformed("a NUL byte"))?;
        return match store_private_key(&text, pin) {
            Ok(Some(key)) => Ok(Opened {
                key,
                route,
                via: Via::Provider(instance),
            }),
            Ok(None) => Err(HardwareKeyProblem::NotFound { route }),
            Err(source) => Err(refused_or_open(route, source)),
        };
    }
    if scheme != "pkcs11" || forced {
        return Err(HardwareKeyProblem::NoLoader {
            scheme: scheme.to_owned(),
        });
    }
    if fips_properties_enabled() {
        return Err(HardwareKeyProblem::FipsNeedsProvider);
    }
    let through = engine::through(module, renew_engine, uri)?;
    let route = KeyRoute::Engine {
        id: "pkcs11".into(),
    };
    let text = CString::new(without_module_path(text))
        .map_err(|_| HardwareKeyProblem::Malformed("a NUL byte"))?;
    let key = through
        .engine
        .private_key(&text, pin)
        .map_err(|source| refused_or_open(route.clone(), source))?;
    Ok(Opened {
        key,
        route,
        via: Via::Engine(through),
    })
}
