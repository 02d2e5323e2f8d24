/*
 * test_client.c - the client library against the API server (api.c): calls
 * and replies, refusal of malformed requests by the server, per-connection
 * throttling, and the errors a client sees when the node is unreachable or
 * silent.
 */
/* cmocka.h needs these headers first. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "api.h"
#include "client.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct server {
    char url[96];
    struct api *api;
    atomic_int handled;
    bool silent; /* never answer (clients time out) */
};

/* Answers status with a height, everything else NOT_FOUND. */
static void handle(void *arg, struct api_call *call, Tc__ClientRequest *req)
{
    struct server *s = arg;
    atomic_fetch_add(&s->handled, 1);
    if (s->silent) {
        tc__client_request__free_unpacked(req, NULL);
        return;
    }
    if (req->req_case == TC__CLIENT_REQUEST__REQ_STATUS) {
        Tc__StatusReply st = TC__STATUS_REPLY__INIT;
        st.height = 42;
        Tc__ClientReply r = TC__CLIENT_REPLY__INIT;
        r.reply_case = TC__CLIENT_REPLY__REPLY_STATUS;
        r.status = &st;
        api_reply(call, &r);
    } else {
        api_reply_error(call, TC__REPLY_CODE__REPLY_NOT_FOUND, "nothing");
    }
    tc__client_request__free_unpacked(req, NULL);
}

static void server_open(struct server *s, uint32_t rate)
{
    snprintf(s->url, sizeof(s->url), "ipc:///tmp/tc-client-%d-%d",
             (int)getpid(), rand());
    struct api_params p = {.url = s->url,
                           .n_contexts = 4,
                           .recv_max_bytes = 4096,
                           .reqs_per_s = rate,
                           .handle = handle,
                           .arg = s};
    char err[256];
    assert_int_equal(api_open(&p, &s->api, err, sizeof(err)), LG_OK);
}

static void test_client_calls_and_gets_replies(void **state)
{
    (void)state;
    struct server s = {.silent = false};
    server_open(&s, 1000);
    struct client *c = NULL;
    assert_int_equal(client_open(s.url, 2000, &c), LG_OK);
    Tc__ClientReply *r = NULL;
    assert_int_equal(client_status(c, &r), LG_OK);
    assert_int_equal(r->code, TC__REPLY_CODE__REPLY_OK);
    assert_non_null(r->status);
    assert_int_equal(r->status->height, 42);
    client_reply_free(r);
    assert_int_equal(client_get_block(c, 5, &r), LG_OK);
    assert_int_equal(r->code, TC__REPLY_CODE__REPLY_NOT_FOUND);
    assert_string_equal(r->error, "nothing");
    client_reply_free(r);
    client_close(c);
    api_close(s.api);
}

static void test_client_malformed_requests_never_reach_the_node(void **state)
{
    (void)state;
    struct server s = {.silent = false};
    server_open(&s, 1000);
    struct client *c = NULL;
    assert_int_equal(client_open(s.url, 2000, &c), LG_OK);
    const uint8_t garbage[] = {0xff, 0xff, 0x01, 0x02};
    const uint8_t unknown[] = {0xf8, 0x06, 0x01}; /* field 111 */
    const uint8_t *inputs[] = {garbage, unknown, garbage};
    size_t lens[] = {sizeof(garbage), sizeof(unknown), 0};
    for (int i = 0; i < 3; i++) {
        uint8_t *out = NULL;
        size_t olen = 0;
        assert_int_equal(client_call_raw(c, inputs[i], lens[i], &out, &olen),
                         LG_OK);
        Tc__ClientReply *r = tc__client_reply__unpack(NULL, olen, out);
        assert_non_null(r);
        assert_int_equal(r->code, TC__REPLY_CODE__REPLY_BAD_REQUEST);
        client_reply_free(r);
        free(out);
    }
    assert_int_equal(atomic_load(&s.handled), 0);
    struct api_stats st;
    api_get_stats(s.api, &st);
    assert_int_equal(st.bad_requests, 3);
    /* Over the server's size cap: dropped with the connection. */
    uint8_t *big = calloc(1, 8192);
    struct client *c2 = NULL;
    assert_int_equal(client_open(s.url, 500, &c2), LG_OK);
    uint8_t *out = NULL;
    size_t olen = 0;
    assert_int_not_equal(client_call_raw(c2, big, 8192, &out, &olen), LG_OK);
    free(big);
    client_close(c2);
    /* ...and the server still serves. */
    Tc__ClientReply *r = NULL;
    assert_int_equal(client_status(c, &r), LG_OK);
    assert_int_equal(r->status->height, 42);
    client_reply_free(r);
    client_close(c);
    api_close(s.api);
}

static void test_client_busy_when_throttled(void **state)
{
    (void)state;
    struct server s = {.silent = false};
    server_open(&s, 3);
    struct client *c = NULL;
    assert_int_equal(client_open(s.url, 2000, &c), LG_OK);
    int busy = 0;
    for (int i = 0; i < 10; i++) {
        Tc__ClientReply *r = NULL;
        assert_int_equal(client_status(c, &r), LG_OK);
        busy += r->code == TC__REPLY_CODE__REPLY_BUSY;
        client_reply_free(r);
    }
    assert_true(busy >= 5);
    client_close(c);
    api_close(s.api);
}

static void test_client_unreachable_and_silent_nodes(void **state)
{
    (void)state;
    struct client *c = NULL;
    assert_int_equal(client_open("ipc:///tmp/tc-client-nobody-here", 500, &c),
                     LG_ENET);
    assert_null(c);
    assert_int_equal(client_open("not a url", 500, &c), LG_ENET);
    struct server s = {.silent = true};
    server_open(&s, 1000);
    assert_int_equal(client_open(s.url, 300, &c), LG_OK);
    Tc__ClientReply *r = NULL;
    assert_int_equal(client_status(c, &r), LG_ETIMEDOUT);
    assert_null(r);
    assert_non_null(strstr(client_error(c), "no reply"));
    client_close(c);
    api_close(s.api);
    assert_string_equal(client_code_text(TC__REPLY_CODE__REPLY_BUSY),
                        "the node is busy, retry later");
}

int main(void)
{
    srand((unsigned)time(NULL));
    lg_log_set_level(LG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_calls_and_gets_replies),
        cmocka_unit_test(test_client_malformed_requests_never_reach_the_node),
        cmocka_unit_test(test_client_busy_when_throttled),
        cmocka_unit_test(test_client_unreachable_and_silent_nodes),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
