/*
 * trace.c - one stable line per protocol event, e.g.
 *   [ 120] r1 > recv PREPARE v=3 n=17 from r2 -> prepared
 * The simulator prints them on failure; golden tests compare them.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

const char *trace_type(enum pbft_msg_type t)
{
    switch (t) {
    case PBFT_MSG_REQUEST:
        return "REQUEST";
    case PBFT_MSG_PREPREPARE:
        return "PRE-PREPARE";
    case PBFT_MSG_PREPARE:
        return "PREPARE";
    case PBFT_MSG_COMMIT:
        return "COMMIT";
    case PBFT_MSG_CHECKPOINT:
        return "CHECKPOINT";
    case PBFT_MSG_VIEW_CHANGE:
        return "VIEW-CHANGE";
    case PBFT_MSG_NEW_VIEW:
        return "NEW-VIEW";
    case PBFT_MSG_FETCH:
        return "FETCH";
    }
    return "?";
}

void trace_line(struct pbft *p, const char *fmt, ...)
{
    struct ready_buf *rb = &p->rb;
    size_t room = rb->trace_cap - rb->trace_used;
    char *line = rb->trace_text + rb->trace_used;
    va_list ap;
    int len, body;

    if (rb->n_trace == rb->cap_trace || room < 32)
        return; /* traces are best effort */
    len = snprintf(line, room, "[%4llu] r%u > ", (unsigned long long)p->now,
                   (unsigned)p->cfg.self);
    if (len < 0 || (size_t)len >= room)
        return;
    va_start(ap, fmt);
    body = vsnprintf(line + len, room - (size_t)len, fmt, ap);
    va_end(ap);
    if (body < 0)
        return;
    if ((size_t)len + (size_t)body >= room)
        body = (int)(room - (size_t)len - 1); /* truncated line */
    rb->trace[rb->n_trace].now_ms = p->now;
    rb->trace[rb->n_trace].line = line;
    rb->n_trace++;
    rb->trace_used += (size_t)len + (size_t)body + 1;
}

unsigned trace_client_tag(const uint8_t *client)
{
    unsigned x = 0;

    for (uint32_t i = 0; i < PBFT_KEY_SIZE; i++)
        x = (x * 31u + client[i]) & 0xffu;
    return x;
}
