/* A pre-forking C server, as nginx, Apache's prefork MPM and HAProxy's
 * master-worker run: the parent reads its configuration (builds the reloader
 * and attaches it to its own SSL_CTX) and opens the listener, then forks the
 * children that serve. Driven by server/tests/cli/capi/forking.rs, under
 * valgrind (which follows the children).
 *
 *   forking [--children N] [--poll-ms N] [--no-defer] [--pin-file FILE] CERT KEY
 *
 * KEY may be a pkcs11: URI (its PIN in --pin-file): the key is opened in the
 * parent to check the configuration and again in each child, whose
 * openssl_reload_server_start_polling runs one tick before it returns.
 *
 * By default the reloader is built with openssl_reload_server_builder_set_defer_polling:
 * no thread in the parent. Each child calls openssl_reload_server_start_polling,
 * sets its change callback, prints `polling pid=PID`, and answers each
 * connection with one line, `hello alpn=PROTO pid=PID`, and a close; a
 * `change pid=PID serial=SERIAL` line follows each publish it sees.
 *
 * With --no-defer the parent's reloader polls before the fork (the mistake
 * the rules of docs/c-api.md forbid): each child prints what
 * openssl_reload_server_start_polling and _reload_now answer,
 * `refused pid=PID start=CODE reload=CODE`, frees the context and the handle
 * (which must not wait for the parent's thread) and exits 0.
 *
 * The parent prints `listening PORT`, then `child PID` per child; on `quit`
 * (or end of input) it stops the children with SIGTERM, prints `exited PID
 * STATUS` for each, frees its context and handle, and exits 0 only if every
 * child exited 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "openssl_reload.h"

#define MAX_CHILDREN 8

static openssl_reload_server *server;
static SSL_CTX *ctx;
static volatile sig_atomic_t stopping;

static void die(const char *what) {
  char text[4096];
  size_t len = 0;
  if (openssl_reload_last_error(text, sizeof text, &len) != OPENSSL_RELOAD_OK) text[0] = '\0';
  fprintf(stderr, "forking[%d]: %s: %s\n", (int)getpid(), what, text);
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

/* A child's change callback, on the library's thread in that child. */
static void changed(void *userdata, uint64_t generation) {
  openssl_reload_status st;
  if (openssl_reload_server_status(userdata, &st) != OPENSSL_RELOAD_OK) return;
  printf("change pid=%d generation=%llu serial=%s\n", (int)getpid(),
         (unsigned long long)generation, st.serial);
  fflush(stdout);
}

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

static void serve_one(int fd) {
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
    char line[96];
    int n = snprintf(line, sizeof line, "hello alpn=%.*s pid=%d\n", (int)proto_len,
                     (const char *)proto, (int)getpid());
    if (SSL_write(ssl, line, n) > 0) SSL_shutdown(ssl);
  }
  ERR_clear_error(); /* a refused client: on to the next one */
  SSL_free(ssl);
  close(fd);
}

/* What a child frees before it exits: the context, then the handle. */
static void child_exit(int code) {
  SSL_CTX_free(ctx);
  openssl_reload_server_free(server);
  exit(code);
}

/* A child of a parent that built with deferred polling: start, then serve
 * until SIGTERM. The listener is non-blocking: every child wakes for each
 * connection, one accepts it. */
static void child_serve(int listener) {
  if (openssl_reload_server_start_polling(server) != OPENSSL_RELOAD_OK) die("start_polling");
  if (openssl_reload_server_set_change_callback(server, changed, server) != OPENSSL_RELOAD_OK)
    die("set_change_callback");
  printf("polling pid=%d\n", (int)getpid());
  fflush(stdout);
  while (!stopping) {
    struct pollfd fds = {.fd = listener, .events = POLLIN};
    if (poll(&fds, 1, 100) <= 0) continue;
    int fd = accept(listener, NULL, NULL);
    if (fd >= 0) serve_one(fd);
  }
  close(listener);
  child_exit(0);
}

