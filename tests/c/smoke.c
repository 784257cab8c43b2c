/* The C library from C: a builder whose files are missing fails with
 * OPENSSL_RELOAD_MATERIAL, writes no handle, and leaves a last error that names
 * the file; a short buffer gets the size it needs; NULL is refused. Built with
 * -std=c11 -Wall -Wextra -Werror and run under valgrind by ci/capi.sh. */
#include <stdio.h>
#include <string.h>

#include "openssl_reload.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MISSING-FILE\n", argv[0]);
    return 64;
  }
  const char *missing = argv[1];
  openssl_reload_server_builder *builder = NULL;
  if (openssl_reload_server_builder_new(&builder) != OPENSSL_RELOAD_OK) return 1;
  if (openssl_reload_server_builder_set_identity(builder, missing, missing) != OPENSSL_RELOAD_OK)
    return 2;
  openssl_reload_server *server = NULL;
  openssl_reload_result result = openssl_reload_server_builder_build(builder, &server);
  if (result != OPENSSL_RELOAD_MATERIAL || server != NULL) return 3;

  char text[2048];
  size_t len = 0;
  if (openssl_reload_last_error(text, sizeof text, &len) != OPENSSL_RELOAD_OK) return 4;
  if (strstr(text, missing) == NULL || strlen(text) != len) return 5;

  char small[4];
  size_t needed = 0;
  if (openssl_reload_last_error(small, sizeof small, &needed) != OPENSSL_RELOAD_INSUFFICIENT_SIZE ||
      needed != len + 1)
    return 6;
  if (openssl_reload_server_builder_set_identity(NULL, "a", "b") != OPENSSL_RELOAD_NULL_PARAMETER)
    return 7;
  char message[256];
  if (openssl_reload_result_message(OPENSSL_RELOAD_MATERIAL, message, sizeof message, &len) !=
      OPENSSL_RELOAD_OK)
    return 8;
  openssl_reload_server_free(NULL);

  printf("libopenssl_reload %s\n%s: %s\n", openssl_reload_version(), message, text);
  return 0;
}
