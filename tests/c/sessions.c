/* Session resumption across an application's own contexts: a server that
 * keeps a public context and one that demands client certificates, or that
 * switches names to another context in its servername callback, with
 * libopenssl_reload attached to each. A session resumes only where a full
 * handshake with the same client certificate and name, on the same context,
 * would succeed. Driven by server/tests/cli/capi/sessions.rs with
 * `openssl s_client -sess_out` / `-sess_in`, under valgrind.
 *
 *   sessions contexts CLIENT-CA CERT KEY
 *     One reloader (CERT and KEY, no client CA of its own) attached to two
 *     contexts of the application, each on its own port:
 *     - `public`: no client authentication, session id context "public";
 *     - `internal`: its own SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
 *       and CA store (CLIENT-CA), session id context "internal".
 *     Both share one set of ticket keys, as the servers of a fleet do. Prints
 *     `listening public=PORT internal=PORT`.
 *
 *   sessions switch CLIENT-CA CERT-A KEY-A CERT-B KEY-B
 *     Context `a` attached to a reloader of CERT-A without client
 *     authentication, context `b` attached to a second reloader of CERT-B
 *     that requires a client certificate from CLIENT-CA. Connections start on
 *     `a`; its servername callback switches `b.example` to `b`
 *     (SSL_set_SSL_CTX). Prints `listening PORT`.
 *
 * Each connection served gets one line, `hello context=NAME` (the context its
 * handshake ended on), and a close; a refused one gets nothing. End of input
 * (or `quit`) frees the contexts, and with them the reloaders, and exits.
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
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "openssl_reload.h"

/* One of the application's contexts, the name it answers with, and its
 * listener (-1 for a context connections only switch to). */
struct site {
  const char *name;
  SSL_CTX *ctx;
  int listener;
};

static void die(const char *what) {
  char text[4096];
  size_t len = 0;
  if (openssl_reload_last_error(text, sizeof text, &len) != OPENSSL_RELOAD_OK) text[0] = '\0';
  fprintf(stderr, "sessions: %s: %s\n", what, text);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static openssl_reload_server *reloader(const char *cert, const char *key, const char *client_ca) {
  openssl_reload_server_builder *builder = NULL;
  openssl_reload_server *server = NULL;
  if (openssl_reload_server_builder_new(&builder) != OPENSSL_RELOAD_OK ||
      openssl_reload_server_builder_set_identity(builder, cert, key) != OPENSSL_RELOAD_OK ||
      (client_ca && openssl_reload_server_builder_set_client_ca(
                        builder, client_ca, OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED) !=
                        OPENSSL_RELOAD_OK))
    die("builder");
  if (openssl_reload_server_builder_build(builder, &server) != OPENSSL_RELOAD_OK) die("build");
  return server;
}

/* A context as the application configures it; `sid_ctx` is its own session
 * id context, set before attaching (attach reads it). */
static SSL_CTX *app_context(const char *sid_ctx) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (sid_ctx != NULL &&
      !SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid_ctx, strlen(sid_ctx)))
    die("SSL_CTX_set_session_id_context");
  return ctx;
}

/* The reloader's certificates on `ctx`, which keeps the reloader alive: the
 * callers free their handles once every context is attached. */
static void attach(openssl_reload_server *server, SSL_CTX *ctx) {
  if (openssl_reload_server_attach(server, ctx) != OPENSSL_RELOAD_OK) die("attach");
}

/* The application's servername callback on `a`: `b.example` goes to `b`,
 * whose certificate callback (set by attach) then installs its reloader's
 * certificate and client CA. */
static int servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  SSL_CTX *b = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name != NULL && strcmp(name, "b.example") == 0 && SSL_set_SSL_CTX(ssl, b) == NULL)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

static int listen_local(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 16) != 0) {
    perror("sessions: listen");
    exit(1);
  }
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    perror("sessions: getsockname");
    exit(1);
  }
  return ntohs(addr.sin_port);
}

/* One connection on `ctx`; `sites` names the context the handshake ended on. */
static void serve_one(SSL_CTX *ctx, int fd, const struct site *sites, size_t count) {
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL || !SSL_set_fd(ssl, fd)) die("SSL_new");
  if (SSL_accept(ssl) == 1) {
    const char *name = "unknown";
    for (size_t i = 0; i < count; i++)
      if (SSL_get_SSL_CTX(ssl) == sites[i].ctx) name = sites[i].name;
    char line[64];
    int n = snprintf(line, sizeof line, "hello context=%s\n", name);
    if (SSL_write(ssl, line, n) > 0) SSL_shutdown(ssl);
  } else {
    ERR_clear_error(); /* a refused client: on to the next one */
  }
  SSL_free(ssl);
  close(fd);
}

