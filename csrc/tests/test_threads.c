/* C test driver for the threaded segment runner.
 *
 * (a) Every kernel gives bitwise the same loss sum, per-element losses and
 *     gradient for every n_threads as for n_threads = 1, over sizes below,
 *     at and far above the parallel threshold.
 * (b) Several POSIX threads calling kernels at once, each with n_threads = 4,
 *     all get the serial results.
 * (c) Racing writer: one thread keeps flipping class indices between valid,
 *     ignored and invalid values while other threads run fl_ce_index on them
 *     (few-class and row paths, n_threads 1 and 2): every row is its valid
 *     result, its ignored result, or NaN (loss and whole gradient row), bad_pos
 *     is the first NaN row, bad_value one of the invalid values, canaries
 *     intact.  This is a deliberate data race on the target array: the writer
 *     stores with relaxed atomics, the kernel loads with a volatile read, and
 *     ThreadSanitizer is told to ignore only that pair (csrc/tests/tsan.supp,
 *     matched on the writer's function fl_test_racing_writer).
 * (d) The introspection calls (fl_target_supported / _compiled / _selected /
 *     _set, fl_compiler) from many threads at once, with kernels running:
 *     every string is one of the valid constant strings, every kernel result
 *     is bitwise the serial one (targets agree bitwise).
 * (e) The interrupt hook: called only on the calling thread, at most every
 *     50 ms; a non-zero answer makes the call return NaN, zero changes nothing.
 *
 * Build and run:
 *   cc -std=c99 -O2 -Wall -Wextra -Wpedantic -fno-math-errno -fno-trapping-math -Icsrc \
 *      csrc/tests/test_threads.c csrc/kernels.c csrc/dispatch.c csrc/runtime.c \
 *      -o /tmp/test_threads -lm -pthread
 *   /tmp/test_threads          (add "quick" to skip the largest sizes)
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "fusedloss.h"
#include "legacy_api.h"
#define FL_TEST_SEED 0x9E3779B97F4A7C15ULL
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <pthread.h>
#include <time.h>
#endif

static int n_pass = 0, n_fail = 0;

/* Inputs shared by every kernel: n elements, and row targets for up to n rows. */
typedef struct {
    fl_index n;
    float *xf, *tf, *wf; /* logits / input, targets in [0, 1], weights (n) */
    double *xd, *td, *wd;
    int64_t *idx; /* class indices, some set to the ignore index */
} inputs;

#define IGNORE_INDEX (-100)
#define MAX_C 1000

static void make_inputs(inputs *in, fl_index n)
{
    in->n = n;
    in->xf = xmalloc((size_t)n * sizeof(float));
    in->tf = xmalloc((size_t)n * sizeof(float));
    in->wf = xmalloc((size_t)(n > MAX_C ? n : MAX_C) * sizeof(float));
    in->xd = xmalloc((size_t)n * sizeof(double));
    in->td = xmalloc((size_t)n * sizeof(double));
    in->wd = xmalloc((size_t)(n > MAX_C ? n : MAX_C) * sizeof(double));
    in->idx = xmalloc((size_t)n * sizeof(int64_t));
    for (fl_index i = 0; i < n; ++i) {
        in->xd[i] = urand(6.0);
        in->xf[i] = (float)in->xd[i];
        in->td[i] = 0.5 + urand(0.5);
        in->tf[i] = (float)in->td[i];
        in->idx[i] = (i % 17 == 5) ? IGNORE_INDEX : (int64_t)(rng_state % MAX_C);
    }
    for (fl_index i = 0; i < (n > MAX_C ? n : MAX_C); ++i) {
        in->wd[i] = 1.0 + urand(0.75);
        in->wf[i] = (float)in->wd[i];
    }
}

static void free_inputs(inputs *in)
{
    free(in->xf);
    free(in->tf);
    free(in->wf);
    free(in->xd);
    free(in->td);
    free(in->wd);
    free(in->idx);
}

/* One kernel call.  C is the class count for the cross-entropy kernels (the
 * element-wise ones ignore it).  loss / grad are NULL or have room for n
 * doubles; *n_out gets the number of output elements, *elem their size. */
typedef double (*kernel_fn)(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                            fl_index *n_out, size_t *elem);

static int64_t clamp_target(int64_t t, fl_index C)
{
    return t == IGNORE_INDEX ? t : t % (int64_t)C;
}

/* Row targets reduced to [0, C): built once per (size, C) by prepare_targets. */
static int64_t *row_targets = NULL;

static void prepare_targets(const inputs *in, fl_index C)
{
    free(row_targets);
    row_targets = xmalloc((size_t)(in->n / C + 1) * sizeof(int64_t));
    for (fl_index r = 0; r < in->n / C; ++r)
        row_targets[r] = clamp_target(in->idx[r], C);
}

static double k_ce_index_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                             fl_index *n_out, size_t *elem)
{
    fl_index rows = in->n / C;
    *n_out = rows * C;
    *elem = sizeof(float);
    return fl_ce_index_f32(in->xf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0 / 3, loss,
                           grad, nt, NULL, NULL);
}

static double k_ce_index_f64_w(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                               fl_index *n_out, size_t *elem)
{
    fl_index rows = in->n / C;
    *n_out = rows * C;
    *elem = sizeof(double);
    return fl_ce_index_f64(in->xd, row_targets, rows, C, in->wd, IGNORE_INDEX, 0.1, 0.5, loss, grad,
                           nt, NULL, NULL);
}

