#!/usr/bin/env bash
# Hardware-key test fixtures (issue 29, docs/hardware-keys.md "Test fixtures"): a
# SoftHSM2 token reached through OpenSSL's libp11 ENGINE (Debian's
# libengine-pkcs11-openssl) and a software TPM (swtpm) reached through the
# tpm2-openssl provider, each with keys, certificates from one test CA, and a
# shell-sourceable file of URIs and settings. Every setup ends with real TLS 1.3
# handshakes (`openssl s_server` with the key in the token or TPM, `openssl
# s_client -verify_return_error` against the CA).
#
#   ci/hsm-fixtures.sh softhsm DIR          token `web` (PIN 1234, SO PIN 5678) with
#                                           ec-key, rsa-key, ec-key-2; certs; DIR/env
#   ci/hsm-fixtures.sh softhsm-outage DIR [delete|move]
#                                           the token disappears: deleted with
#                                           softhsm2-util (default) or its directory
#                                           moved away
#   ci/hsm-fixtures.sh softhsm-restore DIR  the same keys are back under the same
#                                           labels, ids and PIN
#   ci/hsm-fixtures.sh tpm DIR              swtpm + private D-Bus + tpm2-abrmd;
#                                           persistent keys 0x81000001 (ECC P-256),
#                                           0x81000002 (RSA 2048); certs; DIR/tpm-env
#   ci/hsm-fixtures.sh tpm-stop DIR         TPM outage: swtpm stops as at a power
#                                           loss (tpm2-abrmd stays up)
#   ci/hsm-fixtures.sh tpm-start DIR        swtpm restarts on the same state: the
#                                           persistent keys are back
#   ci/hsm-fixtures.sh verify DIR           handshakes with every key set up in DIR
#   ci/hsm-fixtures.sh load DIR KEY [CLIENTS [EACH [SERVERS]]]
#                                           CLIENTS parallel s_client loops of EACH
#                                           handshakes against SERVERS s_server
#                                           processes; KEY: ec rsa ec2 tpm-ec tpm-rsa
#   ci/hsm-fixtures.sh probe DIR MODE...    builds and runs ci/hsm-probe.c (engine,
#                                           store, fork, outage and thread checks)
#   ci/hsm-fixtures.sh down DIR             stops every process this script started
#                                           for DIR (files stay; rm -rf DIR after)
#
# Every subcommand is idempotent: what is already there and right is kept. Packages
# come from ci/apt.sh (installs missing Debian packages when run as root). Nothing
# global is touched: SoftHSM2 uses DIR/softhsm2.conf, tpm2-abrmd sits on a private
# session bus (DIR/dbus.sock) and swtpm listens on free loopback ports.
#
# The SoftHSM keys are generated outside the token as PKCS#8 files (DIR/*-key*.pem)
# and imported, so that softhsm-restore can bring the very same key back under the
# same label after the token was deleted. A real HSM would generate them inside;
# for a test of "the token went away and came back" the copy is what makes it
# possible. The TPM keys are generated inside the TPM and never leave it; they are
# persistent (they survive tpm-stop/tpm-start) and noda (no dictionary-attack
# lockout after outages).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PIN=1234
SO_PIN=5678
TOKEN=web
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
# label:id:algorithm:certificate of each SoftHSM key
SOFTHSM_KEYS=(ec-key:01:ec:ec.pem rsa-key:02:rsa:rsa.pem ec-key-2:03:ec:ec2.pem)
# handle:algorithm:certificate of each TPM key
TPM_KEYS=(0x81000001:ec:tpm-ec.pem 0x81000002:rsa:tpm-rsa.pem)
# Keeps tpm2-openssl to the keys: hashing, ciphers and randomness from the default provider.
TPM_DEFAULT_PROPERTIES='?tpm2.digest=no,?tpm2.cipher=no,?tpm2.rand=no'

log() { printf '%s hsm-fixtures: %s\n' "$(date +%T.%3N)" "$*" >&2; }
die() { printf 'hsm-fixtures: FAILED: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

# Every openssl command here runs with a config we chose, never the caller's.
ossl() { env -u OPENSSL_MODULES -u OPENSSL_ENGINES OPENSSL_CONF="$D/openssl-noengine.cnf" openssl "$@"; }

set_dir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  D=$(cd "$1" && pwd)
  mkdir -p "$D/tmp"
}

