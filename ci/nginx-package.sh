#!/usr/bin/env bash
# ci/nginx-package.sh: the Debian package libnginx-mod-http-openssl-reload of
# the nginx module (nginx/; docs/nginx.md, "Install the package";
# docs/packaging.md), built from pkg/nginx-module/debian/ with
# dpkg-buildpackage the way Debian builds nginx modules (dh-sequence-nginx:
# the nginx_mod build system and dh_nginx), then installed and exercised:
#
#   ci/nginx-package.sh           build, lint, install, exercise, purge
#   ci/nginx-package.sh --build   build only; prints the .deb's path
#
# Build: the release C library and its .debs libopenssl-reload0 and
# libopenssl-reload-dev (pkg/capi-stage.sh, cargo deb, as ci/package.sh
# builds them), installed as the source package's build dependency (the
# module links libopenssl_reload.a through openssl-reload-static.pc) and
# purged after the build; the source tree, nginx/ with debian/ at its top,
# assembled in target/nginx-package/; `dpkg-buildpackage -b -us -uc` there.
# Then: lintian (no error, no warning), dpkg -i, the installed files, the
# modules-enabled link and no NEEDED libopenssl_reload; `nginx -t` on Debian's
# stock /etc/nginx/nginx.conf; Debian's /usr/sbin/nginx (a master and two
# workers as www-data, in a temporary prefix) loading the module through
# /etc/nginx/modules-enabled: a certificate renamed over is served within the
# deadline with no `nginx -s reload` and no new process; `nginx -s quit`;
# dpkg -r (the module disabled), dpkg --purge (nothing left).
#
# Root on Debian 12 with its nginx; it installs what it lacks (ci/apt.sh;
# cargo-deb at ci/package.sh's pinned version). Under CI (CI=true) a missing
# prerequisite is a failure; outside CI the script skips, printing why.
# Idempotent: the three packages left installed by an earlier run are purged
# first, and what this run starts or installs is stopped or purged on exit,
# also on failure. A failed check prints "FAIL: ..." and exits 1.
set -euo pipefail

PKG=libnginx-mod-http-openssl-reload
MODULE=ngx_http_openssl_reload_module.so
MODULE_PATH=/usr/lib/nginx/modules/$MODULE
# What dh_nginx makes of the package name: the load file and its enable link
# (load priority 50 for an http module).
AVAILABLE=/usr/share/nginx/modules-available/mod-http-openssl-reload.conf
ENABLED=/etc/nginx/modules-enabled/50-mod-http-openssl-reload.conf
LIB_DEB=libopenssl-reload0
DEV_DEB=libopenssl-reload-dev
# The module's poll interval in the exercise, and the rotation's deadline.
INTERVAL=50ms
DEADLINE_S=20

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
build_only=0
case "${1:-}" in
    "") ;;
    --build) build_only=1 ;;
    *) echo "usage: ci/nginx-package.sh [--build]" >&2; exit 64 ;;
esac

# shellcheck source=ci/steps.sh
. "$(dirname "${BASH_SOURCE[0]}")/steps.sh"
# A missing prerequisite: a failure under CI, a skip elsewhere.
unmet() {
    if [[ ${CI:-} == true ]]; then fail "$*"; fi
    echo "ci/nginx-package.sh: skipped: $*"
    exit 0
}

if [[ ! -f /etc/debian_version ]] || ! command -v dpkg >/dev/null; then unmet "not a Debian system"; fi
[[ $(id -u) -eq 0 ]] || unmet "not root (it installs and purges packages)"
trap 'echo "FAIL: command failed (exit $?) at ci/nginx-package.sh line $LINENO: $BASH_COMMAND" >&2' ERR

work="$(mktemp -d /tmp/openssl-reload-nginx-pkg.XXXXXX)"
# lintian runs as nobody and the nginx workers as www-data: both read from here.
chmod 0755 "$work"
run="$work/nginx"
nginx_master=""
installed_by_us=0
libs_installed_by_us=0

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qv '^not-installed$'; }

