/*
 * hsm-probe: answers questions about hardware keys under OpenSSL 3.0 on Debian 12
 * (libp11 0.4.12 ENGINE, tpm2-openssl 1.1.1) with the fixtures of
 * ci/hsm-fixtures.sh. Run it through `ci/hsm-fixtures.sh probe DIR MODE ...`, which
 * builds it and sets HSM_FIXTURES, HSM_DIR, SOFTHSM2_CONF, DBUS_SESSION_BUS_ADDRESS
 * and OPENSSL_CONF (a config without engines or providers).
 *
 *   engine-info                      ENGINE_by_id("pkcs11") with no engine config
 *   engine-pin HOW URI               HOW: ctrl (ENGINE_ctrl_cmd_string "PIN"),
 *                                    ui (UI_METHOD + data to ENGINE_load_private_key),
 *                                    uri (pin-value/pin-source in URI), none;
 *                                    module from MODULE_PATH ctrl unless
 *                                    PROBE_MODULE_FROM_ENV=1 (PKCS11_MODULE_PATH)
 *   engine-fork URI                  key loaded before fork(), used in the child
 *   engine-outage URI delete|move    key open across softhsm-outage/restore
 *   engine-copy URI delete|move CERT CA
 *                                    the same; while the token is away, a second
 *                                    ENGINE from anonymous copies of the engine
 *                                    and the module tries the key 200 times,
 *                                    restarted in between; once it is back, it
 *                                    opens, signs and serves handshakes
 *   store-outage URI                 tpm2-openssl key (OSSL_STORE) across
 *                                    tpm-stop/tpm-start
 *   store-reinstance URI CERT CA     the same, then a second tpm2 instance in the
 *                                    default library context (PROBE_NAME, default
 *                                    "#2 tpm2") serves handshakes; PROBE_PROPQ: the
 *                                    default properties, set first
 *   threads engine|store URI CERT CA THREADS N [lock] [rand-default]
 *                                    THREADS threads x N in-memory TLS 1.3
 *                                    handshakes on one SSL_CTX holding the key;
 *                                    lock: one handshake at a time; rand-default:
 *                                    DRBG pinned to the default provider;
 *                                    propq=Q: EVP_set_default_properties(NULL, Q);
 *                                    libctx-per-thread: (store) each thread its own
 *                                    OSSL_LIB_CTX with tpm2+default, key, SSL_CTX
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/mman.h>
#include <openssl/core.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
static const char *PIN = "1234";

static void errs(const char *what)
{
    unsigned long e;
    char buf[256];
    int n = 0;
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (n++ < 4)
            printf("    %s: %s\n", what, buf);
    }
    fflush(stdout);
}

static void say(const char *fmt, const char *a, int ok)
{
    printf(fmt, a);
    printf(": %s\n", ok ? "OK" : "FAILED");
    fflush(stdout);
    if (!ok)
        errs("error");
}

/* Signs 32 bytes with SHA-256 and verifies the signature with the same key, in
 * the library context the key belongs to (NULL: the default one). */