static double k_ce_prob_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                            fl_index *n_out, size_t *elem)
{
    fl_index rows = in->n / C;
    *n_out = rows * C;
    *elem = sizeof(float);
    return fl_ce_prob_f32(in->xf, in->tf, rows, C, in->wf, 0.05, 1.0, loss, grad, nt);
}

static double k_ce_prob_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                            fl_index *n_out, size_t *elem)
{
    fl_index rows = in->n / C;
    *n_out = rows * C;
    *elem = sizeof(double);
    return fl_ce_prob_f64(in->xd, in->td, rows, C, NULL, 0.0, 0.25, loss, grad, nt);
}

static double k_bce_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                        fl_index *n_out, size_t *elem)
{
    const fl_bcast none = { NULL, 1, 0, 0, 0, NULL, NULL };
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_bce_f32(in->xf, in->tf, in->n, none, none, 1.0, loss, grad, nt);
}

static double k_bce_f32_bcast(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                              fl_index *n_out, size_t *elem)
{
    /* weight broadcast along rows of 7, pos_weight along columns of 7 */
    const fl_bcast w = { in->wf, 7, 1, 0, 0, NULL, NULL };
    const fl_bcast pw = { in->wf + 3, 7, 0, 1, 0, NULL, NULL };
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_bce_f32(in->xf, in->tf, in->n, w, pw, 0.125, loss, grad, nt);
}

static double k_bce_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                        fl_index *n_out, size_t *elem)
{
    const fl_bcast w = { in->wd, 1, 1, 0, 0, NULL, NULL }, none = { NULL, 1, 0, 0, 0, NULL, NULL };
    (void)C;
    *n_out = in->n;
    *elem = sizeof(double);
    return fl_bce_f64(in->xd, in->td, in->n, w, none, 1.0, loss, grad, nt);
}

static double k_focal_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                          fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_focal_f32(in->xf, in->tf, in->n, 0.25, 2.0, 1.0, loss, grad, nt);
}

static double k_focal_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                          fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(double);
    return fl_focal_f64(in->xd, in->td, in->n, -1.0, 1.5, 0.5, loss, grad, nt);
}

static double k_huber_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                          fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_huber_f32(in->xf, in->tf, in->n, 1.0, 1.0, loss, grad, nt);
}

static double k_huber_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                          fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(double);
    return fl_huber_f64(in->xd, in->td, in->n, 0.7, 0.25, loss, grad, nt);
}

static double k_smooth_l1_f32(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                              fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_smooth_l1_f32(in->xf, in->tf, in->n, 0.5, 1.0, loss, grad, nt);
}

static double k_smooth_l1_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                              fl_index *n_out, size_t *elem)
{
    (void)C;
    *n_out = in->n;
    *elem = sizeof(double);
    return fl_smooth_l1_f64(in->xd, in->td, in->n, 0.0, 1.0, loss, grad, nt);
}

typedef struct {
    const char *name;
    kernel_fn fn;
    int is_ce; /* row kernel: run for each class count */
} kernel;

static const kernel KERNELS[] = {
    { "ce_index_f32", k_ce_index_f32, 1 },
    { "ce_index_f64_w", k_ce_index_f64_w, 1 },
    { "ce_prob_f32", k_ce_prob_f32, 1 },
    { "ce_prob_f64", k_ce_prob_f64, 1 },
    { "bce_f32", k_bce_f32, 0 },
    { "bce_f32_bcast", k_bce_f32_bcast, 0 },
    { "bce_f64", k_bce_f64, 0 },
    { "focal_f32", k_focal_f32, 0 },
    { "focal_f64", k_focal_f64, 0 },
    { "huber_f32", k_huber_f32, 0 },
    { "huber_f64", k_huber_f64, 0 },
    { "smooth_l1_f32", k_smooth_l1_f32, 0 },
    { "smooth_l1_f64", k_smooth_l1_f64, 0 },
};
#define N_KERNELS ((int)(sizeof(KERNELS) / sizeof(KERNELS[0])))

/* Thread counts compared against 1 (0, negative and huge must be harmless). */
static const int THREADS[] = { 2, 3, 4, 8, 16, 64, 0, -3, 1000 };
#define N_THREADS ((int)(sizeof(THREADS) / sizeof(THREADS[0])))

static int same_bits(const void *a, const void *b, size_t bytes)
{
    return memcmp(a, b, bytes) == 0;
}

/* Output buffers of one run: filled with a sentinel first, so a segment that
 * was never computed shows up as a difference. */
typedef struct {
    double sum;
    double *loss, *grad;
} outputs;

static void alloc_outputs(outputs *o, fl_index n)
{
    o->loss = xmalloc((size_t)n * sizeof(double));
    o->grad = xmalloc((size_t)n * sizeof(double));
}

static void free_outputs(outputs *o)
{
    free(o->loss);
    free(o->grad);
}

static void run_kernel(const kernel *k, const inputs *in, fl_index C, int nt, outputs *o,
                       fl_index *n_out, size_t *elem)
{
    memset(o->loss, 0xA5, (size_t)in->n * sizeof(double));
    memset(o->grad, 0x5A, (size_t)in->n * sizeof(double));
    o->sum = k->fn(in, C, nt, o->loss, o->grad, n_out, elem);
}

static int same_outputs(const outputs *a, const outputs *b, fl_index n_out, size_t elem, int is_ce,
                        fl_index C)
{
    /* Per-element losses: one per row for cross-entropy, per element otherwise. */
    fl_index n_loss = is_ce ? n_out / C : n_out;
    return same_bits(&a->sum, &b->sum, sizeof(double)) &&
           same_bits(a->loss, b->loss, (size_t)n_loss * elem) &&
           same_bits(a->grad, b->grad, (size_t)n_out * elem);
}

