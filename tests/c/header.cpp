// The header compiles as C++ (ci/capi.sh; as C, tests/c/smoke.c).
#include "openssl_reload.h"

int main() { return openssl_reload_version() == nullptr; }
