/* The C ABI as C code ported from Windows uses it: two processes, a SIGKILLed owner, threads,
 * wait-any/wait-all, duplicated and bad handles. Run by capi/tests/run-c-tests.sh, which
 * builds it against the installed library with pkg-config. Every wait for the other process
 * is bounded (alarm), so a bug fails the test instead of hanging it.
 * Ends with the line "N passed, M failed". */
#include <namedmutex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " (last error %u)\n", nm_get_last_error());        \
        }                                                                      \
    } while (0)

/* The child: opens NAME, reports a poll, waits for the mutex, reports, then holds it
 * until it is killed (or its input ends). */
static int child(const char *name) {
    NmHandle h = nm_open_mutex(NM_MUTEX_ALL_ACCESS, 0, name);
    if (!h) {
        printf("open-failed %u\n", nm_get_last_error());
        return 1;
    }
    printf("poll %u\n", nm_wait_for_single_object(h, 0));
    fflush(stdout);
    printf("acquired %u\n", nm_wait_for_single_object(h, NM_INFINITE));
    fflush(stdout);
    char line[16];
    while (fgets(line, sizeof line, stdin)) {
    }
    return 0;
}

static unsigned read_code(FILE *from, const char *word) {
    char line[64];
    unsigned code = 0xdead;
    if (fgets(line, sizeof line, from)) {
        size_t n = strlen(word);
        if (strncmp(line, word, n) == 0) code = (unsigned)strtoul(line + n, NULL, 10);
        else fprintf(stderr, "child said %s", line);
    }
    return code;
}

static void *thread_hold_and_exit(void *h) {
    /* Acquires and ends without releasing: the mutex is abandoned. */
    nm_wait_for_single_object(*(NmHandle *)h, NM_INFINITE);
    return NULL;
}

struct hold { NmHandle h; int ready[2]; int done[2]; };

static void *thread_hold_until_told(void *arg) {
    struct hold *s = arg;
    char c = 0;
    nm_wait_for_single_object(s->h, NM_INFINITE);
    if (write(s->ready[1], &c, 1) != 1) abort();
    if (read(s->done[0], &c, 1) != 1) abort();
    nm_release_mutex(s->h);
    return NULL;
}