stop_nginx() {
    [[ -n $nginx_master ]] || return 0
    if kill -0 "$nginx_master" 2>/dev/null; then
        /usr/sbin/nginx -p "$run/" -c "$run/nginx.conf" -s quit 2>/dev/null || kill -TERM "$nginx_master" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nginx_master" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nginx_master" 2>/dev/null || true
    fi
    nginx_master=""
}

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    stop_nginx
    if ((installed_by_us)); then
        echo "cleanup: purging $PKG installed by this run" >&2
        dpkg -P "$PKG" >&2 || echo "cleanup: dpkg -P $PKG failed" >&2
    fi
    if ((libs_installed_by_us)); then
        echo "cleanup: purging $DEV_DEB and $LIB_DEB installed by this run" >&2
        dpkg -P "$DEV_DEB" "$LIB_DEB" >&2 || echo "cleanup: dpkg -P failed" >&2
    fi
    rm -rf "$work"
    if ((rc == 0)); then
        echo "ci/nginx-package.sh: all checks passed in $((SECONDS - t0))s"
    else
        echo "ci/nginx-package.sh: FAILED (exit $rc) after $((SECONDS - t0))s" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
step "Tools: Debian's nginx, nginx-dev (dh-sequence-nginx), debhelper, lintian; cargo-deb"
# build-essential: dpkg-checkbuilddeps requires it besides Build-Depends.
# Rules-Requires-Root: no, so no fakeroot.
ci/apt.sh nginx nginx-dev debhelper dpkg-dev build-essential lintian libssl-dev \
    pkg-config openssl binutils || unmet "cannot install the Debian packages it needs"
[[ -x /usr/sbin/nginx && -x /usr/bin/dh_nginx && -f /usr/share/nginx/src/conf_flags ]] ||
    fail "nginx, dh_nginx or /usr/share/nginx/src missing after ci/apt.sh"
cargo_deb_version="$(sed -n 's/^CARGO_DEB_VERSION=//p' ci/package.sh)"
[[ -n $cargo_deb_version ]] || fail "no CARGO_DEB_VERSION in ci/package.sh"
if [[ $(cargo deb --version 2>/dev/null) != "cargo-deb $cargo_deb_version" ]]; then
    # Compiled once per machine (ci/package.sh does the same).
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked --version "$cargo_deb_version" cargo-deb
fi
getent passwd www-data >/dev/null || fail "no user www-data (the workers' user in Debian's nginx.conf)"
abi="$(sed -n 's/^nginx:abi=//p' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars)"
[[ -n $abi ]] || fail "no nginx:abi in /usr/share/nginx/src/debian/libnginx-mod.abisubstvars"
dpkg-query -W -f='${Provides}' nginx | grep -q "\b$abi\b" || fail "the installed nginx does not provide $abi"
echo "$(/usr/sbin/nginx -v 2>&1) (provides $abi); debhelper $(dpkg-query -W -f='${Version}' debhelper);" \
    "$(lintian --version); $(cargo deb --version)"

# ---------------------------------------------------------------------------
step "Versions: the workspace, debian/changelog, the build dependency"
version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)"
[[ -n $version ]] || fail "cannot read the version in [workspace.package] of Cargo.toml"
debian=pkg/nginx-module/debian
deb_version="$(dpkg-parsechangelog -l "$debian/changelog" -S Version)"
[[ $deb_version == "$version-1" ]] ||
    fail "$debian/changelog is at $deb_version, the workspace at $version: add an entry $version-1 (dch)"
grep -q "libopenssl-reload-dev (= $deb_version)" "$debian/control" ||
    fail "$debian/control: Build-Depends libopenssl-reload-dev is not (= $deb_version)"
ok "$PKG $deb_version; Build-Depends: libopenssl-reload-dev (= $deb_version)"

# ---------------------------------------------------------------------------
step "Leftovers of an earlier run"
leftovers=0
# The module first; the development package before the runtime one it depends on.
for p in "$PKG" "$DEV_DEB" "$LIB_DEB"; do
    if installed "$p"; then
        echo "purging an installed $p ($(dpkg-query -W -f='${Version} ${db:Status-Status}' "$p"))"
        dpkg -P "$p"
        leftovers=$((leftovers + 1))
    fi
done
((leftovers)) || echo "none"

# ---------------------------------------------------------------------------
step "The build dependency: the C library's .debs, installed"
cargo build --release --locked -p openssl-reload-capi
pkg/capi-stage.sh deb "${CARGO_TARGET_DIR:-target}/release" >/dev/null
mkdir -p "$work/deps"
# --fast: they are installed for the build only.
for variant in lib dev; do
    cargo deb -p openssl-reload-capi --locked --no-build --multiarch=same --variant "$variant" \
        --fast -o "$work/deps/" 2>&1 | grep -v '^warning: Only source paths' || true
