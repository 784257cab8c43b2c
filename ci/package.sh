#!/usr/bin/env bash
# ci/package.sh: build the .deb and the .rpm of openssl-reload (the workspace
# member server/, package openssl-reload-server, whose Cargo.toml holds the
# packaging metadata) and check them (issue 8, docs/packaging.md). Run as root on
# Debian 12 (bookworm):
#
#   bash ci/package.sh
#
# It installs what it lacks (lintian, rpm, ... from apt; cargo-deb and
# cargo-generate-rpm pinned, with --locked), builds both packages, lints the
# .deb, installs it with dpkg, checks the installed files, the unit
# (systemd-analyze verify and security) and the conffiles, then runs the
# installed server by hand the way openssl-reload.service would (systemd is not
# PID 1 on CI machines, so `systemctl start/reload` cannot be used): as the
# user openssl-reload, with the environment file, first unconfigured (it must
# fail with a clear message), then on test certificates it makes; it rotates
# them, runs the unit's ExecReload (SIGHUP) and checks with `openssl s_client`
# that the new serial is served; then it purges the package and checks that
# nothing is left.
#
# Then the C library's packages (capi/, package openssl-reload-capi): the
# .debs libopenssl-reload0 and libopenssl-reload-dev and the .rpms
# openssl-reload-libs and openssl-reload-devel, from files pkg/capi-stage.sh
# stages. It lints the .debs, inspects the .rpms and links a C program against
# the devel .rpm's files, installs both .debs, checks pkg-config, the SONAME
# and the ldconfig cache, builds and runs tests/c/smoke.c against the
# installed library (shared and static), and purges them.
#
# Idempotent: a package left installed by an earlier run is purged first, and
# everything this run starts or installs is stopped or purged on exit, also on
# failure. Any failed check stops the script with "FAIL: ..." and exit 1.
#
# Environment: OPENSSL_RELOAD_PKG_PORT, the loopback port of the test server
# (default: a free port below the kernel's ephemeral range).
set -euo pipefail

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
PORT="${OPENSSL_RELOAD_PKG_PORT:-}" # empty: a free one is picked
# `systemd-analyze security` exposure above this fails the run (0 best, 10 worst).
MAX_EXPOSURE=2.0

PKG=openssl-reload              # the name of the .deb and .rpm
CRATE=openssl-reload-server     # the Cargo package they are built from
CRATE_DIR=server                # its directory, for cargo generate-rpm -p
SVC_USER=openssl-reload
TLS_DIR=/etc/openssl-reload/tls
ENV_FILE=/etc/default/openssl-reload
UNIT=/usr/lib/systemd/system/openssl-reload.service
TEST_CA_CN="openssl-reload package test CA"
# The C library's packages: Cargo package, runtime and development .deb,
# runtime and development .rpm.
CAPI_CRATE=openssl-reload-capi
CAPI_DIR=capi
LIB_DEB=libopenssl-reload0
DEV_DEB=libopenssl-reload-dev
LIB_RPM=openssl-reload-libs
DEV_RPM=openssl-reload-devel
MULTIARCH_LIBDIR=/usr/lib/x86_64-linux-gnu

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

# shellcheck source=ci/steps.sh
. "$(dirname "${BASH_SOURCE[0]}")/steps.sh"
trap 'echo "FAIL: command failed (exit $?) at ci/package.sh line $LINENO: $BASH_COMMAND" >&2' ERR

[[ $(id -u) -eq 0 ]] || fail "run as root (it installs and purges the package)"

work="$(mktemp -d /tmp/openssl-reload-pkg.XXXXXX)"
chmod 0755 "$work" # lintian runs as nobody and reads the .deb from here
server_pid=""
lintian_pid=""
installed_by_us=0
libs_installed_by_us=0

stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then wait "$server_pid" 2>/dev/null || true; fi
    server_pid=""
}

# Our test certificates, recognised by their issuer, so that a run never
# deletes an administrator's files.
remove_test_certs() {
    local f
    for f in "$TLS_DIR"/tls.crt "$TLS_DIR"/tls.key "$TLS_DIR"/.tls.crt.new "$TLS_DIR"/.tls.key.new; do
        [[ -e $f ]] || continue
        if [[ $f == *.key* ]] || openssl x509 -in "$f" -noout -issuer 2>/dev/null | grep -q "$TEST_CA_CN"; then
            rm -f "$f"
        fi
    done
}

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    stop_server
    if [[ -n $lintian_pid ]] && kill -0 "$lintian_pid" 2>/dev/null; then
        kill -TERM "$lintian_pid" 2>/dev/null
        wait "$lintian_pid" 2>/dev/null
    fi
    if ((installed_by_us)); then
        echo "cleanup: purging $PKG installed by this run" >&2
        remove_test_certs
        dpkg -P "$PKG" >&2 || echo "cleanup: dpkg -P failed" >&2
    fi
    if ((libs_installed_by_us)); then
        echo "cleanup: purging $DEV_DEB and $LIB_DEB installed by this run" >&2
        dpkg -P "$DEV_DEB" "$LIB_DEB" >&2 || echo "cleanup: dpkg -P failed" >&2
    fi
    rm -rf "$work"
    if ((rc == 0)); then
        echo "ci/package.sh: all checks passed in $((SECONDS - t0))s"
    else
        echo "ci/package.sh: FAILED (exit $rc) after $((SECONDS - t0))s" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