static void check_case(const kernel *k, const inputs *in, fl_index C, outputs *ref, outputs *got)
{
    fl_index n_out, n_out2;
    size_t elem, elem2;
    double sum_only;
    run_kernel(k, in, C, 1, ref, &n_out, &elem);
    for (int j = 0; j < N_THREADS; ++j) {
        run_kernel(k, in, C, THREADS[j], got, &n_out2, &elem2);
        if (same_outputs(ref, got, n_out, elem, k->is_ce, C)) {
            ++n_pass;
        } else {
            ++n_fail;
            printf("FAIL %s n=%ld C=%ld n_threads=%d: sum %.17g vs %.17g (serial)\n", k->name,
                   (long)in->n, (long)C, THREADS[j], got->sum, ref->sum);
        }
    }
    /* Loss only (no per-element outputs) on many threads: same sum. */
    sum_only = k->fn(in, C, 8, NULL, NULL, &n_out2, &elem2);
    if (same_bits(&sum_only, &ref->sum, sizeof(double))) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL %s n=%ld C=%ld sum only: %.17g vs %.17g\n", k->name, (long)in->n, (long)C,
               sum_only, ref->sum);
    }
}

/* Gradient written over the logits, threaded, equals the serial out-of-place one. */
static void check_in_place(const inputs *in, fl_index C)
{
    fl_index rows = in->n / C;
    float *buf = xmalloc((size_t)(rows * C) * sizeof(float));
    float *grad = xmalloc((size_t)(rows * C) * sizeof(float));
    double s1, s2;
    memcpy(buf, in->xf, (size_t)(rows * C) * sizeof(float));
    s1 = fl_ce_index_f32(in->xf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0, NULL, grad, 1,
                         NULL, NULL);
    s2 = fl_ce_index_f32(buf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0, NULL, buf, 4,
                         NULL, NULL);
    if (same_bits(&s1, &s2, sizeof s1) &&
        same_bits(buf, grad, (size_t)(rows * C) * sizeof(float))) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL ce_index_f32 in place n=%ld C=%ld\n", (long)in->n, (long)C);
    }
    free(buf);
    free(grad);
}

static void test_sizes(int quick)
{
    /* Below, around and far above the parallel threshold (runtime.c uses
     * 1 << 18 elements), with odd sizes so segments are uneven. */
    static const fl_index SIZES[] = { 1,       1000,          100003,  (1 << 18) - 1,
                                      1 << 18, (1 << 18) + 1, 1 << 20, 3000017 };
    static const fl_index CLASSES[] = { 10, 1000 };
    const int n_sizes = (int)(sizeof(SIZES) / sizeof(SIZES[0]));
    for (int si = 0; si < n_sizes; ++si) {
        inputs in;
        outputs ref, got;
        if (quick && SIZES[si] > (1 << 20))
            continue;
        make_inputs(&in, SIZES[si]);
        alloc_outputs(&ref, in.n);
        alloc_outputs(&got, in.n);
        for (int ki = 0; ki < N_KERNELS; ++ki) {
            const kernel *k = &KERNELS[ki];
            if (!k->is_ce) {
                check_case(k, &in, 1, &ref, &got);
                continue;
            }
            for (int ci = 0; ci < 2; ++ci) {
                if (in.n / CLASSES[ci] < 1)
                    continue;
                prepare_targets(&in, CLASSES[ci]);
                check_case(k, &in, CLASSES[ci], &ref, &got);
            }
        }
        if (in.n >= 1000) {
            prepare_targets(&in, 10);
            check_in_place(&in, 10);
        }
        free_outputs(&ref);
        free_outputs(&got);
        free_inputs(&in);
    }
}

/* A few rows of very many classes: few segments, each one huge. */
static void test_wide_rows(void)
{
    const fl_index rows = 3, C = 200001;
    inputs in;
    outputs ref, got;
    make_inputs(&in, rows * C);
    alloc_outputs(&ref, in.n);
    alloc_outputs(&got, in.n);
    prepare_targets(&in, C);
    check_case(&KERNELS[0], &in, C, &ref, &got);
    check_case(&KERNELS[3], &in, C, &ref, &got);
    free_outputs(&ref);
    free_outputs(&got);
    free_inputs(&in);
}

#ifndef _WIN32
/* (b) Concurrent callers. */
#define N_CALLERS 6
#define N_ROUNDS 4

typedef struct {
    const inputs *in;
    const outputs *refs; /* serial results, one per kernel in CONC_KERNELS */
    int first;           /* index of the first kernel this caller runs */
    int mismatches;
} caller_arg;

static const int CONC_KERNELS[] = { 0, 4, 7, 10, 1 };
#define N_CONC ((int)(sizeof(CONC_KERNELS) / sizeof(CONC_KERNELS[0])))
#define CONC_C 10

static void *caller_main(void *varg)
{
    caller_arg *a = (caller_arg *)varg;
    outputs got;
    alloc_outputs(&got, a->in->n);
    for (int r = 0; r < N_ROUNDS * N_CONC; ++r) {
        int which = (a->first + r) % N_CONC;
        const kernel *k = &KERNELS[CONC_KERNELS[which]];
        fl_index n_out;
        size_t elem;
        run_kernel(k, a->in, CONC_C, 4, &got, &n_out, &elem);
        if (!same_outputs(&a->refs[which], &got, n_out, elem, k->is_ce, CONC_C))
            ++a->mismatches;
    }
    free_outputs(&got);
    return NULL;
}

