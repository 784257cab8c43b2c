//! The site set: one reload engine per site and one for the trust context,
//! directory scans, and the snapshot the handshakes read.
//!
//! Each site reloads on its own (its own fingerprints, failures, back-off and
//! generation); any change publishes a new [`Snapshot`] whose table is rebuilt
//! from every site's certificate in service. A tick stats each site's files, and
//! each watched directory, and reads nothing unless one of them changed.
//!
//! Here: the set's types. `tick.rs`: a tick (`poll`, `reload_now`,
//! publishing); `start.rs`: loading everything at start-up; `scan.rs`: the directories and the sites
//! that have not loaded yet; `snapshot.rs`: loading sites and building what
//! the handshakes read; `status.rs`: what the set reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use openssl::ssl::{Ssl, SslContext, SslContextRef};
use tokio::sync::watch;

use super::dir::{self, SiteSource};
use super::table::{find_site, Enforced, FastPath, Selection, Served, SiteTable, Snapshot};
use super::{SiteCert, SiteStatus};
use crate::material::{
    Checks, IdentityFiles, Material, OcspFile, Passphrase, StapleMap, Staples, WatchedFiles,
};
use crate::poll::Fingerprint;
use crate::reloader::{
    initial_status, mark_polled, Backoff, Build, Engine, FailureLog, Polled, Setup,
};
use crate::session::TrustId;
use crate::{CertificateStatus, Error, Reload, ReloadFailure};

mod scan;
mod snapshot;
mod start;
mod status;
mod tick;

use self::scan::{dir_key, Pending};
use self::snapshot::{build_snapshot, certs_of, load_parallel, site_engine};
use self::tick::Outcome;

/// How long a directory site whose files are gone is still served, by default:
/// long enough for a delete-then-create rotation, short enough that a removed
/// site stops answering soon.
pub(crate) const DEFAULT_REMOVAL_GRACE: Duration = Duration::from_secs(5);

/// How recent a directory's change must be for the listing that saw it to be
/// repeated: coarser than any file system's timestamp granularity (ext4 moves
/// directory times in jiffies, 4 ms here).
const TIMESTAMP_SLACK: Duration = Duration::from_millis(100);

/// The context built from the policy and the client CA bundle.
pub(crate) struct TrustContext {
    pub(crate) ctx: SslContext,
    pub(crate) trust: TrustId,
}

/// Which sites to serve and how to choose among them.
#[derive(Clone, Debug)]
pub(crate) struct SiteOptions {
    /// Sites given one by one, the first being the default.
    pub(crate) explicit: Vec<IdentityFiles>,
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) default: Option<String>,
    pub(crate) strict: bool,
    pub(crate) removal_grace: Duration,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            explicit: Vec::new(),
            dirs: Vec::new(),
            default: None,
            strict: false,
            removal_grace: DEFAULT_REMOVAL_GRACE,
        }
    }
}

/// The trust context in service, on which a new certificate is tried before
/// it is published.
type Probe = Arc<ArcSwap<TrustContext>>;

/// What every site's engine shares.
pub(crate) struct SiteSetup {
    pub(crate) checks: Checks,
    pub(crate) passphrase: Passphrase,
    /// The CA bundle, read by each site only when it must chain to it.
    pub(crate) chain_ca: Option<PathBuf>,
    pub(crate) poll_interval: Duration,
    pub(crate) allow_missing: bool,
    /// Staple files given for certificates (by certificate path); any other
    /// certificate's is `<certificate file>.ocsp`, if it exists.
    pub(crate) ocsp: HashMap<PathBuf, PathBuf>,
    /// Issuer files given for certificates (by certificate path), for checking
    /// their staples; any other certificate's is `<certificate file>.issuer`,
    /// if it exists.
    pub(crate) ocsp_issuer: HashMap<PathBuf, PathBuf>,
    /// The staples of the snapshot in service, for the status callback.
    pub(crate) staples: Staples,
    /// Builds the default site's context from the trust context (none for a
    /// check, which serves nothing).
    pub(crate) fast_path: Option<Arc<dyn FastPathBuild>>,
}

/// Builds a context holding one site's certificate like the trust context
/// given: the server side's contexts (`acceptor::ServerContexts`) do.
pub(crate) trait FastPathBuild: Send + Sync {
    fn fast_path(&self, trust: &SslContext, cert: &SiteCert) -> Result<SslContext, Error>;
}

/// Explicit sites first, in the order given; then directory sites by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct SiteKey {
    rank: usize,
    name: String,
    path: PathBuf,
}

impl SiteKey {
    const FROM_DIR: usize = usize::MAX;
}

/// One site's reload engine; its value is `None` only while a site given one by
/// one waits for its files (`allow_missing_at_start`).
type SiteEngine = Engine<Option<Arc<SiteCert>>>;

struct Entry {
    engine: SiteEngine,
}

/// What only the poller (or a `reload_now`) touches; its lock makes them take turns.
struct ScanState {
    dir_prints: Vec<(PathBuf, Fingerprint)>,
    /// A directory had changed just before it was listed: list it again next
    /// tick, since a second change within the same timestamp tick would not
    /// move its fingerprint.
    recheck: bool,
    /// Directory sites no longer listed, since when.
    missing: HashMap<SiteKey, Instant>,
    pending: BTreeMap<SiteKey, Pending>,
    overlaps_logged: HashSet<String>,
    dir_error_logged: FailureLog,
    default_missing_logged: bool,
}

pub(crate) struct Sites {
    options: SiteOptions,
    setup: SiteSetup,
    trust: Engine<TrustContext>,
    /// Cloned (an `Arc`) by readers; replaced, never changed in place.
    entries: Mutex<Arc<BTreeMap<SiteKey, Arc<Entry>>>>,
    scan: Mutex<ScanState>,
    /// The sites that have not loaded, as `sites()` reports them: a copy, so that
    /// a status page never waits for a tick's I/O.
    pending_view: Mutex<Vec<SiteStatus>>,
    current: Arc<ArcSwap<Snapshot>>,
    status: watch::Sender<CertificateStatus>,
}
