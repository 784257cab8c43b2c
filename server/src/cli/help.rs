//! The manual's prose: the long help of the program and of each subcommand,
//! which `--help` prints and pkg/mangen turns into the man pages.

pub(super) const ABOUT: &str =
    "An HTTPS server whose TLS certificate hot-reloads, and an offline certificate checker";

pub(super) const LONG_ABOUT: &str = "\
openssl-reload serves HTTPS (HTTP/1.1 and HTTP/2) with OpenSSL and follows its \
certificate, private key and CA bundle on disk: when a file changes it is loaded \
and validated off the handshake path, and new connections get the new certificate \
without a restart and without dropping open connections. A bad file never replaces \
a good certificate.

It is the demo server of the openssl_reload Rust library: run it to see hot \
reloading work, point monitoring at its /status and /metrics endpoints, or use \
`openssl-reload check` to validate certificate files before deploying them.

Every flag can also be set through an environment variable named \
OPENSSL_RELOAD_<FLAG>, e.g. OPENSSL_RELOAD_POLL_INTERVAL=250ms. A flag on the \
command line wins over the variable.";

pub(super) const AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Serve on a development certificate created on first use:
    openssl-reload serve

  Serve your own certificate and check the files every 250 ms:
    openssl-reload serve --cert /etc/tls/cert.pem --key /etc/tls/key.pem --poll-interval 250ms

  Validate files before deploying them:
    openssl-reload check --cert new/cert.pem --key new/key.pem --ca ca.pem

  Read a subcommand's manual:
    openssl-reload help serve

EXIT STATUS:
  0   success (for serve: stopped by SIGTERM or SIGINT)
  1   a runtime error (address in use, FIPS mode unavailable with --fips) or,
      for check, invalid material
  2   a usage error
  78  serve: a configuration error (EX_CONFIG): the certificate, key, CA or
      ticket-key file is missing, unreadable or invalid at start-up. Restarting
      does not help until the files are fixed; the packaged unit lists 78 (and 2)
      in RestartPreventExitStatus=.";

pub(super) const SERVE_LONG_ABOUT: &str = "\
Serve HTTPS on one or more addresses with a certificate that hot-reloads.

The certificate and key come from --cert and --key (PEM or DER; the key may be \
PKCS#1, SEC1 or PKCS#8, and encrypted) or from one PKCS#12 bundle (--pkcs12). \
They are checked every --poll-interval (one stat(2) per file; files are read only \
when they change). New material must parse, the key must match the certificate, \
the certificate must be within its validity period, each certificate of the chain \
file must be signed by the next and, with --require-chain-to-ca, the certificate \
must chain to the --ca bundle; otherwise the previous certificate stays in \
service, the failure is logged once and shown by /status and /metrics, and the \
files are tried again when they change.

DEVELOPMENT CERTIFICATE
  Without --cert/--key/--pkcs12 the server creates a self-signed development CA \
and a certificate for localhost, 127.0.0.1 and ::1 in the directory --dev-dir, \
prints their paths and a ready-to-run curl command, and serves that certificate. \
Later runs reuse the files; a missing, invalid or nearly expired certificate is \
issued again (by the same CA while the CA is good). Private keys are written with \
mode 0600. The default directory is $XDG_DATA_HOME/openssl-reload/dev, else \
~/.local/share/openssl-reload/dev, else ./.openssl-reload-dev when HOME is unset. \
Never use the development CA outside development.

ENDPOINTS
  GET /         a short text naming the certificate this connection was served with
                (subject and serial), the TLS version and the HTTP version.
  GET /status   JSON: the certificate in service (subject, issuer, serial, SANs,
                validity, SHA-256), generation, reload and failure counts, the last
                error with its file and time, the last reload time, the poll
                interval and when the files were last polled (last_poll), the
                session ticket keys (ticket_keys: file, rotation period, keys,
                rotations, failures, last error), the CRLs in service (crls:
                issuer, number, revoked count, last and next update), each
                certificate's OCSP staple (ocsp: stapled, status, this and next
                update, or why it is not stapled), handshake
                counts, and whether
                FIPS mode is on (fips_enabled). Times are RFC 3339 UTC strings
                (e.g. 2026-01-02T03:04:05Z); durations are in seconds.
  GET /metrics  Prometheus text format: openssl_reload_reloads_total{result},
                openssl_reload_certificate_expiration_timestamp_seconds{site},
                openssl_reload_crl_next_update_timestamp_seconds{issuer},
                openssl_reload_ocsp_next_update_timestamp_seconds{site},
                openssl_reload_generation,
                openssl_reload_last_poll_timestamp_seconds,
                openssl_reload_ticket_keys, openssl_reload_handshakes_total,
                openssl_reload_handshake_failures_total{reason}, and more.
  GET /slow?ms=N  with --diagnostics only: waits N milliseconds (at most
                30000) before answering, to try graceful shutdown with a
                request in flight; 404 otherwise.
  Without --admin-listen every --listen address serves all of these. With it,
  /status and /metrics are served on the admin address only (plain HTTP on a
  loopback address, HTTPS with the serving certificate on any other) and answer
  404 on the --listen addresses: they name files, errors and the exact OpenSSL
  version, which the public need not see.