done
lib_deb="$work/deps/${LIB_DEB}_${version}-1_amd64.deb"
dev_deb="$work/deps/${DEV_DEB}_${version}-1_amd64.deb"
[[ -f $lib_deb && -f $dev_deb ]] || fail "cargo deb did not make $lib_deb and $dev_deb"
libs_installed_by_us=1
dpkg -i "$lib_deb" "$dev_deb" >/dev/null
pkg-config --exists openssl-reload-static || fail "pkg-config does not find openssl-reload-static"
ok "$LIB_DEB and $DEV_DEB $version-1 installed; pkg-config --libs openssl-reload-static:" \
    "$(pkg-config --libs openssl-reload-static)"

# ---------------------------------------------------------------------------
step "dpkg-buildpackage -b -us -uc"
out="$root/target/nginx-package"
src="$out/$PKG-$version"
rm -rf "$out"
mkdir -p "$src"
cp -a nginx/. "$src/"
cp -a "$debian" "$src/debian"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log" >&2
    fail "dpkg-buildpackage failed (log: $out/build.log)"
fi
grep -E '^ *dh_|dh_auto_test|load_module|dpkg-deb: building' "$out/build.log" | sed 's/^/  | /' | head -n 40
deb="$out/${PKG}_${version}-1_amd64.deb"
[[ -f $deb ]] || fail "$deb not built"
# The build dependency is no longer needed.
dpkg -P "$DEV_DEB" "$LIB_DEB" >/dev/null
libs_installed_by_us=0
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb" | tee "$work/contents.txt"
ok "built $deb ($(stat -c %s "$deb") bytes)"
if ((build_only)); then
    echo "$deb"
    exit 0
fi

# ---------------------------------------------------------------------------
step "The .deb: fields and files"
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Version) == "$version-1" ]] || fail "Version: $(field Version), expected $version-1"
depends="$(field Depends)"
grep -q "\b$abi\b" <<<"$depends" || fail "Depends: '$depends' lacks $abi (dh_nginx's \${misc:Depends})"
grep -q 'libssl3' <<<"$depends" || fail "Depends: '$depends' lacks libssl3 (\${shlibs:Depends})"
if grep -q 'libopenssl-reload' <<<"$depends"; then fail "Depends: '$depends' names the library: it is linked in"; fi
ok "Depends: $depends"
[[ $(field Static-Built-Using) == "$DEV_DEB (= $version-1)" ]] ||
    fail "Static-Built-Using: '$(field Static-Built-Using)', expected '$DEV_DEB (= $version-1)'"
ok "Static-Built-Using: $(field Static-Built-Using)"
for f in "$MODULE_PATH" "$AVAILABLE" "/usr/share/doc/$PKG/copyright" "/usr/share/doc/$PKG/changelog.Debian.gz" \
    "/usr/share/lintian/overrides/$PKG"; do
    grep -q " \.$f\$" "$work/contents.txt" || fail "the .deb lacks $f"
done
ok "module, modules-available load file, copyright, changelog, lintian overrides"
for s in postinst prerm postrm; do
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$s" | grep -q 'modules-enabled' ||
        fail "no dh_nginx $s (modules-enabled link)"
done
ok "dh_nginx's postinst, prerm and postrm"

# ---------------------------------------------------------------------------
step "lintian (as nobody; no error, no warning)"
cp "$deb" "$work/"
chmod 0644 "$work/$(basename "$deb")"
lintian_rc=0
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp \
    lintian --fail-on none --display-info --show-overrides "$work/$(basename "$deb")" \
    >"$work/lintian.txt" 2>&1 || lintian_rc=$?
cat "$work/lintian.txt"
((lintian_rc == 0)) || fail "lintian exit $lintian_rc"
if grep -qE '^[EW]:' "$work/lintian.txt"; then fail "lintian reported errors or warnings"; fi
ok "lintian: 0 errors, 0 warnings, $(grep -c '^I:' "$work/lintian.txt") info," \
    "$(grep -c '^O:' "$work/lintian.txt") overridden (reasons in $debian/$PKG.lintian-overrides)"

# ---------------------------------------------------------------------------
step "Install (dpkg -i): the module, its load file, the enable link"
installed_by_us=1
dpkg -i "$deb"
[[ $(dpkg-query -W -f='${db:Status-Status}' "$PKG") == installed ]] || fail "$PKG is not installed"
[[ -f $MODULE_PATH ]] || fail "$MODULE_PATH missing"
[[ $(cat "$AVAILABLE") == "load_module modules/$MODULE;" ]] || fail "$AVAILABLE: '$(cat "$AVAILABLE")'"
[[ -L $ENABLED && $(readlink "$ENABLED") == "$AVAILABLE" ]] ||
    fail "$ENABLED is not a link to $AVAILABLE ($(ls -l /etc/nginx/modules-enabled/))"
