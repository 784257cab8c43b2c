//! The site set: one reload engine per site and one for the trust context,
//! directory scans, and the snapshot the handshakes read.
//!
//! Each site reloads on its own (its own fingerprints, failures, back-off and
//! generation); any change publishes a new [`Snapshot`] whose table is rebuilt
//! from every site's certificate in service. A tick stats each site's files, and
//! each watched directory, and reads nothing unless one of them changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use openssl::ssl::{Ssl, SslContext, SslContextRef};
use tokio::sync::watch;

use super::dir::{self, SiteSource};
use super::table::{find_site, Enforced, FastPath, Selection, SiteTable, Snapshot};
use super::{SiteCert, SiteStatus};
use crate::material::{
    Checks, IdentityFiles, Material, OcspFile, Passphrase, StapleMap, Staples, WatchedFiles,
};
use crate::poll::Fingerprint;
use crate::reloader::{initial_status, Backoff, Build, Engine, FailureLog, Polled, Setup};
use crate::session::TrustId;
use crate::{CertificateStatus, Error, Reload, ReloadFailure};

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
    pub(crate) fast_path: Option<FastPathBuild>,
}

/// Builds a context holding one certificate like the trust context given.
pub(crate) type FastPathBuild =
    Arc<dyn Fn(&SslContext, &SiteCert) -> Result<SslContext, Error> + Send + Sync>;

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

/// A directory site that has not loaded yet: it is not served, and it is tried
/// again when its files change (or, with a back-off, when they do not).
struct Pending {
    source: SiteSource,
    prints: Vec<Fingerprint>,
    failure: ReloadFailure,
    failures: u64,
    logged: FailureLog,
    retry_at: Instant,
    backoff: Backoff,
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

impl Sites {
    /// Loads the trust context and every site. Explicit sites must load (unless
    /// allowed to be missing); directory sites that fail are logged and left out.
    pub(crate) fn start(
        options: SiteOptions,
        setup: SiteSetup,
        trust_setup: Setup,
        build_trust: Build<TrustContext>,
    ) -> Result<Self, Error> {
        let trust = Engine::start(trust_setup, build_trust)?;
        let mut entries = BTreeMap::new();
        for (rank, files) in options.explicit.iter().enumerate() {
            let source = SiteSource {
                name: files.cert_path().display().to_string(),
                files: files.clone(),
            };
            let key = SiteKey {
                rank,
                name: source.name.clone(),
                path: files.cert_path().to_owned(),
            };
            let engine = site_engine(&setup, trust.current(), &source, setup.allow_missing, true)?;
            entries.insert(key, Arc::new(Entry { engine }));
        }
        let mut scan = ScanState {
            dir_prints: Vec::new(),
            recheck: false,
            missing: HashMap::new(),
            pending: BTreeMap::new(),
            overlaps_logged: HashSet::new(),
            dir_error_logged: FailureLog::default(),
            default_missing_logged: false,
        };
        let mut found = Vec::new();
        for dir in &options.dirs {
            let listed = dir::scan(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            scan.dir_prints.extend(listed.watched);
            found.extend(listed.sites);
        }
        scan.recheck = scan
            .dir_prints
            .iter()
            .any(|(_, p)| p.changed_within(TIMESTAMP_SLACK));
        let loaded = load_parallel(&setup, trust.current(), found);
        let from_dirs = loaded.len();
        let mut first_error = None;
        for (source, result) in loaded {
            let key = dir_key(&source);
            match result {
                Ok(engine) => {
                    entries.insert(key, Arc::new(Entry { engine }));
                }
                Err(error) => {
                    let message = error.report().to_string();
                    tracing::warn!(site = %source.name, path = error.path().map(|p| p.display().to_string()), error = %message, "site not served: its files do not load");
                    let pending = Pending::new(source, &error, &setup, FailureLog::said(message));
                    scan.pending.insert(key, pending);
                    first_error.get_or_insert(error);
                }
            }
        }
        if entries.is_empty() && !setup.allow_missing {
            return Err(first_error.unwrap_or_else(|| match options.dirs.first() {
                Some(dir) => Error::NoSites { dir: dir.clone() },
                None => Error::NoIdentity,
            }));
        }
        if let Some(wanted) = &options.default {
            let certs = certs_of(&entries);
            if find_site(&certs, wanted).is_none() {
                return Err(Error::UnknownSite {
                    name: wanted.clone(),
                });
            }
        }
        let ca_certificates = trust.status_ref().ca_certificates;
        if ca_certificates > 0 {
            tracing::info!(role = "acceptor", ca_certificates, "trust bundle loaded");
        }
        if !options.dirs.is_empty() {
            tracing::info!(
                sites = entries.len(),
                failed = scan.pending.len(),
                from_dirs,
                "serving sites"
            );
        }
        let snapshot = build_snapshot(&trust, &entries, &options, &setup, None, &mut scan)?;
        let waiting = trust.status_ref().generation == 0
            || entries
                .values()
                .any(|e| e.engine.status_ref().generation == 0);
        let mut status = initial_status(None, 0, setup.poll_interval, None);
        status.generation = 0;
        let sites = Self {
            status: watch::channel(status).0,
            options,
            setup,
            trust,
            entries: Mutex::new(Arc::new(entries)),
            scan: Mutex::new(scan),
            pending_view: Mutex::new(Vec::new()),
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
        };
        let scan = sites.lock_scan();
        sites.refresh_status(&scan, !waiting, false);
        drop(scan);
        Ok(sites)
    }

    /// What the handshake callback reads.
    pub(crate) fn current(&self) -> &Arc<ArcSwap<Snapshot>> {
        &self.current
    }

    pub(crate) fn status(&self) -> CertificateStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.status.subscribe()
    }

