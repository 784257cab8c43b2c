/*
 * ngx_http_openssl_reload_module in the workers: a timer on the worker's own
 * event loop polls every server block's reloader (openssl_reload_server_poll:
 * one stat per file; a reload reads and parses there), first in init_process
 * (after nginx dropped privileges, so the worker reads the files as its user),
 * then each block every openssl_reload_interval of its own, and logs each
 * publish and, in the first worker, each new failure once, naming the file.
 * No thread: the worker stays a single-threaded process.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_openssl_reload_module.h"


static ngx_event_t  ngx_http_openssl_reload_timer;


/* Logs what changed since the last look: a publish (notice), a failure
 * with a reason not logged yet (error, naming the file). Only the first
 * worker logs: every worker reads the same files. */
static void
ngx_http_openssl_reload_look(ngx_cycle_t *cycle,
    ngx_http_openssl_reload_srv_conf_t *conf)
{
    char                   text[4096];
    size_t                 len;
    uint32_t               crc;
    openssl_reload_status  st;

    if (openssl_reload_server_status(conf->reloader, &st) != OPENSSL_RELOAD_OK) {
        return;
    }

    if (st.generation != conf->generation) {
        conf->generation = st.generation;
        if (ngx_worker == 0) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "openssl_reload: serving certificate serial %s "
                          "(generation %uL)", st.serial, st.generation);
        }
    }

    if (st.consecutive_failures == 0) {
        conf->logged = 0;
        return;
    }

    if (openssl_reload_server_reload_error(conf->reloader, text, sizeof(text),
                                           &len)
        != OPENSSL_RELOAD_OK)
    {
        return;
    }

    crc = ngx_crc32_long((u_char *) text, len) | 1;
    if (crc == conf->logged) {
        return;
    }

    conf->logged = crc;
    if (ngx_worker == 0) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "openssl_reload: %s; the certificate in service stays",
                      text);
    }
}


/* Polls each block whose interval has passed (every block at the start),
 * and returns how long until the next one is due. */
static ngx_msec_t
ngx_http_openssl_reload_each(ngx_cycle_t *cycle, ngx_uint_t start)
{
    ngx_msec_t                           every, now;
    ngx_msec_int_t                       left;
    ngx_uint_t                           s;
    ngx_http_conf_ctx_t                 *ctx;
    ngx_http_core_srv_conf_t           **cscfp;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_openssl_reload_srv_conf_t  *conf;

    every = 0;
    now = ngx_current_msec;
    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);
    if (cmcf == NULL) {
        return 0;
    }

    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        ctx = cscfp[s]->ctx;
        conf = ctx->srv_conf[ngx_http_openssl_reload_module.ctx_index];
        if (conf->reloader == NULL) {
            continue;
        }

        if (start || (ngx_msec_int_t) (now - conf->next) >= 0) {
            if (openssl_reload_server_poll(conf->reloader) != OPENSSL_RELOAD_OK
                && start)
            {
                ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "openssl_reload: %s",
                              ngx_http_openssl_reload_error());
            }

            ngx_http_openssl_reload_look(cycle, conf);
            conf->next = now + conf->interval;
        }

        left = (ngx_msec_int_t) (conf->next - now);
        if (left < 1) {
            left = 1;
        }

        if (every == 0 || (ngx_msec_t) left < every) {
            every = (ngx_msec_t) left;
        }
    }

    return every;
}


static void
ngx_http_openssl_reload_tick(ngx_event_t *ev)
{
    ngx_msec_t  every;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    every = ngx_http_openssl_reload_each((ngx_cycle_t *) ngx_cycle, 0);
    if (every) {
        ngx_add_timer(ev, every);
    }
}


ngx_int_t
ngx_http_openssl_reload_init_process(ngx_cycle_t *cycle)
{
    ngx_msec_t  every;

    /* Not in the cache manager and loader, which call it too. */
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    every = ngx_http_openssl_reload_each(cycle, 1);
    if (every == 0) {
        return NGX_OK;
    }

    ngx_http_openssl_reload_timer.handler = ngx_http_openssl_reload_tick;
    ngx_http_openssl_reload_timer.log = cycle->log;
    ngx_http_openssl_reload_timer.data = cycle;
    ngx_http_openssl_reload_timer.cancelable = 1;
    ngx_add_timer(&ngx_http_openssl_reload_timer, every);

    return NGX_OK;
}