static void test_concurrent_callers(int quick)
{
    inputs in;
    outputs refs[N_CONC];
    pthread_t th[N_CALLERS];
    caller_arg args[N_CALLERS];
    int created[N_CALLERS];
    make_inputs(&in, quick ? 400009 : 1000003);
    prepare_targets(&in, CONC_C);
    for (int i = 0; i < N_CONC; ++i) {
        fl_index n_out;
        size_t elem;
        alloc_outputs(&refs[i], in.n);
        run_kernel(&KERNELS[CONC_KERNELS[i]], &in, CONC_C, 1, &refs[i], &n_out, &elem);
    }
    for (int i = 0; i < N_CALLERS; ++i) {
        args[i].in = &in;
        args[i].refs = refs;
        args[i].first = i;
        args[i].mismatches = 0;
        created[i] = pthread_create(&th[i], NULL, caller_main, &args[i]) == 0;
        if (!created[i])
            caller_main(&args[i]); /* still check it, on this thread */
    }
    for (int i = 0; i < N_CALLERS; ++i) {
        if (created[i])
            pthread_join(th[i], NULL);
        if (args[i].mismatches == 0) {
            ++n_pass;
        } else {
            ++n_fail;
            printf("FAIL concurrent caller %d: %d of %d calls differ from serial\n", i,
                   args[i].mismatches, N_ROUNDS * N_CONC);
        }
    }
    for (int i = 0; i < N_CONC; ++i)
        free_outputs(&refs[i]);
    free_inputs(&in);
}
#endif

#ifndef _WIN32
/* ---- (c) a racing writer ------------------------------------------------ */

#if defined(__GNUC__) || defined(__clang__)
#define RACE_NOINLINE __attribute__((noinline))
#else
#define RACE_NOINLINE
#endif

#define RACE_GUARD 32
#define RACE_CANARY 0x3C
#define RACE_READERS 2

typedef struct {
    int64_t *t; /* the shared targets */
    fl_index R, C;
    int stop; /* read and written with __atomic builtins */
    unsigned long passes;
} race_shared;

static int64_t race_valid(fl_index r, fl_index C) { return (int64_t)((r * 37 + 11) % C); }

/* Rows the writer flips (the rest keep their valid index); includes the last
 * lane of every 16-row tile of the few-class path. */
static int race_flipped(fl_index r) { return r % 4 == 1 || r % 16 == 15; }

static int64_t race_bad(int k, fl_index C)
{
    switch (k & 3) {
    case 0:
        return (int64_t)C;
    case 1:
        return INT64_MIN;
    case 2:
        return INT64_MAX;
    default:
        return -1;
    }
}

static int race_is_bad_value(int64_t v, fl_index C)
{
    for (int k = 0; k < 4; ++k)
        if (v == race_bad(k, C))
            return 1;
    return 0;
}

/* The value of flipped row r in the writer's pass p: valid (3 in 8), the
 * ignore index (1 in 8), or invalid (4 in 8).  The phase steps by one every
 * 4 rows, so in every pass the rows r % 4 == 1 that are not hot (see the
 * writer) hold invalid indices, whichever pass the array is left in. */
static int64_t race_value(fl_index r, unsigned long p, fl_index C)
{
    const unsigned k = (unsigned)((r / 4 + (fl_index)(p % 8)) % 8);
    return k < 3 ? race_valid(r, C) : k == 3 ? IGNORE_INDEX : race_bad((int)(k + r / 8), C);
}

/* The only thread that writes the targets while kernels read them.  Its
 * stores are relaxed atomics; the kernels' loads are plain volatile reads, so
 * ThreadSanitizer reports the pair: csrc/tests/tsan.supp suppresses reports
 * that involve this function (by name, so keep it out of line). */
RACE_NOINLINE static void *fl_test_racing_writer(void *arg)
{
    race_shared *sh = (race_shared *)arg;
    /* about 32 "hot" rows (flipped ones, spread over the array) change every
     * few tens of nanoseconds, so that a kernel that read an index twice
     * would soon see two different values; the other flipped rows change once
     * per pass */
    const fl_index hot_step = 4 * (sh->R / 128 > 1 ? sh->R / 128 : 1);
    unsigned long pass = 1;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
        for (fl_index r = 0; r < sh->R; ++r)
            if (race_flipped(r))
                __atomic_store_n(&sh->t[r], race_value(r, pass, sh->C), __ATOMIC_RELAXED);
        for (unsigned long k = 0; k < 256; ++k)
            for (fl_index r = 1; r < sh->R; r += hot_step)
                __atomic_store_n(&sh->t[r], race_value(r, pass + k, sh->C), __ATOMIC_RELAXED);
        ++pass;
    }
    sh->passes = pass;
    return NULL;
}

typedef struct {
    race_shared *sh;
    int f32, weighted, id, calls;
    double eps;
    const void *z, *w;
    const void *loss_ref, *grad_ref; /* every row valid */
    const void *loss_ign, *grad_ign; /* flipped rows ignored */
    /* results */
    int failures, calls_with_nan;
    long nan_rows, ignored_rows, valid_flipped_rows;
    char msg[240];
} race_reader;

static double race_call(const race_reader *a, void *loss, void *grad, int nt, fl_index *bp,
                        int64_t *bv)
{
    const race_shared *sh = a->sh;
    if (a->f32)
        return fl_ce_index_f32((const float *)a->z, sh->t, sh->R, sh->C, (const float *)a->w,
                               IGNORE_INDEX, a->eps, 0.5, (float *)loss, (float *)grad, nt, bp, bv);
    return fl_ce_index_f64((const double *)a->z, sh->t, sh->R, sh->C, (const double *)a->w,
                           IGNORE_INDEX, a->eps, 0.5, (double *)loss, (double *)grad, nt, bp, bv);
}