engines_dir() { openssl version -e | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p'; }

# The process with this pid is alive and its command line mentions $2.
alive() {
  local pid=$1 what=$2
  [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$what"
}
pid_of() { if [ -s "$1" ]; then head -c 32 "$1" | tr -dc 0-9; fi; }

# Stops the process in pid file $1 if it is still the program $2; waits for it.
stop_pidfile() {
  local file=$1 what=$2 pid i
  pid=$(pid_of "$file")
  if alive "$pid" "$what"; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 100); do alive "$pid" "$what" || break; sleep 0.05; done
    if alive "$pid" "$what"; then kill -9 "$pid" 2>/dev/null || true; sleep 0.1; fi
    log "stopped $what (pid $pid)"
  fi
  rm -f "$file"
}

# Some socket uses local port $1 or $2. TIME_WAIT ones do not count (swtpm binds
# with SO_REUSEADDR, which is what lets it come back on its port right after
# tpm-stop), but a connection's ephemeral port does.
ports_busy() { [ -n "$(ss -Htan exclude time-wait "( sport = :$1 or sport = :$2 )")" ]; }

# Two consecutive free TCP ports, below the kernel's ephemeral range (where the
# TIME_WAIT sockets of handshake loops pile up).
free_port_pair() {
  local p i low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for i in $(seq 50); do
    p=$(( (RANDOM % (low - 12000)) + 10000 ))
    ports_busy "$p" "$((p + 1))" || { echo "$p"; return; }
  done
  die "no free port pair found"
}

# ---------------------------------------------------------------- common files

write_common() {
  cat >"$D/openssl-noengine.cnf" <<EOF
# No engine, no provider section: OpenSSL's built-in defaults. Code that loads the
# pkcs11 engine itself (ENGINE_by_id("pkcs11") + ENGINE_ctrl_cmd_string MODULE_PATH)
# or the tpm2 provider itself (OSSL_PROVIDER_load) runs under this file.
openssl_conf = openssl_init
[openssl_init]
EOF
  cat >"$D/req.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
EOF
  cat >"$D/server-ext.cnf" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EOF
}

make_ca() {
  if [ -s "$D/ca.key" ] && [ -s "$D/ca.pem" ] &&
     ossl x509 -in "$D/ca.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    return
  fi
  log "making test CA (ca.pem, ca.key)"
  ossl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/ca.key"
  chmod 600 "$D/ca.key"
  ossl req -x509 -new -config "$D/req.cnf" -key "$D/ca.key" -days 3650 \
    -subj "/CN=openssl-reload hardware-key test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$D/ca.pem"
  # A new CA makes every leaf certificate stale.
  rm -f "$D/ec.pem" "$D/rsa.pem" "$D/ec2.pem" "$D/tpm-ec.pem" "$D/tpm-rsa.pem"
}

pubkey_of_cert() { ossl x509 -in "$1" -noout -pubkey; }

# cert_ok CERT PUBKEY_PEM: the certificate is from our CA, valid a day more, and
# holds this public key.
cert_ok() {
  [ -s "$1" ] &&
    ossl verify -CAfile "$D/ca.pem" "$1" >/dev/null 2>&1 &&
    ossl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1 &&
    [ "$(pubkey_of_cert "$1")" = "$2" ]
}

# sign_csr CSR CERT: the CA signs a CSR (CN/SAN localhost) for 825 days.
sign_csr() {
  ossl req -in "$1" -noout -verify 2>/dev/null || die "CSR $1 does not verify"
  ossl x509 -req -in "$1" -CA "$D/ca.pem" -CAkey "$D/ca.key" -days 825 \
    -set_serial "0x$(ossl rand -hex 8)" -extfile "$D/server-ext.cnf" -out "$2" 2>/dev/null
}

# ---------------------------------------------------------------- handshakes

# The port of s_server's "ACCEPT 127.0.0.1:PORT" line, once the line is complete
# (read skips a last line without its newline).
accept_port() {
  local line
  while IFS= read -r line; do
    case $line in "ACCEPT 127.0.0.1:"*) echo "${line##*:}"; return ;; esac
  done <"$1"
}

# handshake LABEL ENV... -- S_SERVER_ARGS...: one s_server, one s_client that must
# get TLS 1.3 and a verified chain. (No -naccept 1: on a shared machine a stray
# connection to a reused port number would end the server before our client.)
handshake() {
  local label=$1 out port spid i client; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  out="$D/tmp/s_server.$label.out"
  env "${envs[@]}" openssl s_server -accept 127.0.0.1:0 -www "$@" >"$out" 2>&1 </dev/null &
  spid=$!
  port=
  for i in $(seq 200); do
    port=$(accept_port "$out")
    [ -n "$port" ] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.025
  done
  if [ -z "$port" ]; then
    kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
    cat "$out" >&2; die "handshake $label: s_server did not start"
  fi
  client=$(printf 'GET / HTTP/1.0\r\n\r\n' | ossl s_client -connect "127.0.0.1:$port" \
    -servername localhost -verify_hostname localhost -verify_return_error \
    -CAfile "$D/ca.pem" -tls1_3 -brief 2>&1 || true)
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  if ! grep -q '^Protocol version: TLSv1.3$' <<<"$client" || ! grep -q '^Verification: OK$' <<<"$client"; then
    printf '%s\n' "$client" >&2; cat "$out" >&2; die "handshake $label failed"
  fi
  log "handshake $label: OK ($(grep -m1 '^Protocol version' <<<"$client" | cut -d' ' -f3), $(grep -m1 '^Signature type' <<<"$client" | cut -d' ' -f3-), $(grep -m1 '^Peer certificate' <<<"$client" | cut -d' ' -f3-))"
}

# ---------------------------------------------------------------- SoftHSM2

# SOFTHSM_CONF: the SoftHSM2 config the commands below use (a staging one while a
# token is made, see softhsm_fill_token).
softhsm_env() { env SOFTHSM2_CONF="${SOFTHSM_CONF:-$D/softhsm2.conf}" "$@"; }
p11() { softhsm_env GNUTLS_PIN="$PIN" p11tool --provider "$SOFTHSM_MODULE" "$@"; }

token_present() {
  softhsm_env softhsm2-util --show-slots 2>/dev/null | grep -Eq "^ +Label: +$TOKEN +$"
}

