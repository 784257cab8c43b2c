//! The ticket-key file: one base64 key of 80 bytes per line.

use std::path::Path;
use std::time::Instant;

use openssl::hash::{hash, MessageDigest};
use zeroize::Zeroizing;

use super::{FileState, KeyRing, TicketKey, KEY_LEN};
use crate::material::read_key_file;
use crate::{Error, TicketKeyProblem};

/// Reads and parses the file; `Ok(None)` when its content is what is in service.
pub(super) fn load_file(
    path: &Path,
    limit: u64,
    file: &mut FileState,
) -> Result<Option<KeyRing>, Error> {
    let bytes = Zeroizing::new(read_key_file(path, limit, &mut file.warned)?);
    let digest = hash(MessageDigest::sha256(), &bytes)
        .map_err(Error::openssl("hash the ticket-key file"))?;
    let mut digest_bytes = [0; 32];
    digest_bytes.copy_from_slice(&digest);
    if file.digest == Some(digest_bytes) {
        return Ok(None);
    }
    let keys = parse_keys(path, &bytes)?;
    file.digest = Some(digest_bytes);
    Ok(Some(KeyRing {
        keys,
        made: Instant::now(),
    }))
}

/// One key per line, base64 of 80 bytes; blank lines and `#` comments are skipped.
/// Errors name the file and the line, never its content.
fn parse_keys(path: &Path, bytes: &[u8]) -> Result<Vec<TicketKey>, Error> {
    let bad = |line: Option<usize>, reason| Error::TicketKeys {
        path: path.to_owned(),
        line,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad(None, TicketKeyProblem::NotText))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let raw = Zeroizing::new(
            openssl::base64::decode_block(line)
                .map_err(|_| bad(Some(n + 1), TicketKeyProblem::NotBase64))?,
        );
        let key: [u8; KEY_LEN] = raw[..]
            .try_into()
            .map_err(|_| bad(Some(n + 1), TicketKeyProblem::Length { bytes: raw.len() }))?;
        keys.push(TicketKey(Zeroizing::new(key)));
    }
    if keys.is_empty() {
        return Err(bad(None, TicketKeyProblem::NoKey));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(byte: u8, len: usize) -> String {
        openssl::base64::encode_block(&vec![byte; len])
    }

    #[test]
    fn parses_lines_and_names_bad_ones() {
        let path = Path::new("/etc/tls/tickets.key");
        let good = format!("# fleet keys\n{}\n\n{}\n", line(1, 80), line(2, 80));
        let keys = parse_keys(path, good.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name(), &[1; 16]);
        assert_eq!(keys[1].aes_key(), &[2; 32]);

        let short = format!("{}\n{}\n", line(1, 80), line(3, 48));
        let err = parse_keys(path, short.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            Error::TicketKeys {
                line: Some(2),
                reason: TicketKeyProblem::Length { bytes: 48 },
                ..
            }
        ));
        let err = err.to_string();
        assert!(
            err.contains("tickets.key") && err.contains("line 2") && err.contains("48 bytes"),
            "{err}"
        );
        let err = parse_keys(path, b"!!!! not base64 !!!!\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("not base64"),
            "{err}"
        );
        let err = parse_keys(path, b"\n# nothing\n").unwrap_err().to_string();
        assert!(err.contains("no key"), "{err}");
    }

    #[test]
    fn errors_never_show_key_bytes() {
        let secret = line(0x5a, 79);
        let err = parse_keys(Path::new("k"), secret.as_bytes()).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(&secret[..20]));
    }
}