static int all_nan(const void *a, int f32, fl_index i, fl_index n)
{
    for (fl_index k = i; k < i + n; ++k)
        if (!isnan(f32 ? (double)((const float *)a)[k] : ((const double *)a)[k]))
            return 0;
    return 1;
}

static int guard_ok(const unsigned char *p, size_t bytes)
{
    for (size_t k = 0; k < bytes; ++k)
        if (p[k] != RACE_CANARY)
            return 0;
    return 1;
}

static void *race_reader_main(void *varg)
{
    race_reader *a = (race_reader *)varg;
    const race_shared *sh = a->sh;
    const fl_index R = sh->R, C = sh->C;
    const size_t es = a->f32 ? sizeof(float) : sizeof(double);
    const size_t gl = RACE_GUARD * es;
    unsigned char *lbuf = xmalloc((size_t)R * es + 2 * gl);
    unsigned char *gbuf = xmalloc((size_t)(R * C) * es + 2 * gl);
    void *loss = lbuf + gl, *grad = gbuf + gl;
    memset(lbuf, RACE_CANARY, (size_t)R * es + 2 * gl);
    memset(gbuf, RACE_CANARY, (size_t)(R * C) * es + 2 * gl);
    for (int i = 0; i < a->calls && !a->failures; ++i) {
        static const int NT[] = { 1, 2, 4 };
        const int nt = NT[(i + a->id) % 3];
        const int with_grad = (i + a->id) % 4 != 3;
        fl_index bp = 4242, first_nan = -1;
        int64_t bv = 4242;
        const double s = race_call(a, loss, with_grad ? grad : NULL, nt, &bp, &bv);
        for (fl_index r = 0; r < R && !a->failures; ++r) {
            const size_t lo = (size_t)r * es, go = (size_t)(r * C) * es, gn = (size_t)C * es;
            const double v = a->f32 ? (double)((const float *)loss)[r] : ((const double *)loss)[r];
            if (isnan(v)) {
                if (first_nan < 0)
                    first_nan = r;
                ++a->nan_rows;
                if (!race_flipped(r) || (with_grad && !all_nan(grad, a->f32, r * C, C))) {
                    snprintf(a->msg, sizeof a->msg, "row %ld: NaN loss but %s", (long)r,
                             race_flipped(r) ? "not an all-NaN gradient" : "never flipped");
                    ++a->failures;
                }
            } else if (!memcmp((const char *)loss + lo, (const char *)a->loss_ref + lo, es) &&
                       (!with_grad ||
                        !memcmp((const char *)grad + go, (const char *)a->grad_ref + go, gn))) {
                a->valid_flipped_rows += race_flipped(r);
            } else if (race_flipped(r) &&
                       !memcmp((const char *)loss + lo, (const char *)a->loss_ign + lo, es) &&
                       (!with_grad ||
                        !memcmp((const char *)grad + go, (const char *)a->grad_ign + go, gn))) {
                ++a->ignored_rows;
            } else {
                snprintf(a->msg, sizeof a->msg,
                         "row %ld (%s): loss %.9g is neither its valid, its ignored result nor NaN"
                         " (or its gradient row is not the matching one)",
                         (long)r, race_flipped(r) ? "flipped" : "fixed", v);
                ++a->failures;
            }
        }
        if (!a->failures && bp != first_nan) {
            snprintf(a->msg, sizeof a->msg, "bad_pos %ld, first NaN row %ld", (long)bp,
                     (long)first_nan);
            ++a->failures;
        }
        if (!a->failures && first_nan >= 0 && !race_is_bad_value(bv, C)) {
            snprintf(a->msg, sizeof a->msg, "bad_value %lld is not one the writer stores",
                     (long long)bv);
            ++a->failures;
        }
        if (!a->failures && (first_nan >= 0) != (isnan(s) != 0)) {
            snprintf(a->msg, sizeof a->msg, "sum %.9g with first NaN row %ld", s, (long)first_nan);
            ++a->failures;
        }
        if (!a->failures && first_nan < 0) {
            /* at every instant half of the flipped rows hold an invalid index */
            snprintf(a->msg, sizeof a->msg, "a call saw no invalid index at all");
            ++a->failures;
        }
        if (!a->failures &&
            !(guard_ok(lbuf, gl) && guard_ok(lbuf + gl + (size_t)R * es, gl) &&
              guard_ok(gbuf, gl) && guard_ok(gbuf + gl + (size_t)(R * C) * es, gl))) {
            snprintf(a->msg, sizeof a->msg, "canary overwritten");
            ++a->failures;
        }
        a->calls_with_nan += first_nan >= 0;
        if (a->failures)
            snprintf(a->msg + strlen(a->msg), sizeof a->msg - strlen(a->msg),
                     " [call %d, n_threads %d%s]", i, nt, with_grad ? ", grad" : "");
    }
    free(lbuf);
    free(gbuf);
    return NULL;
}

