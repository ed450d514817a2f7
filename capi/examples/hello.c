/* The README's C example: one instance at a time, told when the last one crashed.
 *   cc hello.c $(pkg-config --cflags --libs namedmutex) */
#include <namedmutex.h>
#include <stdio.h>

int main(void) {
    int existed = 0;
    NmHandle h = nm_create_mutex("hello-c", 0, &existed);
    if (!h) {
        fprintf(stderr, "create failed: error %u\n", nm_get_last_error());
        return 1;
    }
    switch (nm_wait_for_single_object(h, 5000)) {
    case NM_WAIT_ABANDONED:
        puts("the last holder died holding it: checking the data first");
        /* fall through */
    case NM_WAIT_OBJECT_0:
        puts("ours");
        nm_release_mutex(h);
        break;
    case NM_WAIT_TIMEOUT:
        puts("busy");
        break;
    default:
        fprintf(stderr, "wait failed: error %u\n", nm_get_last_error());
    }
    nm_close_handle(h);
    return 0;
}
