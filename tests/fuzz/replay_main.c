/*
 * replay_main.c - runs a libFuzzer target (LLVMFuzzerTestOneInput) over
 * every file in the directories (or files) given on the command line, so
 * gcc builds replay the corpus under ASan/UBSan in `make test`. Files run in
 * sorted order; a crash aborts through the sanitizer. Ends with
 *   TEST-RESULT: pass fuzz-replay-<dir> (N inputs)
 */
#include "lg.h"

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_INPUT_MAX (4u << 20)
#define REPLAY_FILES_MAX 100000

static int replay_file(const char *path, unsigned long *count)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rv = lg_read_file(path, REPLAY_INPUT_MAX, &buf, &len);
    if (rv != LG_OK) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, lg_strerror(rv));
        return -1;
    }
    /* An exact-size copy, so ASan sees reads past the input's end. */
    uint8_t *exact = malloc(len > 0 ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*count)++;
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int replay_dir(const char *dir, unsigned long *count)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", dir);
        return -1;
    }
    int rv = 0;
    for (int i = 0; i < n && i < REPLAY_FILES_MAX; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            replay_file(path, count) != 0)
            rv = -1;
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rv;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        unsigned long count = 0;
        const char *name = strrchr(argv[i], '/');
        char label[256];
        snprintf(label, sizeof(label), "%s",
                 name && name[1] ? name + 1 : argv[i]);
        int rv;
        if (stat(argv[i], &st) != 0)
            rv = -1;
        else if (S_ISDIR(st.st_mode))
            rv = replay_dir(argv[i], &count);
        else
            rv = replay_file(argv[i], &count);
        printf("TEST-RESULT: %s fuzz-replay-%s (%lu inputs)\n",
               rv == 0 ? "pass" : "fail", label, count);
        fflush(stdout);
        if (rv != 0)
            return 1;
    }
    return 0;
}
