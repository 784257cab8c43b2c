//! Writes the man pages of `openssl-reload` from its clap definition.
//!
//! Usage: `openssl-reload-mangen OUT_DIR VERSION` (VERSION: the package's, from Cargo.toml)
//!
//! Produces `openssl-reload.1` (the program, its global options, and the
//! packaged service: files, environment, signals) plus one page per
//! subcommand, `openssl-reload-serve.1` and `openssl-reload-check.1`, in the
//! style of git(1). `SOURCE_DATE_EPOCH` (seconds) sets the date in the page
//! footer, for reproducible builds.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../server/src/cli/mod.rs"]
mod cli;
// The server's RFC 3339 formatting (std only), for the footer date.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../server/src/timefmt.rs"]
mod timefmt;

const MANUAL: &str = "openssl-reload manual";

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (out_dir, version) = match (args.next(), args.next(), args.next()) {
        (Some(dir), Some(version), None) => (PathBuf::from(dir), version),
        _ => {
            eprintln!("usage: openssl-reload-mangen OUT_DIR VERSION");
            std::process::exit(2);
        }
    };
    let version: &'static str = Box::leak(version.to_string_lossy().into_owned().into_boxed_str());
    if let Err(err) = run(&out_dir, version) {
        eprintln!("openssl-reload-mangen: {}: {err}", out_dir.display());
        std::process::exit(1);
    }
}

fn run(out_dir: &Path, version: &'static str) -> std::io::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    // clap's `version` attribute is this crate's CARGO_PKG_VERSION: use the
    // real package's version instead (propagated to subcommands by build()).
    let mut cmd = cli::Cli::command()
        .version(version)
        .disable_help_subcommand(true);
    // Fills in bin names ("openssl-reload serve"), global args and the version
    // of subcommands, as `--help` would see them.
    cmd.build();
    let date = source_date();
    let source = format!("openssl-reload {version}");
    let page = |cmd: &clap::Command| {
        Man::new(cmd.clone())
            .date(date.clone())
            .source(source.clone())
            .manual(MANUAL)
    };

    // openssl-reload.1: the program and its global options, then what a
    // packaged install adds.
    let man = page(&cmd);
    let mut out = create(out_dir, &man.get_filename())?;
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    help_sections(&cmd).to_writer(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    after_help_sections(&cmd).to_writer(&mut out)?;
    service_sections(&cmd).to_writer(&mut out)?;
    out.flush()?;

    // One page per subcommand.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = page(sub);
        let mut out = create(out_dir, &man.get_filename())?;
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        help_sections(sub).to_writer(&mut out)?;
        man.render_options_section(&mut out)?;
        after_help_sections(sub).to_writer(&mut out)?;
        let mut see_also = Roff::new();
        see_also
            .control("SH", ["SEE ALSO"])
            .text([roman("openssl-reload(1), openssl(1), systemd.service(5)")]);
        see_also.to_writer(&mut out)?;
        out.flush()?;
    }
    Ok(())
}

/// DESCRIPTION from the long about; its own headings become subsections.
fn help_sections(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    if let Some(text) = cmd.get_long_about().or(cmd.get_about()) {
        render_help_text(&mut roff, &text.to_string(), "SS");
    }
    roff
}

/// The after-help text (EXAMPLES, EXIT STATUS) as top-level sections.
fn after_help_sections(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    if let Some(text) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        render_help_text(&mut roff, &text.to_string(), "SH");
    }
    roff
}

/// Turns `--help` prose into man markup, keeping its layout:
///
/// - an unindented upper-case line (`EXAMPLES:`, `SIGNALS`) is a heading;
/// - an unindented block is a filled paragraph, and so is an indented block
///   of a single long line;
/// - in an indented block, a line ending in `:` followed by deeper lines is an
///   example: the line as a paragraph, the deeper lines verbatim, indented;
/// - anything else (tables, lists) is kept verbatim.
fn render_help_text(roff: &mut Roff, text: &str, heading: &str) {
    for block in text.split("\n\n") {
        let mut lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        if let Some(first) = lines.first() {
            if is_heading(first) {
                let title = first.trim_end_matches(':').to_string();
                roff.control(heading, [title.as_str()]);
                lines.remove(0);
            }
        }
        if lines.is_empty() {
            continue;
        }
        let min_indent = lines.iter().map(|l| indent(l)).min().unwrap_or(0);
        if min_indent == 0 || (lines.len() == 1 && lines[0].len() > 100) {
            let joined: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
            roff.control("PP", []).text([roman(joined.join(" "))]);
            continue;
        }
        let mut i = 0;
        let mut verbatim: Vec<String> = Vec::new();
        while i < lines.len() {
            let line = &lines[i][min_indent..];
            let next_deeper = lines.get(i + 1).is_some_and(|n| indent(n) > min_indent);
            if indent(line) == 0 && line.ends_with(':') && next_deeper {
                flush_verbatim(roff, &mut verbatim, 0);
                roff.control("PP", []).text([roman(line)]);
                i += 1;
                let mut example = Vec::new();
                while i < lines.len() && indent(lines[i]) > min_indent {
                    example.push(lines[i].trim_start().to_string());
                    i += 1;
                }
                flush_verbatim(roff, &mut example, 4);
            } else {
                verbatim.push(line.to_string());
                i += 1;
            }
        }
        flush_verbatim(roff, &mut verbatim, 0);
    }
}

