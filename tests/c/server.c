/* A C server as applications write them: its own SSL_CTX with its own ALPN
 * callback (h2, then http/1.1), its own blocking accept loop, and
 * libopenssl_reload for the certificates. Driven by server/tests/cli/capi.rs,
 * under valgrind.
 *
 *   server MODE [--ca FILE] [--passphrase-callback PASS] [--poll-ms N] CERT KEY
 *
 * MODE is `attach` (openssl_reload_server_attach on the context) or
 * `servername` (the application's servername callback switches to a second
 * context of its own and calls openssl_reload_server_install).
 *
 * It prints `listening PORT`, then a `change ...` line from the change
 * callback after each publish or failed reload, with the status and the last
 * reload error. Each connection gets one line, `hello alpn=PROTO`, and a
 * close. Commands on standard input, one per line:
 *   reload       openssl_reload_server_reload_now, answers `reloaded changed=0|1`
 *   status       answers `status JSON`
 *   free-handle  frees the reloader's handle while the context still serves
 *                (attach mode only); the context keeps the reloader
 *   quit (or end of input)  frees the context, then the handle if still held
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "openssl_reload.h"

static openssl_reload_server *server; /* NULL once freed */
static SSL_CTX *site_ctx;             /* the context switched to, servername mode */

static void die(const char *what) {
  char text[4096];
  size_t len = 0;
  if (openssl_reload_last_error(text, sizeof text, &len) != OPENSSL_RELOAD_OK) text[0] = '\0';
  fprintf(stderr, "server: %s: %s\n", what, text);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char ours[] = "\x02h2\x08http/1.1";
  unsigned char *selected = NULL;
  if (SSL_select_next_proto(&selected, outlen, ours, sizeof ours - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

/* The application's own servername callback: it picks its context, then asks
 * the reloader for the current material. */
static int servername(SSL *ssl, int *alert, void *arg) {
  (void)arg;
  if (SSL_set_SSL_CTX(ssl, site_ctx) == NULL) return SSL_TLSEXT_ERR_ALERT_FATAL;
  openssl_reload_result result = openssl_reload_server_install(server, ssl);
  if (result == OPENSSL_RELOAD_UNKNOWN_SITE) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return result == OPENSSL_RELOAD_OK ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int passphrase(void *userdata, char *buf, size_t len, size_t *out_len) {
  const char *pass = userdata;
  size_t n = strlen(pass);
  if (n > len) return 1;
  memcpy(buf, pass, n);
  *out_len = n;
  return 0;
}

/* The change callback: one line with the status and the last reload error. */
static void changed(void *userdata, uint64_t generation) {
  const openssl_reload_server *s = userdata;
  openssl_reload_status st;
  char error[4096];
  size_t len = 0;
  if (openssl_reload_server_status(s, &st) != OPENSSL_RELOAD_OK ||
      openssl_reload_server_reload_error(s, error, sizeof error, &len) != OPENSSL_RELOAD_OK) {
    printf("change generation=%llu status-failed\n", (unsigned long long)generation);
  } else {
    printf("change generation=%llu reloads=%llu failures=%llu serial=%s error=%s\n",
           (unsigned long long)generation, (unsigned long long)st.reloads,
           (unsigned long long)st.failures, st.serial, error);
  }
  fflush(stdout);
}

static SSL_CTX *app_context(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return ctx;
}

static void serve_one(SSL_CTX *ctx, int fd) {
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL || !SSL_set_fd(ssl, fd)) die("SSL_new");
  if (SSL_accept(ssl) == 1) {
    const unsigned char *proto = NULL;
    unsigned int proto_len = 0;
    SSL_get0_alpn_selected(ssl, &proto, &proto_len);
    if (proto_len == 0) {
      proto = (const unsigned char *)"none";
      proto_len = 4;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "hello alpn=%.*s\n", (int)proto_len, (const char *)proto);
    if (SSL_write(ssl, line, n) > 0) SSL_shutdown(ssl);
  } else {
    ERR_clear_error(); /* a refused client: on to the next one */
  }
  SSL_free(ssl);
  close(fd);
}

/* One command from standard input; returns 0 to stop. */
static int command(char *line) {
  line[strcspn(line, "\r\n")] = '\0';
  if (strcmp(line, "reload") == 0) {
    bool did = false;
    if (openssl_reload_server_reload_now(server, &did) == OPENSSL_RELOAD_OK)
      printf("reloaded changed=%d\n", did ? 1 : 0);
    else
      printf("reload-failed\n");
  } else if (strcmp(line, "status") == 0) {
    char json[65536];
    size_t len = 0;
    if (openssl_reload_server_status_json(server, json, sizeof json, &len) != OPENSSL_RELOAD_OK)
      die("status_json");
    printf("status %s\n", json);
  } else if (strcmp(line, "free-handle") == 0 && site_ctx == NULL) {
    openssl_reload_server_free(server);
    server = NULL;
    printf("freed\n");
  } else if (strcmp(line, "quit") == 0) {
    return 0;
  } else {
    printf("unknown command %s\n", line);
  }
  fflush(stdout);
  return 1;
}

int main(int argc, char **argv) {
  const char *ca = NULL, *pass = NULL;
  unsigned long poll_ms = 1000;
  int i = 2;
  if (argc < 4) goto usage;
  int servername_mode = strcmp(argv[1], "servername") == 0;
  if (!servername_mode && strcmp(argv[1], "attach") != 0) goto usage;
  for (; i + 1 < argc - 2 && argv[i][0] == '-'; i += 2) {
    if (strcmp(argv[i], "--ca") == 0) ca = argv[i + 1];
    else if (strcmp(argv[i], "--passphrase-callback") == 0) pass = argv[i + 1];
    else if (strcmp(argv[i], "--poll-ms") == 0) poll_ms = strtoul(argv[i + 1], NULL, 10);
    else goto usage;
  }
  if (argc - i != 2) goto usage;

  openssl_reload_server_builder *builder = NULL;
  if (openssl_reload_server_builder_new(&builder) != OPENSSL_RELOAD_OK ||
      openssl_reload_server_builder_set_identity(builder, argv[i], argv[i + 1]) !=
          OPENSSL_RELOAD_OK ||
      openssl_reload_server_builder_set_poll_interval_ms(builder, poll_ms) != OPENSSL_RELOAD_OK ||
      (ca && openssl_reload_server_builder_set_client_ca(
                 builder, ca, OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED) != OPENSSL_RELOAD_OK) ||
      (pass && openssl_reload_server_builder_set_passphrase_callback(
                   builder, passphrase, (void *)pass) != OPENSSL_RELOAD_OK))
    die("builder");
  if (openssl_reload_server_builder_build(builder, &server) != OPENSSL_RELOAD_OK) die("build");
  if (openssl_reload_server_set_change_callback(server, changed, server) != OPENSSL_RELOAD_OK)
    die("set_change_callback");

  SSL_CTX *ctx = app_context();
  if (servername_mode) {
    site_ctx = app_context();
    SSL_CTX_set_tlsext_servername_callback(ctx, servername);
  } else if (openssl_reload_server_attach(server, ctx) != OPENSSL_RELOAD_OK) {
    die("attach");
  }

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t addr_len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(listener, 16) != 0 || getsockname(listener, (struct sockaddr *)&addr, &addr_len) != 0) {
    perror("server: listen");
    return 1;
  }
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  char line[256];
  for (;;) {
    struct pollfd fds[2] = {{.fd = listener, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) {
      if (fgets(line, sizeof line, stdin) == NULL || !command(line)) break;
      continue;
    }
    int fd = accept(listener, NULL, NULL);
    if (fd >= 0) serve_one(ctx, fd);
  }

  close(listener);
  SSL_CTX_free(ctx); /* the context first: the reloader outlives it while the handle is held */
  SSL_CTX_free(site_ctx);
  openssl_reload_server_free(server);
  return 0;

usage:
  fprintf(stderr,
          "usage: %s attach|servername [--ca FILE] [--passphrase-callback PASS] "
          "[--poll-ms N] CERT KEY\n",
          argv[0]);
  return 64;
}
