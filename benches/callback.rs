//! Micro-benchmark (divan) of what the crate adds to a handshake: the client
//! hello callback (`ArcSwap::load`, the SNI lookup, `SSL_set_SSL_CTX` and the
//! site's certificate, chain and key on the `SSL`), against no callback.
//!
//! `cargo bench --bench callback`. Groups:
//! - `callback_body`: two parts of the callback's work on a fresh `Ssl` of the
//!   front context (`ArcSwap::load` alone, `set_ssl_context` alone, both) and an
//!   empty baseline with the same setup; the whole callback is in the handshake
//!   group;
//! - `ssl_new`: `Ssl::new` on a plain context and on the crate's front context;
//! - `handshake_in_memory`: a whole TLS 1.3 handshake (ECDSA P-256) through
//!   in-memory pipes, on a plain acceptor (no callback), on the crate's front
//!   acceptor (callback) and on an application's context the acceptor is
//!   attached to (client hello and certificate callbacks, each hashing the
//!   session binding), so the callbacks are seen next to what they are part of;
//! - `reload`: what one reload costs off the handshake path (`reload_now` on
//!   changed files, acceptor-swap's rebuild from files, and the bare
//!   `SSL_CTX_new` of Mozilla's intermediate profile), to read the rotation
//!   figures of the handshake harness.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use arc_swap::ArcSwap;
use divan::{black_box, Bencher};
use openssl::ssl::SslMethod;
use openssl::ssl::{Ssl, SslAcceptor, SslConnector, SslContext};
use openssl_reload::{Reload, ReloadingAcceptor};

use common::memory::{self, ServerStep};
use common::{
    acceptor_from_files, client, reload_now_acceptor, server_policy, static_acceptor, KeyKind,
    Pair, Rotator,
};

struct Fixture {
    /// Holds the certificate files for the reloading acceptor.
    _dir: tempfile::TempDir,
    plain: SslAcceptor,
    reloading: ReloadingAcceptor,
    /// An application's acceptor (Mozilla's profile) with `reloading` attached.
    attached: SslAcceptor,
    /// What the callback loads from: an `ArcSwap` holding the crate's current context.
    current: ArcSwap<SslContext>,
    connector: SslConnector,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pair = Pair::generate(KeyKind::EcdsaP256, 1);
    let dir = tempfile::tempdir().unwrap();
    pair.write_to(dir.path()).unwrap();
    let reloading = ReloadingAcceptor::builder()
        .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
        // No reload happens during the micro-benchmark.
        .poll_interval(Duration::from_secs(3600))
        .policy(server_policy)
        .build()
        .unwrap();
    let mut attached = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    server_policy(&mut attached).unwrap();
    reloading.attach(&mut attached).unwrap();
    Fixture {
        attached: attached.build(),
        plain: static_acceptor(&pair),
        current: ArcSwap::from_pointee(reloading.current_context()),
        reloading,
        connector: client(),
        _dir: dir,
    }
});

/// A reloading acceptor whose files can be switched between two certificates.
struct Reloads {
    _dir: tempfile::TempDir,
    rotator: Rotator,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    tls: ReloadingAcceptor,
}

static RELOADS: LazyLock<Reloads> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let first = Pair::generate(KeyKind::EcdsaP256, 2);
    let rotator = Rotator::new(dir.path(), &first);
    let a = rotator.stash("a", &first);
    let b = rotator.stash("b", &Pair::generate(KeyKind::EcdsaP256, 3));
    let tls = reload_now_acceptor(&rotator);
    Reloads {
        _dir: dir,
        rotator,
        a,
        b,
        tls,
    }
});

fn main() {
    LazyLock::force(&FIXTURE);
    LazyLock::force(&RELOADS);
    divan::main();
}

#[divan::bench_group]
mod callback_body {
    use super::*;

    /// The setup of the others (a fresh `Ssl` of the front context) and nothing else.
    #[divan::bench]
    fn baseline_nothing(b: Bencher) {
        let f = &*FIXTURE;
        b.with_inputs(|| Ssl::new(f.reloading.acceptor().context()).unwrap())
            .bench_local_values(|ssl| ssl);
    }

