//! Shared test support: certificates minted at run time, file rotation the way
//! real writers do it, TLS over loopback, deadline loops and isolated child
//! processes.
//!
//! One module, included with `#[path]` by every crate that needs it: the `it`
//! and `fips` test binaries (`#[path = "../support/mod.rs"] mod support;`) and
//! the benchmarks (through `benches/common/mod.rs`). Each includer uses a
//! different subset, so the allow below keeps the unused rest from warning in
//! any of them: `dead_code` for items, `unused_imports` for the re-exports below
//! (the benches use only [`certs`]), `unreachable_pub` because everything is
//! `pub` so that each includer reaches it through its own `support` module.
//!
//! - [`certs`]: CAs, leaves, key algorithms, serials, fingerprints.
//! - [`churn`]: clients that count failures while files rotate under them.
//! - [`files`]: atomic and in-place writes, Kubernetes secret volumes.
//! - [`tls`]: the echo server, the verifying client, one exchange.
//! - [`wait`]: the poll interval, the deadline, `eventually`, `wait_status`.
//! - [`openssl_ca`]: a CA run by `openssl ca`: revocations and CRLs.
//! - [`process`]: tests alone in a child process; CPU, RSS and descriptor counts.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod certs;
pub mod churn;
pub mod files;
pub mod openssl_ca;
pub mod process;
pub mod tls;
pub mod wait;

pub use certs::*;
pub use churn::*;
pub use files::*;
pub use openssl_ca::*;
pub use process::*;
pub use tls::*;
pub use wait::*;
