/* C test driver for the threaded segment runner.
 *
 * (a) Every kernel gives bitwise the same loss sum, per-element losses and
 *     gradient for every n_threads as for n_threads = 1, over sizes below,
 *     at and far above the parallel threshold.
 * (b) Several POSIX threads calling kernels at once, each with n_threads = 4,
 *     all get the serial results.
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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <pthread.h>
#endif

static int n_pass = 0, n_fail = 0;

/* Deterministic pseudo-random numbers in [-a, a]. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(double a)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return a * (2.0 * (double)(rng_state >> 11) / 9007199254740992.0 - 1.0);
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("out of memory (%lu bytes)\n", (unsigned long)bytes);
        exit(2);
    }
    return p;
}

/* Inputs shared by every kernel: n elements, and row targets for up to n rows. */
typedef struct {
    fl_index n;
    float *xf, *tf, *wf;   /* logits / input, targets in [0, 1], weights (n) */
    double *xd, *td, *wd;
    int64_t *idx;          /* class indices, some set to the ignore index */
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
    return fl_ce_index_f32(in->xf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0 / 3,
                           loss, grad, nt);
}

static double k_ce_index_f64_w(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                               fl_index *n_out, size_t *elem)
{
    fl_index rows = in->n / C;
    *n_out = rows * C;
    *elem = sizeof(double);
    return fl_ce_index_f64(in->xd, row_targets, rows, C, in->wd, IGNORE_INDEX, 0.1, 0.5,
                           loss, grad, nt);
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
    const fl_bcast none = {NULL, 1, 0, 0};
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_bce_f32(in->xf, in->tf, in->n, none, none, 1.0, loss, grad, nt);
}

static double k_bce_f32_bcast(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                              fl_index *n_out, size_t *elem)
{
    /* weight broadcast along rows of 7, pos_weight along columns of 7 */
    const fl_bcast w = {in->wf, 7, 1, 0}, pw = {in->wf + 3, 7, 0, 1};
    (void)C;
    *n_out = in->n;
    *elem = sizeof(float);
    return fl_bce_f32(in->xf, in->tf, in->n, w, pw, 0.125, loss, grad, nt);
}

static double k_bce_f64(const inputs *in, fl_index C, int nt, void *loss, void *grad,
                        fl_index *n_out, size_t *elem)
{
    const fl_bcast w = {in->wd, 1, 1, 0}, none = {NULL, 1, 0, 0};
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
    {"ce_index_f32", k_ce_index_f32, 1},   {"ce_index_f64_w", k_ce_index_f64_w, 1},
    {"ce_prob_f32", k_ce_prob_f32, 1},     {"ce_prob_f64", k_ce_prob_f64, 1},
    {"bce_f32", k_bce_f32, 0},             {"bce_f32_bcast", k_bce_f32_bcast, 0},
    {"bce_f64", k_bce_f64, 0},             {"focal_f32", k_focal_f32, 0},
    {"focal_f64", k_focal_f64, 0},         {"huber_f32", k_huber_f32, 0},
    {"huber_f64", k_huber_f64, 0},         {"smooth_l1_f32", k_smooth_l1_f32, 0},
    {"smooth_l1_f64", k_smooth_l1_f64, 0},
};
#define N_KERNELS ((int)(sizeof(KERNELS) / sizeof(KERNELS[0])))

/* Thread counts compared against 1 (0, negative and huge must be harmless). */
static const int THREADS[] = {2, 3, 4, 8, 16, 64, 0, -3, 1000};
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

static int same_outputs(const outputs *a, const outputs *b, fl_index n_out, size_t elem,
                        int is_ce, fl_index C)
{
    /* Per-element losses: one per row for cross-entropy, per element otherwise. */
    fl_index n_loss = is_ce ? n_out / C : n_out;
    return same_bits(&a->sum, &b->sum, sizeof(double)) &&
           same_bits(a->loss, b->loss, (size_t)n_loss * elem) &&
           same_bits(a->grad, b->grad, (size_t)n_out * elem);
}

static void check_case(const kernel *k, const inputs *in, fl_index C, outputs *ref,
                       outputs *got)
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
        printf("FAIL %s n=%ld C=%ld sum only: %.17g vs %.17g\n", k->name, (long)in->n,
               (long)C, sum_only, ref->sum);
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
    s1 = fl_ce_index_f32(in->xf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0, NULL, grad,
                         1);
    s2 = fl_ce_index_f32(buf, row_targets, rows, C, NULL, IGNORE_INDEX, 0.0, 1.0, NULL, buf, 4);
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
    static const fl_index SIZES[] = {1,       1000,          100003,  (1 << 18) - 1,
                                     1 << 18, (1 << 18) + 1, 1 << 20, 3000017};
    static const fl_index CLASSES[] = {10, 1000};
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

static const int CONC_KERNELS[] = {0, 4, 7, 10, 1};
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

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
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
#endif
    free(row_targets);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