step "Tools: apt packages and the pinned cargo packagers"
need_apt=()
for pair in lintian:lintian rpm:rpm systemd-analyze:systemd openssl:openssl \
    strip:binutils adduser:adduser man:man-db deb-systemd-helper:init-system-helpers \
    setpriv:util-linux gzip:gzip git:git gcc:gcc pkg-config:pkg-config readelf:binutils \
    dpkg-shlibdeps:dpkg-dev rpm2archive:rpm2cpio; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# libopenssl-reload-dev depends on it (openssl-reload.pc: Requires.private: libssl).
dpkg-query -W -f='${db:Status-Status}' libssl-dev 2>/dev/null | grep -qx installed || need_apt+=(libssl-dev)
if ((${#need_apt[@]})); then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Compiled once per machine, minutes on 2 cores. At opt-level 1 they compile
# much faster (cargo-generate-rpm: 3 min instead of 7 here) and run no slower
# on a package this size.
if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $CARGO_DEB_VERSION" ]]; then
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked --version "$CARGO_DEB_VERSION" cargo-deb
fi
if [[ $(cargo generate-rpm --version 2>/dev/null) != "cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION" ]]; then
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked --version "$CARGO_GENERATE_RPM_VERSION" cargo-generate-rpm
fi
echo "$(cargo deb --version); $(cargo generate-rpm --version); $(lintian --version); $(rpm --version)"
echo "$(systemd-analyze --version | head -n1); $(openssl version)"

# ---------------------------------------------------------------------------
step "Leftovers of an earlier run; a free port"
leftovers=0
# The development package first: it depends on the runtime one.
for p in "$PKG" "$DEV_DEB" "$LIB_DEB"; do
    if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
        echo "purging an installed $p ($(dpkg-query -W -f='${Version} ${db:Status-Status}' "$p"))"
        if [[ $p == "$PKG" ]]; then remove_test_certs; fi
        dpkg -P "$p"
        leftovers=$((leftovers + 1))
    fi
done
((leftovers)) || echo "none"
# In use: something listens there, or (for a port in the ephemeral range) an
# outgoing connection holds it, which a connect test cannot see but makes bind
# fail. So candidates come from below the ephemeral range only.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range || ephemeral_low=32768
if [[ -n $PORT ]]; then
    if port_in_use "$PORT"; then fail "port $PORT (OPENSSL_RELOAD_PKG_PORT) is in use"; fi
else
    for candidate in $(shuf -i "10000-$((ephemeral_low - 1))" -n 50); do
        if ! port_in_use "$candidate"; then PORT=$candidate; break; fi
    done
    [[ -n $PORT ]] || fail "no free loopback port found"
fi
ADMIN_PORT=""
for candidate in $(shuf -i "10000-$((ephemeral_low - 1))" -n 50); do
    if [[ $candidate != "$PORT" ]] && ! port_in_use "$candidate"; then ADMIN_PORT=$candidate; break; fi
done
[[ -n $ADMIN_PORT ]] || fail "no free loopback port found for the admin address"
echo "test server port: 127.0.0.1:$PORT, admin: 127.0.0.1:$ADMIN_PORT"

# ---------------------------------------------------------------------------
step "Man pages from the clap definition (pkg/man.sh)"
pkg/man.sh
for page in openssl-reload openssl-reload-serve openssl-reload-check; do
    [[ -s target/man/$page.1.gz ]] || fail "target/man/$page.1.gz was not generated"
    man -l target/man/$page.1 >/dev/null 2>&1 || fail "man cannot render target/man/$page.1"
done
ok "3 pages"

# ---------------------------------------------------------------------------
step "Release binary"
# With `fips`: the packaged binary can run in FIPS mode (--fips / OPENSSL_RELOAD_FIPS=1).
cargo build --release --locked -p "$CRATE" --features fips --bin openssl-reload
# Every package of the workspace has the version of [workspace.package].
version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)"
[[ -n $version ]] || fail "cannot read the version in [workspace.package] of Cargo.toml"
# Where cargo puts its output (honours CARGO_TARGET_DIR and .cargo/config).
tdir="$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -x $tdir/release/openssl-reload ]] || fail "no binary at $tdir/release/openssl-reload"
echo "version $version, target dir $tdir"

# ---------------------------------------------------------------------------
step "Release C library (libopenssl_reload.so, .a)"
cargo build --release --locked -p "$CAPI_CRATE"
for f in libopenssl_reload.so libopenssl_reload.a; do
    [[ -f $tdir/release/$f ]] || fail "no $tdir/release/$f"
done
soname="$(readelf -d "$tdir/release/libopenssl_reload.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ $soname == libopenssl_reload.so.0 ]] || fail "SONAME of libopenssl_reload.so is '$soname'"
ok "SONAME $soname"

# ---------------------------------------------------------------------------
step "Build the .deb (cargo deb)"
rm -rf "$tdir/debian"
cargo deb -p "$CRATE" --locked --no-build
deb="$tdir/debian/${PKG}_${version}-1_amd64.deb"
[[ -f $deb ]] || fail "$deb not built"
cp "$deb" "$work/"
chmod 0644 "$work/$(basename "$deb")"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
dpkg-deb --field "$deb" Depends | grep -q 'libssl3' || fail "the .deb does not depend on libssl3"
ok "Depends: $(dpkg-deb --field "$deb" Depends)"

