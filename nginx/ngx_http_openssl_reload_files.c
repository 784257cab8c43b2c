/*
 * ngx_http_openssl_reload_module, at configuration time: a server block's own
 * files, as nginx's ssl module parsed them, made into the settings of the
 * block's reloader (paths resolved against nginx's prefix, as nginx does);
 * and nginx's ssl_stapling bridged to the certificates the reloader serves.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_openssl_reload_module.h"


/* A NUL-terminated full path for a file name of the configuration. */
static char *
ngx_http_openssl_reload_path(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_str_t  full;
    u_char    *path;

    full = *name;

    if (ngx_conf_full_name(cf->cycle, &full, 1) != NGX_OK) {
        return NULL;
    }

    path = ngx_pnalloc(cf->pool, full.len + 1);
    if (path == NULL) {
        return NULL;
    }

    ngx_cpystrn(path, full.data, full.len + 1);

    return (char *) path;
}


/*
 * A key of ssl_certificate_key: a full path, or for nginx's
 * "engine:pkcs11:URI" the pkcs11: URI, which the library opens itself (once
 * per process: in each worker, and again after a token outage). NULL, logged,
 * for a key of another engine.
 */
static char *
ngx_http_openssl_reload_key(ngx_conf_t *cf, ngx_str_t *key)
{
    u_char      *uri;
    size_t       len;
    static char  pkcs11[] = "engine:pkcs11:";

    if (key->len < 7 || ngx_strncmp(key->data, "engine:", 7) != 0) {
        return ngx_http_openssl_reload_path(cf, key);
    }

    len = sizeof(pkcs11) - 1;

    if (key->len <= len || ngx_strncmp(key->data, pkcs11, len) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "openssl_reload: \"%V\": of engine keys, "
                           "openssl_reload takes \"engine:pkcs11:\" followed "
                           "by a pkcs11: URI", key);
        return NULL;
    }

    uri = ngx_pnalloc(cf->pool, key->len - len + 1);
    if (uri == NULL) {
        return NULL;
    }

    ngx_cpystrn(uri, key->data + len, key->len - len + 1);

    return (char *) uri;
}


static int
ngx_http_openssl_reload_passphrase(void *userdata, char *buf, size_t len,
    size_t *out_len)
{
    ngx_http_openssl_reload_srv_conf_t  *conf = userdata;

    if (conf->password.len > len) {
        return 1;
    }

    ngx_memcpy(buf, conf->password.data, conf->password.len);
    *out_len = conf->password.len;

    return 0;
}


/* The block's certificate pairs: the first is the default site, the others
 * (an ECDSA pair next to an RSA one, or other names) follow. */