write_softhsm_files() {
  mkdir -p "$D/tokens"
  cat >"$D/softhsm2.conf" <<EOF
# SoftHSM2 configuration of the test token (SOFTHSM2_CONF=$D/softhsm2.conf)
directories.tokendir = $D/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
  # No newline: libp11's pin-source=file: takes the whole first line, newline too.
  printf %s "$PIN" >"$D/pin"
  printf %s "$SO_PIN" >"$D/so-pin"
  chmod 600 "$D/pin" "$D/so-pin"
  local enginedir; enginedir=$(engines_dir)
  cat >"$D/openssl.cnf" <<EOF
# OPENSSL_CONF that loads libp11's pkcs11 engine with the SoftHSM2 module.
# Keys: ENGINE_load_private_key(ENGINE_by_id("pkcs11"), "pkcs11:token=$TOKEN;object=ec-key;type=private", ui, data)
# or openssl ... -engine pkcs11 -keyform engine -key 'pkcs11:...'
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $enginedir/pkcs11.so
MODULE_PATH = $SOFTHSM_MODULE
EOF
}

write_softhsm_env() {
  local enginedir; enginedir=$(engines_dir)
  cat >"$D/env" <<EOF
# SoftHSM2 test token made by ci/hsm-fixtures.sh softhsm; source this file.
export SOFTHSM2_CONF='$D/softhsm2.conf'
# libp11 0.4.12 reads PKCS11_MODULE_PATH when the engine is created (its default
# otherwise is Debian's p11-kit-proxy.so); MODULE_PATH in openssl.cnf or
# ENGINE_ctrl_cmd_string(e, "MODULE_PATH", ...) overrides it.
export PKCS11_MODULE_PATH='$SOFTHSM_MODULE'
HSM_DIR='$D'
HSM_MODULE='$SOFTHSM_MODULE'
HSM_ENGINE_ID=pkcs11
HSM_ENGINE_SO='$enginedir/pkcs11.so'
HSM_OPENSSL_CONF='$D/openssl.cnf'
HSM_OPENSSL_CONF_NOENGINE='$D/openssl-noengine.cnf'
HSM_TOKEN=$TOKEN
HSM_PIN=$PIN
HSM_SO_PIN=$SO_PIN
HSM_PIN_FILE='$D/pin'
HSM_CA='$D/ca.pem'
HSM_EC_URI='pkcs11:token=$TOKEN;object=ec-key;type=private'
HSM_EC_CERT='$D/ec.pem'
HSM_RSA_URI='pkcs11:token=$TOKEN;object=rsa-key;type=private'
HSM_RSA_CERT='$D/rsa.pem'
HSM_EC2_URI='pkcs11:token=$TOKEN;object=ec-key-2;type=private'
HSM_EC2_CERT='$D/ec2.pem'
# The same URIs with the PIN in them (libp11 reads pin-value and pin-source=file:).
HSM_EC_URI_PIN='pkcs11:token=$TOKEN;object=ec-key;type=private;pin-source=file:$D/pin'
HSM_RSA_URI_PIN='pkcs11:token=$TOKEN;object=rsa-key;type=private;pin-source=file:$D/pin'
HSM_EC2_URI_PIN='pkcs11:token=$TOKEN;object=ec-key-2;type=private;pin-source=file:$D/pin'
EOF
}

make_pkcs8() { # FILE ec|rsa
  [ -s "$1" ] && return
  case $2 in
    ec) ossl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
    rsa) ossl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
  esac
  chmod 600 "$1"
}

token_pubkey() { # LABEL -> PEM SubjectPublicKeyInfo of the token's public key object
  # (--outfile: without it p11tool warns and sleeps 3 s). Tried for up to 3 s: a
  # server under test that holds the token (its workers, a standby engine) can
  # keep SoftHSM2's files busy for a moment right after a restore.
  local try
  for try in $(seq 30); do
    rm -f "$D/tmp/$1.pub"
    if p11 --login --export-pubkey "pkcs11:token=$TOKEN;object=$1;type=public" --outfile "$D/tmp/$1.pub" >/dev/null 2>&1; then
      ossl pkey -pubin -in "$D/tmp/$1.pub" -pubout 2>/dev/null || true
      return
    fi
    sleep 0.1
  done
}

# Imports every key the token lacks (SOFTHSM_CONF: which token directory).
softhsm_import_missing() {
  local entry label id alg cert have
  have=$(p11 --login --list-privkeys "pkcs11:token=$TOKEN" 2>/dev/null | sed -n 's/.*;object=\([^;]*\);.*/\1/p') || true
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    grep -qx -- "$label" <<<"$have" && continue
    log "importing $label.pem as $label (id $id)"
    softhsm_env softhsm2-util --import "$D/$label.pem" --token "$TOKEN" --label "$label" \
      --id "$id" --pin "$PIN" >/dev/null
  done
}

# Creates the token if it is missing and imports every key it lacks. A token whose
# key differs from the PKCS#8 file (a leftover) is recreated.
softhsm_fill_token() {
  local entry label id alg cert have
  if token_present; then
    have=$(p11 --login --list-privkeys "pkcs11:token=$TOKEN" 2>/dev/null | sed -n 's/.*;object=\([^;]*\);.*/\1/p') || true
    for entry in "${SOFTHSM_KEYS[@]}"; do
      IFS=: read -r label id alg cert <<<"$entry"
      if grep -qx -- "$label" <<<"$have" &&
         [ "$(token_pubkey "$label")" != "$(ossl pkey -in "$D/$label.pem" -pubout)" ]; then
        log "token $TOKEN holds another $label: recreating the token"
        softhsm_env softhsm2-util --delete-token --token "$TOKEN" >/dev/null
        break
      fi
    done
  fi
  if token_present; then
    softhsm_import_missing
  else
    # Made in a staging directory and moved into place whole: a server polling
    # the token (a test of an outage) never finds it half set up, and its
    # SoftHSM2 never writes into a token being set up (a failed login of a
    # server's, racing softhsm2-util, has left the token without its user PIN).
    rm -rf "$D/tokens.staging"
    mkdir -p "$D/tokens.staging"
    sed "s|^directories.tokendir = .*|directories.tokendir = $D/tokens.staging|" \
      "$D/softhsm2.conf" >"$D/softhsm2-staging.conf"
    log "initialising token $TOKEN"
    SOFTHSM_CONF="$D/softhsm2-staging.conf" softhsm_env softhsm2-util --init-token --free \
      --label "$TOKEN" --pin "$PIN" --so-pin "$SO_PIN" >/dev/null
    SOFTHSM_CONF="$D/softhsm2-staging.conf" softhsm_import_missing
    find "$D/tokens.staging" -mindepth 1 -maxdepth 1 -type d -exec mv -t "$D/tokens/" {} +
    rm -rf "$D/tokens.staging" "$D/softhsm2-staging.conf"
  fi
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    [ "$(token_pubkey "$label")" = "$(ossl pkey -in "$D/$label.pem" -pubout)" ] ||
      die "token $TOKEN: $label is not the key in $label.pem"
  done
}

