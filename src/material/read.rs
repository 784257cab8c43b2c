//! Reading files: size-capped, never blocking on a FIFO, any path bytes, and a
//! warning when a file with secrets is readable by others.

use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Error;

/// The default cap on the size of any file the crate reads: 1 MiB.
///
/// Certificate chains and keys are a few kilobytes; the cap keeps a wrong path
/// (a log file, `/dev/zero`, a FIFO that never ends) from exhausting memory.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Reads a whole file, refusing more than `limit` bytes.
///
/// The file is opened with `O_NONBLOCK` so that a FIFO without a writer reads as
/// empty instead of blocking the poller forever, and reading stops at the cap, so
/// `/dev/zero` costs at most `limit` bytes. Paths are `Path`s, never `&str`: a
/// non-UTF-8 name works (the openssl crate's `*_file` setters panic on one).
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    read_open(path, file, limit)
}

fn read_open(path: &Path, file: File, limit: u64) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge {
        path: path.to_owned(),
        limit,
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a private key or PKCS#12 file, warning once per path when users other
/// than the server's own can read it (see [`readable_by_others`]).
pub(crate) fn read_key_file(
    path: &Path,
    limit: u64,
    warned: &mut HashSet<PathBuf>,
) -> Result<Vec<u8>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && readable_by_others(&meta) && warned.insert(path.to_owned()) {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o7777),
                gid = meta.gid(),
                "file with secret key material is readable by group or others beyond the server's own; \
                 make it chmod 600, or 640 with a group the server runs in"
            );
        }
    }
    read_open(path, file, limit)
}

/// Whether a key file can be read by anyone (o+r), or by a group the process is not
/// in (g+r). Group read for the server's own group is the packaged layout
/// (`root:openssl-reload 0640`) and what a Kubernetes `fsGroup` gives, so it is not
/// warned about.
fn readable_by_others(meta: &Metadata) -> bool {
    let mode = meta.permissions().mode();
    mode & 0o004 != 0 || (mode & 0o040 != 0 && !process_groups().contains(&meta.gid()))
}

/// The process's real, effective and supplementary group ids, from
/// `/proc/self/status` (no FFI needed); empty where that cannot be read, which
/// makes every group-readable key warn.
fn process_groups() -> &'static [u32] {
    static GROUPS: OnceLock<Vec<u32>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut status = String::new();
        let _ = File::open("/proc/self/status").and_then(|mut f| f.read_to_string(&mut status));
        status
            .lines()
            .filter_map(|line| {
                line.strip_prefix("Gid:")
                    .or_else(|| line.strip_prefix("Groups:"))
            })
            .flat_map(str::split_whitespace)
            .filter_map(|gid| gid.parse().ok())
            .collect()
    })
}