static int sign_verify_ex(OSSL_LIB_CTX *lc, EVP_PKEY *pkey)
{
    unsigned char msg[32] = "hsm-probe message to be signed!", sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *m;
    int ok;
    if (pkey == NULL)
        return 0;
    m = EVP_MD_CTX_new();
    ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, "SHA256", lc, NULL, pkey, NULL) == 1 &&
         EVP_DigestSign(m, sig, &siglen, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    if (!ok)
        return 0;
    m = EVP_MD_CTX_new();
    ok = m != NULL && EVP_DigestVerifyInit_ex(m, NULL, "SHA256", lc, NULL, pkey, NULL) == 1 &&
         EVP_DigestVerify(m, sig, siglen, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static int sign_verify(EVP_PKEY *pkey)
{
    return sign_verify_ex(NULL, pkey);
}

/* ------------------------------------------------------------------ engine */

static int ui_reader(UI *ui, UI_STRING *uis)
{
    const char *pass = UI_get0_user_data(ui);
    if (UI_get_string_type(uis) == UIT_PROMPT || UI_get_string_type(uis) == UIT_VERIFY) {
        printf("    UI method asked: \"%s\" -> answering from callback data\n", UI_get0_output_string(uis));
        return UI_set_result(ui, uis, pass) == 0;
    }
    return 1;
}

static UI_METHOD *pin_ui(void)
{
    UI_METHOD *m = UI_create_method("hsm-probe PIN");
    UI_method_set_reader(m, ui_reader);
    return m;
}

static ENGINE *engine(int set_module)
{
    ENGINE *e = ENGINE_by_id("pkcs11");
    if (e == NULL) {
        errs("ENGINE_by_id");
        return NULL;
    }
    if (getenv("PROBE_VERBOSE") && !strcmp(getenv("PROBE_VERBOSE"), "1"))
        ENGINE_ctrl_cmd_string(e, "VERBOSE", NULL, 0);
    if (set_module && !ENGINE_ctrl_cmd_string(e, "MODULE_PATH", MODULE, 0)) {
        errs("MODULE_PATH");
        return NULL;
    }
    if (!ENGINE_init(e)) {
        errs("ENGINE_init");
        return NULL;
    }
    return e;
}

static EVP_PKEY *load(ENGINE *e, const char *uri, UI_METHOD *ui, void *data)
{
    ERR_clear_error();
    return ENGINE_load_private_key(e, uri, ui, data);
}

/* The PIN set on the engine, the key loaded and a signature made with it. */
static EVP_PKEY *load_and_sign(ENGINE *e, const char *uri)
{
    EVP_PKEY *k;
    ENGINE_ctrl_cmd_string(e, "PIN", PIN, 0);
    k = load(e, uri, NULL, NULL);
    say("load%s", "", k != NULL);
    say("sign%s", "", sign_verify(k));
    return k;
}

static int engine_info(void)
{
    ENGINE *e = ENGINE_by_id("pkcs11");
    const ENGINE_CMD_DEFN *d;
    printf("OPENSSL_CONF=%s PKCS11_MODULE_PATH=%s\n", getenv("OPENSSL_CONF") ? getenv("OPENSSL_CONF") : "(unset)",
           getenv("PKCS11_MODULE_PATH") ? getenv("PKCS11_MODULE_PATH") : "(unset)");
    say("ENGINE_by_id(\"pkcs11\") without an engine section%s", "", e != NULL);
    if (e == NULL)
        return 1;
    printf("  id=%s name=\"%s\"\n  control commands:", ENGINE_get_id(e), ENGINE_get_name(e));
    for (d = ENGINE_get_cmd_defns(e); d && d->cmd_name; d++)
        printf(" %s", d->cmd_name);
    printf("\n");
    ENGINE_free(e);
    return 0;
}

static int engine_pin(const char *how, const char *uri)
{
    int from_env = getenv("PROBE_MODULE_FROM_ENV") && !strcmp(getenv("PROBE_MODULE_FROM_ENV"), "1");
    ENGINE *e = engine(!from_env);
    UI_METHOD *ui = NULL;
    void *data = NULL;
    EVP_PKEY *k;
    if (e == NULL)
        return 1;
    printf("module from %s, PIN by %s, URI %s\n", from_env ? "PKCS11_MODULE_PATH" : "MODULE_PATH ctrl", how, uri);
    if (!strcmp(how, "ctrl"))
        say("ENGINE_ctrl_cmd_string(e, \"PIN\", ...)%s", "", ENGINE_ctrl_cmd_string(e, "PIN", PIN, 0));
    if (!strcmp(how, "ui")) {
        ui = pin_ui();
        data = (void *)PIN;
    }
    k = load(e, uri, ui, data);
    say("ENGINE_load_private_key%s", "", k != NULL);
    if (k != NULL)
        say("sign+verify (%s)", EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "?", sign_verify(k));
    EVP_PKEY_free(k);
    return k == NULL;
}

static int engine_fork(const char *uri)
{
    ENGINE *e = engine(1);
    EVP_PKEY *k;
    pid_t pid;
    int st;
    if (e == NULL)
        return 1;
    ENGINE_ctrl_cmd_string(e, "PIN", PIN, 0);
    k = load(e, uri, NULL, NULL);
    say("parent: load%s", "", k != NULL);
    if (k == NULL)
        return 1;
    say("parent: sign before fork%s", "", sign_verify(k));
    pid = fork();
    if (pid == 0) {
        EVP_PKEY *k2;
        say("child: sign with the parent's key%s", "", sign_verify(k));
        say("child: sign again%s", "", sign_verify(k));
        k2 = load(e, uri, NULL, NULL);
        say("child: fresh ENGINE_load_private_key%s", "", k2 != NULL);
        if (k2)
            say("child: sign with it%s", "", sign_verify(k2));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("child exited with status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    say("parent: sign after the child%s", "", sign_verify(k));
    return 0;
}

static void fixture(const char *sub, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %s %s >/dev/null 2>&1", getenv("HSM_FIXTURES"), sub, getenv("HSM_DIR"),
             arg ? arg : "");
    printf("-- ci/hsm-fixtures.sh %s DIR %s: exit %d\n", sub, arg ? arg : "", WEXITSTATUS(system(cmd)));
    fflush(stdout);
}

static int engine_outage(const char *uri, const char *mode)
{
    ENGINE *e = engine(1);
    EVP_PKEY *k, *k2, *k3;
    int ok;
    if (e == NULL)
        return 1;
    k = load_and_sign(e, uri);
    fixture("softhsm-outage", mode);
    if (getenv("PROBE_UNUSED_DURING_OUTAGE") == NULL) {
        say("token gone: sign with the open key%s", "", sign_verify(k));
        k2 = load(e, uri, NULL, NULL);
        say("token gone: fresh ENGINE_load_private_key%s", "", k2 != NULL);
        EVP_PKEY_free(k2);
    } else {
        printf("(key not used while the token is gone)\n");
    }
    fixture("softhsm-restore", NULL);
    say("token back: sign with the key opened before the outage%s", "", sign_verify(k));
    say("token back: and again%s", "", sign_verify(k));
    k2 = load(e, uri, NULL, NULL);
    say("token back: fresh ENGINE_load_private_key on the same ENGINE%s", "", k2 != NULL);
    if (k2)
        say("token back: sign with the fresh key%s", "", sign_verify(k2));
    ok = ENGINE_ctrl_cmd(e, "RE_ENUMERATE", 0, NULL, NULL, 0);
    say("ENGINE_ctrl_cmd(e, \"RE_ENUMERATE\")%s", "", ok);
    k3 = load(e, uri, NULL, NULL);
    say("token back: ENGINE_load_private_key after RE_ENUMERATE%s", "", k3 != NULL);
    if (k3)
        say("token back: sign with that key%s", "", sign_verify(k3));
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
    /* All keys freed: our ENGINE_init is the last functional reference, so
     * ENGINE_finish runs libp11's ctx_finish (C_Finalize, slots released). */
    say("ENGINE_finish%s", "", ENGINE_finish(e));
    say("ENGINE_init%s", "", ENGINE_init(e));
    k = load(e, uri, NULL, NULL);
    say("after ENGINE_finish+ENGINE_init: ENGINE_load_private_key%s", "", k != NULL);
    if (k)
        say("after ENGINE_finish+ENGINE_init: sign%s", "", sign_verify(k));
    EVP_PKEY_free(k);
    /* A second pkcs11 ENGINE, not in OpenSSL's list: its own libp11 context, the
     * same (already initialised) PKCS#11 module in the process. */
    {
        ENGINE *d = ENGINE_by_id("dynamic");
        int okd = d != NULL && ENGINE_ctrl_cmd_string(d, "SO_PATH", getenv("HSM_ENGINE_SO"), 0) &&
                  ENGINE_ctrl_cmd_string(d, "ID", "pkcs11", 0) && ENGINE_ctrl_cmd_string(d, "LIST_ADD", "0", 0) &&
                  ENGINE_ctrl_cmd_string(d, "LOAD", NULL, 0) && ENGINE_ctrl_cmd_string(d, "MODULE_PATH", MODULE, 0) &&
                  ENGINE_ctrl_cmd_string(d, "PIN", PIN, 0) && ENGINE_init(d);
        say("second ENGINE instance through \"dynamic\"%s", "", okd);
        if (okd) {
            k = load(d, uri, NULL, NULL);
            say("second ENGINE: ENGINE_load_private_key%s", "", k != NULL);
            if (k)
                say("second ENGINE: sign%s", "", sign_verify(k));
            EVP_PKEY_free(k);
        }
    }
    ENGINE_finish(e);
    ENGINE_free(e);
    return 0;
}

/* ------------------------------------------------------------------ store */


static EVP_PKEY *store_load_ex(OSSL_LIB_CTX *libctx, const char *uri)
{
    OSSL_STORE_CTX *s;
    EVP_PKEY *k = NULL;
    ERR_clear_error();
    s = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    if (s == NULL)
        return NULL;
    while (k == NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *i = OSSL_STORE_load(s);
        if (i == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(i) == OSSL_STORE_INFO_PKEY)
            k = OSSL_STORE_INFO_get1_PKEY(i);
        OSSL_STORE_INFO_free(i);
    }
    OSSL_STORE_close(s);
    return k;
}

static EVP_PKEY *store_load(const char *uri)
{
    return store_load_ex(NULL, uri);
}

static OSSL_PROVIDER *tpm2_prov, *default_prov;

static int load_tpm2(void)
{
    /* tpm2 before default: in OpenSSL 3.0 the first provider offering the
     * signature algorithm gets the operation, key or no key. */
    if ((tpm2_prov = OSSL_PROVIDER_load(NULL, "tpm2")) == NULL ||
        (default_prov = OSSL_PROVIDER_load(NULL, "default")) == NULL) {
        errs("OSSL_PROVIDER_load");
        return 0;
    }
    return 1;
}

static int store_outage(const char *uri)
{
    EVP_PKEY *k, *k2;
    if (!load_tpm2())
        return 1;
    k = store_load(uri);
    say("OSSL_STORE load%s", "", k != NULL);
    if (k == NULL)
        return 1;
    say("sign%s", "", sign_verify(k));
    fixture("tpm-stop", NULL);
    if (getenv("PROBE_UNUSED_DURING_OUTAGE") == NULL) {
        say("TPM gone: sign with the loaded key%s", "", sign_verify(k));
        k2 = store_load(uri);
        say("TPM gone: fresh OSSL_STORE load%s", "", k2 != NULL);
        EVP_PKEY_free(k2);
    } else {
        printf("(key not used while the TPM is gone)\n");
    }
    fixture("tpm-start", NULL);
    say("TPM back: sign with the key loaded before the outage%s", "", sign_verify(k));
    say("TPM back: and again%s", "", sign_verify(k));
    k2 = store_load(uri);
    say("TPM back: fresh OSSL_STORE load%s", "", k2 != NULL);
    if (k2)
        say("TPM back: sign with the fresh key%s", "", sign_verify(k2));
    {
        /* A new library context gets its own tpm2 provider instance (its own
         * ESYS context and TCTI connection). */
        OSSL_LIB_CTX *lc = OSSL_LIB_CTX_new();
        EVP_PKEY *k3 = NULL;
        int okp = lc != NULL && OSSL_PROVIDER_load(lc, "tpm2") != NULL && OSSL_PROVIDER_load(lc, "default") != NULL;
        say("TPM back: tpm2 provider loaded into a new OSSL_LIB_CTX%s", "", okp);
        if (okp)
            k3 = store_load_ex(lc, uri);
        say("TPM back: OSSL_STORE_open_ex in the new OSSL_LIB_CTX%s", "", k3 != NULL);
        if (k3)
            say("TPM back: sign with that key (in the new OSSL_LIB_CTX)%s", "", sign_verify_ex(lc, k3));
        EVP_PKEY_free(k3);
        OSSL_LIB_CTX_free(lc);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    /* No key of ours is left: unloading the provider from the default library
     * context runs its teardown (Esys_Finalize); loading it again initialises it. */
    say("OSSL_PROVIDER_unload(tpm2), (default)%s", "", OSSL_PROVIDER_unload(tpm2_prov) && OSSL_PROVIDER_unload(default_prov));
    say("OSSL_PROVIDER_load(tpm2), (default) again%s", "", load_tpm2());
    k = store_load(uri);
    say("after unload+load: OSSL_STORE load%s", "", k != NULL);
    if (k)
        say("after unload+load: sign%s", "", sign_verify(k));
    EVP_PKEY_free(k);
    return 0;
}

/* ------------------------------------------------------------------ threads */

static int handshake(SSL_CTX *server_ctx);
static SSL_CTX *cctx;

static SSL_CTX *server_with(EVP_PKEY *k, const char *cert)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL || SSL_CTX_use_certificate_chain_file(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, k) != 1) {
        errs("server_with");
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_num_tickets(c, 0);
    return c;
}

/* After an outage: the wedged tpm2 instance deactivated, a second instance of
 * the same module added under a new name in the default library context. */
static int store_reinstance(const char *uri, const char *cert, const char *ca)
{
    EVP_PKEY *k, *k2;
    SSL_CTX *before, *after;
    OSSL_LIB_CTX *clc = OSSL_LIB_CTX_new();
    void *so;
    OSSL_provider_init_fn *init;
    OSSL_PROVIDER *p2;
    const char *name = getenv("PROBE_NAME") ? getenv("PROBE_NAME") : "#2 tpm2";
    if (!load_tpm2() || clc == NULL || OSSL_PROVIDER_load(clc, "default") == NULL)
        return 1;
    if (getenv("PROBE_PROPQ"))
        say("EVP_set_default_properties%s", "", EVP_set_default_properties(NULL, getenv("PROBE_PROPQ")));
    cctx = SSL_CTX_new_ex(clc, NULL, TLS_client_method());
    SSL_CTX_load_verify_locations(cctx, ca, NULL);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    k = store_load(uri);
    before = server_with(k, cert);
    say("handshake before the outage%s", "", before && handshake(before));
    fixture("tpm-stop", NULL);
    say("TPM gone: handshake%s", "", handshake(before));
    fixture("tpm-start", NULL);
    say("TPM back: handshake with the old instance%s", "", handshake(before));
    /* The sequence of src/material/hardware/providers.rs `replace`. OpenSSL
     * 3.0 asks its providers for an operation in the order of its provider
     * stack, which is sorted by name once it has looked one up, and the first
     * provider with the operation gets it, key or no key: "#2 tpm2" sorts
     * before "default" ("tpm2#2", PROBE_NAME=tpm2#2, does not, and the default
     * ECDSA gets the TPM key: "missing private key"). The default provider is
     * unloaded and loaded again after the new instance so that its operations
     * come second again; the old instance is unloaded once the new one runs. */
    so = dlopen("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so", RTLD_NOW | RTLD_NOLOAD);
    init = so ? (OSSL_provider_init_fn *)dlsym(so, "OSSL_provider_init") : NULL;
    say("dlsym OSSL_provider_init of the loaded module%s", "", init != NULL);
    say("OSSL_PROVIDER_add_builtin(%s)", name, init && OSSL_PROVIDER_add_builtin(NULL, name, init));
    say("OSSL_PROVIDER_unload(default)%s", "", OSSL_PROVIDER_unload(default_prov));
    p2 = OSSL_PROVIDER_load(NULL, name);
    say("OSSL_PROVIDER_load(%s)", name, p2 != NULL);
    say("OSSL_PROVIDER_unload(old tpm2)%s", "", OSSL_PROVIDER_unload(tpm2_prov));
    say("OSSL_PROVIDER_load(default) again%s", "", OSSL_PROVIDER_load(NULL, "default") != NULL);
    k2 = store_load(uri);
    say("OSSL_STORE load through the new instance%s", "", k2 != NULL);
    if (k2 == NULL)
        return 1;
    say("sign with it%s", "", sign_verify(k2));
    after = server_with(k2, cert);
    say("handshake, new SSL_CTX, default library context%s", "", after && handshake(after));
    say("handshake, the SSL_CTX from before with the new key%s", "", SSL_CTX_use_PrivateKey(before, k2) && handshake(before));
    {
        int i, ok = 1;
        for (i = 0; i < 20; i++)
            ok &= handshake(before) && handshake(after);
        say("and again, 20 times each%s", "", ok);
    }
    say("sign with the key of the old instance (expected to fail)%s", "", sign_verify(k));
    return 0;
}

static SSL_CTX *sctx;
static int per_thread, serialise, own_libctx;
static const char *key_uri, *cert_file, *propq;
static pthread_mutex_t big = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static int ok_count, fail_count;
static char first_error[512];

static int handshake(SSL_CTX *server_ctx)
{
    SSL *s = SSL_new(server_ctx), *c = SSL_new(cctx);
    BIO *bs, *bc;
    int i, rs = 0, rc = 0, done = 0;
    BIO_new_bio_pair(&bs, 0, &bc, 0);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "localhost");
    SSL_set1_host(c, "localhost");
    for (i = 0; i < 100 && !done; i++) {
        if (rc != 1) {
            rc = SSL_do_handshake(c);
            if (rc != 1 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ && SSL_get_error(c, rc) != SSL_ERROR_WANT_WRITE)
                break;
        }
        if (rs != 1) {
            rs = SSL_do_handshake(s);
            if (rs != 1 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ && SSL_get_error(s, rs) != SSL_ERROR_WANT_WRITE)
                break;
        }
        done = rc == 1 && rs == 1;
    }
    done = done && SSL_version(c) == TLS1_3_VERSION && SSL_get_verify_result(c) == X509_V_OK;
    if (!done) {
        unsigned long e = ERR_peek_last_error();
        pthread_mutex_lock(&count_lock);
        if (!first_error[0] && e)
            ERR_error_string_n(e, first_error, sizeof first_error);
        pthread_mutex_unlock(&count_lock);
    }
    ERR_clear_error();
    SSL_free(s);
    SSL_free(c);
    return done;
}

/* A library context of the thread's own: its own tpm2 provider instance (ESYS
 * context, connection to tpm2-abrmd), its own key and server SSL_CTX. */
static SSL_CTX *own_server_ctx(OSSL_LIB_CTX **lcp)
{
    OSSL_LIB_CTX *lc = OSSL_LIB_CTX_new();
    SSL_CTX *c = NULL;
    EVP_PKEY *k = NULL;
    *lcp = lc;
    if (lc == NULL || OSSL_PROVIDER_load(lc, "tpm2") == NULL || OSSL_PROVIDER_load(lc, "default") == NULL ||
        (propq != NULL && !EVP_set_default_properties(lc, propq)) || (k = store_load_ex(lc, key_uri)) == NULL)
        goto err;
    c = SSL_CTX_new_ex(lc, NULL, TLS_server_method());
    if (c == NULL || SSL_CTX_use_certificate_chain_file(c, cert_file) != 1 || SSL_CTX_use_PrivateKey(c, k) != 1)
        goto err;
    SSL_CTX_set_num_tickets(c, 0);
    EVP_PKEY_free(k);
    return c;
err:
    errs("per-thread context");
    EVP_PKEY_free(k);
    SSL_CTX_free(c);
    return NULL;
}

static void *worker(void *arg)
{
    int i, ok = 0, fail = 0;
    SSL_CTX *server_ctx = sctx;
    OSSL_LIB_CTX *lc = NULL;
    (void)arg;
    if (own_libctx && (server_ctx = own_server_ctx(&lc)) == NULL) {
        pthread_mutex_lock(&count_lock);
        fail_count += per_thread;
        pthread_mutex_unlock(&count_lock);
        return NULL;
    }
    for (i = 0; i < per_thread; i++) {
        int r;
        if (serialise)
            pthread_mutex_lock(&big);
        r = handshake(server_ctx);
        if (serialise)
            pthread_mutex_unlock(&big);
        if (r)
            ok++;
        else
            fail++;
    }
    pthread_mutex_lock(&count_lock);
    ok_count += ok;
    fail_count += fail;
    pthread_mutex_unlock(&count_lock);
    if (own_libctx) {
        SSL_CTX_free(server_ctx);
        OSSL_LIB_CTX_free(lc);
    }
    return NULL;
}

static int threads(int argc, char **argv)
{
    const char *kind = argv[2], *uri = argv[3], *cert = argv[4], *ca = argv[5];
    int n = atoi(argv[6]), i, rand_default = 0;
    EVP_PKEY *k = NULL;
    pthread_t t[64];
    struct timespec t0, t1;
    EVP_RAND_CTX *drbg;
    per_thread = atoi(argv[7]);
    key_uri = uri;
    cert_file = cert;
    for (i = 8; i < argc; i++) {
        serialise |= !strcmp(argv[i], "lock");
        rand_default |= !strcmp(argv[i], "rand-default");
        own_libctx |= !strcmp(argv[i], "libctx-per-thread");
        if (!strncmp(argv[i], "propq=", 6)) {
            propq = argv[i] + 6;
            /* default property query of the default library context */
            if (!EVP_set_default_properties(NULL, argv[i] + 6)) {
                errs("EVP_set_default_properties");
                return 1;
            }
            printf("default properties: %s\n", argv[i] + 6);
        }
    }
    if (n < 1 || n > 64)
        return 2;
    if (!strcmp(kind, "engine")) {
        ENGINE *e = engine(1);
        if (e == NULL)
            return 1;
        ENGINE_ctrl_cmd_string(e, "PIN", PIN, 0);
        k = load(e, uri, NULL, NULL);
    } else {
        if (!load_tpm2())
            return 1;
        k = store_load(uri);
    }
    if (k == NULL) {
        errs("load");
        return 1;
    }
    if (rand_default &&
        !RAND_set_DRBG_type(NULL, "CTR-DRBG", "provider=default", NULL, NULL)) {
        errs("RAND_set_DRBG_type");
        return 1;
    }
    sctx = SSL_CTX_new(TLS_server_method());
    {
        /* The client is another party: its own library context with only the
         * default provider, so that its signature checks never reach the TPM. */
        OSSL_LIB_CTX *clc = OSSL_LIB_CTX_new();
        if (clc == NULL || OSSL_PROVIDER_load(clc, "default") == NULL)
            return 1;
        cctx = SSL_CTX_new_ex(clc, NULL, TLS_client_method());
    }
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(sctx, 0);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 || SSL_CTX_use_PrivateKey(sctx, k) != 1 ||
        SSL_CTX_check_private_key(sctx) != 1 || SSL_CTX_load_verify_locations(cctx, ca, NULL) != 1) {
        errs("SSL_CTX setup");
        return 1;
    }
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    drbg = RAND_get0_primary(NULL);
    {
        EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
        printf("SHA256 from provider %s; ", md ? OSSL_PROVIDER_get0_name(EVP_MD_get0_provider(md)) : "?");
        EVP_MD_free(md);
    }
    printf("key %s from %s; primary DRBG %s from provider %s\n",
           EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "(legacy)",
           EVP_PKEY_get0_provider(k) ? OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(k)) : "engine",
           drbg ? EVP_RAND_get0_name(EVP_RAND_CTX_get0_rand(drbg)) : "?",
           drbg ? OSSL_PROVIDER_get0_name(EVP_RAND_get0_provider(EVP_RAND_CTX_get0_rand(drbg))) : "?");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%d threads x %d handshakes%s%s%s: %d OK, %d failed, %.2f s (%.0f/s)%s%s\n", n, per_thread,
           serialise ? " (serialised)" : "", rand_default ? " (DRBG from default)" : "",
           own_libctx ? " (OSSL_LIB_CTX, key and SSL_CTX per thread)" : "", ok_count, fail_count, secs,
           (ok_count + fail_count) / secs, first_error[0] ? "; first error: " : "", first_error);
    fflush(stdout);
    return fail_count != 0;
}