softhsm_certs() {
  local entry label id alg cert pub
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    pub=$(token_pubkey "$label")
    cert_ok "$D/$cert" "$pub" && continue
    log "issuing $cert for $label (CSR signed by the token through the engine)"
    env SOFTHSM2_CONF="$D/softhsm2.conf" OPENSSL_CONF="$D/openssl.cnf" \
      openssl req -new -config "$D/req.cnf" -engine pkcs11 -keyform engine \
      -key "pkcs11:token=$TOKEN;object=$label;type=private" -passin "file:$D/pin" \
      -subj /CN=localhost -out "$D/tmp/$label.csr" 2>"$D/tmp/$label.csr.err" ||
      { cat "$D/tmp/$label.csr.err" >&2; die "CSR for $label"; }
    sign_csr "$D/tmp/$label.csr" "$D/$cert"
    cert_ok "$D/$cert" "$pub" || die "$cert does not hold the token's $label"
  done
}

softhsm_verify() {
  [ -s "$D/env" ] || die "no SoftHSM fixture in $D (run: $0 softhsm $D)"
  local entry label id alg cert
  # 1. OPENSSL_CONF with the engine section (MODULE_PATH from the config), PIN from -pass.
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    handshake "softhsm:$label(openssl.cnf)" -u PKCS11_MODULE_PATH SOFTHSM2_CONF="$D/softhsm2.conf" OPENSSL_CONF="$D/openssl.cnf" -- \
      -engine pkcs11 -keyform engine -key "pkcs11:token=$TOKEN;object=$label;type=private" \
      -pass "file:$D/pin" -cert "$D/$cert"
  done
  # 2. No engine in the config: `-engine pkcs11` is ENGINE_by_id("pkcs11"), loaded
  #    from ENGINESDIR; module from PKCS11_MODULE_PATH; PIN from the URI.
  handshake "softhsm:ec-key(no engine config, PKCS11_MODULE_PATH, pin-source)" \
    SOFTHSM2_CONF="$D/softhsm2.conf" OPENSSL_CONF="$D/openssl-noengine.cnf" PKCS11_MODULE_PATH="$SOFTHSM_MODULE" -- \
    -engine pkcs11 -keyform engine -key "pkcs11:token=$TOKEN;object=ec-key;type=private;pin-source=file:$D/pin" \
    -cert "$D/ec.pem"
}

cmd_softhsm() {
  set_dir "$1"
  local t0=$SECONDS
  "$HERE/apt.sh" softhsm2 libengine-pkcs11-openssl gnutls-bin openssl
  write_common
  write_softhsm_files
  make_ca
  local entry label id alg cert
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    make_pkcs8 "$D/$label.pem" "$alg"
  done
  [ -f "$D/softhsm-outage" ] && log "token was taken away by softhsm-outage: restoring it"
  softhsm_restore_token
  softhsm_fill_token
  softhsm_certs
  write_softhsm_env
  softhsm_verify
  log "softhsm ready in $D ($((SECONDS - t0)) s): source $D/env"
}

# softhsm-outage DIR [delete|move]
cmd_softhsm_outage() {
  set_dir "$1"
  local mode=${2:-delete} dirs
  [ -s "$D/softhsm2.conf" ] || die "no SoftHSM fixture in $D"
  case $mode in delete|move) ;; *) usage ;; esac
  if ! token_present; then log "token $TOKEN is already gone"; return; fi
  if [ "$mode" = delete ]; then
    softhsm_env softhsm2-util --delete-token --token "$TOKEN" >/dev/null
  else
    mkdir -p "$D/tokens.away"
    dirs=$(find "$D/tokens" -mindepth 1 -maxdepth 1 -type d)
    # shellcheck disable=SC2086
    mv $dirs "$D/tokens.away/"
  fi
  echo "$mode" >"$D/softhsm-outage"
  token_present && die "token $TOKEN is still there"
  log "token $TOKEN is gone ($mode)"
}

# Brings back a token moved away by `softhsm-outage DIR move`.
softhsm_restore_token() {
  if [ -d "$D/tokens.away" ]; then
    find "$D/tokens.away" -mindepth 1 -maxdepth 1 -type d -exec mv -t "$D/tokens/" {} +
    rmdir "$D/tokens.away"
  fi
  rm -f "$D/softhsm-outage"
}

