//! The files a test serves: a CA, a leaf and its key in a temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::harness::Server;
use crate::support::{Ca, Leaf};

/// Makes a key file private, as the server expects (it warns otherwise).
pub(crate) fn private(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// Replaces `path` by rename with a file of mode 0600 holding `bytes`.
pub(crate) fn replace_private(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, bytes).unwrap();
    private(&tmp);
    fs::rename(&tmp, path).unwrap();
}

/// A CA, a leaf written as `cert.pem`/`key.pem`, and `ca.pem`, in a temp dir.
pub(crate) struct Files {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ca: Ca,
    pub(crate) ca_pem: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) leaf: Leaf,
}

impl Files {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("cli test CA");
        let ca_pem = dir.path().join("ca.pem");
        fs::write(&ca_pem, ca.pem()).unwrap();
        let leaf = ca.leaf("localhost");
        let (cert, key) = leaf.write(dir.path());
        private(&key);
        Self {
            dir,
            ca,
            ca_pem,
            cert,
            key,
            leaf,
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn serve_args(&self) -> Vec<String> {
        vec![
            "--cert".to_owned(),
            self.cert.display().to_string(),
            "--key".to_owned(),
            self.key.display().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ]
    }

    pub(crate) fn start(&self, extra: &[&str]) -> Server {
        let mut args = self.serve_args();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}
