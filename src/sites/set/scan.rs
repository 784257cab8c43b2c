//! The watched directories: listing them again when they change, loading the
//! sites found, the grace of sites gone, and the sites that have not loaded
//! yet, retried with a back-off.

use super::*;

/// The fingerprints of the directories and what they hold.
type DirPrints = Vec<(PathBuf, Fingerprint)>;

impl Sites {
    pub(super) fn dirs_changed(&self, scan: &ScanState) -> bool {
        scan.recheck
            || scan
                .dir_prints
                .iter()
                .any(|(path, print)| Fingerprint::of(path) != *print)
    }

    /// Lists the directories again: new sites are loaded, sites no longer listed
    /// start their grace, sites listed again end it.
    pub(super) fn rescan(&self, scan: &mut ScanState, forced: bool) -> Outcome {
        let Some((prints, found)) = self.list_dirs(scan) else {
            // Keep serving what was found last; look again next tick.
            return Outcome::default();
        };
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
        self.add_new(scan, new, forced)
    }

    /// Every directory's listing and fingerprints; `None` (logged once) when
    /// one cannot be listed.
    fn list_dirs(
        &self,
        scan: &mut ScanState,
    ) -> Option<(DirPrints, BTreeMap<SiteKey, SiteSource>)> {
        let mut prints = Vec::new();
        let mut found = BTreeMap::new();
        for dir in &self.options.dirs {
            match dir::scan(dir) {
                Ok(listed) => {
                    prints.extend(listed.watched);
                    found.extend(listed.sites.into_iter().map(|s| (dir_key(&s), s)));
                }
                Err(source) => {
                    let error = Error::Io {
                        path: dir.clone(),
                        source,
                    };
                    let message = error.report().to_string();
                    if scan.dir_error_logged.is_new(&message) {
                        tracing::warn!(error = %message, "cannot list the site directory; keeping the sites in service");
                    }
                    return None;
                }
            }
        }
        scan.dir_error_logged.recovered();
        Some((prints, found))
    }

    /// Loads the sites a listing found for the first time: served if they
    /// load, pending otherwise.
    fn add_new(&self, scan: &mut ScanState, new: Vec<SiteSource>, forced: bool) -> Outcome {
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
    pub(super) fn retry_pending(&self, scan: &mut ScanState, forced: bool) -> Outcome {
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
    pub(super) fn expire_missing(&self, scan: &mut ScanState) -> Outcome {
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
}

/// A directory site that has not loaded yet: it is not served, and it is tried
/// again when its files change (or, with a back-off, when they do not).
pub(super) struct Pending {
    source: SiteSource,
    prints: Vec<Fingerprint>,
    pub(super) failure: ReloadFailure,
    pub(super) failures: u64,
    logged: FailureLog,
    retry_at: Instant,
    backoff: Backoff,
}

impl Pending {
    pub(super) fn new(
        source: SiteSource,
        error: &Error,
        setup: &SiteSetup,
        logged: FailureLog,
    ) -> Self {
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

    pub(super) fn failed(&mut self, error: &Error, prints: Vec<Fingerprint>) {
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
    pub(super) fn log(&mut self, error: &Error) {
        let message = error.report().to_string();
        if self.logged.is_new(&message) {
            tracing::warn!(site = %self.source.name, path = error.path().map(|p| p.display().to_string()), error = %message, "site not served: its files do not load");
        }
    }

    pub(super) fn status(&self, poll_interval: Duration) -> CertificateStatus {
        let mut status = initial_status(None, 0, poll_interval, None);
        status.generation = 0;
        status.failures = self.failures;
        status.consecutive_failures = self.failures;
        status.last_error = Some(self.failure.clone());
        status
    }
}

pub(super) fn dir_key(source: &SiteSource) -> SiteKey {
    SiteKey {
        rank: SiteKey::FROM_DIR,
        name: source.name.clone(),
        path: source.files.cert_path().to_owned(),
    }
}

pub(super) fn prints_of(files: &IdentityFiles) -> Vec<Fingerprint> {
    let mut prints = vec![Fingerprint::of(files.cert_path())];
    prints.extend(files.key_path().map(Fingerprint::of));
    prints
}
