/*
 * ngx_http_openssl_reload_module: a server block's own ssl_certificate and
 * ssl_certificate_key pairs, ssl_client_certificate and ssl_crl, reloaded by
 * every worker within openssl_reload_interval, without `nginx -s reload`.
 *
 *   server {
 *       listen 443 ssl http2;
 *       ssl_certificate     /etc/tls/rsa.crt;   ssl_certificate_key /etc/tls/rsa.key;
 *       ssl_certificate     /etc/tls/ecdsa.crt; ssl_certificate_key /etc/tls/ecdsa.key;
 *       openssl_reload on;
 *       openssl_reload_interval 1s;
 *   }
 *
 * The fork rules of docs/c-api.md ("Forking servers"): the master, parsing
 * the configuration (postconfiguration, also for `nginx -t`), builds one
 * reloader per server block with deferred polling, which loads and checks
 * every file and fails naming a bad one, and attaches it to the block's
 * SSL_CTX; each worker starts polling in init_process, after it dropped
 * privileges, and logs failed reloads from a timer on its own event loop.
 * `nginx -s reload` builds new reloaders for the new cycle's contexts; the
 * old cycle's are freed with its pool.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>

#include "ngx_http_openssl_reload_module.h"


static void *ngx_http_openssl_reload_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_openssl_reload_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_openssl_reload_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_openssl_reload_commands[] = {

    { ngx_string("openssl_reload"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_openssl_reload_srv_conf_t, enable),
      NULL },

    { ngx_string("openssl_reload_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_openssl_reload_srv_conf_t, interval),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_openssl_reload_module_ctx = {
    NULL,                                      /* preconfiguration */
    ngx_http_openssl_reload_init,              /* postconfiguration */
    NULL,                                      /* create main configuration */
    NULL,                                      /* init main configuration */
    ngx_http_openssl_reload_create_srv_conf,   /* create server configuration */
    ngx_http_openssl_reload_merge_srv_conf,    /* merge server configuration */
    NULL,                                      /* create location configuration */
    NULL                                       /* merge location configuration */
};


ngx_module_t  ngx_http_openssl_reload_module = {
    NGX_MODULE_V1,
    &ngx_http_openssl_reload_module_ctx,       /* module context */
    ngx_http_openssl_reload_commands,          /* module directives */
    NGX_HTTP_MODULE,                           /* module type */
    NULL,                                      /* init master */
    NULL,                                      /* init module */
    ngx_http_openssl_reload_init_process,      /* init process */
    NULL,                                      /* init thread */
    NULL,                                      /* exit thread */
    NULL,                                      /* exit process */
    NULL,                                      /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_openssl_reload_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_openssl_reload_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_openssl_reload_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->interval = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_openssl_reload_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_openssl_reload_srv_conf_t  *prev = parent;
    ngx_http_openssl_reload_srv_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_msec_value(conf->interval, prev->interval, 1000);

    if (conf->interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "openssl_reload_interval must be at least 1ms");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* The library's text for the calling thread's last failure. */
const char *
ngx_http_openssl_reload_error(void)
{
    static char  text[4096];
    size_t       len;

    if (openssl_reload_last_error(text, sizeof(text), &len)
        != OPENSSL_RELOAD_OK)
    {
        ngx_cpystrn((u_char *) text, (u_char *) "(no error text)", sizeof(text));
    }

    return text;
}


static void
ngx_http_openssl_reload_cleanup(void *data)
{
    ngx_http_openssl_reload_srv_conf_t  *conf = data;

    openssl_reload_server_free(conf->reloader);
    conf->reloader = NULL;

    if (conf->password.len) {
        OPENSSL_cleanse(conf->password.data, conf->password.len);
    }
}


/* Builds the block's reloader (loading and checking every file) and
 * attaches it to the block's SSL_CTX. */
static ngx_int_t
ngx_http_openssl_reload_setup(ngx_conf_t *cf, ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_openssl_reload_srv_conf_t *conf)
{
    ngx_pool_cleanup_t             *cln;
    openssl_reload_server_builder  *builder;

    if (sscf->ssl.ctx == NULL || sscf->certificates == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "openssl_reload: a server with \"openssl_reload "
                           "on\" needs ssl_certificate and "
                           "ssl_certificate_key");
        return NGX_ERROR;
    }

    if (openssl_reload_server_builder_new(&builder) != OPENSSL_RELOAD_OK) {
        goto failed;
    }

    /*
     * A worker makes and handshakes its connections on one thread, so the
     * block's own context may carry the certificates in service: then the
     * certificate callback has nothing to install on each connection.
     */
    if (openssl_reload_server_builder_set_defer_polling(builder, 1)
            != OPENSSL_RELOAD_OK
        || openssl_reload_server_builder_set_update_attached_contexts(builder,
               1) != OPENSSL_RELOAD_OK
        || openssl_reload_server_builder_set_poll_interval_ms(builder,
               conf->interval) != OPENSSL_RELOAD_OK
        || ngx_http_openssl_reload_pairs(cf, sscf, builder) != NGX_OK
        || ngx_http_openssl_reload_trust(cf, sscf, builder) != NGX_OK
        || ngx_http_openssl_reload_password(cf, sscf, conf, builder) != NGX_OK)
    {
        openssl_reload_server_builder_free(builder);
        goto failed;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        openssl_reload_server_builder_free(builder);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_openssl_reload_cleanup;
    cln->data = conf;

    ngx_http_openssl_reload_stapling(sscf, conf);

    /* The builder is consumed, whatever the result. */
    if (openssl_reload_server_builder_build(builder, &conf->reloader)
        != OPENSSL_RELOAD_OK
        || openssl_reload_server_attach(conf->reloader, sscf->ssl.ctx)
           != OPENSSL_RELOAD_OK)
    {
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "openssl_reload: %s",
                       ngx_http_openssl_reload_error());
    return NGX_ERROR;
}


static ngx_int_t
ngx_http_openssl_reload_init(ngx_conf_t *cf)
{
    ngx_uint_t                           s;
    ngx_http_conf_ctx_t                 *ctx;
    ngx_http_ssl_srv_conf_t             *sscf;
    ngx_http_core_srv_conf_t           **cscfp;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_openssl_reload_srv_conf_t  *conf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        ctx = cscfp[s]->ctx;
        conf = ctx->srv_conf[ngx_http_openssl_reload_module.ctx_index];
        sscf = ctx->srv_conf[ngx_http_ssl_module.ctx_index];

        if (!conf->enable) {
            continue;
        }

        if (ngx_http_openssl_reload_setup(cf, sscf, conf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