static void two_processes(const char *self) {
    char name[64];
    snprintf(name, sizeof name, "capi-test-%d", (int)getpid());
    int existed = -1;
    NmHandle h = nm_create_mutex(name, 1, &existed);
    CHECK(h != 0 && existed == 0 && nm_get_last_error() == 0, "create a new name");
    int existed2 = -1;
    NmHandle h2 = nm_create_mutex(name, 1, &existed2);
    CHECK(h2 != 0 && existed2 == 1 && nm_get_last_error() == NM_ERROR_ALREADY_EXISTS,
          "create an existing name reports it");
    nm_close_handle(h2);

    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        execl(self, self, "child", name, (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    FILE *from = fdopen(from_child[0], "r");

    CHECK(read_code(from, "poll ") == NM_WAIT_TIMEOUT, "the child's poll while we own it");
    CHECK(nm_release_mutex(h) == 1, "release to the child");
    CHECK(read_code(from, "acquired ") == NM_WAIT_OBJECT_0, "the child acquires after our release");
    CHECK(nm_wait_for_single_object(h, 0) == NM_WAIT_TIMEOUT, "poll while the child owns it");
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was SIGKILLed");
    CHECK(nm_wait_for_single_object(h, 5000) == NM_WAIT_ABANDONED, "abandoned by the killed child");
    CHECK(nm_release_mutex(h) == 1, "release after abandonment");
    CHECK(nm_wait_for_single_object(h, 0) == NM_WAIT_OBJECT_0, "abandonment reported once");
    CHECK(nm_release_mutex(h) == 1, "release");
    fclose(from);
    close(to_child[1]);
    CHECK(nm_close_handle(h) == 1, "close");
}

static void bad_handles(void) {
    CHECK(nm_release_mutex(0) == 0 && nm_get_last_error() == NM_ERROR_INVALID_HANDLE, "NULL handle");
    CHECK(nm_wait_for_single_object(0xdeadbeefULL, 0) == NM_WAIT_FAILED &&
              nm_get_last_error() == NM_ERROR_INVALID_HANDLE,
          "garbage handle");
    CHECK(nm_wait_for_single_object(~0ULL, 0) == NM_WAIT_FAILED &&
              nm_get_last_error() == NM_ERROR_INVALID_HANDLE,
          "all-ones handle");
    NmHandle h = nm_create_mutex(NULL, 0, NULL);
    CHECK(h != 0, "unnamed mutex");
    CHECK(nm_close_handle(h) == 1, "close");
    CHECK(nm_release_mutex(h) == 0 && nm_get_last_error() == NM_ERROR_INVALID_HANDLE, "closed handle");
    CHECK(nm_close_handle(h) == 0 && nm_get_last_error() == NM_ERROR_INVALID_HANDLE, "closed twice");
    CHECK(nm_duplicate_handle(h) == 0 && nm_get_last_error() == NM_ERROR_INVALID_HANDLE,
          "duplicate a closed handle");
    NmHandle again = nm_create_mutex(NULL, 0, NULL); /* may reuse the slot */
    CHECK(again != h && nm_release_mutex(h) == 0 && nm_get_last_error() == NM_ERROR_INVALID_HANDLE,
          "a stale handle does not reach the slot's new mutex");
    NmHandle list[2] = {again, 0x12345};
    CHECK(nm_wait_for_multiple_objects(2, list, 0, 0) == NM_WAIT_FAILED &&
              nm_get_last_error() == NM_ERROR_INVALID_HANDLE,
          "a bad handle among several");
    CHECK(nm_wait_for_multiple_objects(0, list, 0, 0) == NM_WAIT_FAILED &&
              nm_get_last_error() == NM_ERROR_INVALID_PARAMETER,
          "no handles");
    char msg[8];
    size_t full = nm_get_last_error_message(msg, sizeof msg);
    CHECK(full > sizeof msg && strlen(msg) == sizeof msg - 1, "the message is cut to the buffer");
    nm_close_handle(again);
}

static void one_process(void) {
    NmHandle h = nm_create_mutex_ex(NULL, NM_CREATE_MUTEX_INITIAL_OWNER, NM_MUTEX_ALL_ACCESS, NULL);
    CHECK(h != 0, "create_ex initially owned");
    NmHandle d = nm_duplicate_handle(h);
    CHECK(d != 0 && d != h, "duplicate");
    CHECK(nm_release_mutex(d) == 1, "release through the duplicate");
    CHECK(nm_release_mutex(h) == 0 && nm_get_last_error() == NM_ERROR_NOT_OWNER, "not owner");
    CHECK(nm_create_mutex_ex("x", 2, NM_MUTEX_ALL_ACCESS, NULL) == 0 &&
              nm_get_last_error() == NM_ERROR_INVALID_PARAMETER,
          "unknown create_ex flag");
    CHECK(nm_open_mutex(NM_SYNCHRONIZE, 0, "capi-test-no-such-name") == 0 &&
              nm_get_last_error() == NM_ERROR_FILE_NOT_FOUND,
          "open a missing name");

    pthread_t t;
    pthread_create(&t, NULL, thread_hold_and_exit, &h);
    pthread_join(t, NULL);
    CHECK(nm_wait_for_single_object(h, 0) == NM_WAIT_ABANDONED, "abandoned by an ended thread");
    nm_release_mutex(h);

    NmHandle b = nm_create_mutex(NULL, 0, NULL);
    NmHandle both[2] = {h, b};
    CHECK(nm_wait_for_multiple_objects(2, both, 1, 0) == NM_WAIT_OBJECT_0, "wait-all, both free");
    nm_release_mutex(h);
    nm_release_mutex(b);
    struct hold s = {h, {0}, {0}};
    if (pipe(s.ready) || pipe(s.done)) abort();
    pthread_create(&t, NULL, thread_hold_until_told, &s);
    char c;
    if (read(s.ready[0], &c, 1) != 1) abort();
    CHECK(nm_wait_for_multiple_objects(2, both, 0, 0) == NM_WAIT_OBJECT_0 + 1,
          "wait-any skips the one another thread owns");
    nm_release_mutex(b);
    CHECK(nm_wait_for_multiple_objects(2, both, 1, 10) == NM_WAIT_TIMEOUT,
          "wait-all times out while one is owned");
    if (write(s.done[1], &c, 1) != 1) abort();
    pthread_join(t, NULL);
    CHECK(nm_wait_for_multiple_objects(2, both, 1, 1000) == NM_WAIT_OBJECT_0, "wait-all after");
    nm_release_mutex(h);
    nm_release_mutex(b);
    nm_close_handle(d);
    nm_close_handle(b);
    nm_close_handle(h);
}

/* ----- closing a handle while another thread uses it ----- */

struct waiter { NmHandle h; _Atomic long tid; unsigned code; };

static void *wait_on_handle(void *arg) {
    struct waiter *w = arg;
    atomic_store(&w->tid, (long)syscall(SYS_gettid));
    w->code = nm_wait_for_single_object(w->h, NM_INFINITE);
    return NULL; /* ends owning it: abandoned */
}

/* Bounded (by the alarm) until thread `tid` sleeps in the futex syscall (202 on x86_64,
 * 98 on aarch64): then it is inside the wait. */
static void until_sleeping_in_futex(long tid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    for (;;) {
        FILE *f = fopen(path, "r");
        int n = -1;
        if (f) {
            if (fgets(buf, sizeof buf, f)) n = atoi(buf);
            fclose(f);
        }
        if (n == 202 || n == 98 || n == 449 /* futex_waitv */) return;
        usleep(200);
    }
}

static void close_while_waiting(void) {
    char name[64];
    snprintf(name, sizeof name, "capi-close-%d", (int)getpid());
    struct waiter w = {nm_create_mutex(name, 1, NULL), 0, 0};
    CHECK(w.h != 0, "create owned");
    pthread_t t;
    pthread_create(&t, NULL, wait_on_handle, &w);
    while (atomic_load(&w.tid) == 0) usleep(100);
    until_sleeping_in_futex(atomic_load(&w.tid));
    CHECK(nm_close_handle(w.h) == 1, "close the handle another thread waits on");
    NmHandle again = nm_open_mutex(NM_MUTEX_ALL_ACCESS, 0, name);
    CHECK(again != 0, "the object lives while a wait uses it");
    CHECK(nm_release_mutex(again) == 1, "release through another handle");
    pthread_join(t, NULL);
    CHECK(w.code == NM_WAIT_OBJECT_0, "the wait on the closed handle completed (%u)", w.code);
    CHECK(nm_wait_for_single_object(again, 0) == NM_WAIT_ABANDONED, "its thread ended owning it");
    nm_release_mutex(again);
    CHECK(nm_close_handle(again) == 1, "close the last open handle");
    CHECK(nm_open_mutex(NM_SYNCHRONIZE, 0, name) == 0 && nm_get_last_error() == NM_ERROR_FILE_NOT_FOUND,
          "the object ended with the wait and the last handle");
}

static _Atomic NmHandle shared_handle;
static _Atomic int stop_hammering;
static _Atomic long odd_results;

static void *hammer(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_hammering)) {
        NmHandle h = atomic_load(&shared_handle);
        unsigned r = nm_wait_for_single_object(h, 0);
        if (r == NM_WAIT_OBJECT_0 || r == NM_WAIT_ABANDONED) {
            if (!nm_release_mutex(h) && nm_get_last_error() != NM_ERROR_INVALID_HANDLE)
                atomic_fetch_add(&odd_results, 1);
        } else if (r == NM_WAIT_FAILED && nm_get_last_error() != NM_ERROR_INVALID_HANDLE) {
            atomic_fetch_add(&odd_results, 1);
        } else if (r != NM_WAIT_TIMEOUT && r != NM_WAIT_FAILED) {
            atomic_fetch_add(&odd_results, 1);
        }
    }
    return NULL;
}

/* Threads use a handle while the main thread keeps closing it and making a new one: every
 * answer is a wait result or ERROR_INVALID_HANDLE, and nothing crashes. */
static void close_under_load(void) {
    atomic_store(&shared_handle, nm_create_mutex(NULL, 0, NULL));
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 3000; i++) {
        NmHandle fresh = nm_create_mutex(NULL, 0, NULL);
        NmHandle old = atomic_exchange(&shared_handle, fresh);
        if (nm_close_handle(old) != 1) atomic_fetch_add(&odd_results, 1);
    }
    atomic_store(&stop_hammering, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&odd_results) == 0, "%ld unexpected answers while handles were closed",
          atomic_load(&odd_results));
    CHECK(nm_close_handle(atomic_load(&shared_handle)) == 1, "close the last one");
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) return child(argv[2]);
    alarm(60); /* the watchdog: a hang fails the run */
    two_processes(argv[0]);
    bad_handles();
    one_process();
    close_while_waiting();
    close_under_load();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
