//! Shared test helpers: certificates minted at run time, file rotation the way
//! real writers do it, TLS clients, and deadline loops.

#![allow(dead_code, unreachable_pub)] // Each test module uses a different subset.

use std::fs;
use std::future::Future;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{SslConnector, SslMethod, SslSessionRef, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A poll interval short enough for tests, as the design intends.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// How long a test waits for something that should happen within an interval or two.
pub const DEADLINE: Duration = Duration::from_secs(10);

static SERIAL: AtomicU32 = AtomicU32::new(1000);

/// Key algorithms the crate must support.
#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

pub fn key(alg: Alg) -> PKey<Private> {
    match alg {
        Alg::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::P256 | Alg::P384 => {
            let nid = if matches!(alg, Alg::P256) {
                Nid::X9_62_PRIME256V1
            } else {
                Nid::SECP384R1
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }
        Alg::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

/// A certificate authority that signs leaves.
pub struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Ca {
    /// A self-signed root CA.
    pub fn new(name: &str) -> Self {
        Self::signed_by(name, None)
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Self {
        Self::signed_by(name, Some(self))
    }

    fn signed_by(name: &str, issuer: Option<&Self>) -> Self {
        let key = key(Alg::P256);
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut n = X509Name::builder().unwrap();
        n.append_entry_by_text("CN", name).unwrap();
        let n = n.build();
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(issuer.map_or(&*n, |i| i.cert.subject_name()))
            .unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_serial_number(&serial()).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
            .unwrap();
        Self {
            cert: b.build(),
            key,
        }
    }

    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    /// A server (and client) leaf for `localhost`, 127.0.0.1 and ::1.
    pub fn leaf(&self, cn: &str) -> Leaf {
        self.leaf_with(LeafSpec::new(cn))
    }

    pub fn leaf_with(&self, spec: LeafSpec) -> Leaf {
        let key = key(spec.alg);
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut n = X509Name::builder().unwrap();
        n.append_entry_by_text("CN", &spec.cn).unwrap();
        b.set_subject_name(&n.build()).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        let serial = serial();
        b.set_serial_number(&serial).unwrap();
        let now = time_now();
        b.set_not_before(&Asn1Time::from_unix(now + spec.not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + spec.not_after).unwrap())
            .unwrap();
        let mut san = SubjectAlternativeName::new();
        for dns in &spec.dns {
            san.dns(dns);
        }
        for ip in &spec.ips {
            san.ip(ip);
        }
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = san.build(&ctx).unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(
            ExtendedKeyUsage::new()
                .server_auth()
                .client_auth()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let serial_hex = serial_hex(&cert);
        Leaf {
            cert,
            key,
            chain: vec![],
            serial: serial_hex,
        }
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn serial() -> Asn1Integer {
    // Distinct across the run and large enough that a serial never looks like a
    // neighbour's, whatever order tests run in.
    let n = SERIAL.fetch_add(1, Ordering::SeqCst) as u64 * 7919
        + (time_now() as u64 % 1_000_000) * 1_000_000;
    BigNum::from_dec_str(&n.to_string())
        .unwrap()
        .to_asn1_integer()
        .unwrap()
}

/// What a leaf looks like; offsets are seconds from now.
pub struct LeafSpec {
    pub cn: String,
    pub alg: Alg,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl LeafSpec {
    pub fn new(cn: &str) -> Self {
        Self {
            cn: cn.to_owned(),
            alg: Alg::P256,
            dns: vec!["localhost".to_owned()],
            ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            not_before: -3600,
            not_after: 30 * 86_400,
        }
    }
    pub fn alg(mut self, alg: Alg) -> Self {
        self.alg = alg;
        self
    }
    pub fn validity(mut self, not_before: i64, not_after: i64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    pub fn dns(mut self, names: &[&str]) -> Self {
        self.dns = names.iter().map(|s| s.to_string()).collect();
        self.ips.clear();
        self
    }
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
    /// Upper-case hex, as `CertificateInfo::serial` prints it.
    pub serial: String,
}

impl Leaf {
    pub fn cert_pem(&self) -> Vec<u8> {
        let mut pem = self.cert.to_pem().unwrap();
        for c in &self.chain {
            pem.extend(c.to_pem().unwrap());
        }
        pem
    }
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
    /// Writes `cert.pem` and `key.pem` in `dir` (atomically) and returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_atomic(&cert, &self.cert_pem());
        write_atomic(&key, &self.key_pem());
        (cert, key)
    }
}

/// Writes a temporary file and renames it over `path`, as most writers do.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", SERIAL.fetch_add(1, Ordering::SeqCst)));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Truncates and rewrites `path` in place (same inode), as `cp` or `cat >` do.
pub fn write_in_place(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
}

/// A Kubernetes-style secret volume: `name -> ..data/name`, `..data -> ..<stamp>`;
/// an update writes a new timestamped directory and renames a new `..data` link over.
pub struct K8sVolume {
    pub dir: PathBuf,
    n: u32,
}

impl K8sVolume {
    pub fn new(dir: &Path, files: &[(&str, &[u8])]) -> Self {
        let mut v = Self {
            dir: dir.to_owned(),
            n: 0,
        };
        v.update(files);
        for (name, _) in files {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        v
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        self.n += 1;
        let stamp = format!("..2026_11_26_00_00_{:02}.{}", self.n, self.n);
        let ts = self.dir.join(&stamp);
        fs::create_dir(&ts).unwrap();
        for (name, bytes) in files {
            fs::write(ts.join(name), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&stamp, &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

/// Polls `check` until it returns `Some`, failing the test after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A TLS echo server on 127.0.0.1:0 driven by a reloading acceptor: each
/// connection answers one line per line it reads, naming the certificate serial
/// it negotiated with (`serial=<hex>`) followed by what it read.
pub struct Server {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(tls: openssl_reload::ReloadingAcceptor) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // Without it every small reply waits for Nagle and delayed ACKs (~40 ms).
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = tls.accept(tcp).await else {
                    return;
                };
                let serial = stream
                    .ssl()
                    .certificate()
                    .map(serial_hex)
                    .unwrap_or_default();
                let peer = stream
                    .ssl()
                    .peer_certificate()
                    .map(|c| serial_hex(&c))
                    .unwrap_or_else(|| "-".to_owned());
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let reply = format!(
                                "serial={serial} peer={peer} {}",
                                String::from_utf8_lossy(&buf[..n])
                            );
                            if stream.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Server { addr, task }
}

/// A client that trusts `ca_pem` and verifies `localhost`.
pub fn client(ca_pem: &[u8]) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let store = {
        let mut s = openssl::x509::store::X509StoreBuilder::new().unwrap();
        for c in X509::stack_from_pem(ca_pem).unwrap() {
            s.add_cert(c).unwrap();
        }
        s.build()
    };
    b.set_cert_store(store);
    b.set_verify(SslVerifyMode::PEER);
    b.build()
}

/// What one exchange over TLS saw.
pub struct Seen {
    pub serial: String,
    pub reply: String,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub session: Option<openssl::ssl::SslSession>,
}

/// Connects, sends one line, and returns what the server's certificate and reply were.
pub async fn exchange(
    connector: &SslConnector,
    addr: std::net::SocketAddr,
    session: Option<&SslSessionRef>,
) -> Result<Seen, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    if let Some(s) = session {
        // SAFETY: `set_session` is unsafe because the session must come from a
        // context compatible with this one; it comes from this same connector.
        #[allow(unsafe_code)]
        unsafe {
            ssl.set_session(s).unwrap();
        }
    }
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    stream
        .write_all(b"ping\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0; 1024];
    let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    let serial = stream
        .ssl()
        .peer_certificate()
        .map(|c| serial_hex(&c))
        .unwrap_or_default();
    // TLS 1.3 tickets arrive after the handshake; the read above received them.
    // A clean close_notify keeps the session resumable: OpenSSL marks the session
    // of a connection dropped without one as not resumable.
    let _ = std::pin::Pin::new(&mut stream).shutdown().await;
    let session = stream.ssl().session().map(|s| s.to_owned());
    Ok(Seen {
        serial,
        reply,
        alpn: stream.ssl().selected_alpn_protocol().map(|p| p.to_vec()),
        resumed: stream.ssl().session_reused(),
        session,
    })
}

/// Marks a child process of this test binary that runs one test alone; the value
/// is the test's name. See [`isolated`].
pub const ISOLATED_ENV: &str = "OPENSSL_RELOAD_TEST_ISOLATED";

/// Runs `body` in a child process of this test binary that runs test `name`
/// (its full path, e.g. `faults::fault_matrix`) and nothing else.
///
/// All integration tests share one process and run in parallel, so anything that
/// measures the whole process (CPU time, RSS, open descriptors) or installs a
/// process-wide tracing subscriber would see the other tests. The test calls
/// `isolated` from a plain `#[test]`: in the parent this re-runs the binary with
/// `<name> --exact` and the marker variable and asserts that the child passed; in
/// the child it runs `body` on a fresh runtime. `wrapper` goes before the binary
/// (e.g. `setpriv --reuid=...`), `envs` are added to the child's environment.
pub fn isolated<F, Fut>(name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(ISOLATED_ENV).is_some_and(|v| v == name) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    } else {
        run_isolated(name, &std::env::current_exe().unwrap(), &[], &[]);
    }
}

/// The parent's half of [`isolated`]: runs `exe` (this test binary or a copy of it)
/// for test `name` behind `wrapper`, echoes its output and asserts it passed.
pub fn run_isolated(name: &str, exe: &Path, wrapper: &[&str], envs: &[(&str, &str)]) {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    };
    cmd.args([
        name,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ISOLATED_ENV, name)
    .envs(envs.iter().copied())
    .stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- child process for {name} ---\n{stdout}{stderr}--- end of child ---");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "isolated test {name} failed ({})",
        out.status
    );
}

/// CPU time (user + system, all threads) this process has used so far.
pub fn process_cpu_time() -> Duration {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    // The command name in parentheses may hold spaces; count fields after it.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ, the unit of /proc's times, is 100 on every Linux architecture's ABI.
    Duration::from_millis(ticks * 10)
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap()
}

/// How many file descriptors this process has open.
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `tls.status()` until `done` holds, failing the test (naming `what` and the
/// last status) after [`DEADLINE`].
pub async fn wait_status(
    tls: &openssl_reload::ReloadingAcceptor,
    what: &str,
    done: impl Fn(&openssl_reload::CertificateStatus) -> bool,
) -> openssl_reload::CertificateStatus {
    let start = Instant::now();
    loop {
        let status = tls.status();
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: timed out; status is {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A certificate's serial in upper-case hex, as `CertificateInfo::serial` prints it.
pub fn serial_hex(cert: &openssl::x509::X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}
