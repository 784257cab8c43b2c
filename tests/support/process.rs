//! Tests that measure the whole process (CPU time, RSS, open descriptors) or
//! install process-wide state, run alone in a child process of the test binary.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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
/// the child it runs `body` on a fresh runtime. See [`run_isolated`] for a child
/// behind a wrapper or with more environment.
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
/// for test `name` behind `wrapper` (e.g. `setpriv --reuid=...`, before the binary)
/// with `envs` added to the child's environment, echoes its output and asserts
/// it passed.
pub fn run_isolated(name: &str, exe: &Path, wrapper: &[&str], envs: &[(&str, &str)]) {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(exe);
            cmd
        }
        None => Command::new(exe),
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
    .stdin(Stdio::null());
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
