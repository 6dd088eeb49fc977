/* standalone: replay fuzz corpora without libFuzzer.
 *
 * Linked with one fuzz_<name>.c instead of -fsanitize=fuzzer, this main()
 * feeds every file named on the command line (directories recursively, in
 * sorted order) to LLVMFuzzerTestOneInput, after LLVMFuzzerInitialize when
 * the target defines one. So every target builds with plain gcc and `make
 * check` replays its corpus, under valgrind or ASan when wanted. A missing
 * path, an unreadable file or an empty corpus fail the run: a corpus that
 * silently vanished would otherwise pass forever.
 *
 * Not a fuzzer: it never mutates anything. t/fuzz/build.sh makes real ones. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* weak: a target without one links, and the pointer is then NULL */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Run one file. Each input gets a heap block of exactly its size (not a pool
 * slice), as libFuzzer does, so ASan and valgrind see a read past its end. */
static int fuzz_run_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "standalone: cannot read %s\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL || (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size)) {
        fprintf(stderr, "standalone: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)size);
    free(buf);
    (*count)++;
    return 0;
}

static int fuzz_run_path(const char *path, unsigned long *count)
{
    struct stat st;
    struct dirent **names;
    int n, i, rc = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "standalone: %s: no such corpus\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return fuzz_run_file(path, count);
    }
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "standalone: cannot list %s\n", path);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (rc == 0 && names[i]->d_name[0] != '.') {
            size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
            char *sub = malloc(len);
            if (sub == NULL) {
                rc = -1;
            }
            else {
                snprintf(sub, len, "%s/%s", path, names[i]->d_name);
                rc = fuzz_run_path(sub, count);
                free(sub);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned long count = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (i = 1; i < argc; i++) {
        if (fuzz_run_path(argv[i], &count) != 0) {
            return 1;
        }
    }
    if (count == 0) {
        fprintf(stderr, "standalone: no inputs in the corpus\n");
        return 1;
    }
    fprintf(stderr, "%s: %lu inputs replayed\n", argv[0], count);
    return 0;
}
