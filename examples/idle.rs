//! An idle reloading acceptor, for measuring what the poller costs while nothing
//! changes (`ci/bench-idle.sh` attaches `strace` to it).
//!
//! ```text
//! cargo run --release --example idle -- CERT KEY [POLL_MS] [SECONDS]
//! ```
//!
//! Builds a [`ReloadingAcceptor`] on `CERT`/`KEY` polling every `POLL_MS`
//! milliseconds (default 10), prints `ready pid=<pid> files=2 poll_ms=<ms>` once
//! the initial load is done, then does nothing else for `SECONDS` (default 60).

use std::io::Write;
use std::time::Duration;

use openssl_reload::ReloadingAcceptor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(cert), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: idle CERT KEY [POLL_MS] [SECONDS]");
        std::process::exit(2);
    };
    let poll_ms: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(60), |a| a.parse())?;

    let tls = ReloadingAcceptor::builder()
        .identity(cert, key)
        .poll_interval(Duration::from_millis(poll_ms))
        .build()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready pid={} files=2 poll_ms={poll_ms} generation={}",
        std::process::id(),
        tls.status().generation
    )?;
    out.flush()?;
    drop(out);
    std::thread::sleep(Duration::from_secs(seconds));
    // Still generation 1: nothing was reloaded while idle.
    println!("done generation={}", tls.status().generation);
    Ok(())
}
