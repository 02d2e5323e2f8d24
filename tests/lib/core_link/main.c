/* Links the consensus core with libc alone (make core-libc-only). Touches
 * the public API so that every object of libpbft.a is pulled in. */
#include "pbft.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    struct pbft_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    pbft_config_defaults(&cfg);
    if (pbft_quorum(4) != 3 || pbft_quorum(7) != 5 || pbft_faults(7) != 2) {
        fprintf(stderr, "quorum arithmetic is wrong\n");
        return 1;
    }
    /* No crypto functions: pbft_new must refuse, not crash. */
    if (pbft_new(&cfg, NULL) != NULL) {
        fprintf(stderr, "pbft_new accepted a config without crypto\n");
        return 1;
    }
    printf("%s\n", pbft_strerror(PBFT_EBADSIG));
    return 0;
}