cmd_softhsm_restore() {
  set_dir "$1"
  [ -s "$D/softhsm2.conf" ] || die "no SoftHSM fixture in $D (run: $0 softhsm $D)"
  local mode=none; [ -f "$D/softhsm-outage" ] && mode=$(cat "$D/softhsm-outage")
  softhsm_restore_token
  softhsm_fill_token
  local entry label id alg cert
  for entry in "${SOFTHSM_KEYS[@]}"; do
    IFS=: read -r label id alg cert <<<"$entry"
    cert_ok "$D/$cert" "$(token_pubkey "$label")" || die "$cert no longer matches $label"
  done
  if [ "$mode" = none ]; then log "token $TOKEN is there with the same keys"
  else log "token $TOKEN is back (after softhsm-outage $mode) with the same keys"; fi
}

# ---------------------------------------------------------------- TPM

tpm_tcti_swtpm() { echo "swtpm:host=127.0.0.1,port=$(cut -d' ' -f1 "$D/tpm-ports")"; }
tpm_env() {
  env -u OPENSSL_MODULES OPENSSL_CONF="$D/openssl-noengine.cnf" \
    DBUS_SESSION_BUS_ADDRESS="$(cat "$D/dbus.addr")" TPM2TOOLS_TCTI=tabrmd:bus_type=session \
    TPM2OPENSSL_TCTI=tabrmd:bus_type=session "$@"
}
tpm_answers() { tpm_env tpm2_getcap properties-fixed >/dev/null 2>&1; }

# Starts swtpm on the ports in DIR/tpm-ports (so that a running tpm2-abrmd finds it
# again), or on new ones if those are taken (tpm2-abrmd is then restarted too).
start_swtpm() {
  local pid port ctrl i
  pid=$(pid_of "$D/swtpm.pid")
  if alive "$pid" "$D/tpm-state"; then return; fi
  mkdir -p "$D/tpm-state"
  for _ in 1 2 3 4 5; do
    if [ -s "$D/tpm-ports" ]; then
      read -r port ctrl <"$D/tpm-ports"
    else
      port=$(free_port_pair); ctrl=$((port + 1))
    fi
    if ports_busy "$port" "$ctrl"; then
      rm -f "$D/tpm-ports"
      stop_pidfile "$D/abrmd.pid" tpm2-abrmd
      continue
    fi
    echo "$port $ctrl" >"$D/tpm-ports"
    : >"$D/swtpm.log"
    swtpm socket --tpm2 --tpmstate "dir=$D/tpm-state" \
      --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$ctrl,bindaddr=127.0.0.1" \
      --flags not-need-init,startup-clear --log "file=$D/swtpm.log" >>"$D/swtpm.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$D/swtpm.pid"
    for i in $(seq 200); do
      [ -n "$(ss -Htln "( sport = :$port )")" ] && break
      alive "$pid" "$D/tpm-state" || break
      sleep 0.025
    done
    if alive "$pid" "$D/tpm-state"; then
      log "swtpm started (pid $pid, 127.0.0.1:$port, ctrl $ctrl, state $D/tpm-state)"
      return
    fi
    wait "$pid" 2>/dev/null || true
    log "swtpm did not start on $port/$ctrl: $(tr '\n' ' ' <"$D/swtpm.log")"
    rm -f "$D/tpm-ports" "$D/swtpm.pid"
    stop_pidfile "$D/abrmd.pid" tpm2-abrmd
  done
  die "swtpm did not start"
}

start_dbus() {
  local pid i
  pid=$(pid_of "$D/dbus.pid")
  if alive "$pid" "$D/dbus.sock"; then return; fi
  rm -f "$D/dbus.sock" "$D/dbus.addr"
  # A private bus of the session kind (its policy lets anyone own a name): no
  # system bus is started or touched.
  dbus-daemon --session --nofork --nopidfile --address="unix:path=$D/dbus.sock" \
    --print-address=3 3>"$D/dbus.addr" >"$D/dbus.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$D/dbus.pid"
  for i in $(seq 200); do
    [ -s "$D/dbus.addr" ] && break
    alive "$pid" "$D/dbus.sock" || { cat "$D/dbus.log" >&2; die "dbus-daemon exited"; }
    sleep 0.025
  done
  [ -s "$D/dbus.addr" ] || die "dbus-daemon did not print its address"
  sed -i 's/,guid=.*//' "$D/dbus.addr"
  log "dbus-daemon started (pid $pid, $(cat "$D/dbus.addr"))"
}

start_abrmd() {
  local pid i
  pid=$(pid_of "$D/abrmd.pid")
  if alive "$pid" tpm2-abrmd; then return; fi
  DBUS_SESSION_BUS_ADDRESS="$(cat "$D/dbus.addr")" \
    tpm2-abrmd --allow-root --session --tcti="$(tpm_tcti_swtpm)" >"$D/abrmd.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$D/abrmd.pid"
  for i in $(seq 200); do
    tpm_answers && break
    alive "$pid" tpm2-abrmd || { cat "$D/abrmd.log" >&2; die "tpm2-abrmd exited"; }
    sleep 0.05
  done
  tpm_answers || die "the TPM does not answer through tpm2-abrmd"
  log "tpm2-abrmd started (pid $pid, --session --tcti=$(tpm_tcti_swtpm))"
}

tpm_wait_answers() {
  local i
  for i in $(seq 200); do tpm_answers && return; sleep 0.05; done
  die "the TPM does not answer through tpm2-abrmd"
}

# The persistent key is of this kind and not subject to dictionary-attack lockout.
tpm_key_ok() { # HANDLE ec|rsa
  local want pub; [ "$2" = ec ] && want=ecc || want=rsa
  pub=$(tpm_env tpm2_readpublic -c "$1" 2>/dev/null) || return 1
  grep -A1 '^type:' <<<"$pub" | grep -q "^  value: $want\$" &&
    grep -A1 '^attributes:' <<<"$pub" | grep -q '|noda|'
}

