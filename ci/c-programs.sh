# shellcheck shell=bash
# Building the C test programs against libopenssl_reload as a distribution
# installs it, for ci/capi.sh and ci/hardware-keys.sh. Sourced, from the
# repository's root:
#
#   . ci/c-programs.sh
#   stage_capi OUT               the debug build of the C library, installed
#                                under OUT/stage by capi/install.sh (/usr)
#   compile_c OUT SOURCE NAME    SOURCE compiled to OUT/bin/NAME with the flags
#                                of `pkg-config openssl-reload` for the library
#                                staged in OUT, as docs/c-api.md says for a
#                                staged install, plus libssl and libcrypto,
#                                which the programs call themselves

stage_capi() {
    cargo build --locked -p openssl-reload-capi
    capi/install.sh --destdir "$1/stage" --prefix /usr --from "${CARGO_TARGET_DIR:-target}/debug"
}

compile_c() {
    local out="$1" source="$2" name="$3" cflags libs
    cflags="$(PKG_CONFIG_PATH="$out/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$out/stage" \
        pkg-config --cflags openssl-reload)"
    libs="$(PKG_CONFIG_PATH="$out/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$out/stage" \
        pkg-config --libs openssl-reload libssl libcrypto) -Wl,-rpath,$out/stage/usr/lib"
    mkdir -p "$out/bin"
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    gcc -std=c11 -Wall -Wextra -Werror -pedantic $cflags "$source" $libs -o "$out/bin/$name"
}
