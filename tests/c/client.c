/* A C client for node-to-node mutual TLS: its own SSL_CTX, and
 * libopenssl_reload's client side for its certificate, key and CA, put on each
 * outgoing SSL with openssl_reload_client_configure_ssl. Driven by
 * server/tests/cli/capi.rs against the Rust demo server, under valgrind.
 *
 *   client [--poll-ms N] CERT KEY CA
 *
 * It prints a `change ...` line from the change callback after each publish or
 * failed reload. Commands on standard input, one per line:
 *   get PORT   GET / from https://localhost:PORT (127.0.0.1), verifying the
 *              server against the CA and the name localhost; prints the
 *              response's lines as `body LINE`, then `end`, or `failed WHY`
 *   quit (or end of input)
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "openssl_reload.h"

static void die(const char *what) {
  char text[4096];
  size_t len = 0;
  if (openssl_reload_last_error(text, sizeof text, &len) != OPENSSL_RELOAD_OK) text[0] = '\0';
  fprintf(stderr, "client: %s: %s\n", what, text);
  exit(1);
}

static void changed(void *userdata, uint64_t generation) {
  const openssl_reload_client *c = userdata;
  openssl_reload_status st;
  if (openssl_reload_client_status(c, &st) != OPENSSL_RELOAD_OK) return;
  printf("change generation=%llu failures=%llu serial=%s\n", (unsigned long long)generation,
         (unsigned long long)st.failures, st.serial);
  fflush(stdout);
}

static void fail(const char *why) {
  unsigned long e = ERR_get_error();
  char reason[256] = "";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  printf("failed %s %s\n", why, reason);
}

static void get(const openssl_reload_client *client, SSL_CTX *ctx, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    printf("failed connect\n");
    if (fd >= 0) close(fd);
    return;
  }
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) die("SSL_new");
  if (openssl_reload_client_configure_ssl(client, ssl) != OPENSSL_RELOAD_OK) die("configure_ssl");
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    fail("handshake");
  } else {
    static const char request[] =
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (SSL_write(ssl, request, (int)sizeof request - 1) <= 0) {
      fail("write");
    } else {
      char buf[4096];
      size_t used = 0;
      int n;
      while (used < sizeof buf - 1 && (n = SSL_read(ssl, buf + used, (int)(sizeof buf - 1 - used))) > 0)
        used += (size_t)n;
      buf[used] = '\0';
      ERR_clear_error();
      for (char *line = strtok(buf, "\r\n"); line; line = strtok(NULL, "\r\n"))
        printf("body %s\n", line);
      printf("end\n");
    }
  }
  SSL_free(ssl);
  close(fd);
}

int main(int argc, char **argv) {
  unsigned long poll_ms = 1000;
  int i = 1;
  if (argc > 2 && strcmp(argv[1], "--poll-ms") == 0) {
    poll_ms = strtoul(argv[2], NULL, 10);
    i = 3;
  }
  if (argc - i != 3) {
    fprintf(stderr, "usage: %s [--poll-ms N] CERT KEY CA\n", argv[0]);
    return 64;
  }
  openssl_reload_client_builder *builder = NULL;
  openssl_reload_client *client = NULL;
  if (openssl_reload_client_builder_new(&builder) != OPENSSL_RELOAD_OK ||
      openssl_reload_client_builder_set_identity(builder, argv[i], argv[i + 1]) !=
          OPENSSL_RELOAD_OK ||
      openssl_reload_client_builder_set_ca(builder, argv[i + 2]) != OPENSSL_RELOAD_OK ||
      openssl_reload_client_builder_set_poll_interval_ms(builder, poll_ms) != OPENSSL_RELOAD_OK)
    die("builder");
  if (openssl_reload_client_builder_build(builder, &client) != OPENSSL_RELOAD_OK) die("build");
  if (openssl_reload_client_set_change_callback(client, changed, client) != OPENSSL_RELOAD_OK)
    die("set_change_callback");

  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  printf("ready\n");
  fflush(stdout);

  char line[256];
  int port;
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (sscanf(line, "get %d", &port) == 1)
      get(client, ctx, port);
    else if (strncmp(line, "quit", 4) == 0)
      break;
    else
      printf("unknown command %s", line);
    fflush(stdout);
  }
  SSL_CTX_free(ctx);
  openssl_reload_client_free(client);
  return 0;
}
