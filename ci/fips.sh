#!/usr/bin/env bash
# The FIPS suite (docs/fips.md): the library and the binary on a real OpenSSL FIPS
# provider.
#
#  1. ci/fips-provider.sh builds (or finds cached) an OpenSSL 3.0.8 fips.so and its
#     OPENSSL_CONF file.
#  2. `cargo test -p openssl-reload --features fips --test fips` with that
#     OPENSSL_CONF: fips::enable, MD5 gone, TLS 1.2/1.3 handshakes with FIPS
#     suites, reloads, encrypted PKCS#8 loading, and non-approved key material
#     failing while the old stays served. OPENSSL_RELOAD_FIPS_REQUIRED=1 turns
#     any skip into a failure.
#  3. The binary (package openssl-reload-server, feature fips): `--fips` without
#     a usable provider exits 1 naming OPENSSL_CONF and fipsmodule.cnf; with the
#     provider it serves, /status says "fips_enabled": true, /metrics
#     openssl_reload_fips_enabled 1, non-FIPS cipher suites are refused, and a
#     key needing MD5 is refused on reload while the old certificate stays in
#     service. Without --fips the same binary serves on a machine without a
#     provider (fips_enabled false).
#  4. A build without the `fips` feature refuses --fips with exit status 1.
#
# OPENSSL_CONF is set only for what must run under FIPS; cargo itself, curl and
# the fixtures' `openssl` commands run with the system defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n--- ci/fips.sh: %s\n' "$*"; }
fail() { printf 'ci/fips.sh: FAILED: %s\n' "$*" >&2; exit 1; }
# Runs under the system's OpenSSL defaults, whatever the caller has set.
plain() { env -u OPENSSL_CONF -u OPENSSL_MODULES "$@"; }

if ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
    ci/apt.sh curl openssl
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/openssl-reload-fips.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. the provider -------------------------------------------------------------
step "FIPS provider (ci/fips-provider.sh)"
line=$(plain ci/fips-provider.sh | tail -n1)
[[ $line == OPENSSL_CONF=/* ]] || fail "ci/fips-provider.sh printed no OPENSSL_CONF line (last line: '$line')"
fips_conf=${line#OPENSSL_CONF=}
[[ -f $fips_conf ]] || fail "$fips_conf does not exist"
# A broken fips.so makes `openssl list` show base alone, with exit status 0.
providers=$(OPENSSL_CONF=$fips_conf openssl list -providers)
printf '%s\n' "$providers" | awk '/^  [a-z]/ { name = $1 } /status: active/ { active[name] = 1 }
    END { exit !active["fips"] }' || fail "the fips provider is not active with $fips_conf:
$providers"
echo "OPENSSL_CONF=$fips_conf"

# ---- 2. the test suite -------------------------------------------------------------
step "cargo test -p openssl-reload --features fips --test fips"
# Build without the FIPS configuration (cargo and build scripts are not under test),
# then run the tests under it.
plain cargo test --locked -p openssl-reload --features fips --test fips --no-run
OPENSSL_CONF=$fips_conf OPENSSL_RELOAD_FIPS_REQUIRED=1 \
    cargo test --locked -p openssl-reload --features fips --test fips 2>&1 | tee "$work/test.log"
grep -q '^test result: ok\. [1-9][0-9]* passed; 0 failed' "$work/test.log" \
    || fail "the FIPS test suite did not pass"

# ---- 3. the binary -----------------------------------------------------------------
step "cargo build -p openssl-reload-server --features fips"
plain cargo build --locked -p openssl-reload-server --features fips
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
    | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{target_directory}')
# A private copy: other cargo runs may rebuild target/debug/openssl-reload meanwhile.
bin=$work/openssl-reload
cp "$target_dir/debug/openssl-reload" "$bin"

# Runs the binary, expecting exit status 1 and a FIPS error naming what to check.
# `timeout`: a binary that wrongly starts serving is killed (status 124) and fails.
expect_fips_failure() {
    local what=$1; shift
    local status=0
    timeout 60 "$@" >"$work/out" 2>"$work/err" || status=$?
    local err; err=$(cat "$work/err")
    [[ $status -eq 1 ]] || fail "$what: exit status $status, expected 1; stderr: $err"
    [[ $(wc -l <"$work/err") -eq 1 ]] || fail "$what: the error is not one line: $err"
    for word in "FIPS mode" OPENSSL_CONF fipsmodule.cnf; do
        [[ $err == *"$word"* ]] || fail "$what: stderr does not mention $word: $err"
    done
    echo "ok: $what: exit 1: ${err:0:160}..."
}

step "--fips without a usable FIPS provider fails closed"
: >"$work/empty.cnf"
sed 's#^module = .*#module = /nonexistent/fips.so#' "$fips_conf" >"$work/missing-module.cnf"
grep -q '^module = /nonexistent/fips.so' "$work/missing-module.cnf" \
    || fail "cannot make a config with a missing module from $fips_conf"
serve_args=(serve --listen 127.0.0.1:0 --dev-dir "$work/dev")
expect_fips_failure "serve --fips, empty OPENSSL_CONF" \
    env -u OPENSSL_MODULES OPENSSL_CONF="$work/empty.cnf" "$bin" "${serve_args[@]}" --fips
expect_fips_failure "serve --fips, OPENSSL_CONF unset" \
    env -u OPENSSL_CONF -u OPENSSL_MODULES "$bin" "${serve_args[@]}" --fips
expect_fips_failure "serve --fips, fips module missing" \
    env -u OPENSSL_MODULES OPENSSL_CONF="$work/missing-module.cnf" "$bin" "${serve_args[@]}" --fips
expect_fips_failure "serve with OPENSSL_RELOAD_FIPS=1, empty OPENSSL_CONF" \
    env -u OPENSSL_MODULES OPENSSL_CONF="$work/empty.cnf" OPENSSL_RELOAD_FIPS=1 "$bin" "${serve_args[@]}"
[[ ! -e $work/dev ]] || fail "the binary created the development certificate before failing closed"

# Fixtures, made by the openssl CLI under the FIPS configuration: a P-256 CA, a
# server certificate, its key as PBKDF2-HMAC-SHA256 + AES-256-CBC PKCS#8.
step "fixtures"
f=$work/tls
mkdir -p "$f"
printf 'ci fips passphrase\n' >"$f/pass.txt"
fips_cli() { OPENSSL_CONF=$fips_conf openssl "$@"; }
fips_cli req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=openssl-reload ci FIPS CA" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$f/ca.key" -out "$f/ca.pem" 2>/dev/null
issue() { # issue NAME SERIAL: NAME.crt and NAME.plain.pem
    fips_cli req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
        -subj /CN=localhost -keyout "$f/$1.plain.pem" -out "$f/$1.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$f/ext"
    fips_cli x509 -req -sha256 -in "$f/$1.csr" -CA "$f/ca.pem" -CAkey "$f/ca.key" \
        -set_serial "$2" -days 2 -extfile "$f/ext" -out "$f/$1.crt" 2>/dev/null
}
pkcs8() { # pkcs8 NAME OUT: the conversion docs/fips.md recommends
    fips_cli pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 \
        -in "$f/$1.plain.pem" -out "$2" -passout "file:$f/pass.txt"
}
issue first 0x0F1251
issue second 0x0F1252
cp "$f/first.crt" "$f/cert.pem"
pkcs8 first "$f/key.pem"
chmod 600 "$f"/*.pem

# GET https://localhost:$port$1 with the CA, outside FIPS (curl is not under test).
get() { plain curl -sS --fail --max-time 10 --cacert "$f/ca.pem" "https://localhost:$port$1"; }
# Starts the command (an external one, such as env: $! must be the server's pid)
# in the background; sets server_pid, and port from the JSON "listening" log line.
start_server() {
    "$@" >"$work/serve.out" 2>"$work/serve.log" &
    server_pid=$!
    port=
    for _ in $(seq 300); do
        port=$(grep '"message":"listening"' "$work/serve.log" \
            | grep -o '"addr":"127\.0\.0\.1:[0-9]*"' | head -n1 | grep -o '[0-9]*"$' | tr -d '"' \
            || true)
        [[ -n $port ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "the server exited: $(cat "$work/serve.log")"
        sleep 0.1
    done
    fail "the server did not listen within 30 s: $(cat "$work/serve.log")"
}
stop_server() {
    kill -TERM "$server_pid"
    local status=0
    wait "$server_pid" || status=$?
    server_pid=
    [[ $status -eq 0 ]] || fail "the server exited with status $status on SIGTERM"
}
# Waits up to 10 s for `get PATH` to match the extended regex; fails otherwise.
wait_for() {
    local path=$1 regex=$2 what=$3
    local body
    for _ in $(seq 100); do
        body=$(get "$path" 2>/dev/null || true)
        grep -Eq "$regex" <<<"$body" && return 0
        sleep 0.1
    done
    fail "$what: $path never matched /$regex/: $(get "$path" || true)"
}

step "serve --fips with the FIPS provider"
start_server env OPENSSL_CONF="$fips_conf" "$bin" --log-format json serve --fips \
    --listen 127.0.0.1:0 --cert "$f/cert.pem" --key "$f/key.pem" \
    --key-passphrase-file "$f/pass.txt" --poll-interval 50ms
grep -q 'FIPS mode' "$work/serve.log" || fail "no FIPS start-up log line: $(cat "$work/serve.log")"
status=$(get /status)
grep -Eq '"fips_enabled": *true' <<<"$status" || fail "/status does not report fips_enabled true: $status"
grep -Eq '"serial": *"0F1251"' <<<"$status" || fail "/status does not show the first certificate: $status"
echo "ok: /status: $(grep -E '"fips_enabled"' <<<"$status" | tr -d ' ,')"
metrics=$(get /metrics)
grep -qx 'openssl_reload_fips_enabled 1' <<<"$metrics" \
    || fail "/metrics lacks openssl_reload_fips_enabled 1: $(grep fips <<<"$metrics" || true)"
echo "ok: /metrics: openssl_reload_fips_enabled 1"
# The TLS layer is the fips provider's: AES-GCM negotiated, ChaCha20 refused.
s_client() { plain timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost "$@" </dev/null 2>&1 || true; }
negotiated=$(s_client -tls1_3 | grep -o 'Cipher is [A-Z0-9_-]*' | head -n1)
[[ $negotiated == "Cipher is TLS_AES_256_GCM_SHA384" || $negotiated == "Cipher is TLS_AES_128_GCM_SHA256" ]] \
    || fail "TLS 1.3 negotiated '${negotiated:-nothing}', not AES-GCM"
echo "ok: TLS 1.3: $negotiated"
chacha=$(s_client -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256)
grep -q 'Cipher is TLS_CHACHA20' <<<"$chacha" && fail "the server negotiated ChaCha20-Poly1305 in FIPS mode"
grep -q 'alert handshake failure' <<<"$chacha" \
    || fail "a ChaCha20-only client was not refused with a handshake failure: $chacha"
echo "ok: a ChaCha20-only TLS 1.3 client is refused (handshake failure)"

step "a pkcs11: key through the libp11 engine is refused in FIPS mode"
# The engine would bypass the FIPS provider: only a provider may serve a
# hardware key in FIPS mode. Refused before any token is opened, so no token
# is needed here (ci/hardware-keys.sh tests the keys themselves).
status=0
env OPENSSL_CONF="$fips_conf" "$bin" --fips check --cert "$f/cert.pem" \
    --key 'pkcs11:token=web;object=tls-key;type=private' >"$work/out" 2>"$work/err" || status=$?
[[ $status -eq 1 ]] || fail "check --fips with a pkcs11: key: exit $status: $(cat "$work/err")"
grep -q 'in FIPS mode a pkcs11: key is opened only through a provider' "$work/err" \
    || fail "check --fips with a pkcs11: key does not say why: $(cat "$work/err")"
echo "ok: $(cat "$work/err")"

step "a renewal whose key needs MD5 is refused; the old certificate stays in service"
# Traditional PEM encryption derives its key with MD5 (made outside FIPS).
plain openssl ec -in "$f/second.plain.pem" -aes128 -passout "file:$f/pass.txt" \
    -out "$f/second.md5.pem" 2>/dev/null
grep -q 'Proc-Type: 4,ENCRYPTED' "$f/second.md5.pem" || fail "no traditional encrypted PEM"
cp "$f/second.md5.pem" "$f/key.new" && mv "$f/key.new" "$f/key.pem"
cp "$f/second.crt" "$f/cert.new" && mv "$f/cert.new" "$f/cert.pem"
wait_for /status '"message": *"cannot load [^"]*it needs MD5' "the MD5-keyed renewal"
status=$(get /status)
grep -Eq '"serial": *"0F1251"' <<<"$status" || fail "the old certificate is no longer served: $status"
echo "ok: refused: $(grep -Eo '"message": *"[^"]{0,150}' <<<"$status")..."
echo "ok: still serving serial 0F1251"
pkcs8 second "$f/key.new" && mv "$f/key.new" "$f/key.pem"
wait_for /status '"serial": *"0F1252"' "the PKCS#8 renewal"
echo "ok: the renewal with a PBKDF2/AES-256 key went into service (serial 0F1252)"
stop_server

step "without --fips the same binary serves where no provider is installed"
start_server env -u OPENSSL_CONF -u OPENSSL_MODULES -u OPENSSL_RELOAD_FIPS "$bin" --log-format json serve \
    --listen 127.0.0.1:0 --cert "$f/cert.pem" --key "$f/key.pem" \
    --key-passphrase-file "$f/pass.txt"
status=$(get /status)
grep -Eq '"fips_enabled": *false' <<<"$status" || fail "/status does not report fips_enabled false: $status"
metrics=$(get /metrics)
grep -qx 'openssl_reload_fips_enabled 0' <<<"$metrics" || fail "/metrics lacks openssl_reload_fips_enabled 0"
echo "ok: fips_enabled false, openssl_reload_fips_enabled 0"
stop_server

# ---- 4. a build without the feature ---------------------------------------------------
step "a build without the fips feature refuses --fips"
plain cargo build --locked -p openssl-reload-server
cp "$target_dir/debug/openssl-reload" "$work/openssl-reload-nofips"
# Put the fips binary back for whoever runs it from target/ next.
plain cargo build --locked -p openssl-reload-server --features fips
status=0
plain "$work/openssl-reload-nofips" "${serve_args[@]}" --fips >/dev/null 2>"$work/err" || status=$?
[[ $status -eq 1 ]] || fail "without the feature, --fips exited $status, expected 1: $(cat "$work/err")"
# shellcheck disable=SC2016 # the backquotes are literal
grep -q 'built without FIPS support (cargo feature `fips`)' "$work/err" \
    || fail "without the feature, --fips says: $(cat "$work/err")"
echo "ok: $(cat "$work/err")"

step "FIPS suite passed"
