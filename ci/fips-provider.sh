#!/usr/bin/env bash
# Build a real OpenSSL FIPS provider (fips.so) for the FIPS tests.
#
# No Debian package ships fips.so, so we build it from the OpenSSL 3.0.8
# source carried by the crates.io crate openssl-src =300.0.13+3.0.8, fetched
# through the tiny stand-alone cargo workspace in ci/fips-provider/ (own
# Cargo.lock, never part of the main crate's dependency graph). The 3.0.8
# module is loaded by the system's newer 3.0.x libcrypto, which is the
# supported direction.
#
# Outputs, in ${OPENSSL_RELOAD_FIPS_DIR:-<repo>/target/fips-provider}:
#   fips.so            the provider module
#   fipsmodule.cnf     written by `openssl fipsinstall` for the installed fips.so
#   openssl-fips.cnf   an OPENSSL_CONF file: fips + base providers active,
#                      default NOT active, default_properties = fips=yes,
#                      module = <absolute path of fips.so>
#   stamp              cache key; a second run with a valid stamp is a no-op
#
# Progress goes to stderr; the LAST line on stdout is
#   OPENSSL_CONF=/abs/path/openssl-fips.cnf
# so callers can do: conf=$(ci/fips-provider.sh | tail -n1)
#
# Environment:
#   OPENSSL_RELOAD_FIPS_DIR         output dir (default <repo>/target/fips-provider)
#   OPENSSL_RELOAD_FIPS_KEEP_BUILD  =1 keeps the build tree (default: deleted)
#   OPENSSL_RELOAD_FIPS_REBUILD     =1 ignores the cache
#   CARGO_HOME                      as for cargo (default ~/.cargo)
set -euo pipefail

SRC_VERSION="300.0.13+3.0.8"
# Bump when the build recipe or the generated config changes, to invalidate caches.
RECIPE=1

