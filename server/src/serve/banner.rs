//! The banner that tells a newcomer where the development certificate is and
//! how to try the server with curl.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use crate::dev_cert::{DevFiles, Outcome};

/// Tells a newcomer where the development files are and how to try the server.
pub(super) fn print_dev_banner(files: &DevFiles, outcome: Outcome, locals: &[SocketAddr]) {
    let how = match outcome {
        Outcome::Created => "created now",
        Outcome::Reissued => "certificate issued again, CA reused",
        Outcome::Reused => "reused from an earlier run",
    };
    let reachable_as_localhost =
        |addr: &&SocketAddr| addr.ip().is_loopback() || addr.ip().is_unspecified();
    let curl = match locals
        .iter()
        .find(reachable_as_localhost)
        .or(locals.first())
    {
        Some(addr) => {
            let resolve = if reachable_as_localhost(&addr) {
                String::new()
            } else {
                let ip = match addr.ip() {
                    IpAddr::V4(ip) => ip.to_string(),
                    IpAddr::V6(ip) => format!("[{ip}]"),
                };
                format!(" --resolve localhost:{}:{ip}", addr.port())
            };
            format!(
                "curl --cacert {}{resolve} https://localhost:{}/",
                shell_quote(&files.ca_cert.to_string_lossy()),
                addr.port()
            )
        }
        None => String::new(),
    };
    let text = format!(
        "\
No --cert/--key/--pkcs12 given: serving a development certificate ({how}).
  directory:       {dir}
  CA certificate:  {ca}
  certificate:     {cert}
  private key:     {key}
  CA private key:  {ca_key}
The CA is for development only. Try the server with:
  {curl}
",
        dir = files.dir.display(),
        ca = files.ca_cert.display(),
        cert = files.cert.display(),
        key = files.key.display(),
        ca_key = files.ca_key.display(),
    );
    // A closed standard output is no reason to stop serving.
    let _ = io::stdout().lock().write_all(text.as_bytes());
    let _ = io::stdout().flush();
}

/// Quotes `text` for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-~".contains(c);
    if !text.is_empty() && text.chars().all(safe) && !text.starts_with('~') {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a/b-c_d.pem"), "/a/b-c_d.pem");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
        assert_eq!(shell_quote("~x"), "'~x'");
    }
}
