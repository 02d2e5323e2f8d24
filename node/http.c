/*
 * http.c - /healthz, /readyz, /metrics on NNG's HTTP server.
 */
#include "http.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdlib.h>
#include <string.h>

struct http {
    nng_http_server *server;
    nng_url *url;
    http_render_fn render;
    void *arg;
};

static const char *const http_paths[] = {"/healthz", "/readyz", "/metrics"};

static void http_handle(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    nng_http_req *req = nng_aio_get_input(aio, 0);
    struct http *s = nng_http_handler_get_data(h);
    char *body = NULL;
    size_t len = 0;
    uint16_t status = 500;
    nng_http_res *res = NULL;
    const char *uri = nng_http_req_get_uri(req);
    char path[32];
    size_t n = strcspn(uri, "?");
    snprintf(path, sizeof(path), "%.*s", (int)(n < 31 ? n : 31), uri);
    if (s->render(s->arg, path, &body, &len, &status) != LG_OK ||
        nng_http_res_alloc(&res) != 0) {
        free(body);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    (void)nng_http_res_set_status(res, status);
    const char *type = strcmp(path, "/metrics") == 0
                           ? "text/plain; version=0.0.4; charset=utf-8"
                           : "text/plain; charset=utf-8";
    (void)nng_http_res_set_header(res, "Content-Type", type);
    if (nng_http_res_copy_data(res, body, len) != 0) {
        free(body);
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    free(body);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

int http_open(const char *addr, http_render_fn render, void *arg,
              const struct web_ctx *web, struct http **out, char *err,
              size_t err_len)
{
    struct http *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, err_len, "out of memory for the HTTP listener.");
        return LG_ENOMEM;
    }
    s->render = render;
    s->arg = arg;
    char urlbuf[300];
    snprintf(urlbuf, sizeof(urlbuf), "http://%s", addr);
    int rv = nng_url_parse(&s->url, urlbuf);
    if (rv == 0)
        rv = nng_http_server_hold(&s->server, s->url);
    for (size_t i = 0; rv == 0 && i < sizeof(http_paths) / sizeof(*http_paths);
         i++) {
        nng_http_handler *h;
        rv = nng_http_handler_alloc(&h, http_paths[i], http_handle);
        if (rv != 0)
            break;
        (void)nng_http_handler_set_data(h, s, NULL);
        rv = nng_http_server_add_handler(s->server, h);
        if (rv != 0)
            nng_http_handler_free(h);
    }
    if (rv == 0 && web != NULL && web_register(s->server, web) != LG_OK)
        rv = NNG_EADDRINUSE;
    if (rv == 0)
        rv = nng_http_server_start(s->server);
    if (rv != 0) {
        snprintf(err, err_len, "cannot serve HTTP on %s: %s.", addr,
                 nng_strerror(rv));
        http_close(s);
        return LG_ENET;
    }
    *out = s;
    return LG_OK;
}

void http_close(struct http *s)
{
    if (s == NULL)
        return;
    if (s->server != NULL) {
        nng_http_server_stop(s->server);
        nng_http_server_release(s->server);
    }
    if (s->url != NULL)
        nng_url_free(s->url);
    free(s);
}