static void race_case(int f32, fl_index C, int weighted, double eps, int calls)
{
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    race_shared sh;
    race_reader rd[RACE_READERS];
    pthread_t wth, rth[RACE_READERS];
    int created[RACE_READERS];
    /* enough rows that n_threads > 1 goes parallel (2^18 elements) */
    const fl_index R = ((fl_index)1 << 18) / C + 61, n = R * C;
    void *z = xmalloc((size_t)n * es), *w = NULL;
    void *lr = xmalloc((size_t)R * es), *gr = xmalloc((size_t)n * es);
    void *li = xmalloc((size_t)R * es), *gi = xmalloc((size_t)n * es);
    for (fl_index i = 0; i < n; ++i) {
        if (f32)
            ((float *)z)[i] = (float)urand(5.0);
        else
            ((double *)z)[i] = urand(5.0);
    }
    if (weighted) {
        w = xmalloc((size_t)C * es);
        for (fl_index j = 0; j < C; ++j) {
            if (f32)
                ((float *)w)[j] = (float)(1.0 + urand(0.5));
            else
                ((double *)w)[j] = 1.0 + urand(0.5);
        }
    }
    sh.t = xmalloc((size_t)R * sizeof(int64_t));
    sh.R = R;
    sh.C = C;
    sh.stop = 0;
    sh.passes = 0;
    /* references, single-threaded, before any racing */
    memset(rd, 0, sizeof rd);
    rd[0].sh = &sh;
    rd[0].f32 = f32;
    rd[0].z = z;
    rd[0].w = w;
    rd[0].eps = eps;
    for (fl_index r = 0; r < R; ++r)
        sh.t[r] = race_valid(r, C);
    race_call(&rd[0], lr, gr, 1, NULL, NULL);
    for (fl_index r = 0; r < R; ++r)
        sh.t[r] = race_flipped(r) ? IGNORE_INDEX : race_valid(r, C);
    race_call(&rd[0], li, gi, 1, NULL, NULL);
    /* the writer's first pass, so invalid indices are there from the start */
    for (fl_index r = 0; r < R; ++r)
        sh.t[r] = race_flipped(r) ? race_value(r, 0, C) : race_valid(r, C);

    int writer = pthread_create(&wth, NULL, fl_test_racing_writer, &sh) == 0;
    for (int k = 0; k < RACE_READERS; ++k) {
        rd[k] = rd[0];
        rd[k].id = k;
        rd[k].calls = calls;
        rd[k].weighted = weighted;
        rd[k].loss_ref = lr;
        rd[k].grad_ref = gr;
        rd[k].loss_ign = li;
        rd[k].grad_ign = gi;
    }
    for (int k = 0; k < RACE_READERS; ++k) {
        created[k] = pthread_create(&rth[k], NULL, race_reader_main, &rd[k]) == 0;
        if (!created[k])
            race_reader_main(&rd[k]);
    }
    for (int k = 0; k < RACE_READERS; ++k)
        if (created[k])
            pthread_join(rth[k], NULL);
    __atomic_store_n(&sh.stop, 1, __ATOMIC_RELEASE);
    if (writer)
        pthread_join(wth, NULL);
    long nan_rows = 0, ign = 0, val = 0;
    int with_nan = 0;
    for (int k = 0; k < RACE_READERS; ++k) {
        nan_rows += rd[k].nan_rows;
        ign += rd[k].ignored_rows;
        val += rd[k].valid_flipped_rows;
        with_nan += rd[k].calls_with_nan;
        if (rd[k].failures == 0) {
            ++n_pass;
        } else {
            ++n_fail;
            printf("FAIL racing writer %s C=%ld R=%ld reader %d: %s\n", f32 ? "f32" : "f64",
                   (long)C, (long)R, k, rd[k].msg);
        }
    }
    if (writer) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL racing writer: could not start the writer thread\n");
    }
    printf("racing writer %s C=%ld R=%ld%s: %d calls (%d with NaN rows), %lu writer passes, "
           "flipped rows read as NaN %ld, ignored %ld, valid %ld\n",
           f32 ? "f32" : "f64", (long)C, (long)R, weighted ? " weighted, smoothed" : "",
           RACE_READERS * calls, with_nan, sh.passes, nan_rows, ign, val);
    free(sh.t);
    free(z);
    free(w);
    free(lr);
    free(gr);
    free(li);
    free(gi);
}

static void test_racing_writer(int quick)
{
    const int calls = quick ? 6 : 18;
    race_case(1, 10, 0, 0.0, calls);   /* few-class path */
    race_case(0, 16, 1, 0.1, calls);   /* few-class path, weights, smoothing */
    race_case(0, 37, 0, 0.0, calls);   /* row path */
    race_case(1, 1000, 1, 0.1, calls); /* row path, weights, smoothing */
}

/* ---- (d) introspection from many threads ------------------------------ */

#define INTRO_THREADS 8
#define INTRO_MAX_TOKENS 8
#define INTRO_R 300
#define INTRO_C 10

static char intro_supported[128], intro_compiled[128], intro_compiler[256];
static char intro_tok_sup[INTRO_MAX_TOKENS][32], intro_tok_comp[INTRO_MAX_TOKENS][32];
static int intro_n_sup, intro_n_comp;
/* the kernel's result under each supported target: they may differ in the
 * last bits (exp / log use FMA on the FMA targets), so a call must give
 * bitwise the result of one of them */
static float intro_z[INTRO_R * INTRO_C], intro_g_ref[INTRO_MAX_TOKENS][INTRO_R * INTRO_C];
static int64_t intro_t[INTRO_R];
static double intro_s_ref[INTRO_MAX_TOKENS];

static int split_tokens(const char *s, char tok[][32])
{
    int n = 0;
    while (*s && n < INTRO_MAX_TOKENS) {
        size_t len = strcspn(s, " ");
        if (len > 0 && len < 32) {
            memcpy(tok[n], s, len);
            tok[n][len] = '\0';
            ++n;
        }
        s += len;
        s += strspn(s, " ");
    }
    return n;
}