ok "$MODULE_PATH; $AVAILABLE: $(cat "$AVAILABLE"); $ENABLED -> $(readlink "$ENABLED")"
if readelf -d "$MODULE_PATH" | grep 'NEEDED.*libopenssl_reload'; then
    fail "the module needs libopenssl_reload.so: the library must be linked in"
fi
ok "readelf -d: $(readelf -d "$MODULE_PATH" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')(no libopenssl_reload)"
# Debian's stock configuration includes modules-enabled/*.conf, with the
# prefix /usr/share/nginx whose modules/ links to /usr/lib/nginx/modules.
/usr/sbin/nginx -t -q || fail "nginx -t fails on the stock /etc/nginx/nginx.conf with the module enabled"
ok "nginx -t: the stock /etc/nginx/nginx.conf loads the module"

# ---------------------------------------------------------------------------
step "Test certificates: a CA and two leaves with different serials"
tls="$run/tls"
# Whatever the umask: the workers (www-data) traverse these.
install -d -m 0755 "$run" "$tls"
(
    cd "$work"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.crt -days 2 -subj "/CN=openssl-reload nginx package test CA" \
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
chmod 0644 "$work/ca.crt"
serial1="$(openssl x509 -in "$work/leaf1.crt" -noout -serial | cut -d= -f2)"
serial2="$(openssl x509 -in "$work/leaf2.crt" -noout -serial | cut -d= -f2)"
[[ $serial1 != "$serial2" ]] || fail "the two leaves have the same serial"
# As an administrator would: the key readable by the workers' group only.
install -m 0644 "$work/leaf1.crt" "$tls/tls.crt"
install -m 0640 -g www-data "$work/leaf1.key" "$tls/tls.key"
ok "serials $serial1 and $serial2; $tls/tls.key root:www-data 0640"

# ---------------------------------------------------------------------------
step "Debian's nginx, the module loaded through modules-enabled: serial $serial1"
# In use: something listens there, or (in the ephemeral range) an outgoing
# connection holds it; so candidates come from below that range.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range || ephemeral_low=32768
port=""
for candidate in $(shuf -i "10000-$((ephemeral_low - 1))" -n 50); do
    if ! port_in_use "$candidate"; then port=$candidate; break; fi
done
[[ -n $port ]] || fail "no free loopback port found"
# The package's load line names modules/..., relative to nginx's prefix: in
# Debian's, /usr/share/nginx/modules links to /usr/lib/nginx/modules. This
# prefix gets the same link.
ln -s /usr/lib/nginx/modules "$run/modules"
cat >"$run/nginx.conf" <<EOF
include /etc/nginx/modules-enabled/*.conf;
user www-data;
worker_processes 2;
pid $run/nginx.pid;
error_log $run/error.log notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $run/body;
    proxy_temp_path $run/proxy;
    fastcgi_temp_path $run/fastcgi;
    uwsgi_temp_path $run/uwsgi;
    scgi_temp_path $run/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $tls/tls.crt;
        ssl_certificate_key $tls/tls.key;
        openssl_reload on;
        openssl_reload_interval $INTERVAL;
        location / { return 200 "ok\n"; }
    }
}
EOF
sed 's/^/  | /' "$run/nginx.conf"
/usr/sbin/nginx -p "$run/" -c "$run/nginx.conf" -t -q || fail "nginx -t on the test configuration"
/usr/sbin/nginx -p "$run/" -c "$run/nginx.conf" || { cat "$run/error.log" >&2; fail "nginx did not start"; }
for _ in $(seq 100); do
    [[ -s $run/nginx.pid ]] && break
    sleep 0.1
done
nginx_master="$(cat "$run/nginx.pid" 2>/dev/null)" || true
[[ -n $nginx_master ]] || { cat "$run/error.log" >&2; fail "no $run/nginx.pid after 10s"; }
workers() { pgrep -P "$nginx_master" -f 'nginx: worker process' | sort | tr '\n' ' '; }
for _ in $(seq 100); do
    [[ $(workers | wc -w) == 2 ]] && break
    sleep 0.1
done
workers_before="$(workers)"
[[ $(wc -w <<<"$workers_before") == 2 ]] || fail "workers: '$workers_before', expected two"
for w in $workers_before; do
    [[ $(ps -o user= -p "$w") == www-data ]] || fail "worker $w runs as $(ps -o user= -p "$w"), not www-data"
done
ok "master $nginx_master, workers $workers_before(www-data) on 127.0.0.1:$port"

served_serial() {
    local out
    out="$(timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
        -CAfile "$work/ca.crt" -verify_return_error </dev/null 2>/dev/null)" || return 1
    openssl x509 -noout -serial <<<"$out" 2>/dev/null | cut -d= -f2
}
serial=""
for _ in $(seq 100); do
    serial="$(served_serial)" && break
    sleep 0.1
done
[[ $serial == "$serial1" ]] || { cat "$run/error.log" >&2; fail "served serial '$serial', expected $serial1"; }
ok "openssl s_client: serial $serial (verified against the test CA)"

# ---------------------------------------------------------------------------
step "Rotate by rename (key, then certificate), no reload: serial $serial2 within ${DEADLINE_S}s"
# As cert-manager's and most tools' writes: a new file in the directory,
# renamed over the old one.
install -m 0640 -g www-data "$work/leaf2.key" "$tls/.tls.key.new"
install -m 0644 "$work/leaf2.crt" "$tls/.tls.crt.new"
mv -f "$tls/.tls.key.new" "$tls/tls.key"
mv -f "$tls/.tls.crt.new" "$tls/tls.crt"
rotated=${EPOCHREALTIME//[.,]/}
deadline=$((rotated + DEADLINE_S * 1000000))
polls=0
while :; do
    polls=$((polls + 1))
    serial="$(served_serial)" || serial=""
    [[ $serial == "$serial2" ]] && break
    if ((${EPOCHREALTIME//[.,]/} > deadline)); then
        cat "$run/error.log" >&2
        fail "still serial '$serial' ${DEADLINE_S}s after the rotation, expected $serial2"
    fi
    sleep 0.05
done
took_ms=$(((${EPOCHREALTIME//[.,]/} - rotated) / 1000))
ok "serial $serial2 after ${took_ms} ms ($polls handshakes)"
# Both workers poll every $INTERVAL: a few intervals on, every handshake is new.
sleep 0.3
for _ in $(seq 10); do
    serial="$(served_serial)" || serial=""
    [[ $serial == "$serial2" ]] || fail "a handshake got serial '$serial' after the rotation was served"
done
ok "10 more handshakes: serial $serial2"
[[ $(cat "$run/nginx.pid") == "$nginx_master" && $(workers) == "$workers_before" ]] ||
    fail "processes changed: master $(cat "$run/nginx.pid"), workers $(workers) (before: $nginx_master, $workers_before)"
ok "same master and workers: no reload, no new process"

# ---------------------------------------------------------------------------
step "nginx -s quit"
/usr/sbin/nginx -p "$run/" -c "$run/nginx.conf" -s quit
for _ in $(seq 100); do kill -0 "$nginx_master" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$nginx_master" 2>/dev/null; then fail "nginx still running 10s after -s quit"; fi
nginx_master=""
echo "  error log:"
sed 's/^/  | /' "$run/error.log"
if grep -E '\[(emerg|alert|crit)\]' "$run/error.log"; then fail "emerg, alert or crit in the error log"; fi
grep -q "$serial2\|${serial2,,}" "$run/error.log" || echo "  note: the error log does not name serial $serial2"
ok "stopped; no emerg, alert or crit"

# ---------------------------------------------------------------------------
step "Remove (dpkg -r): the module disabled; purge (dpkg -P): nothing left"
dpkg -r "$PKG"
if [[ -e $ENABLED || -L $ENABLED ]]; then fail "$ENABLED is still there after dpkg -r"; fi
/usr/sbin/nginx -t -q || fail "nginx -t fails on the stock configuration after dpkg -r"
ok "after dpkg -r: no $ENABLED; the stock configuration passes nginx -t"
dpkg -P "$PKG"
installed_by_us=0
status="$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || echo not-installed)"
[[ $status == not-installed ]] || fail "dpkg status after purge: $status"
for f in "$MODULE_PATH" "$AVAILABLE" "$ENABLED" "$ENABLED.removed" "/usr/share/doc/$PKG" \
    "/usr/share/lintian/overrides/$PKG"; do
    if [[ -e $f || -L $f ]]; then fail "$f is still there after purge"; fi
done
for f in /etc/nginx/modules-enabled/*openssl-reload*; do
    if [[ -e $f || -L $f ]]; then fail "$f is left in /etc/nginx/modules-enabled"; fi
done
ok "package, module, load file, enable link and docs are gone"

step "Summary"
step_timings
echo "lintian:  $(grep -c '^E:' "$work/lintian.txt") errors, $(grep -c '^W:' "$work/lintian.txt") warnings," \
    "$(grep -c '^O:' "$work/lintian.txt") overridden"
echo "rotation: serial $serial1 -> $serial2 in ${took_ms} ms, no reload"
echo "package:  $deb"