ngx_int_t
ngx_http_openssl_reload_pairs(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    openssl_reload_server_builder *builder)
{
    char                  *cert, *key;
    ngx_str_t             *certs, *keys;
    ngx_uint_t             i;
    openssl_reload_result  rc;

    if (sscf->certificate_values != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "openssl_reload: an ssl_certificate or "
                           "ssl_certificate_key with variables is loaded by "
                           "nginx per connection; openssl_reload needs file "
                           "names without variables");
        return NGX_ERROR;
    }

    certs = sscf->certificates->elts;
    keys = sscf->certificate_keys->elts;

    for (i = 0; i < sscf->certificates->nelts; i++) {

        if (ngx_strncmp(certs[i].data, "data:", 5) == 0
            || ngx_strncmp(keys[i].data, "data:", 5) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "openssl_reload: \"%V\" is not a file; "
                               "openssl_reload reloads files", &certs[i]);
            return NGX_ERROR;
        }

        cert = ngx_http_openssl_reload_path(cf, &certs[i]);
        key = ngx_http_openssl_reload_key(cf, &keys[i]);
        if (cert == NULL || key == NULL) {
            return NGX_ERROR;
        }

        rc = (i == 0)
             ? openssl_reload_server_builder_set_identity(builder, cert, key)
             : openssl_reload_server_builder_add_site(builder, cert, key);
        if (rc != OPENSSL_RELOAD_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "openssl_reload: %s",
                               ngx_http_openssl_reload_error());
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* ssl_client_certificate and ssl_crl, when clients are verified against a
 * CA (ssl_verify_client on or optional; optional_no_ca stays nginx's). */
ngx_int_t
ngx_http_openssl_reload_trust(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    openssl_reload_server_builder *builder)
{
    char      *path;
    uint32_t   auth;

    if ((sscf->verify != 1 && sscf->verify != 2)
        || sscf->client_certificate.len == 0)
    {
        return NGX_OK;
    }

    auth = (sscf->verify == 1) ? OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED
                               : OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL;
    path = ngx_http_openssl_reload_path(cf, &sscf->client_certificate);
    if (path == NULL
        || openssl_reload_server_builder_set_client_ca(builder, path, auth)
           != OPENSSL_RELOAD_OK)
    {
        return NGX_ERROR;
    }

    if (sscf->crl.len == 0) {
        return NGX_OK;
    }

    /* nginx checks the whole chain (X509_V_FLAG_CRL_CHECK_ALL). */
    path = ngx_http_openssl_reload_path(cf, &sscf->crl);
    if (path == NULL
        || openssl_reload_server_builder_set_crl(builder, path,
                                                 OPENSSL_RELOAD_CRL_CHECK_CHAIN)
           != OPENSSL_RELOAD_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The first line of ssl_password_file, copied before nginx wipes it. */
ngx_int_t
ngx_http_openssl_reload_password(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_openssl_reload_srv_conf_t *conf,
    openssl_reload_server_builder *builder)
{
    ngx_str_t  *pwd;

    if (sscf->passwords == NULL || sscf->passwords->nelts == 0) {
        return NGX_OK;
    }

    pwd = sscf->passwords->elts;
    conf->password.data = ngx_pnalloc(cf->pool, pwd[0].len);
    if (conf->password.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(conf->password.data, pwd[0].data, pwd[0].len);
    conf->password.len = pwd[0].len;

    if (openssl_reload_server_builder_set_passphrase_callback(builder,
            ngx_http_openssl_reload_passphrase, conf)
        != OPENSSL_RELOAD_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * nginx's OCSP status callback (ssl_stapling) finds the staple in the ex_data
 * (ngx_ssl_stapling_index) of the SSL's certificate, the X509 object nginx
 * loaded. The reloader serves its own copy of each certificate, which the
 * library's status callback hands to nginx's: when that copy is a certificate
 * nginx loaded for the block (the file is unchanged, or back to it), it gets
 * the pointer to nginx's staple of that certificate first. A certificate the
 * module changed matches none and gets no staple from nginx.
 */
static int
ngx_http_openssl_reload_status(ngx_ssl_conn_t *ssl_conn, void *data)
{
    X509                                *cert, *own;
    ngx_http_openssl_reload_srv_conf_t  *conf = data;

    cert = SSL_get_certificate(ssl_conn);

    if (cert != NULL
        && X509_get_ex_data(cert, ngx_ssl_stapling_index) == NULL)
    {
        for (own = SSL_CTX_get_ex_data(conf->ctx, ngx_ssl_certificate_index);
             own != NULL;
             own = X509_get_ex_data(own, ngx_ssl_next_certificate_index))
        {
            if (X509_cmp(own, cert) == 0) {
                X509_set_ex_data(cert, ngx_ssl_stapling_index,
                                 X509_get_ex_data(own, ngx_ssl_stapling_index));
                break;
            }
        }
    }

    return conf->status(ssl_conn, conf->status_arg);
}


/* Wraps the status callback ngx_ssl_stapling set on the block's context; the
 * library's attach then chains ours, with conf as its argument. */
void
ngx_http_openssl_reload_stapling(ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_openssl_reload_srv_conf_t *conf)
{
    conf->status = NULL;

    if (!sscf->stapling) {
        return;
    }

    SSL_CTX_get_tlsext_status_cb(sscf->ssl.ctx, &conf->status);
    SSL_CTX_get_tlsext_status_arg(sscf->ssl.ctx, &conf->status_arg);

    if (conf->status == NULL) {
        return;
    }

    conf->ctx = sscf->ssl.ctx;
    SSL_CTX_set_tlsext_status_cb(sscf->ssl.ctx, ngx_http_openssl_reload_status);
    SSL_CTX_set_tlsext_status_arg(sscf->ssl.ctx, conf);
}