SIGNALS
  SIGHUP           reload the files now, whatever the poll interval, the
                   ticket-key file included; the outcome is logged, and a bad file
                   keeps the previous certificate (or ticket keys).
  SIGTERM, SIGINT  stop accepting connections, let in-flight requests finish for at
                   most --shutdown-grace, then exit 0. A second signal exits at once.

REVOCATION
  --crl names a CRL file (PEM with one or more CRLs, or DER) of the --ca bundle's CAs, watched and reloaded with the bundle. A revoked client is refused within the poll interval of the file's update, also on resumption: sessions verified before the update do not resume. Each CRL must be a complete CRL (a file holding a delta CRL, with the Delta CRL Indicator extension, is refused: OpenSSL would let a newer delta replace the base and forget its revocations), be signed by a CA of the bundle and not be past its nextUpdate, or the CRLs in service stay and the failure is logged once. With --crl-check leaf (the default) the file needs a CRL of each CA that issues clients; chain needs one of every CA of the chain. A CRL in service that passes its nextUpdate is still enforced and warned about (--stale-crl enforce), or refuses every client it covers (--stale-crl refuse), until a fresh one loads.
  Revoke and publish with the openssl CLI:
    openssl ca -revoke lost-laptop.pem && openssl ca -gencrl -out /etc/tls/clients.crl

SESSION TICKETS
  Clients resume TLS sessions with tickets encrypted under the server's ticket \
keys. By default the keys are random, made in memory, and rotate every \
--ticket-key-rotation, --ticket-keys-kept of them in service. Servers behind one \
load balancer share their keys through a file (--ticket-keys) so that a client \
resumes on any of them; whoever writes the file rotates the keys.

CONNECTIONS
  HTTP/2 and HTTP/1.1 are offered through ALPN. A client that does not finish the \
TLS handshake within --handshake-timeout is disconnected; one with no request in \
flight for --idle-timeout (HTTP/1.1 and HTTP/2 alike) is closed. At most \
--max-connections are open at once (by default the open-file limit less 64); \
further clients wait in the listen backlog until one closes. Running out of file \
descriptors (EMFILE, ENFILE) makes the server back off and say so at most once a \
second. Request headers are bounded by --max-header-size, HTTP/2 streams per \
connection by --max-concurrent-streams. Failed handshakes (a \
plain-HTTP client, a port scanner, an untrusted client certificate) are logged at \
debug level with the peer's address and counted in /metrics.

LOGGING
  Logs go to standard error, as text or as one JSON object per line \
(--log-format). The filter follows RUST_LOG conventions: --log, else \
OPENSSL_RELOAD_LOG, else RUST_LOG, else info. Use --log debug to see failed \
handshakes and each request.";

