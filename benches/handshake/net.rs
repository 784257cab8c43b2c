//! The server loop every strategy shares, and the handshake client.

use std::collections::HashSet;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use openssl::ssl::{SslAcceptor, SslConnector, SslSession, SslStream};
use openssl_reload::ReloadingAcceptor;

/// Where the server loop gets its acceptor for a connection.
pub(crate) enum Strategy {
    /// A plain acceptor with the certificate set directly.
    Static(SslAcceptor),
    /// This crate: the fixed front acceptor; its servername callback installs the
    /// current context.
    Reloading(ReloadingAcceptor),
    /// The whole acceptor behind an `ArcSwap`, replaced on reload (axum-server).
    Swap(Arc<ArcSwap<SslAcceptor>>),
}

/// A blocking TLS server: `threads` threads, each `accept(2)` then handshake with
/// the strategy in service. The throughput measurement runs every strategy on
/// one `Server`, switching between segments, so that all of them are served by
/// the same threads (placed alike by the scheduler) through the same loop.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    strategy: Arc<ArcSwap<Strategy>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) errors: Arc<AtomicU64>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The kernel thread ids of `threads`, for their CPU time.
    pub(crate) tids: Vec<u32>,
}

impl Server {
    pub(crate) fn start(strategy: Strategy, threads: usize) -> Self {
        Self::start_shared(Arc::new(strategy), threads)
    }

    pub(crate) fn start_shared(strategy: Arc<Strategy>, threads: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let strategy = Arc::new(ArcSwap::new(strategy));
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let (tid_tx, tid_rx) = mpsc::channel();
        let threads: Vec<_> = (0..threads)
            .map(|i| {
                let listener = listener.try_clone().unwrap();
                let strategy = Arc::clone(&strategy);
                let stop = Arc::clone(&stop);
                let errors = Arc::clone(&errors);
                let tid_tx = tid_tx.clone();
                thread::Builder::new()
                    .name(format!("server-{i}"))
                    .spawn(move || {
                        if let Some(tid) = current_tid() {
                            let _ = tid_tx.send(tid);
                        }
                        drop(tid_tx);
                        serve(&listener, &strategy, &stop, &errors);
                    })
                    .unwrap()
            })
            .collect();
        drop(tid_tx);
        let tids = tid_rx.iter().collect();
        Self {
            addr,
            strategy,
            stop,
            errors,
            threads,
            tids,
        }
    }

    /// Puts `strategy` in service for the connections accepted from now on.
    pub(crate) fn set_strategy(&self, strategy: Arc<Strategy>) {
        self.strategy.store(strategy);
    }

    /// CPU time the server threads have run so far.
    pub(crate) fn cpu_ns(&self) -> u64 {
        self.tids.iter().map(|&tid| thread_cpu_ns(tid)).sum()
    }
}

/// The server loop, the same for every strategy: accept, handshake, close_notify.
fn serve(
    listener: &TcpListener,
    strategy: &ArcSwap<Strategy>,
    stop: &AtomicBool,
    errors: &AtomicU64,
) {
    loop {
        let Ok((tcp, _)) = listener.accept() else {
            continue;
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let _ = tcp.set_nodelay(true);
        let accepted = match &**strategy.load() {
            Strategy::Static(acceptor) => acceptor.accept(tcp),
            Strategy::Reloading(tls) => tls.acceptor().accept(tcp),
            Strategy::Swap(swap) => swap.load_full().accept(tcp),
        };
        match accepted {
            // close_notify, so that a client reading to the end
            // (the resumption measurement) sees a clean close.
            Ok(mut stream) => {
                let _ = stream.shutdown();
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for _ in &self.threads {
            let _ = TcpStream::connect(self.addr);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// `rounds` interleaved rounds over `count` contenders, each measured for one
/// segment per round by `segment(i)`: forward in even rounds, backward in odd
/// ones, so that neither end of a round is favoured. After each round
/// `after_round(round, rates)` sees the rates. Returns each contender's total and
/// its per-round rate relative to contender 0.
pub(crate) fn interleaved_rounds(
    count: usize,
    rounds: usize,
    mut segment: impl FnMut(usize) -> Segment,
    mut after_round: impl FnMut(usize, &[f64]),
) -> (Vec<Segment>, Vec<Vec<f64>>) {
    let mut totals: Vec<Segment> = (0..count).map(|_| Segment::default()).collect();
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); count];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..count).collect()
        } else {
            (0..count).rev().collect()
        };
        let mut rates = vec![0.0; count];
        for &i in &order {
            let seg = segment(i);
            rates[i] = seg.rate();
            totals[i].absorb(seg);
        }
        after_round(round, &rates);
        for (i, rate) in rates.iter().enumerate() {
            per_round[i].push(rate / rates[0]);
        }
    }
    (totals, per_round)
}

pub(crate) fn connect(
    addr: SocketAddr,
    connector: &SslConnector,
    session: Option<&SslSession>,
) -> Result<SslStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut config = connector.configure().map_err(|e| e.to_string())?;
    config.set_verify_hostname(false);
    if let Some(session) = session {
        #[allow(unsafe_code)] // The openssl crate marks SSL_set_session unsafe.
        // SAFETY: every session offered here was obtained from a connection made
        // with this same connector, hence the same SSL_CTX, as SSL_set_session needs.
        unsafe {
            config.set_session(session).map_err(|e| e.to_string())?;
        }
    }
    config
        .connect("localhost", tcp)
        .map_err(|e| format!("handshake: {e}"))
}

