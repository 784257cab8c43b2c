/*
 * What the two halves of ngx_http_openssl_reload_module share: the server
 * block's configuration, built in the master (ngx_http_openssl_reload_module.c)
 * and polled in the workers (ngx_http_openssl_reload_worker.c).
 */

#ifndef _NGX_HTTP_OPENSSL_RELOAD_MODULE_H_INCLUDED_
#define _NGX_HTTP_OPENSSL_RELOAD_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl_reload.h>


typedef struct {
    ngx_flag_t                enable;
    ngx_msec_t                interval;
    /* Built in the master for this cycle; NULL when off. */
    openssl_reload_server    *reloader;
    /* The first line of ssl_password_file, kept for encrypted keys that
     * rotate (nginx wipes its own copy after loading). */
    ngx_str_t                 password;
    /* With ssl_stapling: the block's context and nginx's status callback
     * (ngx_http_openssl_reload_files.c, ngx_http_openssl_reload_stapling). */
    SSL_CTX                  *ctx;
    int                     (*status)(ngx_ssl_conn_t *ssl_conn, void *data);
    void                     *status_arg;
    /* Per worker: what the log timer has seen, and when the block is
     * polled next (ngx_current_msec). */
    uint64_t                  generation;
    uint32_t                  logged;
    ngx_msec_t                next;
} ngx_http_openssl_reload_srv_conf_t;


extern ngx_module_t  ngx_http_openssl_reload_module;

/* The library's text for the calling thread's last failure. */
const char *ngx_http_openssl_reload_error(void);

/* At configuration time (ngx_http_openssl_reload_files.c): the block's
 * certificate pairs, its client CA and CRL, its key passphrase, set on the
 * builder; NGX_ERROR after logging why. */
ngx_int_t ngx_http_openssl_reload_pairs(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, openssl_reload_server_builder *builder);
ngx_int_t ngx_http_openssl_reload_trust(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, openssl_reload_server_builder *builder);
ngx_int_t ngx_http_openssl_reload_password(ngx_conf_t *cf,
    ngx_http_ssl_srv_conf_t *sscf, ngx_http_openssl_reload_srv_conf_t *conf,
    openssl_reload_server_builder *builder);
/* Before attach: nginx's ssl_stapling keeps stapling the certificates the
 * module serves unchanged. */
void ngx_http_openssl_reload_stapling(ngx_http_ssl_srv_conf_t *sscf,
    ngx_http_openssl_reload_srv_conf_t *conf);

/* In each worker (ngx_http_openssl_reload_worker.c): start polling, and log
 * what changes. */
ngx_int_t ngx_http_openssl_reload_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_OPENSSL_RELOAD_MODULE_H_INCLUDED_ */
