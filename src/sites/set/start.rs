//! Start-up: the trust context, the sites given one by one, and every site
//! of the directories, loaded before the first snapshot is published.

use super::*;

/// The sites loaded at start-up, and the scan state of the directories.
struct Loaded {
    entries: BTreeMap<SiteKey, Arc<Entry>>,
    scan: ScanState,
    /// How many sites the directories listed.
    from_dirs: usize,
    /// The first directory site that did not load.
    first_error: Option<Error>,
}

impl Sites {
    /// Loads the trust context and every site. Explicit sites must load (unless
    /// allowed to be missing); directory sites that fail are logged and left out.
    pub(crate) fn start(
        options: SiteOptions,
        setup: SiteSetup,
        trust_setup: Setup,
        build_trust: impl Build<TrustContext> + 'static,
    ) -> Result<Self, Error> {
        let trust = Engine::start(trust_setup, build_trust)?;
        let Loaded {
            entries,
            mut scan,
            from_dirs,
            first_error,
        } = load_all(&options, &setup, trust.current())?;
        check_start(&options, &setup, &entries, first_error)?;
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
}

/// The sites given one by one (each must load, unless allowed to be missing),
/// then every site the directories list (in parallel; one that fails waits as
/// pending).
fn load_all(options: &SiteOptions, setup: &SiteSetup, probe: &Probe) -> Result<Loaded, Error> {
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
        let engine = site_engine(setup, probe, &source, setup.allow_missing, true)?;
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
    let loaded = load_parallel(setup, probe, found);
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
                let pending = Pending::new(source, &error, setup, FailureLog::said(message));
                scan.pending.insert(key, pending);
                first_error.get_or_insert(error);
            }
        }
    }
    Ok(Loaded {
        entries,
        scan,
        from_dirs,
        first_error,
    })
}

/// What stops a start: no site at all (unless allowed), or a default site
/// that is not among them.
fn check_start(
    options: &SiteOptions,
    setup: &SiteSetup,
    entries: &BTreeMap<SiteKey, Arc<Entry>>,
    first_error: Option<Error>,
) -> Result<(), Error> {
    if entries.is_empty() && !setup.allow_missing {
        return Err(first_error.unwrap_or_else(|| match options.dirs.first() {
            Some(dir) => Error::NoSites { dir: dir.clone() },
            None => Error::NoIdentity,
        }));
    }
    if let Some(wanted) = &options.default {
        let certs = certs_of(entries);
        if find_site(&certs, wanted).is_none() {
            return Err(Error::UnknownSite {
                name: wanted.clone(),
            });
        }
    }
    Ok(())
}
