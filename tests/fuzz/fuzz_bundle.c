/*
 * fuzz_bundle.c - the plaintext of a peer frame (node/net.c): a bundle of
 * length-prefixed parts. Any input either checks as whole, non-empty parts
 * that end exactly at its end, or is refused; a frame sealed around it
 * opens to the same bytes.
 */
#include "crypto.h"
#include "net.h"

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static uint8_t key[32];
    if (!ready) {
        LG_ASSERT(crypto_setup() == LG_OK);
        memset(key, 0x22, sizeof(key));
        ready = true;
    }
    size_t parts = 0;
    if (net_bundle_check(data, size, &parts) == LG_OK) {
        /* Walk it as the receiver does: every part inside, none empty. */
        size_t pos = 0, k = 0;
        while (pos < size) {
            LG_ASSERT(size - pos >= NET_PART_HDR);
            size_t len = ((size_t)data[pos] << 24) |
                         ((size_t)data[pos + 1] << 16) |
                         ((size_t)data[pos + 2] << 8) | (size_t)data[pos + 3];
            LG_ASSERT(len > 0 && len <= size - pos - NET_PART_HDR);
            uint8_t hdr[NET_PART_HDR];
            net_part_header(hdr, len);
            LG_ASSERT(memcmp(hdr, data + pos, NET_PART_HDR) == 0);
            pos += NET_PART_HDR + len;
            k++;
        }
        LG_ASSERT(k == parts && parts > 0);
    }
    uint8_t *frame = malloc(size + NET_OVERHEAD);
    uint8_t *pt = malloc(size > 0 ? size : 1);
    LG_ASSERT(frame != NULL && pt != NULL);
    net_frame_seal(key, 3, data, size, frame);
    uint32_t sender = 0;
    LG_ASSERT(net_frame_sender(frame, size + NET_OVERHEAD, &sender) == LG_OK);
    LG_ASSERT(sender == 3);
    LG_ASSERT(net_frame_open(key, frame, size + NET_OVERHEAD, pt) == LG_OK);
    LG_ASSERT(size == 0 || memcmp(pt, data, size) == 0);
    free(frame);
    free(pt);
    return 0;
}