/* A copy of FILE in an anonymous file (memfd): its path, /proc/self/fd/N, loads as
 * a library of its own, with its own globals, next to FILE already loaded. */
static const char *anonymous_copy(const char *file, char *path, size_t n)
{
    FILE *in = fopen(file, "rb");
    int fd = memfd_create("hsm-probe-copy", MFD_CLOEXEC);
    char buf[65536];
    size_t got;
    if (in == NULL || fd < 0)
        return NULL;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        if (write(fd, buf, got) != (ssize_t)got)
            return NULL;
    fclose(in);
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return path;
}

/* engine-copy URI delete|move CERT CA: the key across an outage. While the token
 * is away, a second pkcs11 ENGINE from an anonymous copy of the engine library,
 * with MODULE_PATH an anonymous copy of the PKCS#11 module (fresh libp11 and
 * fresh module state in the same process), tries the key and is restarted
 * (ENGINE_finish, ENGINE_init: libp11 finalises its module) 200 times; once the
 * token is back, it opens the key, which signs and serves handshakes, also from
 * the SSL_CTX made before the outage. */
static const char *rss(void)
{
    static char line[128];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            break;
    if (f)
        fclose(f);
    line[strcspn(line, "\n")] = 0;
    return line + 6;
}

static int engine_copy(const char *uri, const char *mode, const char *cert, const char *ca)
{
    ENGINE *e = engine(1), *d;
    EVP_PKEY *k, *k2;
    char so[64], mod[64];
    int okd, i, ok;
    SSL_CTX *before;
    if (e == NULL)
        return 1;
    k = load_and_sign(e, uri);
    before = server_with(k, cert);
    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(cctx, ca, NULL);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    say("handshake before the outage%s", "", handshake(before));
    fixture("softhsm-outage", mode);
    say("token gone: sign with the open key%s", "", sign_verify(k));
    d = ENGINE_by_id("dynamic");
    okd = d != NULL && anonymous_copy(getenv("HSM_ENGINE_SO"), so, sizeof so) &&
          anonymous_copy(MODULE, mod, sizeof mod) && ENGINE_ctrl_cmd_string(d, "SO_PATH", so, 0) &&
          ENGINE_ctrl_cmd_string(d, "ID", "pkcs11", 0) && ENGINE_ctrl_cmd_string(d, "LIST_ADD", "0", 0) &&
          ENGINE_ctrl_cmd_string(d, "LOAD", NULL, 0) && ENGINE_ctrl_cmd_string(d, "MODULE_PATH", mod, 0) &&
          ENGINE_ctrl_cmd_string(d, "PIN", PIN, 0) && ENGINE_init(d);
    if (!okd)
        errs("copy");
    say("token gone: ENGINE from an anonymous copy, module from an anonymous copy%s", "", okd);
    if (!okd)
        return 1;
    for (i = 0, ok = 1; i < 200; i++) {
        k2 = load(d, uri, NULL, NULL);
        ok = ok && k2 == NULL;
        if (i == 0 || i == 199) {
            errs("token gone: ENGINE_load_private_key through the copy");
            printf("    rss after %d tries: %s\n", i + 1, rss());
        }
        ERR_clear_error();
        ok = ok && ENGINE_finish(d) && ENGINE_init(d);
    }
    say("token gone: 200 times load (fails), ENGINE_finish, ENGINE_init%s", "", ok);
    fixture("softhsm-restore", NULL);
    say("token back: sign with the key opened before the outage%s", "", sign_verify(k));
    k2 = load(d, uri, NULL, NULL);
    say("copy: ENGINE_load_private_key%s", "", k2 != NULL);
    if (k2 == NULL)
        return 1;
    say("copy: sign%s", "", sign_verify(k2));
    say("copy: handshake, new SSL_CTX%s", "", handshake(server_with(k2, cert)));
    ok = SSL_CTX_use_PrivateKey(before, k2);
    for (i = 0; ok && i < 20; i++)
        ok = handshake(before);
    say("copy: the SSL_CTX from before with the new key, 20 handshakes%s", "", ok);
    say("old key still fails%s", "", !sign_verify(k));
    return 0;
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(m, "engine-info"))
        return engine_info();
    if (!strcmp(m, "engine-pin") && argc == 4)
        return engine_pin(argv[2], argv[3]);
    if (!strcmp(m, "engine-fork") && argc == 3)
        return engine_fork(argv[2]);
    if (!strcmp(m, "engine-outage") && argc == 4)
        return engine_outage(argv[2], argv[3]);
    if (!strcmp(m, "engine-copy") && argc == 6)
        return engine_copy(argv[2], argv[3], argv[4], argv[5]);
    if (!strcmp(m, "store-reinstance") && argc == 5)
        return store_reinstance(argv[2], argv[3], argv[4]);
    if (!strcmp(m, "store-outage") && argc == 3)
        return store_outage(argv[2]);
    if (!strcmp(m, "threads") && argc >= 8)
        return threads(argc, argv);
    fprintf(stderr, "usage: see the comment at the top of ci/hsm-probe.c\n");
    return 2;
}
