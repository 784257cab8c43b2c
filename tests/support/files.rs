//! Files rotated the way real writers do it: rename over, rewrite in place, and
//! Kubernetes secret volumes.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Makes every temporary name of [`write_atomic`] unique within the run.
static TMP: AtomicU32 = AtomicU32::new(1);

/// Writes a temporary file and renames it over `path`, as most writers do.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", TMP.fetch_add(1, Ordering::SeqCst)));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Truncates and rewrites `path` in place (same inode), as `cp` or `cat >` do.
pub fn write_in_place(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
}

/// A Kubernetes-style secret volume: `name -> ..data/name`, `..data -> ..<stamp>`;
/// an update writes a new timestamped directory and renames a new `..data` link over.
pub struct K8sVolume {
    pub dir: PathBuf,
    n: u32,
}

impl K8sVolume {
    /// The volume in `dir` (made if missing), holding `files`.
    pub fn new<B: AsRef<[u8]>>(dir: &Path, files: &[(&str, B)]) -> Self {
        fs::create_dir_all(dir).unwrap();
        let mut v = Self {
            dir: dir.to_owned(),
            n: 0,
        };
        v.update(files);
        for (name, _) in files {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        v
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Writes `files` into a new timestamped directory and renames `..data` to it.
    pub fn update<B: AsRef<[u8]>>(&mut self, files: &[(&str, B)]) {
        self.n += 1;
        let stamp = format!("..2026_11_26_00_00_{:02}.{}", self.n, self.n);
        let ts = self.dir.join(&stamp);
        fs::create_dir(&ts).unwrap();
        for (name, bytes) in files {
            fs::write(ts.join(name), bytes.as_ref()).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&stamp, &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}
