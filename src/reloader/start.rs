//! What an engine starts with: the files loaded and built once, or, where
//! allowed, empty material and the reason they did not load.

use std::collections::HashSet;
use std::path::PathBuf;

use super::Build;
use crate::material::{Checks, Material, WatchedFiles};
use crate::KeyUri;
use crate::{CertificateInfo, CrlInfo, Error};

/// What an engine starts with: the material built, or (where allowed) empty
/// material and the reason the files did not load.
pub(super) struct Initial<T> {
    pub(super) built: T,
    pub(super) summary: (Option<CertificateInfo>, usize),
    pub(super) digest: [u8; 32],
    pub(super) crls: Vec<CrlInfo>,
    pub(super) key_uri: Option<KeyUri>,
    pub(super) error: Option<Error>,
}

impl<T> Initial<T> {
    pub(super) fn load(
        files: &WatchedFiles,
        checks: &Checks,
        warned: &mut HashSet<PathBuf>,
        build: &dyn Build<T>,
        allow_missing: bool,
    ) -> Result<Self, Error> {
        let loaded = files
            .read(checks, warned)
            .and_then(|raw| files.parse(raw, checks))
            .and_then(|material| {
                let (summary, digest, crls, key_uri) = (
                    material.summary(),
                    material.digest,
                    material.crls(),
                    material.key_uri(),
                );
                Ok((build.build(material)?, summary, digest, crls, key_uri))
            });
        match loaded {
            Ok((built, summary, digest, crls, key_uri)) => Ok(Self {
                built,
                summary,
                digest,
                crls,
                key_uri,
                error: None,
            }),
            Err(error) if allow_missing => {
                let empty = Material::empty();
                let (summary, digest) = (empty.summary(), empty.digest);
                Ok(Self {
                    built: build.build(empty)?,
                    summary,
                    digest,
                    crls: Vec::new(),
                    // A key URI that failed to open is still the one to open.
                    key_uri: files.key_uri_configured(),
                    error: Some(error),
                })
            }
            Err(error) => Err(error),
        }
    }
}