    /// The whole callback: `ArcSwap::load` then `SSL_set_SSL_CTX`.
    #[divan::bench]
    fn load_and_set_ssl_context(b: Bencher) {
        let f = &*FIXTURE;
        b.with_inputs(|| Ssl::new(f.reloading.acceptor().context()).unwrap())
            .bench_local_values(|mut ssl| {
                ssl.set_ssl_context(&f.current.load()).unwrap();
                ssl
            });
    }

    /// `SSL_set_SSL_CTX` alone, the context already loaded.
    #[divan::bench]
    fn set_ssl_context(b: Bencher) {
        let f = &*FIXTURE;
        let ctx = f.current.load_full();
        b.with_inputs(|| Ssl::new(f.reloading.acceptor().context()).unwrap())
            .bench_local_values(|mut ssl| {
                ssl.set_ssl_context(&ctx).unwrap();
                ssl
            });
    }

    /// `ArcSwap::load` and dropping the guard.
    #[divan::bench]
    fn arcswap_load(b: Bencher) {
        let f = &*FIXTURE;
        b.bench_local(|| {
            let guard = f.current.load();
            black_box(&**guard);
        });
    }
}

#[divan::bench_group]
mod ssl_new {
    use super::*;

    /// `SSL_new` on a plain context.
    #[divan::bench]
    fn plain(b: Bencher) {
        let f = &*FIXTURE;
        b.bench_local(|| Ssl::new(f.plain.context()).unwrap());
    }

    /// `SSL_new` on the crate's front context.
    #[divan::bench]
    fn front(b: Bencher) {
        let f = &*FIXTURE;
        b.bench_local(|| Ssl::new(f.reloading.acceptor().context()).unwrap());
    }
}

#[divan::bench_group(sample_count = 500)]
mod handshake_in_memory {
    use super::*;

    /// A plain acceptor: no callback.
    #[divan::bench]
    fn plain_no_callback() {
        memory::local_handshake(&FIXTURE.plain, &FIXTURE.connector, ServerStep::take);
    }

    /// The crate's front acceptor: the client hello callback switches the context
    /// and installs the certificate.
    #[divan::bench]
    fn reloading_callback() {
        memory::local_handshake(
            FIXTURE.reloading.acceptor(),
            &FIXTURE.connector,
            ServerStep::take,
        );
    }

    /// An application's context with the acceptor attached: the certificate
    /// installed per handshake, the session bound in both callbacks.
    #[divan::bench]
    fn attached_callbacks() {
        memory::local_handshake(&FIXTURE.attached, &FIXTURE.connector, ServerStep::take);
    }
}

#[divan::bench_group(sample_count = 200)]
mod reload {
    use super::*;

    /// `reload_now` after the files switched to the other certificate: read,
    /// hash, parse, validate, build the context, publish.
    #[divan::bench]
    fn reload_now_changed(b: Bencher) {
        let r = &*RELOADS;
        let mut flip = false;
        b.bench_local(|| {
            flip = !flip;
            r.rotator.point_to(if flip { &r.b } else { &r.a });
            assert!(matches!(r.tls.reload_now(), Ok(Reload::Published(_))));
        });
    }

    /// acceptor-swap's rebuild: read both files, parse, build a whole `SslAcceptor`.
    #[divan::bench]
    fn rebuild_acceptor_from_files(b: Bencher) {
        let r = &*RELOADS;
        let (cert, key) = (r.rotator.cert_path(), r.rotator.key_path());
        b.bench_local(|| acceptor_from_files(&cert, &key).unwrap());
    }

    /// An acceptor of Mozilla's intermediate profile with no certificate: the
    /// `SSL_CTX_new` and profile setup that every reload pays.
    #[divan::bench]
    fn mozilla_intermediate_context(b: Bencher) {
        b.bench_local(|| {
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
                .unwrap()
                .build()
        });
    }
}
