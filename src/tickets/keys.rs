//! The ticket keys of a front context over time: the initial ring, in-memory
//! rotation, the shared file read again when it changes, and their status.

use super::*;

impl TicketKeys {
    /// The initial keys: random ones, or the file's. A bad file is an error unless
    /// `allow_missing`, which starts on a random key until the file is valid.
    pub(crate) fn start(
        source: KeySource,
        max_file_size: u64,
        allow_missing: bool,
    ) -> Result<Arc<Self>, Error> {
        let random = || -> Result<KeyRing, Error> {
            Ok(KeyRing {
                keys: vec![TicketKey::random().map_err(Error::TicketKeyGeneration)?],
                made: Instant::now(),
            })
        };
        let mut file = FileState::default();
        let (ring, error) = match &source {
            KeySource::Automatic { .. } => (random()?, None),
            KeySource::File(path) => {
                file.fingerprint = Some(Fingerprint::of(path));
                match load_file(path, max_file_size, &mut file) {
                    // A first read has no digest in service, so it always parses.
                    Ok(Some(ring)) => (ring, None),
                    Ok(None) => (random()?, None),
                    Err(error) if allow_missing => (random()?, Some(error)),
                    Err(error) => return Err(error),
                }
            }
        };
        let now = SystemTime::now();
        let status = TicketKeyStatus {
            file: match &source {
                KeySource::File(path) => Some(path.clone()),
                KeySource::Automatic { .. } => None,
            },
            rotation_period: match &source {
                KeySource::Automatic { period, .. } => Some(*period),
                KeySource::File(_) => None,
            },
            keys: ring.keys.len(),
            rotations: 0,
            last_rotation: now,
            failures: u64::from(error.is_some()),
            last_error: error.as_ref().map(|e| ReloadFailure::new(e, now)),
        };
        if let Some(error) = &error {
            tracing::warn!(error = %error.report(), "ticket-key file not usable at start-up, as allowed; using a random key until it is");
            file.logged = FailureLog::said(error.report().to_string());
        }
        Ok(Arc::new(Self {
            ring: ArcSwap::from_pointee(ring),
            source,
            max_file_size,
            file: Mutex::new(file),
            status: Mutex::new(status),
        }))
    }

    pub(crate) fn status(&self) -> TicketKeyStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One poller tick: rotate when the newest key is a period old, or reload the
    /// file when its fingerprint changed.
    pub(crate) fn poll(&self) {
        match &self.source {
            KeySource::Automatic { period, kept } => {
                if self.ring.load().made.elapsed() >= *period {
                    self.rotate(*kept);
                }
            }
            KeySource::File(path) => {
                let _ = self.reload_file(path, false);
            }
        }
    }

    /// Reads the ticket-key file now whatever its fingerprint (SIGHUP); nothing to
    /// do for in-memory keys.
    pub(crate) fn reload_now(&self) -> Result<(), Error> {
        match &self.source {
            KeySource::File(path) => self.reload_file(path, true),
            KeySource::Automatic { .. } => Ok(()),
        }
    }

    fn rotate(&self, kept: usize) {
        let new = match TicketKey::random() {
            Ok(key) => key,
            Err(source) => {
                self.record_failure(&Error::TicketKeyGeneration(source));
                return;
            }
        };
        let old = self.ring.load();
        let mut keys = Vec::with_capacity(kept);
        keys.push(new);
        for key in old.keys.iter().take(kept.saturating_sub(1)) {
            keys.push(TicketKey(key.0.clone()));
        }
        let count = keys.len();
        self.ring.store(Arc::new(KeyRing {
            keys,
            made: Instant::now(),
        }));
        self.record_success(count);
        tracing::debug!(keys = count, "session ticket keys rotated");
    }

    fn reload_file(&self, path: &Path, force: bool) -> Result<(), Error> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprint = Fingerprint::of(path);
        if !force && file.fingerprint.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        file.fingerprint = Some(fingerprint);
        match load_file(path, self.max_file_size, &mut file) {
            Ok(None) => Ok(()),
            Ok(Some(ring)) => {
                let count = ring.keys.len();
                self.ring.store(Arc::new(ring));
                self.record_success(count);
                if file.logged.recovered() {
                    tracing::info!(path = %path.display(), "ticket-key file is valid again");
                }
                tracing::info!(path = %path.display(), keys = count, "session ticket keys loaded");
                Ok(())
            }
            Err(error) => {
                self.record_failure(&error);
                let message = error.report().to_string();
                if file.logged.is_new(&message) {
                    tracing::warn!(path = %path.display(), error = %message, "ticket-key reload failed; keeping the keys in service");
                }
                Err(error)
            }
        }
    }

    fn record_success(&self, keys: usize) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.keys = keys;
        status.rotations += 1;
        status.last_rotation = SystemTime::now();
    }

    fn record_failure(&self, error: &Error) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.failures += 1;
        status.last_error = Some(ReloadFailure::new(error, SystemTime::now()));
    }

    /// Makes `builder`'s ticket callback find these keys. Every context that a
    /// handshake can be switched to needs it: OpenSSL calls the front context's
    /// callback, which looks the keys up on the context installed at that moment.
    pub(crate) fn attach(
        self: &Arc<Self>,
        builder: &mut SslContextBuilder,
    ) -> Result<(), ErrorStack> {
        builder.set_ex_data(ex_index()?, Arc::clone(self));
        Ok(())
    }

    /// Installs the ticket key callback on the front context.
    pub(crate) fn install(
        self: &Arc<Self>,
        front: &mut SslContextBuilder,
    ) -> Result<(), ErrorStack> {
        self.attach(front)?;
        set_ticket_key_callback(front)
    }
}
