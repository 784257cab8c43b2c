//! Loading sites (one engine each, in parallel at start-up) and building the
//! snapshot the handshakes read: the table, the staples and the default
//! site's own context.

use super::*;

/// How a site's engine turns its files into the certificate handshakes get,
/// tried first on the trust context in service (`probe`).
pub(super) struct SiteBuild {
    name: String,
    probe: Probe,
}

impl Build<Option<Arc<SiteCert>>> for SiteBuild {
    fn build(&self, material: Material) -> Result<Option<Arc<SiteCert>>, Error> {
        let Some(identity) = material.identity else {
            return Ok(None);
        };
        let cert = SiteCert::new(self.name.clone(), identity);
        // What OpenSSL refuses to serve (a key type it cannot use, a digest below
        // the security level) is refused here, not in a handshake.
        let trust = self.probe.load();
        Ssl::new(&trust.ctx)
            .and_then(|mut ssl| cert.install(&mut ssl))
            .map_err(|source| Error::Rejected {
                path: cert.identity.path.clone(),
                source,
            })?;
        Ok(Some(Arc::new(cert)))
    }
}

/// One site's engine: its identity files (and the CA bundle when the chain must
/// lead to it), built into a [`SiteCert`].
pub(super) fn site_engine(
    setup: &SiteSetup,
    probe: &Probe,
    source: &SiteSource,
    allow_missing: bool,
    announce: bool,
) -> Result<SiteEngine, Error> {
    let build = SiteBuild {
        name: source.name.clone(),
        probe: Arc::clone(probe),
    };
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
pub(super) fn load_parallel(
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

pub(super) fn certs_of(entries: &BTreeMap<SiteKey, Arc<Entry>>) -> Vec<Arc<SiteCert>> {
    entries
        .values()
        .filter_map(|e| e.engine.current().load_full().as_ref().clone())
        .collect()
}

pub(super) fn build_snapshot(
    trust: &Engine<TrustContext>,
    entries: &BTreeMap<SiteKey, Arc<Entry>>,
    options: &SiteOptions,
    setup: &SiteSetup,
    previous: Option<&Snapshot>,
    scan: &mut ScanState,
) -> Result<Snapshot, Error> {
    let trust = trust.current().load_full();
    let certs = certs_of(entries);
    let default = served_default(options.default.as_deref(), &certs, scan);
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
        (Some(build), Some(served)) => fast_path(build.as_ref(), &trust.ctx, served, previous),
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

/// The configured default site if it is served; `None` (warned once) lets the
/// first site answer.
fn served_default<'a>(
    wanted: Option<&'a str>,
    certs: &[Arc<SiteCert>],
    scan: &mut ScanState,
) -> Option<&'a str> {
    let wanted = wanted?;
    if find_site(certs, wanted).is_some() {
        scan.default_missing_logged = false;
        return Some(wanted);
    }
    if !scan.default_missing_logged {
        tracing::warn!(
            site = wanted,
            "the default site is not served; the first site answers instead"
        );
        scan.default_missing_logged = true;
    }
    None
}

/// The default site's own context when it has one certificate: the one in
/// service when neither the certificate nor the trust context changed, else
/// a new one. `None` serves it as any other site: only slower.
fn fast_path(
    build: &dyn FastPathBuild,
    trust: &SslContext,
    served: &Arc<Served>,
    previous: Option<&Snapshot>,
) -> Option<FastPath> {
    let cert = served.single()?;
    // The same certificate on the same trust context (another site changed):
    // the context in service still holds exactly this.
    let kept = previous
        .filter(|p| std::ptr::eq::<SslContextRef>(&*p.ctx, &**trust))
        .and_then(|p| {
            p.fast
                .as_ref()
                .filter(|f| f.served.single().is_some_and(|c| Arc::ptr_eq(c, cert)))
        });
    let ctx = match kept {
        Some(kept) => kept.ctx.clone(),
        None => match build.fast_path(trust, cert) {
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
}