# ---------------------------------------------------------------------------
step "Build the library .debs ($LIB_DEB, $DEV_DEB) from the staged files"
pkg/capi-stage.sh deb "$tdir/release"
stage="$root/target/pkg-capi/deb"
staged_lib="$stage$MULTIARCH_LIBDIR/libopenssl_reload.so.$version"
if readelf -S "$staged_lib" | grep -q '\.symtab'; then fail "the staged library is not stripped"; fi
ok "staged and stripped (no .symtab): ${staged_lib#"$stage"}"
cargo deb -p "$CAPI_CRATE" --locked --no-build --multiarch=same --variant lib
cargo deb -p "$CAPI_CRATE" --locked --no-build --multiarch=same --variant dev
lib_deb="$tdir/debian/${LIB_DEB}_${version}-1_amd64.deb"
dev_deb="$tdir/debian/${DEV_DEB}_${version}-1_amd64.deb"
[[ -f $lib_deb && -f $dev_deb ]] || fail "$lib_deb or $dev_deb not built"
# cargo-deb adds the triggers file but cannot add a shlibs file: add it with
# dpkg-deb, which keeps the file modes, the root ownership and the timestamps.
rm -rf "$work/repack"
dpkg-deb -R "$lib_deb" "$work/repack"
[[ ! -e $work/repack/DEBIAN/shlibs ]] || fail "cargo-deb added a shlibs file: drop the repacking"
install -m 0644 pkg/debian/libopenssl-reload0.shlibs "$work/repack/DEBIAN/shlibs"
touch -r "$work/repack/DEBIAN/control" "$work/repack/DEBIAN/shlibs"
SOURCE_DATE_EPOCH="$(stat -c %Y "$work/repack/DEBIAN/control")" \
    dpkg-deb --root-owner-group -Zxz -b "$work/repack" "$lib_deb" >/dev/null
for d in "$lib_deb" "$dev_deb"; do
    cp "$d" "$work/"
    chmod 0644 "$work/$(basename "$d")"
    echo "--- $(basename "$d")"
    dpkg-deb --info "$d"
    dpkg-deb --contents "$d" | tee "$work/$(basename "$d").contents"
done
has() { grep -q " \./${2#/}\( -> .*\)\?\$" "$work/$(basename "$1").contents" || fail "$(basename "$1") lacks $2"; }
for f in "$MULTIARCH_LIBDIR/libopenssl_reload.so.$version" "$MULTIARCH_LIBDIR/libopenssl_reload.so.0" \
    "/usr/share/doc/$LIB_DEB/copyright" "/usr/share/doc/$LIB_DEB/changelog.Debian.gz"; do
    has "$lib_deb" "$f"
done
for f in /usr/include/openssl_reload.h "$MULTIARCH_LIBDIR/pkgconfig/openssl-reload.pc" \
    "$MULTIARCH_LIBDIR/pkgconfig/openssl-reload-static.pc" \
    "$MULTIARCH_LIBDIR/libopenssl_reload.so" "$MULTIARCH_LIBDIR/libopenssl_reload.a" \
    "/usr/share/doc/$DEV_DEB/copyright"; do
    has "$dev_deb" "$f"
done
grep -q "^l.* \./${MULTIARCH_LIBDIR#/}/libopenssl_reload\.so\.0 -> libopenssl_reload\.so\.$version\$" \
    "$work/$(basename "$lib_deb").contents" || fail "$LIB_DEB: .so.0 is not a link to .so.$version"
grep -q "^l.* \./${MULTIARCH_LIBDIR#/}/libopenssl_reload\.so -> libopenssl_reload\.so\.0\$" \
    "$work/$(basename "$dev_deb").contents" || fail "$DEV_DEB: .so is not a link to .so.0"
if grep -E ' \./[^ ]*libopenssl_reload\.so\.[0-9]' "$work/$(basename "$dev_deb").contents"; then
    fail "$DEV_DEB ships the runtime library or its .so.0 link"
fi
ok "files: the library and its .so.0 link in $LIB_DEB; header, .pc, .so link and .a in $DEV_DEB"
[[ $(dpkg-deb --ctrl-tarfile "$lib_deb" | tar -xO ./shlibs) == "libopenssl_reload 0 $LIB_DEB (>= "* ]] ||
    fail "$LIB_DEB has no shlibs file for libopenssl_reload 0"
[[ $(dpkg-deb --ctrl-tarfile "$lib_deb" | tar -xO ./triggers) == "activate-noawait ldconfig" ]] ||
    fail "$LIB_DEB has no ldconfig trigger"
ok "control files: shlibs ($(dpkg-deb --ctrl-tarfile "$lib_deb" | tar -xO ./shlibs)), triggers (activate-noawait ldconfig)"
# Depends of the runtime package: written in capi/Cargo.toml, since cargo-deb's
# $auto skips a file not named *.so; it must be what dpkg-shlibdeps computes.
mkdir -p "$work/shlibdeps/debian"
: >"$work/shlibdeps/debian/control"
computed="$(cd "$work/shlibdeps" && dpkg-shlibdeps -O "$staged_lib" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
lib_depends="$(dpkg-deb --field "$lib_deb" Depends)"
[[ $lib_depends == "$computed" ]] ||
    fail "$LIB_DEB Depends: '$lib_depends', dpkg-shlibdeps: '$computed' (update capi/Cargo.toml)"
ok "$LIB_DEB Depends: $lib_depends (= dpkg-shlibdeps)"
dev_depends="$(dpkg-deb --field "$dev_deb" Depends)"
grep -q "^$LIB_DEB (= $version-1), libssl-dev\$" <<<"$dev_depends" ||
    fail "$DEV_DEB Depends: '$dev_depends', expected '$LIB_DEB (= $version-1), libssl-dev' (update capi/Cargo.toml)"
ok "$DEV_DEB Depends: $dev_depends"

