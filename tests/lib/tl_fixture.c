/* tl_fixture.c - see tl_fixture.h. */
#include "tl_fixture.h"

#include "crypto.h"
#include "lg.h"
#include "tx.pb-c.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tl_fixture_init(struct tl_fixture *f, const char *chain_name)
{
    char json[4096], hex[65], err[256];
    size_t at = 0;
    uint8_t seed[32];

    for (int i = 0; i < TL_REPLICAS; i++) {
        memset(seed, 0x10 + i, sizeof(seed));
        crypto_sign_seed_keypair(f->replica_pk[i], f->replica_sk[i], seed);
    }
    memset(seed, 0x40, sizeof(seed));
    crypto_sign_seed_keypair(f->sponsor_pk, f->sponsor_sk, seed);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "{\"chain_name\":\"%s\",\"created\":"
                           "\"2026-11-21T00:00:00Z\",\"replicas\":[",
                           chain_name);
    for (int i = 0; i < TL_REPLICAS; i++) {
        lg_hex(f->replica_pk[i], 32, hex);
        at += (size_t)snprintf(json + at, sizeof(json) - at,
                               "%s{\"id\":%d,\"name\":\"node%d\",\"public_"
                               "key\":\"%s\",\"peer_url\":\"tcp://"
                               "127.0.0.1:%d\"}",
                               i ? "," : "", i, i, hex, 27000 + i);
    }
    lg_hex(f->sponsor_pk, 32, hex);
    at += (size_t)snprintf(json + at, sizeof(json) - at,
                           "],\"members\":[{\"name\":\"sponsor\",\"role\":"
                           "\"sponsor\",\"public_key\":\"%s\"}]}",
                           hex);
    f->g = calloc(1, sizeof(*f->g));
    LG_ASSERT(f->g != NULL);
    LG_ASSERT(genesis_parse((const unsigned char *)json, at, f->g, err,
                            sizeof(err)) == LG_OK);
}

uint8_t *tl_fixture_tx(const struct tl_fixture *f, uint64_t nonce, size_t *len)
{
    Tc__Tx tx = TC__TX__INIT;
    Tc__ProtocolRegister pr = TC__PROTOCOL_REGISTER__INIT;
    Tc__Outcome oc = TC__OUTCOME__INIT, *ocs[1] = {&oc};
    Tc__SignedTx st = TC__SIGNED_TX__INIT;
    char trial[32];
    uint8_t sig[64];

    snprintf(trial, sizeof(trial), "NCT%08llu", (unsigned long long)nonce);
    pr.trial_id = trial;
    pr.brief_title = (char *)(uintptr_t) "A trial";
    oc.id = (char *)(uintptr_t) "P1";
    oc.type = TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    oc.measure = (char *)(uintptr_t) "Mortality";
    oc.time_frame = (char *)(uintptr_t) "6 months";
    pr.n_outcomes = 1;
    pr.outcomes = ocs;
    tx.chain_id = (ProtobufCBinaryData){32, f->g->chain_id};
    tx.signer = (ProtobufCBinaryData){32, (uint8_t *)f->sponsor_pk};
    tx.nonce = nonce;
    tx.client_time_ms = 5000;
    tx.body_case = TC__TX__BODY_PROTOCOL_REGISTER;
    tx.protocol_register = &pr;
    size_t blen = tc__tx__get_packed_size(&tx);
    uint8_t *body = malloc(blen);
    LG_ASSERT(body != NULL);
    tc__tx__pack(&tx, body);
    crypto_sign_tagged(TAG_TX, f->sponsor_sk, body, blen, sig);
    st.body = (ProtobufCBinaryData){blen, body};
    st.sig = (ProtobufCBinaryData){64, sig};
    *len = tc__signed_tx__get_packed_size(&st);
    uint8_t *out = malloc(*len);
    LG_ASSERT(out != NULL);
    tc__signed_tx__pack(&st, out);
    free(body);
    return out;
}
