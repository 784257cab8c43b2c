//! A real HTTP client for the tests: hyper-util's legacy client over
//! hyper-openssl, a new connection (and TLS handshake) for every request.

#![allow(dead_code, unreachable_pub)]

#[path = "../../../support/http.rs"]
mod http;

pub use http::*;