# ---------------------------------------------------------------------------
step "lintian on the three .debs, in the background while the .rpms are built"
# As nobody: lintian should not unpack untrusted packages as root. Its 10-15 s
# (mostly libopenssl_reload.a) overlap the .rpm builds; results after them.
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp \
    lintian --fail-on error --display-info "$work/$(basename "$deb")" \
    "$work/$(basename "$lib_deb")" "$work/$(basename "$dev_deb")" >"$work/lintian.txt" 2>&1 &
lintian_pid=$!
echo "  lintian started (pid $lintian_pid)"

# ---------------------------------------------------------------------------
step "Build the .rpm (cargo generate-rpm) and inspect it"
# cargo-generate-rpm packages the binary as it is: strip it first, as cargo deb does.
strip "$tdir/release/openssl-reload"
rm -rf "$tdir/generate-rpm"
# From the root: the asset paths in server/Cargo.toml are relative to it.
cargo generate-rpm -p "$CRATE_DIR"
rpm_file="$(ls "$tdir/generate-rpm/${PKG}-${version}-1."*.rpm)"
rpm -qpi "$rpm_file"
echo "--- rpm -qpl"
rpm -qpl "$rpm_file" | tee "$work/rpm-files.txt"
for f in /usr/bin/openssl-reload /usr/lib/systemd/system/openssl-reload.service \
    /etc/sysconfig/openssl-reload /usr/lib/sysusers.d/openssl-reload.conf \
    /usr/share/man/man1/openssl-reload.1.gz /usr/share/man/man1/openssl-reload-serve.1.gz \
    /usr/share/man/man1/openssl-reload-check.1.gz /usr/share/licenses/openssl-reload/copyright; do
    grep -qx "$f" "$work/rpm-files.txt" || fail "the .rpm lacks $f"
done
echo "--- rpm -qpR"
rpm -qpR "$rpm_file" | tee "$work/rpm-requires.txt"
grep -q '^libssl\.so\.3()(64bit)' "$work/rpm-requires.txt" || fail "the .rpm does not require libssl.so.3"
echo "--- rpm -qpc"
rpm -qpc "$rpm_file" | grep -qx /etc/sysconfig/openssl-reload || fail "/etc/sysconfig/openssl-reload is not a config file"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" | grep ' /etc/'
rpm -qp --scripts "$rpm_file" | grep -q 'useradd -r' || fail "the .rpm has no %pre creating the user"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm_file" |
    grep -qx -- "-rw-r----- root:$SVC_USER /etc/sysconfig/openssl-reload" ||
    fail "/etc/sysconfig/openssl-reload is not root:$SVC_USER 0640 in the .rpm"
ok "files, libssl requirement, config file (root:$SVC_USER 0640) and scriptlets present"

# ---------------------------------------------------------------------------
step "Build the library .rpms ($LIB_RPM, $DEV_RPM) and inspect them"
pkg/capi-stage.sh rpm "$tdir/release"
cargo generate-rpm -p "$CAPI_DIR"
cargo generate-rpm -p "$CAPI_DIR" --variant devel
lib_rpm="$tdir/generate-rpm/${LIB_RPM}-${version}-1.x86_64.rpm"
dev_rpm="$tdir/generate-rpm/${DEV_RPM}-${version}-1.x86_64.rpm"
[[ -f $lib_rpm && -f $dev_rpm ]] || fail "$lib_rpm or $dev_rpm not built"
for r in "$lib_rpm" "$dev_rpm"; do
    echo "--- rpm -qlpv $(basename "$r")"
    rpm -qlpv "$r" | tee "$work/$(basename "$r").files"
    rpm -qpl "$r" >"$work/$(basename "$r").list"
    echo "--- rpm -qp --provides"
    rpm -qp --provides "$r" | tee "$work/$(basename "$r").provides"
    echo "--- rpm -qp --requires"
    rpm -qp --requires "$r" | tee "$work/$(basename "$r").requires"
done
rpm_has() { grep -qx -- "$2" "$work/$(basename "$1").$3" || fail "$(basename "$1"): no '$2' in $3"; }
for f in /usr/lib64/libopenssl_reload.so.0 "/usr/share/licenses/$LIB_RPM/copyright"; do
    rpm_has "$lib_rpm" "$f" list
done
for f in /usr/include/openssl_reload.h /usr/lib64/pkgconfig/openssl-reload.pc \
    /usr/lib64/pkgconfig/openssl-reload-static.pc \
    /usr/lib64/libopenssl_reload.so /usr/lib64/libopenssl_reload.a "/usr/share/licenses/$DEV_RPM/copyright"; do
    rpm_has "$dev_rpm" "$f" list
done
rpm_has "$lib_rpm" 'libopenssl_reload.so.0()(64bit)' provides
rpm_has "$lib_rpm" 'libssl.so.3()(64bit)' requires
rpm_has "$lib_rpm" 'libcrypto.so.3()(64bit)' requires
rpm_has "$dev_rpm" "$LIB_RPM = $version-1" requires
rpm_has "$dev_rpm" openssl-devel requires
rpm_has "$dev_rpm" "pkgconfig(openssl-reload) = $version" provides
rpm_has "$dev_rpm" "pkgconfig(openssl-reload-static) = $version" provides
grep -q '^-rwxr-xr-x .* /usr/lib64/libopenssl_reload\.so\.0$' "$work/$(basename "$lib_rpm").files" ||
    fail "$LIB_RPM: /usr/lib64/libopenssl_reload.so.0 is not mode 0755"
ok "files; $LIB_RPM provides libopenssl_reload.so.0()(64bit), requires libssl.so.3 and libcrypto.so.3;" \
    "$DEV_RPM requires $LIB_RPM = $version-1 and openssl-devel"
