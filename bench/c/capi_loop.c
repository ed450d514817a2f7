/* Scenario 7's C row through the shared library, linked as a C program links it
 * (-lnamedmutex_capi, which picks libnamedmutex_capi.so): reads a count per line on stdin,
 * runs that many nm_wait_for_single_object + nm_release_mutex on one mutex, answers "done"
 * on stdout, and ends at the end of its input. The harness times each line's round trip;
 * the pipe costs tens of microseconds against the tens of milliseconds a line runs. */
#include <stdio.h>
#include <stdlib.h>
#include "namedmutex.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: capi_loop NAME\n");
        return 2;
    }
    NmHandle h = nm_create_mutex(argv[1], 0, NULL);
    if (!h) {
        fprintf(stderr, "capi_loop: nm_create_mutex failed: error %u\n", nm_get_last_error());
        return 1;
    }
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        unsigned long long n = strtoull(line, NULL, 10);
        for (unsigned long long i = 0; i < n; i++) {
            if (nm_wait_for_single_object(h, NM_INFINITE) != NM_WAIT_OBJECT_0 || !nm_release_mutex(h)) {
                fprintf(stderr, "capi_loop: wait or release failed: error %u\n", nm_get_last_error());
                return 1;
            }
        }
        printf("done\n");
        fflush(stdout);
    }
    nm_close_handle(h);
    return 0;
}