# swtpm stopped without TPM2_Shutdown counts as a dictionary-attack event; after 3
# (the default) the TPM is in lockout and DA-protected keys refuse to sign. The
# fixture keys are `noda`; the lockout is cleared anyway so tpm2-tools with
# authorisation keep working (lockout auth is empty on this test TPM).
tpm_clear_lockout() {
  tpm_env tpm2_dictionarylockout -Q --clear-lockout >/dev/null 2>&1 || log "could not clear the DA lockout"
}

tpm_keys() {
  local entry handle alg cert made=0
  for entry in "${TPM_KEYS[@]}"; do
    IFS=: read -r handle alg cert <<<"$entry"
    tpm_key_ok "$handle" "$alg" && continue
    if tpm_env tpm2_readpublic -c "$handle" >/dev/null 2>&1; then
      log "$handle holds another kind of key (or one without noda): evicting it"
      tpm_env tpm2_evictcontrol -Q -C o -c "$handle"
    fi
    if [ $made = 0 ]; then
      tpm_env tpm2_createprimary -Q -C o -g sha256 -G ecc256 -c "$D/tmp/primary.ctx"
      made=1
    fi
    # noda: an outage (swtpm killed, no TPM2_Shutdown) must not lock the key out.
    if [ "$alg" = ec ]; then
      tpm_env tpm2_create -Q -C "$D/tmp/primary.ctx" -G ecc256:ecdsa -u "$D/tmp/k.pub" -r "$D/tmp/k.priv" \
        -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|sign'
    else
      tpm_env tpm2_create -Q -C "$D/tmp/primary.ctx" -G rsa2048 -u "$D/tmp/k.pub" -r "$D/tmp/k.priv" \
        -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|sign|decrypt'
    fi
    tpm_env tpm2_load -Q -C "$D/tmp/primary.ctx" -u "$D/tmp/k.pub" -r "$D/tmp/k.priv" -c "$D/tmp/k.ctx"
    tpm_env tpm2_evictcontrol -Q -C o -c "$D/tmp/k.ctx" "$handle"
    rm -f "$D/tmp/k.pub" "$D/tmp/k.priv" "$D/tmp/k.ctx"
    log "created $alg key in the TPM, persistent at $handle"
    tpm_key_ok "$handle" "$alg" || die "$handle is not an $alg key"
  done
  rm -f "$D/tmp/primary.ctx"
}

tpm_certs() {
  local entry handle alg cert pub
  for entry in "${TPM_KEYS[@]}"; do
    IFS=: read -r handle alg cert <<<"$entry"
    pub=$(tpm_env openssl pkey -provider tpm2 -provider default -in "handle:$handle" -pubout)
    printf '%s\n' "$pub" >"$D/${cert%.pem}.pub.pem"
    cert_ok "$D/$cert" "$pub" && continue
    log "issuing $cert for handle:$handle (CSR signed by the TPM through tpm2-openssl)"
    tpm_env openssl req -new -config "$D/req.cnf" -provider tpm2 -provider default \
      -key "handle:$handle" -subj /CN=localhost -out "$D/tmp/$handle.csr"
    sign_csr "$D/tmp/$handle.csr" "$D/$cert"
    cert_ok "$D/$cert" "$pub" || die "$cert does not hold handle:$handle"
  done
}

write_tpm_env() {
  cat >"$D/tpm-openssl.cnf" <<EOF
# OPENSSL_CONF that activates tpm2-openssl next to the default provider. The TCTI
# must come from TPM2OPENSSL_TCTI (with DBUS_SESSION_BUS_ADDRESS, see tpm-env):
# tpm2-openssl 1.1.1 asks the core for a "tcti" parameter but with a NULL address,
# so a "tcti = ..." line here is never read.
# tpm2 comes first: OpenSSL 3.0 hands a signature to the first provider that offers
# the algorithm, whoever holds the key; with default first the TPM key's signing
# goes to the default provider and fails with "missing private key".
# But first also means the TPM would do every SHA-256, AES and random byte of every
# handshake (about 230 ms a handshake on swtpm instead of 13 ms, and the TPM busy):
# the default properties send digests, ciphers and the DRBG to the default provider.
openssl_conf = openssl_init
[openssl_init]
providers = provider_section
alg_section = algorithm_section
[algorithm_section]
default_properties = $TPM_DEFAULT_PROPERTIES
[provider_section]
tpm2 = tpm2_section
default = default_section
[tpm2_section]
activate = 1
[default_section]
activate = 1
EOF
  cat >"$D/tpm-env" <<EOF
# swtpm test TPM made by ci/hsm-fixtures.sh tpm; source this file.
# tpm2-abrmd is on a private session bus: TPM clients need both variables below.
export DBUS_SESSION_BUS_ADDRESS='$(cat "$D/dbus.addr")'
export TPM2OPENSSL_TCTI='tabrmd:bus_type=session'
export TPM2TOOLS_TCTI='tabrmd:bus_type=session'
TPM_DIR='$D'
TPM_SWTPM_TCTI='$(tpm_tcti_swtpm)'
TPM_OPENSSL_ARGS='-provider tpm2 -provider default'
# OPENSSL_CONF with tpm2 then default activated and TPM_DEFAULT_PROPERTIES set.
TPM_OPENSSL_CONF='$D/tpm-openssl.cnf'
TPM_DEFAULT_PROPERTIES='$TPM_DEFAULT_PROPERTIES'
TPM_CA='$D/ca.pem'
TPM_EC_URI='handle:0x81000001'
TPM_EC_CERT='$D/tpm-ec.pem'
TPM_RSA_URI='handle:0x81000002'
TPM_RSA_CERT='$D/tpm-rsa.pem'
EOF
}

