/* Timing harness for the threaded segment runner (not a test).
 *
 * Build (add -DFL_PARALLEL_MIN_ELEMS=0 -DFL_ELEMS_PER_THREAD=1 to force the
 * threaded path at every size, e.g. to see where two threads start to pay):
 *   cc -std=c99 -O2 -fno-math-errno -fno-trapping-math -Icsrc bench/threads_timing.c \
 *      csrc/kernels.c csrc/dispatch.c csrc/runtime.c -o /tmp/threads_timing -lm -pthread
 * (that is the baseline kernels only; to time the SIMD kernels, link the objects
 * setup.py builds: kernels.c once per target with -DFL_TARGET=..., and
 * dispatch.c with -DFL_HAVE_AVX2=1 -DFL_HAVE_AVX512=1)
 *   /tmp/threads_timing [max_threads]
 * Prints the fastest time of each call for n_threads = 1 .. max_threads (default 2),
 * the speed-up over one thread, and the median cost of creating + joining a thread.
 */
#define _POSIX_C_SOURCE 200809L

#include "fusedloss.h"
#include "tests/legacy_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *xf, *tf, *gf, *lf;
static int64_t *idx;
static const fl_bcast NONE = { NULL, 1, 0, 0, 0, NULL, NULL };

enum { CE, BCE, HUBER };

static double call(int kind, fl_index rows, fl_index cols, int nt)
{
    switch (kind) {
    case CE:
        return fl_ce_index_f32(xf, idx, rows, cols, NULL, -100, 0.0, 1.0, lf, gf, nt, NULL, NULL);
    case BCE:
        return fl_bce_f32(xf, tf, rows * cols, NONE, NONE, 1.0, lf, gf, nt);
    default:
        return fl_huber_f32(xf, tf, rows * cols, 1.0, 1.0, lf, gf, nt);
    }
}

/* Fastest time of one call for each n_threads in 1..max_threads, in
 * microseconds.  The thread counts take turns within each repetition, and the
 * minimum (not the median) is kept, so that bursts of other load on the
 * machine skew the comparison less. */
#define MAX_THREADS 64
static void time_calls(int kind, fl_index rows, fl_index cols, int max_threads, double *best)
{
    double sink = 0;
    double work = (double)(rows * cols);
    int reps = work > 1e6 ? 31 : (work > 1e5 ? 151 : 301);
    for (int nt = 1; nt <= max_threads; ++nt) {
        best[nt] = 1e300;
        sink += call(kind, rows, cols, nt);
    }
    for (int r = 0; r < reps; ++r) {
        for (int nt = 1; nt <= max_threads; ++nt) {
            double t0 = now_us(), dt;
            sink += call(kind, rows, cols, nt);
            dt = now_us() - t0;
            if (dt < best[nt])
                best[nt] = dt;
        }
    }
    if (sink == 12345.678)
        printf(" ");
}

static void *noop(void *arg) { return arg; }

/* Median cost of creating and joining one thread that does nothing. */
static double thread_cost_us(void)
{
    enum { N = 1001 };
    static double t[N];
    for (int i = 0; i < N; ++i) {
        pthread_t th;
        double t0 = now_us();
        if (pthread_create(&th, NULL, noop, NULL) == 0)
            pthread_join(th, NULL);
        t[i] = now_us() - t0;
    }
    qsort(t, N, sizeof(double), cmp_double);
    return t[N / 2];
}

int main(int argc, char **argv)
{
    const fl_index maxn = (fl_index)1 << 22;
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    static const struct {
        const char *name;
        int kind;
        fl_index rows, cols;
    } CASES[] = {
        { "ce_index_f32 4096x1000", CE, 4096, 1000 },
        { "ce_index_f32 65536x10", CE, 65536, 10 },
        { "bce_f32 4M", BCE, 1, (fl_index)1 << 22 },
        { "huber_f32 4M", HUBER, 1, (fl_index)1 << 22 },
        /* around the threshold: 64K, 128K, 256K, 512K, 1M elements */
        { "ce_index_f32 6554x10", CE, 6554, 10 },
        { "ce_index_f32 13108x10", CE, 13108, 10 },
        { "ce_index_f32 26215x10", CE, 26215, 10 },
        { "ce_index_f32 52429x10", CE, 52429, 10 },
        { "ce_index_f32 104858x10", CE, 104858, 10 },
        { "ce_index_f32 66x1000", CE, 66, 1000 },
        { "ce_index_f32 132x1000", CE, 132, 1000 },
        { "ce_index_f32 263x1000", CE, 263, 1000 },
        { "ce_index_f32 525x1000", CE, 525, 1000 },
        { "ce_index_f32 1049x1000", CE, 1049, 1000 },
        { "bce_f32 64K", BCE, 1, 1 << 16 },
        { "bce_f32 128K", BCE, 1, 1 << 17 },
        { "bce_f32 256K", BCE, 1, 1 << 18 },
        { "bce_f32 512K", BCE, 1, 1 << 19 },
        { "bce_f32 1M", BCE, 1, 1 << 20 },
        { "huber_f32 64K", HUBER, 1, 1 << 16 },
        { "huber_f32 128K", HUBER, 1, 1 << 17 },
        { "huber_f32 256K", HUBER, 1, 1 << 18 },
        { "huber_f32 512K", HUBER, 1, 1 << 19 },
        { "huber_f32 1M", HUBER, 1, 1 << 20 },
    };
    xf = malloc((size_t)maxn * sizeof(float));
    tf = malloc((size_t)maxn * sizeof(float));
    gf = malloc((size_t)maxn * sizeof(float));
    lf = malloc((size_t)maxn * sizeof(float));
    idx = malloc((size_t)maxn * sizeof(int64_t));
    if (!xf || !tf || !gf || !lf || !idx)
        return 2;
    srand(1);
    for (fl_index i = 0; i < maxn; ++i) {
        xf[i] = (float)(rand() % 2001 - 1000) / 200.0f;
        tf[i] = (float)(rand() % 1001) / 1000.0f;
        idx[i] = rand() % 10;
    }
    printf("thread create + join: %.1f us\n", thread_cost_us());
    if (max_threads < 2)
        max_threads = 2;
    if (max_threads > MAX_THREADS)
        max_threads = MAX_THREADS;
    printf("%-24s %12s", "case", "1 thr (us)");
    for (int nt = 2; nt <= max_threads; ++nt)
        printf("  %3d thr (us)  x", nt);
    printf("\n");
    for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); ++c) {
        double best[MAX_THREADS + 1];
        time_calls(CASES[c].kind, CASES[c].rows, CASES[c].cols, max_threads, best);
        printf("%-24s %12.1f", CASES[c].name, best[1]);
        for (int nt = 2; nt <= max_threads; ++nt)
            printf("  %12.1f %5.2f", best[nt], best[1] / best[nt]);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
