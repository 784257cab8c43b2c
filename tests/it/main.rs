//! Integration tests, one binary so they link once. Everything runs over real TLS
//! on loopback with certificates minted at run time.

#[path = "../support/mod.rs"]
mod support;

/// A context the application owns: attach and install.
mod attach;
/// CRLs made with `openssl ca`: revoked clients and servers, bad CRL files, staleness.
mod crl;
/// One table-driven test of every fault a writer or an operator can cause.
mod faults;
/// Forking servers: polling deferred at build, started where the server runs.
mod fork;
/// Every key format and algorithm the crate promises, passphrases, PKCS#12.
mod formats;
/// Mutual TLS both ways: reloaded CA bundles and the reloading connector.
mod mtls;
/// OCSP staples made with `openssl ocsp`: stapled, rotated, refused, must-staple.
mod ocsp;
/// Mutated PEM, DER and PKCS#12 inputs: no panic, a typed error naming the file.
mod props;
/// Rotation by every kind of writer, keep-last-good, status, resumption, ALPN, policy.
mod reload;
/// A session resumes only where a full handshake would pass: changes x serving modes x session kinds.
mod resumption;
/// Secrets never reach logs or Debug output.
mod secrets;
/// Many sites chosen by SNI: selection, strict SNI, RSA + ECDSA, site directories, sessions.
mod sites;
/// Rotation under concurrent load; reload cycles and resource bounds.
mod stress;
/// Session ticket keys: automatic rotation and a ticket-key file shared by a fleet.
mod tickets;
/// Resumed sessions and the CA bundle that verified them; server-only and CA-only rotations.
mod trust;
