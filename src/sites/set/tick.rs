//! A tick of the site set: `poll` and `reload_now` reload the trust context,
//! every site and the directories, and publish one new snapshot when anything
//! changed.

use super::*;

impl Sites {
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
        mark_polled(&self.status);
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

    pub(super) fn entries(&self) -> Arc<BTreeMap<SiteKey, Arc<Entry>>> {
        Arc::clone(&self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn lock_scan(&self) -> MutexGuard<'_, ScanState> {
        self.scan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn replace_entries(&self, change: impl FnOnce(&mut BTreeMap<SiteKey, Arc<Entry>>)) {
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut map = BTreeMap::clone(&guard);
        change(&mut map);
        *guard = Arc::new(map);
    }

    /// Publishes a new snapshot if anything changed, refreshes the status if
    /// anything happened. Returns whether it published.
    pub(super) fn finish(&self, scan: &mut ScanState, outcome: Outcome) -> bool {
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
}

/// What a tick's parts did.
#[derive(Clone, Copy, Default)]
pub(super) struct Outcome {
    pub(super) published: bool,
    /// Something was tried: a failure to record, or one that ended.
    pub(super) attempted: bool,
}

impl Outcome {
    pub(super) fn add(&mut self, polled: Polled) {
        match polled {
            Polled::Published => self.published = true,
            Polled::Failed | Polled::Checked => self.attempted = true,
            Polled::Idle => {}
        }
    }

    pub(super) fn merge(&mut self, other: Self) {
        self.published |= other.published;
        self.attempted |= other.attempted;
    }
}
