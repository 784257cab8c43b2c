//! `openssl-reload-hyper-openssl URL CA [CERT KEY]`: one GET over hyper and
//! hyper-openssl, verifying the server against the CA bundle CA and
//! presenting the client certificate CERT with KEY; prints the status and body.

use std::process::ExitCode;

use http_body_util::BodyExt;
use openssl_reload::ReloadingConnector;

const USAGE: &str = "usage: openssl-reload-hyper-openssl URL CA [CERT KEY]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, builder) = match args.as_slice() {
        [url, ca] => (url, ReloadingConnector::builder().ca(ca)),
        [url, ca, cert, key] => (
            url,
            ReloadingConnector::builder().ca(ca).identity(cert, key),
        ),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(url) = url.parse::<hyper::Uri>() else {
        eprintln!("not a URL: {url}\n{USAGE}");
        return ExitCode::from(2);
    };
    match get(builder, url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openssl-reload-hyper-openssl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the client (a bad file is an error that names it) and makes the request.
async fn get(
    builder: openssl_reload::ReloadingConnectorBuilder,
    url: hyper::Uri,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let tls = builder.build()?;
    let client = openssl_reload_hyper_openssl::client(&tls, 0)?;
    let response = client.get(url).await?;
    println!("{}", response.status());
    let body = response.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