static int in_tokens(const char *s, char tok[][32], int n)
{
    for (int k = 0; k < n; ++k)
        if (strcmp(s, tok[k]) == 0)
            return 1;
    return 0;
}

typedef struct {
    int id, iters, failures;
    long kernel_calls;
    char msg[200];
} intro_arg;

static void *intro_main(void *varg)
{
    intro_arg *a = (intro_arg *)varg;
    float g[INTRO_R * INTRO_C];
    for (int i = 0; i < a->iters && !a->failures; ++i) {
        const int op = (i * 7 + a->id) % 10;
        const char *s = NULL;
        int rc = 0, want = 0;
        switch (op) {
        case 0:
            s = fl_target_supported();
            if (!s || strcmp(s, intro_supported) != 0)
                snprintf(a->msg, sizeof a->msg, "fl_target_supported() = '%s'", s ? s : "(null)");
            break;
        case 1:
            s = fl_target_compiled();
            if (!s || strcmp(s, intro_compiled) != 0)
                snprintf(a->msg, sizeof a->msg, "fl_target_compiled() = '%s'", s ? s : "(null)");
            break;
        case 2:
            s = fl_target_selected();
            if (!s || !in_tokens(s, intro_tok_sup, intro_n_sup))
                snprintf(a->msg, sizeof a->msg, "fl_target_selected() = '%s'", s ? s : "(null)");
            break;
        case 3:
            rc = fl_target_set(i % 2 ? "best" : "baseline");
            if (rc != 0)
                snprintf(a->msg, sizeof a->msg, "fl_target_set(best/baseline) = %d", rc);
            break;
        case 4: {
            const char *name = intro_tok_comp[(i / 10 + a->id) % intro_n_comp];
            rc = fl_target_set(name);
            want = in_tokens(name, intro_tok_sup, intro_n_sup) ? 0 : -2;
            if (rc != want)
                snprintf(a->msg, sizeof a->msg, "fl_target_set(%s) = %d, want %d", name, rc, want);
            break;
        }
        case 5: {
            static const char *const unknown[] = { "no-such-target", "baselinebaseline", "AVX2",
                                                   "best ",          " baseline",        "avx" };
            const char *name = unknown[(i / 10) % 6];
            rc = fl_target_set(name);
            if (rc != -1)
                snprintf(a->msg, sizeof a->msg, "fl_target_set('%s') = %d, want -1", name, rc);
            break;
        }
        case 6:
            s = fl_compiler();
            if (!s || strcmp(s, intro_compiler) != 0)
                snprintf(a->msg, sizeof a->msg, "fl_compiler() = '%s'", s ? s : "(null)");
            break;
        case 7:
            rc = fl_target_set(i % 2 ? NULL : "");
            if (rc != 0)
                snprintf(a->msg, sizeof a->msg, "fl_target_set(NULL or '') = %d", rc);
            break;
        default: {
            /* a kernel, while the target changes under it: the targets agree
             * bitwise, so any table gives the serial result */
            fl_index bp = 4242;
            const double sum = fl_ce_index_f32(intro_z, intro_t, INTRO_R, INTRO_C, NULL,
                                               IGNORE_INDEX, 0.0, 1.0, NULL, g, 1, &bp, NULL);
            int match = 0;
            ++a->kernel_calls;
            for (int k = 0; k < intro_n_sup; ++k)
                match |= same_bits(&sum, &intro_s_ref[k], sizeof sum) &&
                         same_bits(g, intro_g_ref[k], sizeof g);
            if (!match || bp != -1)
                snprintf(a->msg, sizeof a->msg,
                         "kernel result %.17g is no target's result (bad_pos %ld)", sum, (long)bp);
            break;
        }
        }
        if (a->msg[0])
            ++a->failures;
    }
    return NULL;
}

static void test_introspection(int quick, const char *forced)
{
    pthread_t th[INTRO_THREADS];
    intro_arg args[INTRO_THREADS];
    int created[INTRO_THREADS];
    snprintf(intro_supported, sizeof intro_supported, "%s", fl_target_supported());
    snprintf(intro_compiled, sizeof intro_compiled, "%s", fl_target_compiled());
    snprintf(intro_compiler, sizeof intro_compiler, "%s", fl_compiler());
    intro_n_sup = split_tokens(intro_supported, intro_tok_sup);
    intro_n_comp = split_tokens(intro_compiled, intro_tok_comp);
    /* the lists themselves: baseline first, supported a prefix of compiled */
    if (intro_n_sup >= 1 && intro_n_comp >= intro_n_sup &&
        strcmp(intro_tok_sup[0], "baseline") == 0 &&
        strncmp(intro_compiled, intro_supported, strlen(intro_supported)) == 0 &&
        in_tokens(fl_target_selected(), intro_tok_sup, intro_n_sup)) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL introspection lists: supported '%s', compiled '%s', selected '%s'\n",
               intro_supported, intro_compiled, fl_target_selected());
    }
    for (int i = 0; i < INTRO_R * INTRO_C; ++i)
        intro_z[i] = (float)urand(4.0);
    for (int r = 0; r < INTRO_R; ++r)
        intro_t[r] = r % 7 == 3 ? IGNORE_INDEX : r % INTRO_C;
    for (int k = 0; k < intro_n_sup; ++k) {
        fl_target_set(intro_tok_sup[k]);
        intro_s_ref[k] = fl_ce_index_f32(intro_z, intro_t, INTRO_R, INTRO_C, NULL, IGNORE_INDEX,
                                         0.0, 1.0, NULL, intro_g_ref[k], 1, NULL, NULL);
    }
    fl_target_set(forced);
    for (int k = 0; k < INTRO_THREADS; ++k) {
        memset(&args[k], 0, sizeof args[k]);
        args[k].id = k;
        args[k].iters = quick ? 400 : 3000;
        created[k] = pthread_create(&th[k], NULL, intro_main, &args[k]) == 0;
        if (!created[k])
            intro_main(&args[k]);
    }
    long kernel_calls = 0;
    for (int k = 0; k < INTRO_THREADS; ++k) {
        if (created[k])
            pthread_join(th[k], NULL);
        kernel_calls += args[k].kernel_calls;
        if (args[k].failures == 0) {
            ++n_pass;
        } else {
            ++n_fail;
            printf("FAIL introspection thread %d: %s\n", k, args[k].msg);
        }
    }
    printf("introspection: %d threads x %d calls (%ld kernel calls), targets '%s'\n", INTRO_THREADS,
           args[0].iters, kernel_calls, intro_supported);
    /* back to the target this run was asked for */
    if (fl_target_set(forced) != 0) {
        ++n_fail;
        printf("FAIL could not restore target %s\n", forced ? forced : "best");
    }
}