fn flush_verbatim(roff: &mut Roff, lines: &mut Vec<String>, indent: u8) {
    if lines.is_empty() {
        return;
    }
    if indent > 0 {
        roff.control("RS", [indent.to_string().as_str()]);
    } else {
        roff.control("PP", []);
    }
    roff.control("nf", []);
    for line in lines.drain(..) {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    if indent > 0 {
        roff.control("RE", []);
    }
}

fn is_heading(line: &str) -> bool {
    let t = line.trim_end_matches(':');
    indent(line) == 0
        && t.len() >= 3
        && t.chars().any(|c| c.is_ascii_uppercase())
        && t.chars()
            .all(|c| c.is_ascii_uppercase() || c == ' ' || c == '-')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn create(dir: &Path, name: &str) -> std::io::Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(dir.join(name))?))
}

/// ENVIRONMENT, FILES and SEE ALSO, for the Debian/RPM service.
fn service_sections(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    environment_section(&mut roff, cmd);
    files_section(&mut roff);

    roff.control("SH", ["SEE ALSO"]);
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("openssl-reload-{}(1)", s.get_name()))
        .collect();
    roff.text([roman(format!(
        "{}, openssl(1), s_client(1ssl), systemd.service(5), systemd.exec(5)",
        subs.join(", ")
    ))]);
    roff
}

/// One entry of a list: `name` in bold, then what it is.
fn term(roff: &mut Roff, name: impl Into<String>, what: impl Into<String>) {
    roff.control("TP", []);
    roff.text([clap_mangen::roff::bold(name.into())]);
    roff.text([roman(what.into())]);
}

/// ENVIRONMENT: every option of every subcommand that has a variable, from the
/// clap definition itself, so the list cannot drift, and the two variables that
/// are not options.
fn environment_section(roff: &mut Roff, cmd: &clap::Command) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "Each option can also be given as an environment variable; an option on the command line wins. \
         The variables:",
    )]);
    let mut seen = Vec::new();
    for c in std::iter::once(cmd).chain(cmd.get_subcommands()) {
        for arg in c.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let env = env.to_string_lossy().into_owned();
            if seen.contains(&env) {
                continue;
            }
            seen.push(env.clone());
            term(roff, env, format!("Same as --{long}."));
        }
    }
    term(
        roff,
        "OPENSSL_RELOAD_KEY_PASSPHRASE",
        "The passphrase of an encrypted key or PKCS#12 bundle itself, when --key-passphrase-file is not given.",
    );
    term(
        roff,
        "RUST_LOG",
        "Log filter, when neither --log nor OPENSSL_RELOAD_LOG is set.",
    );
}

/// FILES: what the packages install and read.
fn files_section(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/default/openssl-reload",
            "Settings of the openssl-reload.service unit on Debian and Ubuntu: OPENSSL_RELOAD_* variables, one per line.",
        ),
        (
            "/etc/sysconfig/openssl-reload",
            "The same on Fedora, RHEL and SUSE.",
        ),
        (
            "/etc/openssl-reload/tls/",
            "Where the packaged service looks for tls.crt and tls.key by default. \
             Owned by root, group openssl-reload, mode 0750: give the key mode 0640 and group openssl-reload. \
             The packages create the directory but never ship a key or a certificate.",
        ),
        (
            "/usr/lib/systemd/system/openssl-reload.service",
            "The systemd unit. systemctl reload openssl-reload sends SIGHUP, which reloads the files at once.",
        ),
    ] {
        term(roff, path, what);
    }
}

/// The footer date: `SOURCE_DATE_EPOCH` as YYYY-MM-DD, or empty.
fn source_date() -> String {
    let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    else {
        return String::new();
    };
    // The date part of `2026-01-02T03:04:05Z`.
    let mut date = timefmt::rfc3339(secs);
    date.truncate(date.find('T').unwrap_or(date.len()));
    date
}