/* Accepts on every site with a listener until end of input or `quit`. */
static void serve(const struct site *sites, size_t count) {
  struct pollfd fds[3];
  char line[256];
  for (;;) {
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
      if (sites[i].listener >= 0)
        fds[n++] = (struct pollfd){.fd = sites[i].listener, .events = POLLIN};
    fds[n] = (struct pollfd){.fd = 0, .events = POLLIN};
    if (poll(fds, n + 1, -1) < 0) continue;
    if (fds[n].revents) {
      if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "quit", 4) == 0) return;
      continue;
    }
    for (size_t i = 0, j = 0; i < count; i++) {
      if (sites[i].listener < 0) continue;
      if (fds[j++].revents) {
        int fd = accept(sites[i].listener, NULL, NULL);
        if (fd >= 0) serve_one(sites[i].ctx, fd, sites, count);
      }
    }
  }
}

static void finish(struct site *sites, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (sites[i].listener >= 0) close(sites[i].listener);
    SSL_CTX_free(sites[i].ctx); /* the last context of a reloader frees it */
  }
}

/* PUBLIC and INTERNAL on one reloader, sharing ticket keys. */
static int contexts(const char *client_ca, const char *cert, const char *key) {
  openssl_reload_server *server = reloader(cert, key, NULL);
  struct site sites[2] = {
      {"public", app_context("public"), listen_local()},
      {"internal", app_context("internal"), listen_local()},
  };

  /* INTERNAL verifies clients itself: its verify mode, its CA store and the
   * CA names it asks for. */
  SSL_CTX *internal = sites[1].ctx;
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
  if (names == NULL || !SSL_CTX_load_verify_locations(internal, client_ca, NULL))
    die("load the client CA");
  SSL_CTX_set_client_CA_list(internal, names);
  SSL_CTX_set_verify(internal, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);

  /* One set of ticket keys (name, HMAC and AES key: 80 bytes) on both. */
  unsigned char keys[80];
  if (RAND_bytes(keys, sizeof keys) != 1) die("RAND_bytes");
  for (size_t i = 0; i < 2; i++) {
    if (!SSL_CTX_set_tlsext_ticket_keys(sites[i].ctx, keys, sizeof keys)) die("ticket keys");
    attach(server, sites[i].ctx);
  }
  openssl_reload_server_free(server); /* the contexts keep the reloader */

  printf("listening public=%d internal=%d\n", port_of(sites[0].listener),
         port_of(sites[1].listener));
  fflush(stdout);
  serve(sites, 2);
  finish(sites, 2);
  return 0;
}

/* `a` on R1, `b` on R2 (client CA required), `b.example` switched to `b`. */
static int switched(const char *client_ca, const char *cert_a, const char *key_a,
                    const char *cert_b, const char *key_b) {
  openssl_reload_server *r1 = reloader(cert_a, key_a, NULL);
  openssl_reload_server *r2 = reloader(cert_b, key_b, client_ca);
  struct site sites[2] = {
      {"a", app_context(NULL), listen_local()},
      {"b", app_context(NULL), -1},
  };
  attach(r1, sites[0].ctx);
  attach(r2, sites[1].ctx);
  openssl_reload_server_free(r1);
  openssl_reload_server_free(r2);
  SSL_CTX_set_tlsext_servername_callback(sites[0].ctx, servername);
  SSL_CTX_set_tlsext_servername_arg(sites[0].ctx, sites[1].ctx);

  printf("listening %d\n", port_of(sites[0].listener));
  fflush(stdout);
  serve(sites, 2);
  finish(sites, 2);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "contexts") == 0) return contexts(argv[2], argv[3], argv[4]);
  if (argc == 7 && strcmp(argv[1], "switch") == 0)
    return switched(argv[2], argv[3], argv[4], argv[5], argv[6]);
  fprintf(stderr,
          "usage: %s contexts CLIENT-CA CERT KEY\n"
          "       %s switch CLIENT-CA CERT-A KEY-A CERT-B KEY-B\n",
          argv[0], argv[0]);
  return 64;
}
