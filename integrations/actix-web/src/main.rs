//! `openssl-reload-actix-web CERT KEY [ADDR]`: actix-web over TLS whose
//! certificate follows CERT and KEY (checked every second).

use std::net::SocketAddr;
use std::process::ExitCode;

use openssl_reload::ReloadingAcceptor;

const USAGE: &str = "usage: openssl-reload-actix-web CERT KEY [ADDR]   (ADDR: 127.0.0.1:8443)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cert, key, addr) = match args.as_slice() {
        [cert, key] => (cert, key, "127.0.0.1:8443"),
        [cert, key, addr] => (cert, key, addr.as_str()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("not an address: {addr}\n{USAGE}");
        return ExitCode::from(2);
    };
    // A bad file is an error that names it; nothing is served then.
    let tls = match ReloadingAcceptor::builder().identity(cert, key).build() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("openssl-reload-actix-web: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = actix_web::rt::System::new().block_on(async {
        let (server, bound) = openssl_reload_actix_web::bind(&tls, addr, 2)?;
        println!("serving https://{bound}/ from {cert} and {key}");
        server.await?;
        Ok::<_, openssl_reload_actix_web::BoxError>(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openssl-reload-actix-web: {e}");
            ExitCode::FAILURE
        }
    }
}