pub(super) const SERVE_AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Try it on the development certificate, then follow the printed curl line:
    openssl-reload serve
    curl --cacert ~/.local/share/openssl-reload/dev/ca.pem https://localhost:8443/

  Serve a certificate on all IPv4 and IPv6 addresses:
    openssl-reload serve --cert cert.pem --key key.pem --listen 0.0.0.0:443 --listen [::]:443

  An encrypted key, its passphrase in a file (or in OPENSSL_RELOAD_KEY_PASSPHRASE):
    openssl-reload serve --cert cert.pem --key key.enc.pem --key-passphrase-file pass.txt

  Mutual TLS: require client certificates issued by ca.pem:
    openssl-reload serve --cert cert.pem --key key.pem --ca ca.pem --client-auth required
    curl --cacert ca.pem --cert client.pem --key client-key.pem https://localhost:8443/

  Share session ticket keys across a fleet (copy the same file to every server):
    (umask 077; openssl rand 80 | base64 -w0 > ticket.keys)
    openssl-reload serve --cert cert.pem --key key.pem --ticket-keys ticket.keys

  Rotate, then reload at once instead of waiting for the next poll:
    cp new-cert.pem cert.pem && cp new-key.pem key.pem && kill -HUP <pid>

  Configure through the environment, log JSON:
    OPENSSL_RELOAD_PKCS12=/run/secrets/tls.p12 OPENSSL_RELOAD_LOG_FORMAT=json openssl-reload serve

  Watch what happens:
    curl -s --cacert ca.pem https://localhost:8443/status
    curl -s --cacert ca.pem https://localhost:8443/metrics

  Keep /status and /metrics off the public port, for a local Prometheus:
    openssl-reload serve --cert cert.pem --key key.pem --listen 0.0.0.0:443 --admin-listen 127.0.0.1:9443
    curl -s http://127.0.0.1:9443/metrics

EXIT STATUS:
  0   stopped by SIGTERM or SIGINT
  1   a runtime error (address in use, FIPS mode unavailable with --fips)
  2   a usage error
  78  a configuration error (EX_CONFIG): the certificate, key, CA or ticket-key
      file is missing, unreadable or invalid at start-up";

pub(super) const CHECK_LONG_ABOUT: &str = "\
Validate a certificate and its private key offline, exactly as `serve` would \
before putting them in service, and describe the certificate.

The files must be readable and parse, an encrypted key must decrypt with the \
passphrase (--key-passphrase-file, or the OPENSSL_RELOAD_KEY_PASSPHRASE \
variable), the key must match the certificate, the certificate must be within its \
validity period, each certificate of the chain file must be signed by the next \
and, with --ca, the certificate must chain to that CA bundle (as `serve \
--require-chain-to-ca` requires). With --crl, every CRL in the file must be a complete \
CRL (not a delta CRL), be signed by a CA of the --ca bundle and not be past its \
nextUpdate; each is described \
(issuer, number, revoked count, nextUpdate).

On success the subject, subject alternative names, issuer, serial number, \
notBefore and notAfter, days left and SHA-256 fingerprint are printed on standard \
output. Otherwise the reason is printed on standard error.

EXIT STATUS:
  0  the material is valid
  1  it is not: unreadable, unparsable, wrong passphrase, key mismatch, expired or
     not yet valid, a chain out of order, not chaining to the CA, or a CRL that
     is unparsable, a delta CRL, signed by another CA or past its nextUpdate
  2  a usage error";

pub(super) const CHECK_AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Check a pair of PEM files:
    openssl-reload check --cert cert.pem --key key.pem

  Check that a renewed certificate chains to the CA clients trust:
    openssl-reload check --cert new/cert.pem --key new/key.pem --ca ca.pem

  Check a PKCS#12 bundle whose password is in a file:
    openssl-reload check --pkcs12 server.p12 --key-passphrase-file pass.txt

  Gate a deployment on it:
    openssl-reload check --cert new/cert.pem --key new/key.pem && mv new/* /etc/tls/";
