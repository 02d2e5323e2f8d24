/*
 * http.h - the operator's HTTP listener (NNG's supplemental HTTP server):
 * /healthz, /readyz and /metrics. Bound to 127.0.0.1 by default: it is for
 * the machine's own monitoring, not for the network.
 */
#ifndef HTTP_H
#define HTTP_H

#include "lg.h"
#include "web.h"

#include <stddef.h>
#include <stdint.h>

/* Renders the body for `path` into *body (malloc'd, the server frees it)
 * and sets *status. Runs on an NNG thread: it must be thread-safe. */
typedef int (*http_render_fn)(void *arg, const char *path, char **body,
                              size_t *len, uint16_t *status);

struct http;

/* addr is host:port. web: NULL, or the read-only web view to serve too
 * (web.h; it must outlive the listener). On failure err says why (e.g. the
 * port is in use). */
int http_open(const char *addr, http_render_fn render, void *arg,
              const struct web_ctx *web, struct http **out, char *err,
              size_t err_len) LG_MUST_CHECK;
void http_close(struct http *h); /* accepts NULL */

#endif /* HTTP_H */