/* A child of a parent whose reloader was polling at the fork. */
static void child_refused(int listener) {
  close(listener);
  openssl_reload_result start = openssl_reload_server_start_polling(server);
  openssl_reload_result reload = openssl_reload_server_reload_now(server, NULL);
  printf("refused pid=%d start=%d reload=%d\n", (int)getpid(), (int)start, (int)reload);
  fflush(stdout);
  child_exit(0);
}

static int open_listener(void) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t addr_len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(listener, 64) != 0 || getsockname(listener, (struct sockaddr *)&addr, &addr_len) != 0 ||
      fcntl(listener, F_SETFL, O_NONBLOCK) != 0) {
    perror("forking: listen");
    exit(1);
  }
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout); /* before fork: a buffered line would be printed by every child */
  return listener;
}

/* Stops the children and says how each exited; 0 if all exited 0. */
static int reap(const pid_t *children, int count) {
  int failed = 0;
  for (int i = 0; i < count; i++) kill(children[i], SIGTERM);
  for (int i = 0; i < count; i++) {
    int status = 0;
    while (waitpid(children[i], &status, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("exited %d %d\n", (int)children[i], code);
    failed |= code != 0;
  }
  fflush(stdout);
  return failed;
}

int main(int argc, char **argv) {
  int children_wanted = 2, defer = 1, i = 1;
  const char *pin_file = NULL;
  unsigned long poll_ms = 1000;
  for (; i < argc - 2 && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--no-defer") == 0) defer = 0;
    else if (strcmp(argv[i], "--children") == 0 && i + 1 < argc - 2) children_wanted = atoi(argv[++i]);
    else if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc - 2) poll_ms = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--pin-file") == 0 && i + 1 < argc - 2) pin_file = argv[++i];
    else goto usage;
  }
  if (argc - i != 2 || children_wanted < 1 || children_wanted > MAX_CHILDREN) goto usage;

  /* The configuration, read once in the parent: a bad file stops it here. */
  openssl_reload_server_builder *builder = NULL;
  if (openssl_reload_server_builder_new(&builder) != OPENSSL_RELOAD_OK ||
      openssl_reload_server_builder_set_identity(builder, argv[i], argv[i + 1]) !=
          OPENSSL_RELOAD_OK ||
      (pin_file != NULL &&
       openssl_reload_server_builder_set_passphrase_file(builder, pin_file) != OPENSSL_RELOAD_OK) ||
      openssl_reload_server_builder_set_poll_interval_ms(builder, poll_ms) != OPENSSL_RELOAD_OK ||
      openssl_reload_server_builder_set_defer_polling(builder, defer) != OPENSSL_RELOAD_OK)
    die("builder");
  if (openssl_reload_server_builder_build(builder, &server) != OPENSSL_RELOAD_OK) die("build");
  ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (openssl_reload_server_attach(server, ctx) != OPENSSL_RELOAD_OK) die("attach");
  int listener = open_listener();

  struct sigaction term = {.sa_handler = on_term}; /* no SA_RESTART: poll returns */
  sigemptyset(&term.sa_mask);
  sigaction(SIGTERM, &term, NULL);
  pid_t children[MAX_CHILDREN];
  for (int c = 0; c < children_wanted; c++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      if (defer) child_serve(listener);
      child_refused(listener);
    }
    children[c] = pid;
    printf("child %d\n", (int)pid);
    fflush(stdout);
  }
  close(listener);

  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL && strncmp(line, "quit", 4) != 0) {
  }
  int failed = reap(children, children_wanted);
  SSL_CTX_free(ctx);
  openssl_reload_server_free(server);
  return failed;

usage:
  fprintf(stderr, "usage: %s [--children N] [--poll-ms N] [--no-defer] [--pin-file FILE] CERT KEY\n",
          argv[0]);
  return 64;
}