tpm_verify() {
  { [ -s "$D/tpm-env" ] && [ -s "$D/dbus.addr" ]; } || die "no TPM fixture running in $D (run: $0 tpm $D)"
  local entry handle alg cert
  local envs=(DBUS_SESSION_BUS_ADDRESS="$(cat "$D/dbus.addr")" TPM2OPENSSL_TCTI=tabrmd:bus_type=session)
  for entry in "${TPM_KEYS[@]}"; do
    IFS=: read -r handle alg cert <<<"$entry"
    handshake "tpm:handle:$handle(-provider tpm2 -provider default)" OPENSSL_CONF="$D/openssl-noengine.cnf" "${envs[@]}" -- \
      -provider tpm2 -provider default -key "handle:$handle" -cert "$D/$cert"
    handshake "tpm:handle:$handle(tpm-openssl.cnf)" OPENSSL_CONF="$D/tpm-openssl.cnf" "${envs[@]}" -- \
      -key "handle:$handle" -cert "$D/$cert"
  done
}

cmd_tpm() {
  set_dir "$1"
  local t0=$SECONDS
  "$HERE/apt.sh" swtpm swtpm-tools tpm2-tools tpm2-openssl tpm2-abrmd dbus \
    libtss2-tcti-swtpm0 libtss2-tcti-tabrmd0 iproute2 openssl
  write_common
  make_ca
  start_swtpm
  start_dbus
  start_abrmd
  tpm_wait_answers
  tpm_clear_lockout
  tpm_keys
  tpm_certs
  write_tpm_env
  tpm_verify
  log "tpm ready in $D ($((SECONDS - t0)) s): source $D/tpm-env"
}

cmd_tpm_stop() {
  set_dir "$1"
  local pid port ctrl i
  pid=$(pid_of "$D/swtpm.pid")
  if ! alive "$pid" "$D/tpm-state"; then log "swtpm is not running"; rm -f "$D/swtpm.pid"; return; fi
  read -r port ctrl <"$D/tpm-ports"
  # swtpm ends through its control channel, without a TPM2_Shutdown: like a power
  # loss (a dictionary-attack event for the TPM; the fixture keys are noda).
  swtpm_ioctl --tcp "127.0.0.1:$ctrl" -s >/dev/null 2>&1 || true
  for i in $(seq 100); do alive "$pid" "$D/tpm-state" || break; sleep 0.05; done
  stop_pidfile "$D/swtpm.pid" "$D/tpm-state"
  tpm_answers && die "the TPM still answers"
  log "swtpm stopped: the TPM is gone (tpm2-abrmd stays up)"
}

cmd_tpm_start() {
  set_dir "$1"
  [ -s "$D/tpm-ports" ] || die "no TPM fixture in $D (run: $0 tpm $D)"
  start_swtpm
  start_dbus
  start_abrmd
  tpm_wait_answers
  tpm_clear_lockout
  local entry handle alg cert
  local i
  for entry in "${TPM_KEYS[@]}"; do
    IFS=: read -r handle alg cert <<<"$entry"
    # Tried for up to 3 s: a server under test polling the TPM through
    # tpm2-abrmd as it comes back can make one read fail.
    for i in $(seq 30); do
      tpm_key_ok "$handle" "$alg" && continue 2
      sleep 0.1
    done
    die "persistent key $handle did not come back: $(tpm_env tpm2_readpublic -c "$handle" 2>&1 | tail -n 3)"
  done
  log "the TPM is back with persistent keys ${TPM_KEYS[*]%%:*}"
}

# ---------------------------------------------------------------- load, probe, down