    /// One poller tick.
    pub(crate) fn poll(&self) {
        // A `reload_now` in progress does the same work; skip rather than queue.
        let Ok(mut scan) = self.scan.try_lock() else {
            return;
        };
        let mut outcome = Outcome::default();
        outcome.add(self.trust.poll());
        if self.dirs_changed(&scan) {
            outcome.merge(self.rescan(&mut scan, false));
        }
        outcome.merge(self.retry_pending(&mut scan, false));
        outcome.merge(self.expire_missing(&mut scan));
        let entries = self.entries();
        for (key, entry) in entries.iter() {
            // A site whose files went away is not polled during its grace: a
            // delete-then-create rotation is not a failure.
            if !scan.missing.contains_key(key) {
                outcome.add(entry.engine.poll());
            }
        }
        self.finish(&mut scan, outcome);
        let now = SystemTime::now();
        self.status.send_if_modified(|s| {
            s.last_poll = Some(now);
            false
        });
    }

    /// Reads every file and directory now. Every site is tried; the first error
    /// is returned after the others are published.
    pub(crate) fn reload_now(&self) -> Result<Reload, Error> {
        let mut scan = self.scan.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outcome = Outcome::default();
        let mut first_error = None;
        let mut note = |result: Result<Reload, Error>, outcome: &mut Outcome| match result {
            Ok(Reload::Published(_)) => outcome.published = true,
            Ok(_) => outcome.attempted = true,
            Err(error) => {
                outcome.attempted = true;
                first_error.get_or_insert(error);
            }
        };
        note(self.trust.reload_now(), &mut outcome);
        if !self.options.dirs.is_empty() {
            outcome.merge(self.rescan(&mut scan, true));
        }
        outcome.merge(self.retry_pending(&mut scan, true));
        for (key, entry) in self.entries().iter() {
            if !scan.missing.contains_key(key) {
                note(entry.engine.reload_now(), &mut outcome);
            }
        }
        let published = self.finish(&mut scan, outcome);
        match first_error {
            Some(error) => Err(error),
            None if published => Ok(Reload::Published(self.status.borrow().generation)),
            None => Ok(Reload::Unchanged),
        }
    }