#[derive(Default)]
pub(crate) struct Segment {
    pub(crate) handshakes: u64,
    pub(crate) failures: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) first_error: Option<String>,
    /// CPU time of the client threads.
    pub(crate) client_cpu_ns: u64,
    /// CPU time of the server side: server threads plus whatever reloads (the
    /// crate's poller thread, the acceptor-swap rebuild); filled by the caller.
    pub(crate) server_cpu_ns: u64,
    /// The part of `server_cpu_ns` spent reloading: poller and rotating thread.
    pub(crate) reload_cpu_ns: u64,
    /// Failed server-side handshakes.
    pub(crate) server_errors: u64,
}

impl Segment {
    pub(crate) fn rate(&self) -> f64 {
        self.handshakes as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn absorb(&mut self, other: Self) {
        self.handshakes += other.handshakes;
        self.failures += other.failures;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.client_cpu_ns += other.client_cpu_ns;
        self.server_cpu_ns += other.server_cpu_ns;
        self.reload_cpu_ns += other.reload_cpu_ns;
        self.server_errors += other.server_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The client threads: kept for the whole run, so that the scheduler's placement
/// of them does not change from one segment to the next.
pub(crate) struct Clients {
    jobs: Vec<mpsc::Sender<(SocketAddr, Instant)>>,
    results: mpsc::Receiver<(Segment, Instant)>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    pub(crate) fn new(count: usize, connector: &SslConnector) -> Self {
        let (result_tx, results) = mpsc::channel();
        let mut jobs = Vec::new();
        let threads = (0..count)
            .map(|i| {
                let (job_tx, job_rx) = mpsc::channel::<(SocketAddr, Instant)>();
                jobs.push(job_tx);
                let result_tx = result_tx.clone();
                let connector = connector.clone();
                thread::Builder::new()
                    .name(format!("client-{i}"))
                    .spawn(move || {
                        let tid = current_tid();
                        for (addr, end) in job_rx {
                            let cpu_start = tid.map_or(0, thread_cpu_ns);
                            let mut seg = handshakes_until(addr, &connector, end);
                            seg.client_cpu_ns = tid.map_or(0, thread_cpu_ns) - cpu_start;
                            if result_tx.send((seg, Instant::now())).is_err() {
                                return;
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        Self {
            jobs,
            results,
            threads,
        }
    }

    /// Full handshakes with `addr` from every client thread, back to back, for
    /// `duration`.
    pub(crate) fn run(&self, addr: SocketAddr, duration: Duration) -> Segment {
        let start = Instant::now();
        for job in &self.jobs {
            job.send((addr, start + duration)).unwrap();
        }
        let mut total = Segment::default();
        let mut last = start;
        for _ in &self.jobs {
            let (seg, ended) = self.results.recv().unwrap();
            last = last.max(ended);
            total.absorb(seg);
        }
        total.elapsed = last - start;
        total
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.jobs.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn handshakes_until(addr: SocketAddr, connector: &SslConnector, end: Instant) -> Segment {
    let mut seg = Segment {
        latencies_us: Vec::with_capacity(1 << 12),
        ..Segment::default()
    };
    loop {
        let start = Instant::now();
        if start >= end {
            return seg;
        }
        match connect(addr, connector, None) {
            Ok(stream) => {
                let us = start.elapsed().as_micros();
                seg.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                seg.handshakes += 1;
                drop(stream);
            }
            Err(e) => {
                seg.failures += 1;
                seg.first_error.get_or_insert(e);
            }
        }
    }
}

pub(crate) fn peer_serial(stream: &SslStream<TcpStream>) -> Option<Vec<u8>> {
    let cert = stream.ssl().peer_certificate()?;
    Some(cert.serial_number().to_bn().ok()?.to_vec())
}

/// This thread's kernel id (from `/proc/thread-self`, which links to `PID/task/TID`).
pub(crate) fn current_tid() -> Option<u32> {
    fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// The ids of this process's threads.
pub(crate) fn task_ids() -> HashSet<u32> {
    fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// How long a thread of this process has run on a CPU, in nanoseconds: the first
/// field of `/proc/self/task/TID/schedstat` (0 once the thread is gone). Unlike
/// wall-clock rates, this hardly moves when other processes load the machine.
pub(crate) fn thread_cpu_ns(tid: u32) -> u64 {
    fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
