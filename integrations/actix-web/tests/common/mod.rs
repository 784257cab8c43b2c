//! The tests' clients and server: hyper-util's legacy client over
//! hyper-openssl, a new connection (and TLS handshake) for every request;
//! mutual TLS with sessions offered by hand (`mtls`); the actix-web server on
//! a thread of its own (`server`).

#![allow(dead_code, unreachable_pub)]

pub mod mtls;
pub mod server;

#[path = "../../../support/http.rs"]
mod http;

pub use http::*;