log() { printf 'fips-provider: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest="$repo/ci/fips-provider/Cargo.toml"
out="${OPENSSL_RELOAD_FIPS_DIR:-$repo/target/fips-provider}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
build="$out/build"
cnf="$out/openssl-fips.cnf"

# Never let a caller's OpenSSL settings leak into the build or fipsinstall.
unset OPENSSL_CONF OPENSSL_MODULES OPENSSL_ENGINES OPENSSL_CONF_INCLUDE || true

# Serialise concurrent runs on the same output dir.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$out/.lock"
    flock 9
fi

stamp_text() {
    printf 'openssl-src %s\nrecipe %s\ndir %s\n' "$SRC_VERSION" "$RECIPE" "$out"
    (cd "$out" && sha256sum fips.so fipsmodule.cnf openssl-fips.cnf)
}

# The system openssl, if any, is used to check that the result really loads.
check_with_system_openssl() {
    command -v openssl >/dev/null 2>&1 || { log "no system openssl; skipping load check"; return 0; }
    local list
    list=$(OPENSSL_CONF="$cnf" openssl list -providers 2>&1) || { printf '%s\n' "$list" >&2; return 1; }
    # Every provider block ends with its status; require an active fips one.
    printf '%s\n' "$list" | awk '
        /^  [a-z]/ { name = $1 }
        /status: active/ { active[name] = 1 }
        END { exit !(active["fips"] && active["base"] && !active["default"]) }' \
        || { printf '%s\n' "$list" >&2; return 1; }
}

finish() {
    log "ready: $cnf"
    echo "OPENSSL_CONF=$cnf"
    exit 0
}

# ---- cache ------------------------------------------------------------------
if [[ "${OPENSSL_RELOAD_FIPS_REBUILD:-0}" != 1 && -f "$out/stamp" \
      && -f "$out/fips.so" && -f "$out/fipsmodule.cnf" && -f "$cnf" ]]; then
    if [[ "$(stamp_text 2>/dev/null)" == "$(cat "$out/stamp")" ]] && check_with_system_openssl; then
        log "cached fips.so is up to date ($out)"
        finish
    fi
    log "cache in $out is stale or does not load; rebuilding"
fi
rm -f "$out/stamp"

# ---- build prerequisites ----------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo is required (it fetches the OpenSSL source)"
missing=()
if ! command -v perl >/dev/null 2>&1 \
   || ! perl -MIPC::Cmd -MFile::Compare -MFile::Copy -MJSON::PP -e1 >/dev/null 2>&1; then
    missing+=(perl) # Debian's perl-base lacks modules Configure needs
fi
command -v make >/dev/null 2>&1 || missing+=(make)
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if (command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1) \
   && ! printf '#include <stdio.h>\n' | "$(command -v cc || command -v gcc)" -E - >/dev/null 2>&1; then
    missing+=(libc6-dev)
fi
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing missing build tools: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        die "missing build tools: ${missing[*]} (run as root on Debian, or: sudo apt-get install ${missing[*]})"
    fi
fi

# ---- fetch the pinned source --------------------------------------------------
log "fetching openssl-src $SRC_VERSION (ci/fips-provider/Cargo.lock)"
cargo fetch --locked --quiet --manifest-path "$manifest" >&2
src_manifest=$(cargo metadata --format-version 1 --locked --manifest-path "$manifest" 2>/dev/null \
    | perl -MJSON::PP -0777 -ne '
        for my $p (@{ decode_json($_)->{packages} }) {
            print $p->{manifest_path}, "\n" if $p->{name} eq "openssl-src";
        }')
[[ -n "$src_manifest" && $(wc -l <<<"$src_manifest") -eq 1 ]] \
    || die "could not locate exactly one openssl-src via cargo metadata (got: '$src_manifest')"
src="$(dirname "$src_manifest")/openssl"
if ! grep -qx 'PATCH=8' "$src/VERSION.dat" 2>/dev/null || [[ ! -f "$src/providers/fips.module.sources" ]]; then
    die "$src is not the OpenSSL 3.0.8 source with the FIPS provider"
fi

# ---- build (in a copy: the registry copy must stay pristine) ----------------------
rm -rf "$build"
mkdir -p "$build"
log "copying source to $build"
cp -R "$src/." "$build/"
jobs=$(nproc 2>/dev/null || echo 2)
log "building OpenSSL 3.0.8 with enable-fips (make -j$jobs; a few minutes; log: $build/build.log)"
start=$SECONDS
(
    cd "$build"
    # no-shared: the 3.0.8 `openssl` app links libcrypto statically, so
    # fipsinstall below runs the 3.0.8 code, not the system's libcrypto.so.3.
    # Modules (fips.so) are still built as shared objects.
    perl Configure enable-fips no-shared
    # One target per make run: build_libs and build_modules each recurse
    # into `make depend && make _build_...`, and running them in a single
    # parallel make races (the same object gets compiled twice at once).
    make -j"$jobs" build_libs
    make -j"$jobs" build_modules
    make -j"$jobs" apps/openssl
) >"$build/build.log" 2>&1 || { grep -E -B2 -A2 'error|Error [0-9]|cannot|No rule' "$build/build.log" | cut -c1-400 | tail -n 40 >&2; die "OpenSSL build failed (full log: $build/build.log)"; }
log "built in $((SECONDS - start))s"
[[ -f "$build/providers/fips.so" && -x "$build/apps/openssl" ]] || die "build produced no providers/fips.so"

# ---- install -------------------------------------------------------------------
install -m 0755 "$build/providers/fips.so" "$out/fips.so.tmp"
mv -f "$out/fips.so.tmp" "$out/fips.so"
# The module MAC covers the file contents; run fipsinstall on the installed copy.
"$build/apps/openssl" fipsinstall -module "$out/fips.so" -out "$out/fipsmodule.cnf" >&2 \
    || die "fipsinstall failed"

cat >"$cnf.tmp" <<EOF
# OPENSSL_CONF for FIPS tests, generated by ci/fips-provider.sh. Do not edit.
# Only the fips and base providers are active (base supplies PEM/DER
# encoders/decoders); the default provider is NOT loaded, and every fetch
# defaults to fips=yes. Config errors are fatal (config_diagnostics).
config_diagnostics = 1
openssl_conf = openssl_init

.include $out/fipsmodule.cnf

# Extend the [fips_sect] written by fipsinstall with the module's absolute
# path, so that OPENSSL_MODULES need not be set.
[fips_sect]
module = $out/fips.so

[openssl_init]
providers = provider_sect
alg_section = algorithm_sect

[provider_sect]
fips = fips_sect
base = base_sect

[base_sect]
activate = 1

[algorithm_sect]
default_properties = fips=yes
EOF
mv -f "$cnf.tmp" "$cnf"

check_with_system_openssl || die "the system openssl cannot load the built provider with $cnf"
stamp_text >"$out/stamp"

if [[ "${OPENSSL_RELOAD_FIPS_KEEP_BUILD:-0}" != 1 ]]; then
    rm -rf "$build"
fi
finish