# The .so of the devel package is an ld script (no symlinks in
# cargo-generate-rpm): link tests/c/smoke.c through it and openssl-reload.pc,
# against both packages' files unpacked in a directory.
mkdir -p "$work/rpmroot"
for r in "$lib_rpm" "$dev_rpm"; do rpm2archive - <"$r" | tar -xz -C "$work/rpmroot"; done
rpm_cflags_libs="$(PKG_CONFIG_SYSROOT_DIR="$work/rpmroot" \
    PKG_CONFIG_LIBDIR="$work/rpmroot/usr/lib64/pkgconfig:$(pkg-config --variable pc_path pkg-config)" \
    pkg-config --cflags --libs openssl-reload)" || fail "pkg-config on the devel .rpm's openssl-reload.pc"
echo "  pkg-config (unpacked .rpms): $rpm_cflags_libs"
# shellcheck disable=SC2086 # word splitting of the flags is intended
gcc -std=c11 -Wall -Wextra -Werror tests/c/smoke.c $rpm_cflags_libs -o "$work/smoke-rpm" ||
    fail "tests/c/smoke.c does not link against the .rpms' files"
readelf -d "$work/smoke-rpm" | grep -q 'NEEDED.*\[libopenssl_reload\.so\.0\]' ||
    fail "the program linked through the ld script does not need libopenssl_reload.so.0"
LD_LIBRARY_PATH="$work/rpmroot/usr/lib64" "$work/smoke-rpm" /nonexistent.pem >"$work/smoke-rpm.log" 2>&1 ||
    { cat "$work/smoke-rpm.log"; fail "tests/c/smoke.c against the .rpms' library failed"; }
ok "tests/c/smoke.c links through the ld script (NEEDED libopenssl_reload.so.0) and runs"

# ---------------------------------------------------------------------------
step "lintian results (must report no errors)"
lintian_rc=0
wait "$lintian_pid" || lintian_rc=$?
lintian_pid=""
cat "$work/lintian.txt"
((lintian_rc == 0)) || fail "lintian exit $lintian_rc"
if grep -q '^E:' "$work/lintian.txt"; then fail "lintian reported errors"; fi
ok "lintian: $(grep -c '^E:' "$work/lintian.txt") errors, $(grep -c '^W:' "$work/lintian.txt") warnings, $(grep -c '^I:' "$work/lintian.txt") info"

# ---------------------------------------------------------------------------
step "Install the .deb (dpkg -i)"
installed_by_us=1
dpkg -i "$deb"
[[ $(dpkg-query -W -f='${db:Status-Status}' "$PKG") == installed ]] || fail "$PKG is not installed"
[[ $(command -v openssl-reload) == /usr/bin/openssl-reload ]] || fail "openssl-reload is not /usr/bin/openssl-reload"
out="$(/usr/bin/openssl-reload --version)"
[[ $out == "openssl-reload $version" ]] || fail "--version printed '$out'"
ok "/usr/bin/openssl-reload --version: $out"
getent passwd "$SVC_USER" >/dev/null || fail "user $SVC_USER was not created"
ok "user: $(getent passwd "$SVC_USER")"
[[ $(stat -c '%U:%G %a' "$TLS_DIR") == "root:$SVC_USER 750" ]] || fail "$TLS_DIR is $(stat -c '%U:%G %a' "$TLS_DIR")"
ok "$TLS_DIR: root:$SVC_USER 0750, $(find "$TLS_DIR" -mindepth 1 | wc -l) files (no key or certificate shipped)"
# It may hold the key's passphrase: not world-readable; the service's group.
[[ $(stat -c '%U:%G %a' "$ENV_FILE") == "root:$SVC_USER 640" ]] || fail "$ENV_FILE is $(stat -c '%U:%G %a' "$ENV_FILE")"
ok "$ENV_FILE: root:$SVC_USER 0640"
grep -qx 'OPENSSL_RELOAD_ADMIN_LISTEN=127.0.0.1:[0-9]*' "$ENV_FILE" || fail "$ENV_FILE does not set a loopback admin address"
ok "$ENV_FILE: $(grep '^OPENSSL_RELOAD_ADMIN_LISTEN=' "$ENV_FILE")"
[[ -L /etc/systemd/system/multi-user.target.wants/openssl-reload.service ]] || fail "the unit was not enabled"
ok "unit enabled (multi-user.target.wants)"
man -w openssl-reload >/dev/null 2>&1 || echo "  note: man pages not installed (dpkg path-exclude?)"

# ---------------------------------------------------------------------------
step "Unit file: systemd-analyze verify"
[[ -f $UNIT ]] || fail "$UNIT missing"
verify_args=()
if ! man -w openssl-reload-serve >/dev/null 2>&1; then
    echo "  note: man pages excluded from installation here; verifying without Documentation= checks"
    verify_args+=(--man=no)
fi
if ! systemd-analyze verify "${verify_args[@]}" "$UNIT" >"$work/verify.txt" 2>&1; then
    cat "$work/verify.txt"
    fail "systemd-analyze verify failed"
fi
cat "$work/verify.txt"
# verify exits 0 on some warnings; catch the ones about this unit.
if grep -i 'openssl-reload' "$work/verify.txt"; then fail "systemd-analyze verify complained about the unit"; fi
ok "systemd-analyze verify $UNIT"
[[ $(sed -n 's/^LimitCORE=//p' "$UNIT") == 0 ]] || fail "the unit does not set LimitCORE=0"
ok "LimitCORE=0 (no core dump holds the key)"
read -r -a no_restart <<<"$(sed -n 's/^RestartPreventExitStatus=//p' "$UNIT")"
printf '%s\n' "${no_restart[@]}" | grep -qx 78 || fail "RestartPreventExitStatus= does not list 78"
ok "RestartPreventExitStatus=${no_restart[*]}"