# load DIR KEY [CLIENTS [EACH [SERVERS]]]
cmd_load() {
  set_dir "$1"
  local key=${2:-} clients=${3:-8} each=${4:-50} servers=${5:-1}
  local envs=() args=() i t0 ports=() spids=() cpids=() fails=0 ok=0 out port j
  case $key in
    ec|rsa|ec2)
      local label=ec-key; [ "$key" = rsa ] && label=rsa-key; [ "$key" = ec2 ] && label=ec-key-2
      envs=(SOFTHSM2_CONF="$D/softhsm2.conf" OPENSSL_CONF="$D/openssl.cnf")
      args=(-engine pkcs11 -keyform engine -key "pkcs11:token=$TOKEN;object=$label;type=private" -pass "file:$D/pin" -cert "$D/$key.pem") ;;
    tpm-ec|tpm-rsa)
      { [ -s "$D/dbus.addr" ] && [ -s "$D/tpm-env" ]; } || die "no TPM fixture running in $D (run: $0 tpm $D)"
      local handle=0x81000001; [ "$key" = tpm-rsa ] && handle=0x81000002
      envs=(DBUS_SESSION_BUS_ADDRESS="$(cat "$D/dbus.addr")" TPM2OPENSSL_TCTI=tabrmd:bus_type=session)
      args=(-key "handle:$handle" -cert "$D/$key.pem")
      # LOAD_TPM_PROVIDER_ARGS=1: `-provider tpm2 -provider default` (the TPM hashes
      # too) instead of tpm-openssl.cnf
      if [ "${LOAD_TPM_PROVIDER_ARGS:-}" = 1 ]; then
        envs+=(OPENSSL_CONF="$D/openssl-noengine.cnf"); args+=(-provider tpm2 -provider default)
      else
        envs+=(OPENSSL_CONF="$D/tpm-openssl.cnf")
      fi ;;
    *) usage ;;
  esac
  for ((j = 0; j < servers; j++)); do
    out="$D/tmp/load-server.$j.out"
    env "${envs[@]}" openssl s_server -accept 127.0.0.1:0 -www "${args[@]}" >"$out" 2>&1 </dev/null &
    spids+=($!); echo "${spids[$j]}" >"$D/load-server.$j.pid"
    port=
    for i in $(seq 200); do
      port=$(accept_port "$out"); [ -n "$port" ] && break; sleep 0.025
    done
    [ -n "$port" ] || { cat "$out" >&2; kill "${spids[@]}"; die "s_server $j did not start"; }
    ports+=("$port")
  done
  t0=$(date +%s.%N)
  for ((j = 0; j < clients; j++)); do
    (
      f=0 o=0
      for ((i = 0; i < each; i++)); do
        if printf 'GET / HTTP/1.0\r\n\r\n' | ossl s_client -connect "127.0.0.1:${ports[$((j % servers))]}" \
             -servername localhost -verify_return_error -CAfile "$D/ca.pem" -tls1_3 -brief 2>&1 |
             grep -q '^Verification: OK$'; then o=$((o + 1)); else f=$((f + 1)); fi
      done
      echo "$o $f" >"$D/tmp/load-client.$j"
    ) &
    cpids+=($!)
  done
  wait "${cpids[@]}"
  local t1; t1=$(date +%s.%N)
  for ((j = 0; j < servers; j++)); do stop_pidfile "$D/load-server.$j.pid" s_server; done
  for ((j = 0; j < clients; j++)); do read -r o f <"$D/tmp/load-client.$j"; ok=$((ok + o)); fails=$((fails + f)); done
  grep -ih 'error' "$D"/tmp/load-server.*.out | sort | uniq -c | head -5 >&2 || true
  log "load $key: $clients clients x $each handshakes against $servers s_server: $ok OK, $fails failed, $(awk "BEGIN{printf \"%.1f s, %.0f handshakes/s\", $t1-$t0, ($ok+$fails)/($t1-$t0)}")"
  [ "$fails" = 0 ]
}

cmd_probe() {
  set_dir "$1"; shift
  "$HERE/apt.sh" gcc libssl-dev
  if [ ! -x "$D/hsm-probe" ] || [ "$HERE/hsm-probe.c" -nt "$D/hsm-probe" ]; then
    gcc -O1 -Wall -Wno-deprecated-declarations -o "$D/hsm-probe" "$HERE/hsm-probe.c" -lssl -lcrypto -lpthread
  fi
  local envs=(HSM_FIXTURES="$0" HSM_DIR="$D" HSM_ENGINE_SO="$(engines_dir)/pkcs11.so")
  [ -s "$D/softhsm2.conf" ] && envs+=(SOFTHSM2_CONF="$D/softhsm2.conf")
  [ -s "$D/dbus.addr" ] && envs+=(DBUS_SESSION_BUS_ADDRESS="$(cat "$D/dbus.addr")" TPM2OPENSSL_TCTI=tabrmd:bus_type=session)
  # PROBE_MODULE_FROM_ENV=1: the module comes from PKCS11_MODULE_PATH, not the ctrl.
  [ "${PROBE_MODULE_FROM_ENV:-}" = 1 ] && envs+=(PKCS11_MODULE_PATH="$SOFTHSM_MODULE")
  env -u PKCS11_MODULE_PATH -u TPM2OPENSSL_TCTI OPENSSL_CONF="$D/openssl-noengine.cnf" "${envs[@]}" "$D/hsm-probe" "$@"
}

cmd_verify() {
  set_dir "$1"
  local any=0
  if [ -s "$D/env" ]; then softhsm_verify; any=1; fi
  if [ -s "$D/tpm-env" ] && [ -s "$D/dbus.addr" ]; then tpm_verify; any=1
  elif [ -s "$D/tpm-env" ]; then log "the TPM fixture in $D is down (run: $0 tpm $D)"; fi
  [ $any = 1 ] || die "nothing set up in $D"
}

cmd_down() {
  set_dir "$1"
  local f
  for f in "$D"/load-server.*.pid; do [ -e "$f" ] && stop_pidfile "$f" s_server; done
  stop_pidfile "$D/abrmd.pid" tpm2-abrmd
  stop_pidfile "$D/dbus.pid" "$D/dbus.sock"
  stop_pidfile "$D/swtpm.pid" "$D/tpm-state"
  rm -f "$D/dbus.sock" "$D/dbus.addr"
  log "nothing of $D runs any more (files stay: rm -rf $D)"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  softhsm) [ $# = 1 ] || usage; cmd_softhsm "$@" ;;
  softhsm-outage) [ $# -ge 1 ] || usage; cmd_softhsm_outage "$@" ;;
  softhsm-restore) [ $# = 1 ] || usage; cmd_softhsm_restore "$@" ;;
  tpm) [ $# = 1 ] || usage; cmd_tpm "$@" ;;
  tpm-stop) [ $# = 1 ] || usage; cmd_tpm_stop "$@" ;;
  tpm-start) [ $# = 1 ] || usage; cmd_tpm_start "$@" ;;
  verify) [ $# = 1 ] || usage; cmd_verify "$@" ;;
  load) [ $# -ge 2 ] || usage; cmd_load "$@" ;;
  probe) [ $# -ge 2 ] || usage; cmd_probe "$@" ;;
  down) [ $# = 1 ] || usage; cmd_down "$@" ;;
  *) usage ;;
esac