    /// Every site with its own status, in site order; sites that have not loaded
    /// last.
    pub(crate) fn sites(&self) -> Vec<SiteStatus> {
        let snapshot = self.current.load();
        let default = snapshot.table.default_site();
        let mut out: Vec<SiteStatus> = self
            .entries()
            .iter()
            .map(|(key, entry)| {
                // The certificate in the snapshot the handshakes read: a site's
                // engine publishes a moment before the snapshot is rebuilt.
                let cert = snapshot.certs.get(&key.path);
                let mut status = entry.engine.status();
                status.certificate = cert.map(|c| c.identity.info.clone());
                SiteStatus {
                    name: key.name.clone(),
                    path: key.path.clone(),
                    names: cert.map(|c| c.names.clone()).unwrap_or_default(),
                    key_type: cert.map(|c| c.key_label.clone()),
                    default: cert.is_some() && default == Some(key.name.as_str()),
                    serving: cert.is_some(),
                    status,
                }
            })
            .collect();
        out.extend(
            self.pending_view
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        out
    }

    fn entries(&self) -> Arc<BTreeMap<SiteKey, Arc<Entry>>> {
        Arc::clone(&self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn lock_scan(&self) -> MutexGuard<'_, ScanState> {
        self.scan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn replace_entries(&self, change: impl FnOnce(&mut BTreeMap<SiteKey, Arc<Entry>>)) {
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut map = BTreeMap::clone(&guard);
        change(&mut map);
        *guard = Arc::new(map);
    }

    fn dirs_changed(&self, scan: &ScanState) -> bool {
        scan.recheck
            || scan
                .dir_prints
                .iter()
                .any(|(path, print)| Fingerprint::of(path) != *print)
    }

    /// Lists the directories again: new sites are loaded, sites no longer listed
    /// start their grace, sites listed again end it.
    fn rescan(&self, scan: &mut ScanState, forced: bool) -> Outcome {
        let mut prints = Vec::new();
        let mut found = BTreeMap::new();
        for dir in &self.options.dirs {
            match dir::scan(dir) {
                Ok(listed) => {
                    prints.extend(listed.watched);
                    found.extend(listed.sites.into_iter().map(|s| (dir_key(&s), s)));
                }
                Err(source) => {
                    // Keep serving what was found last; look again next tick.
                    let error = Error::Io {
                        path: dir.clone(),
                        source,
                    };
                    let message = error.report().to_string();
                    if scan.dir_error_logged.is_new(&message) {
                        tracing::warn!(error = %message, "cannot list the site directory; keeping the sites in service");
                    }
                    return Outcome::default();
                }
            }
        }
        scan.dir_error_logged.recovered();
        scan.recheck = prints
            .iter()
            .any(|(_, p)| p.changed_within(TIMESTAMP_SLACK));
        scan.dir_prints = prints;
        let entries = self.entries();
        let now = Instant::now();
        for key in entries.keys().filter(|k| k.rank == SiteKey::FROM_DIR) {
            if found.contains_key(key) {
                scan.missing.remove(key);
            } else {
                scan.missing.entry(key.clone()).or_insert(now);
            }
        }
        scan.pending.retain(|key, _| found.contains_key(key));
        let new: Vec<SiteSource> = found
            .into_iter()
            .filter(|(key, _)| !entries.contains_key(key) && !scan.pending.contains_key(key))
            .map(|(_, source)| source)
            .collect();
        let mut outcome = Outcome::default();
        let mut added = Vec::new();
        for (source, result) in load_parallel(&self.setup, self.trust.current(), new) {
            let key = dir_key(&source);
            match result {
                Ok(engine) => {
                    tracing::info!(site = %source.name, "site added");
                    added.push((key, Arc::new(Entry { engine })));
                }
                Err(error) => {
                    // A writer may still be at work on a new pair: say so only if
                    // it still fails next time (or right away when asked to).
                    let mut pending =
                        Pending::new(source, &error, &self.setup, FailureLog::default());
                    if forced {
                        pending.log(&error);
                    }
                    scan.pending.insert(key, pending);
                    outcome.attempted = true;
                }
            }
        }
        if !added.is_empty() {
            outcome.published = true;
            self.replace_entries(|map| map.extend(added));
        }
        outcome
    }

    /// Tries the sites that have not loaded yet whose files changed or whose
    /// retry is due.
    fn retry_pending(&self, scan: &mut ScanState, forced: bool) -> Outcome {
        let mut outcome = Outcome::default();
        let now = Instant::now();
        let mut loaded = Vec::new();
        for (key, pending) in &mut scan.pending {
            let prints = prints_of(&pending.source.files);
            if !forced && prints == pending.prints && now < pending.retry_at {
                continue;
            }
            match site_engine(
                &self.setup,
                self.trust.current(),
                &pending.source,
                false,
                false,
            ) {
                Ok(engine) => {
                    tracing::info!(site = %pending.source.name, "site added");
                    loaded.push((key.clone(), Arc::new(Entry { engine })));
                }
                Err(error) => {
                    pending.failed(&error, prints);
                    outcome.attempted = true;
                }
            }
        }
        for (key, _) in &loaded {
            scan.pending.remove(key);
        }
        if !loaded.is_empty() {
            outcome.published = true;
            self.replace_entries(|map| map.extend(loaded));
        }
        outcome
    }

    /// Stops serving the directory sites whose grace is over.
    fn expire_missing(&self, scan: &mut ScanState) -> Outcome {
        let grace = self.options.removal_grace;
        let gone: Vec<SiteKey> = scan
            .missing
            .iter()
            .filter(|(_, since)| since.elapsed() >= grace)
            .map(|(key, _)| key.clone())
            .collect();
        if gone.is_empty() {
            return Outcome::default();
        }
        for key in &gone {
            scan.missing.remove(key);
            tracing::info!(site = %key.name, path = %key.path.display(), "site removed: its files are gone");
        }
        self.replace_entries(|map| {
            for key in &gone {
                map.remove(key);
            }
        });
        Outcome {
            published: true,
            attempted: false,
        }
    }

    /// Publishes a new snapshot if anything changed, refreshes the status if
    /// anything happened. Returns whether it published.
    fn finish(&self, scan: &mut ScanState, outcome: Outcome) -> bool {
        let mut published = false;
        if outcome.published {
            match build_snapshot(
                &self.trust,
                &self.entries(),
                &self.options,
                &self.setup,
                Some(&self.current.load()),
                scan,
            ) {
                Ok(snapshot) => {
                    self.current.store(Arc::new(snapshot));
                    published = true;
                }
                // Building a table only hashes names: this is OpenSSL out of memory.
                Err(error) => {
                    tracing::error!(error = %error.report(), "cannot build the site table; keeping the one in service");
                }
            }
        }
        if published || outcome.attempted {
            self.refresh_status(scan, published, true);
        }
        published
    }

    /// The acceptor's status: the default site's certificate, the trust's CA
    /// count, and failures summed over everything.
    fn refresh_status(&self, scan: &ScanState, published: bool, notify: bool) {
        let entries = self.entries();
        let snapshot = self.current.load();
        let default = snapshot.table.default_site();
        let trust = self.trust.status_ref();
        let mut failures = trust.failures;
        let mut consecutive = trust.consecutive_failures;
        let mut last_error = trust.last_error.clone();
        let mut certificate = None;
        let mut newer = |candidate: &Option<ReloadFailure>| {
            if let Some(c) = candidate {
                if last_error.as_ref().is_none_or(|l| c.at > l.at) {
                    last_error = Some(c.clone());
                }
            }
        };
        for (key, entry) in entries.iter() {
            let status = entry.engine.status_ref();
            failures += status.failures;
            consecutive = consecutive.max(status.consecutive_failures);
            newer(&status.last_error);
            if default == Some(key.name.as_str()) {
                certificate.clone_from(&status.certificate);
            }
        }
        for pending in scan.pending.values() {
            failures += pending.failures;
            newer(&Some(pending.failure.clone()));
        }
        let ca_certificates = trust.ca_certificates;
        let crls = trust.crls.clone();
        drop(trust);
        let update = |s: &mut CertificateStatus| {
            let before = (
                s.failures,
                s.consecutive_failures,
                s.last_error.as_ref().map(|e| e.at),
                s.ca_certificates,
                s.certificate.as_ref().map(|c| c.sha256.clone()),
            );
            if published {
                s.generation += 1;
                if s.generation > 1 {
                    s.reloads += 1;
                }
                s.last_reload = SystemTime::now();
            }
            s.certificate = certificate;
            s.ca_certificates = ca_certificates;
            s.crls = crls;
            s.failures = failures;
            s.consecutive_failures = consecutive;
            s.last_error = last_error;
            let after = (
                s.failures,
                s.consecutive_failures,
                s.last_error.as_ref().map(|e| e.at),
                s.ca_certificates,
                s.certificate.as_ref().map(|c| c.sha256.clone()),
            );
            // Subscribers hear of publishes and of failures starting or ending.
            notify && (published || before != after)
        };
        self.status.send_if_modified(update);
        let pending = scan
            .pending
            .iter()
            .map(|(key, pending)| SiteStatus {
                name: key.name.clone(),
                path: key.path.clone(),
                names: Vec::new(),
                key_type: None,
                default: false,
                serving: false,
                status: pending.status(self.setup.poll_interval),
            })
            .collect();
        *self
            .pending_view
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = pending;
    }
}

/// What a tick's parts did.
#[derive(Clone, Copy, Default)]
struct Outcome {
    published: bool,
    /// Something was tried: a failure to record, or one that ended.
    attempted: bool,
}

impl Outcome {
    fn add(&mut self, polled: Polled) {
        match polled {
            Polled::Published => self.published = true,
            Polled::Failed | Polled::Checked => self.attempted = true,
            Polled::Idle => {}
        }
    }

    fn merge(&mut self, other: Self) {
        self.published |= other.published;
        self.attempted |= other.attempted;
    }
}

impl Pending {
    fn new(source: SiteSource, error: &Error, setup: &SiteSetup, logged: FailureLog) -> Self {
        let mut backoff = Backoff::new(setup.poll_interval);
        Self {
            prints: prints_of(&source.files),
            source,
            failure: ReloadFailure::new(error, SystemTime::now()),
            failures: 1,
            logged,
            retry_at: Instant::now() + backoff.next_delay(),
            backoff,
        }
    }

    fn failed(&mut self, error: &Error, prints: Vec<Fingerprint>) {
        self.failure = ReloadFailure::new(error, SystemTime::now());
        self.failures += 1;
        if prints != self.prints {
            self.backoff.reset();
        }
        self.prints = prints;
        self.retry_at = Instant::now() + self.backoff.next_delay();
        self.log(error);
    }

    /// Logs the failure once until its message changes.
    fn log(&mut self, error: &Error) {
        let message = error.report().to_string();
        if self.logged.is_new(&message) {
            tracing::warn!(site = %self.source.name, path = error.path().map(|p| p.display().to_string()), error = %message, "site not served: its files do not load");
        }
    }

    fn status(&self, poll_interval: Duration) -> CertificateStatus {
        let mut status = initial_status(None, 0, poll_interval, None);
        status.generation = 0;
        status.failures = self.failures;
        status.consecutive_failures = self.failures;
        status.last_error = Some(self.failure.clone());
        status
    }
}

fn dir_key(source: &SiteSource) -> SiteKey {
    SiteKey {
        rank: SiteKey::FROM_DIR,
        name: source.name.clone(),
        path: source.files.cert_path().to_owned(),
    }
}

fn prints_of(files: &IdentityFiles) -> Vec<Fingerprint> {
    let (cert, key) = files.pair_paths();
    vec![Fingerprint::of(cert), Fingerprint::of(key)]
}

/// One site's engine: its identity files (and the CA bundle when the chain must
/// lead to it), built into a [`SiteCert`].
fn site_engine(
    setup: &SiteSetup,
    probe: &Probe,
    source: &SiteSource,
    allow_missing: bool,
    announce: bool,
) -> Result<SiteEngine, Error> {
    let name = source.name.clone();
    let probe = Arc::clone(probe);
    let build: Build<Option<Arc<SiteCert>>> = Box::new(move |material: Material| {
        let Some(identity) = material.identity else {
            return Ok(None);
        };
        let cert = SiteCert::new(name.clone(), identity);
        // What OpenSSL refuses to serve (a key type it cannot use, a digest below
        // the security level) is refused here, not in a handshake.
        let trust = probe.load();
        Ssl::new(&trust.ctx)
            .and_then(|mut ssl| cert.install(&mut ssl))
            .map_err(|source| Error::Rejected {
                path: cert.identity.path.clone(),
                source,
            })?;
        Ok(Some(Arc::new(cert)))
    });
    let cert = source.files.cert_path();
    let ocsp = match setup.ocsp.get(cert) {
        Some(given) => OcspFile::Given(given.clone()),
        None => OcspFile::beside(cert),
    };
    let ocsp_issuer = match setup.ocsp_issuer.get(cert) {
        Some(given) => OcspFile::Given(given.clone()),
        None => OcspFile::issuer_beside(cert),
    };
    let files = WatchedFiles {
        identity: Some(source.files.clone()),
        ca: setup.chain_ca.clone(),
        crl: None,
        ocsp: Some(ocsp),
        ocsp_issuer: Some(ocsp_issuer),
        passphrase: setup.passphrase.clone(),
    };
    Engine::start(
        Setup {
            role: "acceptor",
            files,
            checks: setup.checks.clone(),
            poll_interval: setup.poll_interval,
            allow_missing,
            announce,
        },
        build,
    )
}

/// Loads sites on every core: start-up with thousands of sites is parsing.
fn load_parallel(
    setup: &SiteSetup,
    probe: &Probe,
    sources: Vec<SiteSource>,
) -> Vec<(SiteSource, Result<SiteEngine, Error>)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sources.len().div_ceil(64).max(1));
    if workers <= 1 {
        return sources
            .into_iter()
            .map(|s| {
                let result = site_engine(setup, probe, &s, false, false);
                (s, result)
            })
            .collect();
    }
    let chunk = sources.len().div_ceil(workers);
    let mut chunks: Vec<Vec<SiteSource>> = Vec::new();
    let mut rest = sources;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|s| {
                            let result = site_engine(setup, probe, &s, false, false);
                            (s, result)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
            })
            .collect()
    })
}

