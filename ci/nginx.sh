#!/usr/bin/env bash
# The nginx module (nginx/, docs/nginx.md): built as Debian's nginx-dev says
# out-of-tree dynamic modules are built, with libopenssl_reload linked in
# statically (pkg-config openssl-reload-static), then loaded into Debian's own
# nginx by server/tests/cli/nginx.rs: rotations in every worker without a
# reload, nginx -t, bad files at run time, SNI (each block at its own
# interval), h2, nginx -s reload, mutual TLS
# with nginx's session cache and ticket keys, 500 rotations under curl and
# h2load traffic, an RSA and an ECDSA pair, workers as nobody, and the module
# under valgrind.
#
#   ci/nginx.sh            build the module and run the tests
#   ci/nginx.sh --build    build only; prints the module's path
#
# Under CI (CI=true) a missing prerequisite is an error; it installs the
# Debian packages it needs when run as root (ci/apt.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

die() { echo "ci/nginx.sh: $*" >&2; exit 1; }

echo "--- ci/nginx.sh: Debian's nginx and nginx-dev, the clients, valgrind"
ci/apt.sh nginx nginx-dev libssl-dev pkg-config gcc make openssl curl nghttp2-client valgrind
src=/usr/share/nginx/src
[[ -f $src/conf_flags && -x $src/configure ]] || die "$src/conf_flags or configure missing: is nginx-dev installed?"
command -v nginx >/dev/null || die "no nginx on PATH"

echo "--- ci/nginx.sh: libopenssl_reload, staged"
cargo build --release --locked -p openssl-reload-capi
work="${CARGO_TARGET_DIR:-target}/nginx-module"
rm -rf "$work"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
capi/install.sh --destdir "$work/stage" --prefix /usr --from "${CARGO_TARGET_DIR:-target}/release"
export PKG_CONFIG_PATH="$work/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/stage"
OPENSSL_RELOAD_CFLAGS="$(pkg-config --cflags openssl-reload-static)"
OPENSSL_RELOAD_LIBS="$(pkg-config --libs openssl-reload-static)"
export OPENSSL_RELOAD_CFLAGS OPENSSL_RELOAD_LIBS

echo "--- ci/nginx.sh: the module, configured with Debian's flags"
cp -a "$src" "$work/nginx"
(
  cd "$work/nginx"
  # shellcheck disable=SC1091 # Debian's file: NGX_CONF_FLAGS, a bash array
  source ./conf_flags
  ./configure "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$root/nginx" >"$work/configure.log" 2>&1 ||
    { tail -n 30 "$work/configure.log" >&2; die "configure failed (log: $work/configure.log)"; }
  make -f objs/Makefile modules >"$work/make.log" 2>&1 ||
    { grep -E -A3 'error|warning' "$work/make.log" | head -n 40 >&2; die "make modules failed (log: $work/make.log)"; }
)
module="$work/ngx_http_openssl_reload_module.so"
cp "$work/nginx/objs/ngx_http_openssl_reload_module.so" "$module"
if readelf -d "$module" | grep 'NEEDED.*libopenssl_reload'; then
  die "the module needs libopenssl_reload.so: it must carry the library (openssl-reload-static)"
fi
echo "built $module"
[[ ${1:-} == --build ]] && exit 0

echo "--- ci/nginx.sh: Debian's nginx with the module, driven over real sockets"
OPENSSL_RELOAD_NGINX_MODULE="$module" cargo test --locked -p openssl-reload-server --test cli \
  -- --ignored --test-threads 1 --show-output nginx:: --skip hardware::