# ---------------------------------------------------------------------------
step "Unit hardening: systemd-analyze security --offline=true"
systemd-analyze security --offline=true "$UNIT" >"$work/security.txt" 2>&1 || true
grep '✗' "$work/security.txt" || true
score_line="$(grep 'Overall exposure level' "$work/security.txt")" || {
    cat "$work/security.txt"
    fail "no exposure level from systemd-analyze security"
}
echo "$score_line"
score="$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$score_line")"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || fail "exposure $score is above $MAX_EXPOSURE"
ok "exposure $score (at most $MAX_EXPOSURE)"

# ---------------------------------------------------------------------------
step "Conffiles"
conffiles="$(dpkg-query --showformat='${Conffiles}\n' --show "$PKG")"
echo "$conffiles"
grep -q "^ $ENV_FILE [0-9a-f]\{32\}" <<<"$conffiles" || fail "$ENV_FILE is not a conffile"
ok "$ENV_FILE is a conffile"

# ---------------------------------------------------------------------------
# Runs ExecStart of the installed unit the way systemd would: its User= and
# Group=, the variables of its EnvironmentFile=s (systemd's KEY=VALUE syntax),
# the environment systemd gives a service, UMask=, NoNewPrivileges= and an
# empty CapabilityBoundingSet=. Output goes to $1 (the journal's stand-in).
unit_values() { sed -n "s/^$1=//p" "$UNIT"; }
service_command() {
    local user group home shell file line key val
    user="$(unit_values User)"
    group="$(unit_values Group)"
    home="$(getent passwd "$user" | cut -d: -f6)"
    shell="$(getent passwd "$user" | cut -d: -f7)"
    svc_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME="$home"
        USER="$user" LOGNAME="$user" SHELL="$shell")
    while read -r file; do
        if [[ $file == -* ]]; then
            file="${file#-}"
            [[ -f $file ]] || continue
        fi
        while IFS= read -r line || [[ -n $line ]]; do
            line="${line#"${line%%[![:space:]]*}"}"
            [[ -z $line || $line == '#'* || $line == ';'* || $line != *=* ]] && continue
            key="${line%%=*}"
            val="${line#*=}"
            if [[ $val == \"*\" || $val == \'*\' ]]; then val="${val:1:${#val}-2}"; fi
            svc_env+=("$key=$val")
        done <"$file"
    done < <(unit_values EnvironmentFile)
    read -r -a svc_exec <<<"$(unit_values ExecStart)"
    svc_priv=(setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs
        --bounding-set=-all --inh-caps=-all)
    svc_umask="$(unit_values UMask)"
}
start_service() {
    service_command
    echo "  as $(unit_values User):$(unit_values Group), umask ${svc_umask:-0022}: ${svc_exec[*]}"
    printf '  env: %s\n' "${svc_env[@]}" | grep OPENSSL_RELOAD_ || true
    (
        umask "${svc_umask:-0022}"
        # LimitCORE= and LimitNOFILE= of the unit (soft and hard alike, as systemd sets them).
        # Raising the hard limit needs CAP_SYS_RESOURCE, which a sandbox's root may lack.
        nofile="$(unit_values LimitNOFILE)"
        hard="$(ulimit -Hn)"
        if [[ $hard != unlimited ]] && ((nofile > hard)); then nofile=$hard; fi
        exec prlimit --core="$(unit_values LimitCORE)" --nofile="$nofile" -- \
            env -i "${svc_env[@]}" "${svc_priv[@]}" -- "${svc_exec[@]}"
    ) >"$1" 2>&1 </dev/null &
    server_pid=$!
}

# ---------------------------------------------------------------------------
step "Fresh install, no certificate: the service must fail with a clear message"
# The administrator's edit of the conffile (before installing certificates): a test port, and a poll interval
# long enough that only the reload signal can explain a new certificate.
cat >>"$ENV_FILE" <<EOF

# Added by ci/package.sh
OPENSSL_RELOAD_LISTEN=127.0.0.1:$PORT
OPENSSL_RELOAD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT
OPENSSL_RELOAD_POLL_INTERVAL=1m
EOF

start_service "$work/unconfigured.log"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/unconfigured.log"
    fail "the server kept running without a certificate"
fi
rc=0
wait "$server_pid" || rc=$?
server_pid=""
sed 's/^/  | /' "$work/unconfigured.log"
((rc == 78)) || fail "exit status $rc without a certificate, not 78 (EX_CONFIG, in RestartPreventExitStatus=)"
grep -q "$TLS_DIR/tls.crt" "$work/unconfigured.log" || fail "the message does not name $TLS_DIR/tls.crt"
if grep -qiE 'panicked|backtrace' "$work/unconfigured.log"; then fail "a panic instead of an error message"; fi
lines=$(grep -c . "$work/unconfigured.log")
((lines == 1)) || echo "  note: $lines lines of output, expected one"
ok "exit status $rc, message names the missing file"

# ---------------------------------------------------------------------------
step "Test certificates: a CA and two leaves with different serials"
(
    cd "$work"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.crt -days 2 -subj "/CN=$TEST_CA_CN" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >leaf.ext
    for n in 1 2; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "leaf$n.key" -out "leaf$n.csr" -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in "leaf$n.csr" -CA ca.crt -CAkey ca.key -set_serial "0x${n}00${n}" \
            -days 2 -extfile leaf.ext -out "leaf$n.crt" 2>/dev/null
    done
)
serial1="$(openssl x509 -in "$work/leaf1.crt" -noout -serial | cut -d= -f2)"
serial2="$(openssl x509 -in "$work/leaf2.crt" -noout -serial | cut -d= -f2)"
[[ $serial1 != "$serial2" ]] || fail "the two leaves have the same serial"
install -m 0644 -o root -g "$SVC_USER" "$work/leaf1.crt" "$TLS_DIR/tls.crt"
install -m 0640 -o root -g "$SVC_USER" "$work/leaf1.key" "$TLS_DIR/tls.key"
setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups test -r "$TLS_DIR/tls.key" ||
    fail "$SVC_USER cannot read $TLS_DIR/tls.key"
if setpriv --reuid=nobody --regid=nogroup --clear-groups test -r "$TLS_DIR/tls.key"; then
    fail "other users can read $TLS_DIR/tls.key"
fi
ok "leaf serials $serial1 and $serial2; $TLS_DIR/tls.key readable by group $SVC_USER only"


served_serial() {
    local out
    out="$(timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost \
        -CAfile "$work/ca.crt" -verify_return_error </dev/null 2>/dev/null)" || return 1
    openssl x509 -noout -serial <<<"$out" 2>/dev/null | cut -d= -f2
}

# ---------------------------------------------------------------------------
step "Start the installed server the way the unit would"
start_service "$work/server.log"
serial=""
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; fail "the server exited"; }
    serial="$(served_serial)" && break
    sleep 0.2
done
[[ -n $serial ]] || { cat "$work/server.log"; fail "no TLS on 127.0.0.1:$PORT after 20s"; }
[[ $serial == "$serial1" ]] || fail "served serial $serial, expected $serial1"
ok "pid $server_pid serves serial $serial (chain verified against the test CA)"
uid="$(awk '/^Uid:/ { print $2 }' "/proc/$server_pid/status")"
[[ $uid == "$(id -u "$SVC_USER")" ]] || fail "the server runs as uid $uid, not $SVC_USER"
[[ $(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$server_pid/status") == 1 ]] || fail "NoNewPrivs is not set"
[[ $(awk '/^CapEff:/ { print $2 }' "/proc/$server_pid/status") == 0000000000000000 ]] || fail "the server has capabilities"
ok "runs as $SVC_USER (uid $uid), no_new_privs, no capabilities"
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$ADMIN_PORT/status")" || code=none
[[ $code == 200 ]] || fail "GET /status on the admin address: $code"
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$work/ca.crt" \
    --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/metrics")" || code=none
[[ $code == 404 ]] || fail "GET /metrics on the public address: $code, not 404"
[[ $(awk '/^Max core file size/ { print $5, $6 }' "/proc/$server_pid/limits") == "0 0" ]] ||
    fail "core dumps are not disabled: $(grep '^Max core' "/proc/$server_pid/limits")"
ok "core file size limit 0"
ok "/status on the admin address (127.0.0.1:$ADMIN_PORT); /metrics 404 on the public one"

# ---------------------------------------------------------------------------
step "Rotate the certificate, then reload with the unit's ExecReload (SIGHUP)"
install -m 0644 -o root -g "$SVC_USER" "$work/leaf2.crt" "$TLS_DIR/.tls.crt.new"
install -m 0640 -o root -g "$SVC_USER" "$work/leaf2.key" "$TLS_DIR/.tls.key.new"
mv -f "$TLS_DIR/.tls.key.new" "$TLS_DIR/tls.key"
mv -f "$TLS_DIR/.tls.crt.new" "$TLS_DIR/tls.crt"
serial="$(served_serial)" || fail "no TLS after the rotation"
[[ $serial == "$serial1" ]] || fail "serial $serial before the reload signal (poll interval is 1m)"
ok "before the signal: still serial $serial (next poll is up to 1m away)"
reload_cmd="$(unit_values ExecReload)"
reload_cmd="${reload_cmd//\$MAINPID/$server_pid}"
echo "  ExecReload: $reload_cmd"
reload_t=$SECONDS
eval "$reload_cmd"
for _ in $(seq 50); do
    serial="$(served_serial)" || true
    [[ $serial == "$serial2" ]] && break
    sleep 0.1
done
[[ $serial == "$serial2" ]] || { cat "$work/server.log"; fail "serial $serial 5s after SIGHUP, expected $serial2"; }
ok "after SIGHUP: serial $serial (within $((SECONDS - reload_t))s)"

# ---------------------------------------------------------------------------
step "Stop (SIGTERM, as systemctl stop): clean exit"
kill -TERM "$server_pid"
for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then fail "still running 15s after SIGTERM"; fi
rc=0
wait "$server_pid" || rc=$?
server_pid=""
echo "  server log:"
sed 's/^/  | /' "$work/server.log"
((rc == 0)) || fail "exit status $rc after SIGTERM"
ok "exit status 0"

# ---------------------------------------------------------------------------
step "Purge (dpkg -P) and confirm removal"
remove_test_certs
dpkg -P "$PKG"
installed_by_us=0
status="$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || echo not-installed)"
[[ $status == not-installed ]] || fail "dpkg status after purge: $status"
for f in /usr/bin/openssl-reload "$UNIT" "$ENV_FILE" /etc/openssl-reload \
    /usr/share/doc/openssl-reload /usr/share/man/man1/openssl-reload.1.gz \
    /etc/systemd/system/multi-user.target.wants/openssl-reload.service \
    /var/lib/systemd/deb-systemd-helper-enabled/openssl-reload.service.dsh-also; do
    if [[ -e $f || -L $f ]]; then fail "$f is still there after purge"; fi
done
ok "package, files, conffile, certificate directory and enablement are gone"
if getent passwd "$SVC_USER" >/dev/null; then
    echo "  note: the system user $SVC_USER is kept, by design (docs/packaging.md)"
fi

# ---------------------------------------------------------------------------
step "Install the library .debs; pkg-config, SONAME, tests/c/smoke.c against them"
libs_installed_by_us=1
dpkg -i "$lib_deb" "$dev_deb"
for p in "$LIB_DEB" "$DEV_DEB"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p") == installed ]] || fail "$p is not installed"
done
ok "$LIB_DEB and $DEV_DEB installed"
cflags_libs="$(pkg-config --cflags --libs openssl-reload)" || fail "pkg-config --cflags --libs openssl-reload"
[[ $(pkg-config --modversion openssl-reload) == "$version" ]] || fail "pkg-config --modversion: $(pkg-config --modversion openssl-reload)"
ok "pkg-config --cflags --libs openssl-reload: $cflags_libs (version $version)"
soname="$(readelf -d "$MULTIARCH_LIBDIR/libopenssl_reload.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ $soname == libopenssl_reload.so.0 ]] || fail "SONAME of the installed library: '$soname'"
ok "readelf -d: SONAME $soname"
# With /lib a link to /usr/lib (merged /usr), the cache may name /lib/x86_64-linux-gnu.
cached="$(ldconfig -p | sed -n 's/^[[:space:]]*libopenssl_reload\.so\.0 (.*) => //p' | head -n1)"
[[ -n $cached && $(readlink -f "$cached") == "$(readlink -f "$MULTIARCH_LIBDIR/libopenssl_reload.so.0")" ]] ||
    fail "libopenssl_reload.so.0 is not in the ldconfig cache (the trigger did not run?)"
ok "ldconfig cache: $(ldconfig -p | grep -m1 'libopenssl_reload\.so\.0')"
# shellcheck disable=SC2086 # word splitting of the flags is intended
gcc -std=c11 -Wall -Wextra -Werror tests/c/smoke.c $cflags_libs -o "$work/smoke" ||
    fail "tests/c/smoke.c does not build against the installed packages"
resolved="$(env -u LD_LIBRARY_PATH ldd "$work/smoke" | sed -n 's/.*libopenssl_reload\.so\.0 => \([^ ]*\) .*/\1/p')"
[[ -n $resolved && $(readlink -f "$resolved") == "$(readlink -f "$MULTIARCH_LIBDIR/libopenssl_reload.so.0")" ]] ||
    fail "smoke resolves libopenssl_reload.so.0 to '$resolved', not the installed library"
env -u LD_LIBRARY_PATH "$work/smoke" /nonexistent.pem >"$work/smoke.log" 2>&1 ||
    { cat "$work/smoke.log"; fail "tests/c/smoke.c against the installed library failed"; }
ok "tests/c/smoke.c: built with -Werror, runs against $resolved"
# Statically: the .a and Rust's native libraries, through openssl-reload-static.pc.
# shellcheck disable=SC2046 # word splitting of the flags is intended
gcc -std=c11 -Wall -Wextra -Werror tests/c/smoke.c \
    $(pkg-config --cflags --libs openssl-reload-static) -o "$work/smoke-static" ||
    fail "tests/c/smoke.c does not link with pkg-config openssl-reload-static"
if readelf -d "$work/smoke-static" | grep -q 'libopenssl_reload'; then fail "smoke-static needs the shared library"; fi
"$work/smoke-static" /nonexistent.pem >"$work/smoke-static.log" 2>&1 ||
    { cat "$work/smoke-static.log"; fail "tests/c/smoke.c linked statically failed"; }
ok "tests/c/smoke.c linked with libopenssl_reload.a (pkg-config openssl-reload-static) runs"

# ---------------------------------------------------------------------------
step "Purge the library .debs and confirm removal"
dpkg -P "$DEV_DEB" "$LIB_DEB"
libs_installed_by_us=0
for p in "$LIB_DEB" "$DEV_DEB"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || echo not-installed)"
    [[ $status == not-installed ]] || fail "dpkg status of $p after purge: $status"
done
for f in "$MULTIARCH_LIBDIR"/libopenssl_reload.* "$MULTIARCH_LIBDIR/pkgconfig/openssl-reload.pc" \
    "$MULTIARCH_LIBDIR/pkgconfig/openssl-reload-static.pc" /usr/include/openssl_reload.h "/usr/share/doc/$LIB_DEB" "/usr/share/doc/$DEV_DEB"; do
    if [[ -e $f || -L $f ]]; then fail "$f is still there after purge"; fi
done
if ldconfig -p | grep -q 'libopenssl_reload'; then fail "libopenssl_reload is still in the ldconfig cache"; fi
if pkg-config --exists openssl-reload; then fail "pkg-config still finds openssl-reload"; fi
ok "packages, library, links, header, .pc, docs and the ldconfig cache entry are gone"

step "Summary"
step_timings
echo "lintian:  $(grep -c '^E:' "$work/lintian.txt") errors, $(grep -c '^W:' "$work/lintian.txt") warnings: $(grep '^W:' "$work/lintian.txt" | awk '{print $3}' | tr '\n' ' ')"
echo "security: $score_line"
echo "reload:   serial $serial1 -> $serial2 on SIGHUP"
echo "packages: $deb"
echo "          $rpm_file"
echo "          $lib_deb"
echo "          $dev_deb"
echo "          $lib_rpm"
echo "          $dev_rpm"