/* ---- (e) the interrupt hook -------------------------------------------- */

static pthread_t hook_caller;
static int hook_answer, hook_calls, hook_wrong_thread;
static long long hook_last_ns, hook_min_gap_ns;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int test_hook(void)
{
    const long long now = now_ns();
    if (!pthread_equal(pthread_self(), hook_caller))
        __atomic_add_fetch(&hook_wrong_thread, 1, __ATOMIC_RELAXED);
    const long long last = __atomic_exchange_n(&hook_last_ns, now, __ATOMIC_RELAXED);
    if (last && now - last < __atomic_load_n(&hook_min_gap_ns, __ATOMIC_RELAXED))
        __atomic_store_n(&hook_min_gap_ns, now - last, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hook_calls, 1, __ATOMIC_RELAXED);
    return __atomic_load_n(&hook_answer, __ATOMIC_RELAXED);
}

static void test_interrupt_hook(int quick)
{
    const fl_index n = (fl_index)1 << (quick ? 20 : 21);
    float *x = xmalloc((size_t)n * sizeof(float)), *t = xmalloc((size_t)n * sizeof(float));
    int exercised = 0;
    for (fl_index i = 0; i < n; ++i) {
        x[i] = (float)urand(6.0);
        t[i] = (float)(0.5 + urand(0.5));
    }
    /* focal with a general gamma: a slow kernel, so a call lasts > 50 ms */
    const double ref = fl_focal_f32(x, t, n, 0.25, 1.5, 1.0, NULL, NULL, 1);
    hook_caller = pthread_self();
    fl_set_interrupt_hook(test_hook);
    for (int nt = 1; nt <= 4; nt *= 4)
        for (int answer = 0; answer < 2; ++answer) {
            hook_answer = answer;
            hook_calls = hook_wrong_thread = 0;
            hook_last_ns = 0;
            hook_min_gap_ns = 1LL << 62;
            const long long t0 = now_ns();
            const double s = fl_focal_f32(x, t, n, 0.25, 1.5, 1.0, NULL, NULL, nt);
            const double secs = (double)(now_ns() - t0) * 1e-9;
            int ok = hook_wrong_thread == 0;
            if (hook_calls == 0) /* finished before the first poll */
                ok = ok && same_bits(&s, &ref, sizeof s);
            else if (answer == 0)
                ok = ok && same_bits(&s, &ref, sizeof s) &&
                     (hook_calls < 2 || hook_min_gap_ns >= 45000000LL) &&
                     hook_calls <= (int)(secs / 0.045) + 1;
            else
                ok = ok && isnan(s) && hook_calls == 1;
            exercised += hook_calls > 0;
            if (ok) {
                ++n_pass;
            } else {
                ++n_fail;
                printf("FAIL interrupt hook answer %d n_threads %d: sum %.17g (ref %.17g), "
                       "%d hook calls (%d off the calling thread), min gap %lld ns, %.3f s\n",
                       answer, nt, s, ref, hook_calls, hook_wrong_thread, hook_min_gap_ns, secs);
            }
        }
    fl_set_interrupt_hook(NULL);
    const double after = fl_focal_f32(x, t, n, 0.25, 1.5, 1.0, NULL, NULL, 4);
    if (same_bits(&after, &ref, sizeof after)) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL interrupt hook: after removing the hook %.17g != %.17g\n", after, ref);
    }
    printf("interrupt hook: %d of 4 calls reached a poll (n = %ld)\n", exercised, (long)n);
    free(x);
    free(t);
}
#endif

int main(int argc, char **argv)
{
    /* "quick" (or FL_TEST_QUICK=1): smaller sizes, for slow runners */
    const char *quick_env = getenv("FL_TEST_QUICK");
    int quick =
        (argc > 1 && strcmp(argv[1], "quick") == 0) || (quick_env && strcmp(quick_env, "1") == 0);
    /* FL_FORCE_TARGET selects a SIMD target (run.sh runs once per target). */
    const char *target = getenv("FL_FORCE_TARGET");
    if (target && fl_target_set(target) != 0) {
        printf("target %s not supported on this CPU: skipped\n", target);
        return 0;
    }
    test_sizes(quick);
    test_wide_rows();
#ifndef _WIN32
    test_concurrent_callers(quick);
    test_racing_writer(quick);
    test_interrupt_hook(quick);
    test_introspection(quick, target);
#endif
    free(row_targets);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
