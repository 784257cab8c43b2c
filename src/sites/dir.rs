//! Finding the sites in a directory.
//!
//! A site is `NAME.crt` with `NAME.key`, `NAME.pem` with `NAME.key`, a `NAME.pem`
//! holding both, a PKCS#12 `NAME.p12` (or `.pfx`), or a sub-directory `NAME/`
//! holding `tls.crt` and `tls.key`, as a Kubernetes secret is mounted (through its
//! `..data` symlink). Names starting with a dot are skipped: they are the
//! mount's own entries and editors' temporary files.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::material::IdentityFiles;
use crate::poll::Fingerprint;

/// One site found in a directory, or given explicitly.
#[derive(Clone, Debug)]
pub(crate) struct SiteSource {
    pub(crate) name: String,
    pub(crate) files: IdentityFiles,
}

/// What a scan found: the sites, and the directories whose changes call for
/// another scan (the directory itself and each sub-directory in it, so that a
/// secret mounted as `NAME/` is seen when its files appear), each with its
/// fingerprint taken *before* it was listed: a change that lands during the
/// listing then shows as a change on the next tick.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) sites: Vec<SiteSource>,
    pub(crate) watched: Vec<(PathBuf, Fingerprint)>,
}

#[derive(Default)]
struct Stem {
    crt: bool,
    key: bool,
    pem: bool,
    p12: Option<PathBuf>,
}

impl Stem {
    /// The site's files, by the layouts `site_dir` documents; `None` for a
    /// certificate whose key is not there (yet), or a lone key.
    fn files(self, dir: &Path, stem: &str) -> Option<IdentityFiles> {
        let at = |ext: &str| dir.join(format!("{stem}.{ext}"));
        match self {
            Self {
                crt: true,
                key: true,
                ..
            } => Some(IdentityFiles::Pair {
                cert: at("crt"),
                key: at("key"),
            }),
            Self {
                pem: true,
                key: true,
                ..
            } => Some(IdentityFiles::Pair {
                cert: at("pem"),
                key: at("key"),
            }),
            Self { pem: true, .. } => Some(IdentityFiles::Pair {
                cert: at("pem"),
                key: at("pem"),
            }),
            Self {
                p12: Some(path), ..
            } => Some(IdentityFiles::Pkcs12(path)),
            _ => None,
        }
    }
}

/// Lists `dir` (one `readdir`, and a `stat` of each entry); reads no file.
pub(crate) fn scan(dir: &Path) -> io::Result<Scan> {
    let mut stems: BTreeMap<String, Stem> = BTreeMap::new();
    let mut scan = Scan {
        watched: vec![(dir.to_owned(), Fingerprint::of(dir))],
        ..Scan::default()
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // The type readdir gave, without a stat, unless it is a symlink (a mounted
        // secret's files are links into `..data`): a rescan of 10,000 sites is
        // then one pass over the directory.
        let Ok(mut kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            kind = meta.file_type();
        }
        if kind.is_dir() {
            scan.watched.push((path.clone(), Fingerprint::of(&path)));
            let (cert, key) = (path.join("tls.crt"), path.join("tls.key"));
            if cert.is_file() && key.is_file() {
                scan.sites.push(SiteSource {
                    name: file_name,
                    files: IdentityFiles::Pair { cert, key },
                });
            }
            continue;
        }
        let Some((stem, ext)) = file_name.rsplit_once('.') else {
            continue;
        };
        if stem.is_empty() || !kind.is_file() {
            continue;
        }
        let kinds = stems.entry(stem.to_owned()).or_default();
        match ext {
            "crt" => kinds.crt = true,
            "key" => kinds.key = true,
            "pem" => kinds.pem = true,
            "p12" | "pfx" => kinds.p12 = Some(path),
            _ => {}
        }
    }
    for (stem, kinds) in stems {
        if let Some(files) = kinds.files(dir, &stem) {
            scan.sites.push(SiteSource { name: stem, files });
        }
    }
    scan.sites.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(scan: &Scan) -> Vec<(&str, String)> {
        scan.sites
            .iter()
            .map(|s| {
                let (cert, key) = (s.files.cert_path(), s.files.key_path().unwrap());
                let file = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
                (s.name.as_str(), format!("{} {}", file(cert), file(key)))
            })
            .collect()
    }

    #[test]
    fn every_layout_is_a_site_and_incomplete_pairs_are_not() {
        let dir = std::env::temp_dir().join(format!("openssl-reload-scan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("k8s/..2026_12_01")).unwrap();
        for (name, body) in [
            ("a.crt", ""),
            ("a.key", ""),
            ("b.pem", ""),
            ("c.pem", ""),
            ("c.key", ""),
            ("d.p12", ""),
            ("lone.crt", ""),
            ("only.key", ""),
            (".hidden.pem", ""),
            ("notes.txt", ""),
            ("k8s/..2026_12_01/tls.crt", ""),
            ("k8s/..2026_12_01/tls.key", ""),
        ] {
            fs::write(dir.join(name), body).unwrap();
        }
        std::os::unix::fs::symlink("..2026_12_01", dir.join("k8s/..data")).unwrap();
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("k8s/tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("k8s/tls.key")).unwrap();
        fs::create_dir(dir.join("empty")).unwrap();
        let scan = scan(&dir).unwrap();
        assert_eq!(
            names(&scan),
            [
                ("a", "a.crt a.key".to_owned()),
                ("b", "b.pem b.pem".to_owned()),
                ("c", "c.pem c.key".to_owned()),
                ("d", "d.p12 d.p12".to_owned()),
                ("k8s", "tls.crt tls.key".to_owned()),
            ]
        );
        assert_eq!(scan.watched.len(), 3, "{:?}", scan.watched);
        fs::remove_dir_all(&dir).unwrap();
    }
}