fn certs_of(entries: &BTreeMap<SiteKey, Arc<Entry>>) -> Vec<Arc<SiteCert>> {
    entries
        .values()
        .filter_map(|e| e.engine.current().load_full().as_ref().clone())
        .collect()
}

fn build_snapshot(
    trust: &Engine<TrustContext>,
    entries: &BTreeMap<SiteKey, Arc<Entry>>,
    options: &SiteOptions,
    setup: &SiteSetup,
    previous: Option<&Snapshot>,
    scan: &mut ScanState,
) -> Result<Snapshot, Error> {
    let trust = trust.current().load_full();
    let certs = certs_of(entries);
    let mut default = options.default.as_deref();
    if let Some(wanted) = default {
        if find_site(&certs, wanted).is_none() {
            if !scan.default_missing_logged {
                tracing::warn!(
                    site = wanted,
                    "the default site is not served; the first site answers instead"
                );
                scan.default_missing_logged = true;
            }
            default = None;
        } else {
            scan.default_missing_logged = false;
        }
    }
    let selection = Selection {
        default,
        strict: options.strict,
    };
    let enforced = Enforced {
        trust: trust.trust,
        verify: trust.ctx.verify_mode(),
    };
    let table = SiteTable::build(&certs, &selection, enforced, &mut scan.overlaps_logged)
        .map_err(Error::openssl("build the site table"))?;
    // Before the snapshot is published, so that its handshakes find them.
    let mut map = StapleMap::default();
    for cert in &certs {
        if let Some(staple) = &cert.identity.staple {
            map.insert(&cert.identity.cert, Arc::clone(staple));
        }
    }
    setup.staples.store(Arc::new(map));
    let fast = match (&setup.fast_path, table.default_served()) {
        (Some(build), Some(served)) => served.single().and_then(|cert| {
            // The same certificate on the same trust context (another site
            // changed): the context in service still holds exactly this.
            let kept = previous.filter(|p| std::ptr::eq::<SslContextRef>(&*p.ctx, &*trust.ctx)).and_then(|p| {
                p.fast
                    .as_ref()
                    .filter(|f| f.served.single().is_some_and(|c| Arc::ptr_eq(c, cert)))
            });
            let ctx = match kept {
                Some(kept) => kept.ctx.clone(),
                // Without it the default site is served as any other: only slower.
                None => match build(&trust.ctx, cert) {
                    Ok(ctx) => ctx,
                    Err(error) => {
                        tracing::debug!(error = %error.report(), "the default site's context was not built; installing its certificate per handshake");
                        return None;
                    }
                },
            };
            Some(FastPath {
                served: Arc::clone(served),
                ctx,
            })
        }),
        _ => None,
    };
    Ok(Snapshot {
        ctx: trust.ctx.clone(),
        fast,
        table,
        certs: certs
            .into_iter()
            .map(|c| (c.identity.path.clone(), c))
            .collect(),
    })
}
