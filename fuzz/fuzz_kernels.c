/* Coverage-guided fuzzing of the C entry points (fusedloss.h) with libFuzzer.
 *
 * Each input is decoded into one call: a kernel (the cross-entropy target
 * checker, cross-entropy with indices or probabilities, BCE with broadcast
 * weights in the simple or the general form, focal, Huber, smooth-L1), or a
 * sequence of introspection calls (fl_target_*, fl_compiler); a precision, a
 * SIMD target, sizes (rows <= 64, classes <= 64; a "big" mode tiles the
 * values and class indices up to 64K elements so that helper threads start
 * and calls have several segments), options (loss_out, gradient, in
 * place, weights, parameters) and the values (a byte per value: ordinary
 * numbers, or NaN, infinities, huge, tiny, subnormal, -0.0, or raw bits).
 * Every buffer is malloc'ed at its exact size, so AddressSanitizer reports any
 * access outside it.  Beyond "no crash and no sanitizer report" it checks:
 *
 *   - the checker returns the first bad class index (or -1);
 *   - fl_ce_index is memory-safe for any class indices (it is called with
 *     the invalid ones too, as a caller racing with a writer could): rows
 *     with an index neither ignored nor in [0, C) have a NaN loss and an
 *     all-NaN gradient row, bad_pos is the first such row (-1 if none) and
 *     bad_value its index, and every other row is bitwise what it is when
 *     the bad rows are set to ignore_index;
 *   - BCE with a general (shape, strides) broadcast weight equals BCE with
 *     the weights materialised element by element (weight arrays allocated at
 *     exactly the size the strides reach, so ASan sees any read beyond);
 *   - the introspection calls return the valid constant strings and
 *     fl_target_set answers 0 / -1 / -2 as the lists say;
 *   - inputs are not modified (logits, targets, weights);
 *   - the loss-only call returns bitwise the same sum as the fused call;
 *   - the in-place gradient (grad == logits) is bitwise the separate one
 *     (NaNs may differ in payload);
 *   - n_threads = 1 and n_threads = 3 agree bitwise (sum, losses, gradient);
 *   - BCE / Huber / smooth-L1 gradients are finite for finite inputs whose
 *     weights cannot overflow (and so are cross-entropy gradients).
 *
 * Build and run: fuzz/run.sh (see there).  A failing check prints what failed
 * and aborts, so libFuzzer saves the input as a crash reproducer.
 */
#include "fusedloss.h"
#include "tests/family_layouts.h"
#include "tests/legacy_api.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- input */

typedef struct {
    const uint8_t *p;
    size_t n, i;
} reader;

static unsigned rd_byte(reader *r) { return r->i < r->n ? r->p[r->i++] : 0u; }

static uint64_t rd_bits(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int k = 0; k < bytes; ++k)
        v |= (uint64_t)rd_byte(r) << (8 * k);
    return v;
}

static const double SPECIAL[] = {
    0.0,    -0.0,     1.0,    -1.0,    0.5,   NAN,    INFINITY, -INFINITY, 1e-45,   1e-40,
    -1e-40, 4.9e-324, 1e-310, 1e-300,  88.0,  -88.0,  100.0,    -100.0,    710.0,   -710.0,
    1e30,   -1e30,    3.4e38, -3.4e38, 1e300, -1e300, DBL_MAX,  -DBL_MAX,  FLT_MIN, DBL_MIN,
    0.25,   0.75,     1e-8,   30.0,    -30.0, 16.0,   1e4,
};
#define N_SPECIAL ((unsigned)(sizeof SPECIAL / sizeof SPECIAL[0]))

/* One value: most bytes map to ordinary numbers in [-12.5, 12.4]; the rest
 * pick a special value or raw float / double bits. */
static double rd_value(reader *r, int f32)
{
    unsigned b = rd_byte(r);
    if (b < 200)
        return ((double)b - 100.0) / 8.0;
    if (b < 254)
        return SPECIAL[(b - 200) % N_SPECIAL];
    if (f32) {
        uint32_t u = (uint32_t)rd_bits(r, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    uint64_t u = rd_bits(r, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---------------------------------------------------------------- checks */

static void fail(const char *what, const char *kernel, int f32, long n)
{
    fprintf(stderr, "fuzz_kernels: %s (%s, %s, n=%ld, target %s)\n", what, kernel,
            f32 ? "f32" : "f64", n, fl_target_selected());
    abort();
}

/* Prints the first element where two arrays differ (and the input there). */
static void report_diff(const void *a, const void *b, int f32, fl_index n, const void *x)
{
    for (fl_index i = 0; i < n; ++i) {
        double u = f32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
        double v = f32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
        double xv = f32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
        if (memcmp((const char *)a + i * (f32 ? 4 : 8), (const char *)b + i * (f32 ? 4 : 8),
                   f32 ? 4 : 8)) {
            fprintf(stderr, "  first difference at %ld: %.17g vs %.17g (input %.17g)\n", (long)i, u,
                    v, xv);
            return;
        }
    }
}

/* Bitwise equal, except that any two NaNs compare equal (their payloads may
 * differ between code paths: x86 propagates the first operand's payload). */
static int same_values(const void *a, const void *b, int f32, fl_index n)
{
    for (fl_index i = 0; i < n; ++i) {
        double u = f32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
        double v = f32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
        if (isnan(u) && isnan(v))
            continue;
        if (memcmp((const char *)a + i * (f32 ? 4 : 8), (const char *)b + i * (f32 ? 4 : 8),
                   f32 ? 4 : 8))
            return 0;
    }
    return 1;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void *xalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        abort();
    return p;
}

static void *dup(const void *src, size_t bytes)
{
    void *p = xalloc(bytes);
    if (bytes)
        memcpy(p, src, bytes);
    return p;
}

/* ---------------------------------------------------------------- one call */

enum {
    K_CHECK,
    K_CE_INDEX,
    K_CE_PROB,
    K_BCE,
    K_FOCAL,
    K_HUBER,
    K_SMOOTH_L1,
    K_MSE,
    K_L1,
    K_INTROSPECT,
    K_FAMILY,
    N_KERNELS
};
static const char *const KNAME[] = {
    "ce_check_targets", "ce_index", "ce_prob", "bce",           "focal", "huber",
    "smooth_l1",        "mse",      "l1",      "introspection", "family"
};

typedef struct {
    int kernel, f32;
    fl_index rows, C, n;         /* n = rows * C for every kernel */
    double eps, alpha, gamma, k; /* label smoothing, focal, delta / beta */
    double scale;
    int64_t ignore;
    void *x, *t;      /* logits / input, float targets */
    int64_t *idx;     /* class indices */
    void *w;          /* class weights (C) or NULL */
    fl_bcast bw, bpw; /* BCE weight, pos_weight */
    void *bw_buf, *bpw_buf;
    size_t bw_len, bpw_len;
    /* general form: shapes and strides, and the weights materialised */
    fl_index bw_shape[FL_BCAST_MAXDIM], bw_stride[FL_BCAST_MAXDIM];
    fl_index bpw_shape[FL_BCAST_MAXDIM], bpw_stride[FL_BCAST_MAXDIM];
    void *bw_full, *bpw_full;
} call_t;

/* An element-wise kernel without parameters, through the one calling
 * convention. */
static double run_plain(const call_t *c, int id, const void *x, void *loss_out, void *grad,
                        int n_threads)
{
    fl_args a = fl_legacy_args(x, c->t, c->n, c->scale, loss_out, grad, n_threads);
    return fl_legacy_run(id, c->f32, &a);
}

/* A kernel id this driver does not know: a fuzzer that fell back to another
 * kernel would report that one's findings under the wrong name. */
static double unknown_kernel(int k)
{
    fprintf(stderr, "fuzz_kernels: unknown kernel %d\n", k);
    abort();
}

/* Runs the kernel: loss sum, with loss_out / grad (either may be NULL);
 * bad_pos / bad_value go to fl_ce_index. */
static double run_bad(const call_t *c, const void *x, void *loss_out, void *grad, int n_threads,
                      fl_index *bad_pos, int64_t *bad_value)
{
    /* the kernels without parameters, through the one calling convention */
    if (c->kernel == K_MSE || c->kernel == K_L1)
        return run_plain(c, c->kernel == K_MSE ? FL_ID_mse : FL_ID_l1, x, loss_out, grad,
                         n_threads);
    if (c->f32) {
        const float *xf = (const float *)x, *tf = (const float *)c->t;
        float *lo = (float *)loss_out, *g = (float *)grad;
        switch (c->kernel) {
        case K_CE_INDEX:
            return fl_ce_index_f32(xf, c->idx, c->rows, c->C, (const float *)c->w, c->ignore,
                                   c->eps, c->scale, lo, g, n_threads, bad_pos, bad_value);
        case K_CE_PROB:
            return fl_ce_prob_f32(xf, tf, c->rows, c->C, (const float *)c->w, c->eps, c->scale, lo,
                                  g, n_threads);
        case K_BCE:
            return fl_bce_f32(xf, tf, c->n, c->bw, c->bpw, c->scale, lo, g, n_threads);
        case K_FOCAL:
            return fl_focal_f32(xf, tf, c->n, c->alpha, c->gamma, c->scale, lo, g, n_threads);
        case K_HUBER:
            return fl_huber_f32(xf, tf, c->n, c->k, c->scale, lo, g, n_threads);
        case K_SMOOTH_L1:
            return fl_smooth_l1_f32(xf, tf, c->n, c->k, c->scale, lo, g, n_threads);
        default:
            return unknown_kernel(c->kernel);
        }
    } else {
        const double *xd = (const double *)x, *td = (const double *)c->t;
        double *lo = (double *)loss_out, *g = (double *)grad;
        switch (c->kernel) {
        case K_CE_INDEX:
            return fl_ce_index_f64(xd, c->idx, c->rows, c->C, (const double *)c->w, c->ignore,
                                   c->eps, c->scale, lo, g, n_threads, bad_pos, bad_value);
        case K_CE_PROB:
            return fl_ce_prob_f64(xd, td, c->rows, c->C, (const double *)c->w, c->eps, c->scale, lo,
                                  g, n_threads);
        case K_BCE:
            return fl_bce_f64(xd, td, c->n, c->bw, c->bpw, c->scale, lo, g, n_threads);
        case K_FOCAL:
            return fl_focal_f64(xd, td, c->n, c->alpha, c->gamma, c->scale, lo, g, n_threads);
        case K_HUBER:
            return fl_huber_f64(xd, td, c->n, c->k, c->scale, lo, g, n_threads);
        case K_SMOOTH_L1:
            return fl_smooth_l1_f64(xd, td, c->n, c->k, c->scale, lo, g, n_threads);
        default:
            return unknown_kernel(c->kernel);
        }
    }
}

static double run(const call_t *c, const void *x, void *loss_out, void *grad, int n_threads)
{
    return run_bad(c, x, loss_out, grad, n_threads, NULL, NULL);
}

static double get(const void *a, int f32, fl_index i)
{
    return f32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static void put(void *a, int f32, fl_index i, double v)
{
    if (f32)
        ((float *)a)[i] = (float)v; /* values beyond float's range become +-inf */
    else
        ((double *)a)[i] = v;
}

static int all_finite(const void *a, int f32, fl_index n)
{
    for (fl_index i = 0; i < n; ++i)
        if (!isfinite(get(a, f32, i)))
            return 0;
    return 1;
}

static double max_abs(const void *a, int f32, fl_index n)
{
    double m = 0;
    for (fl_index i = 0; i < n; ++i) {
        double v = fabs(get(a, f32, i));
        m = v > m ? v : m;
    }
    return m;
}

/* The general form: n = rows * C split into axes (each of rows and C into up
 * to two factors), size-1 axes inserted (up to FL_BCAST_MAXDIM axes in all),
 * and per axis a stride: 0 (broadcast), 1..5, or anything on a size-1 axis
 * (never used, its index is always 0).  Returns the number of weights the
 * strides reach: 1 + sum (shape - 1) * stride. */
static size_t make_general(reader *r, const call_t *c, fl_index *shape, fl_index *stride, int *ndim)
{
    fl_index f[4];
    int nf = 0, nd = 0;
    const fl_index sizes[2] = { c->rows, c->C };
    for (int q = 0; q < 2; ++q) {
        const fl_index m = sizes[q];
        fl_index d = 1 + (fl_index)rd_byte(r) % 8; /* split m = d * (m / d) when d divides it */
        if (d > 1 && d < m && m % d == 0) {
            f[nf++] = d;
            f[nf++] = m / d;
        } else {
            f[nf++] = m;
        }
    }
    const unsigned ones = rd_byte(r);
    /* extra size-1 axes: usually 0-3, sometimes up to the maximum */
    const int n_ones = ones >= 250 ? FL_BCAST_MAXDIM - nf : (int)(ones % 4);
    int k = 0;
    for (int i = 0; i < nf + n_ones && nd < FL_BCAST_MAXDIM; ++i) {
        const int take_one = k >= nf || (i - k < n_ones && (rd_byte(r) & 1));
        shape[nd++] = take_one ? 1 : f[k++];
    }
    while (k < nf) /* (not reached unless FL_BCAST_MAXDIM is tiny) */
        shape[nd - 1] *= f[k++];
    size_t len = 1;
    for (int d = 0; d < nd; ++d) {
        const unsigned v = rd_byte(r);
        if (shape[d] == 1)
            stride[d] = (fl_index)v * 1000003;
        else
            stride[d] = v % 4 == 0 ? 0 : (fl_index)(v % 5) + 1;
        len += (size_t)(shape[d] - 1) * (size_t)stride[d];
    }
    *ndim = nd;
    return len;
}

/* A broadcast weight for BCE: NULL, a scalar, per column, per row, full, or
 * the general form. */
static void make_bcast(reader *r, call_t *c, fl_bcast *b, void **buf, size_t *len, fl_index *shape,
                       fl_index *stride, void **full)
{
    const size_t es = c->f32 ? sizeof(float) : sizeof(double);
    unsigned mode = rd_byte(r) % 8;
    b->ptr = NULL;
    b->cols = 1;
    b->rs = 0;
    b->cs = 0;
    b->ndim = 0;
    b->shape = NULL;
    b->stride = NULL;
    *buf = NULL;
    *len = 0;
    *full = NULL;
    if (mode == 0 || mode == 5 || c->n == 0)
        return;
    if (mode >= 6) { /* general form */
        int nd;
        *len = make_general(r, c, shape, stride, &nd);
        *buf = xalloc(*len * es);
        for (size_t i = 0; i < *len; ++i)
            put(*buf, c->f32, (fl_index)i, rd_value(r, c->f32));
        b->ptr = *buf;
        b->ndim = nd;
        b->shape = shape;
        b->stride = stride;
        /* the same weights element by element, for the simple form */
        *full = xalloc((size_t)c->n * es);
        for (fl_index i = 0; i < c->n; ++i) {
            fl_index off = 0, rem = i;
            for (int d = nd - 1; d >= 0; --d) {
                off += (rem % shape[d]) * stride[d];
                rem /= shape[d];
            }
            put(*full, c->f32, i, get(*buf, c->f32, off));
        }
        return;
    }
    if (mode == 1) { /* scalar */
        *len = 1;
        b->cols = c->n;
    } else if (mode == 2) { /* varies over the last axis: (C,) */
        *len = (size_t)c->C;
        b->cols = c->C;
        b->cs = 1;
    } else if (mode == 3) { /* varies over rows: (rows, 1) */
        *len = (size_t)c->rows;
        b->cols = c->C;
        b->rs = 1;
    } else { /* full */
        *len = (size_t)c->n;
        b->cols = c->n;
        b->cs = 1;
    }
    *buf = xalloc(*len * es);
    for (size_t i = 0; i < *len; ++i)
        put(*buf, c->f32, (fl_index)i, rd_value(r, c->f32));
    b->ptr = *buf;
}

static void check_targets(const call_t *c)
{
    /* reference: first index neither ignored nor in [0, C) */
    fl_index want = -1;
    for (fl_index i = 0; i < c->rows && want < 0; ++i) {
        const int64_t v = c->idx[i];
        if (v != c->ignore && (v < 0 || v >= c->C))
            want = i;
    }
    double denom = -1.0;
    const fl_index got = c->f32 ? fl_ce_check_targets_f32(c->idx, c->rows, c->C, c->ignore,
                                                          (const float *)c->w, &denom)
                                : fl_ce_check_targets_f64(c->idx, c->rows, c->C, c->ignore,
                                                          (const double *)c->w, &denom);
    if (got != want)
        fail("ce_check_targets: wrong first bad position", "ce_check_targets", c->f32, c->rows);
    if (got < 0 && !c->w) {
        fl_index count = 0;
        for (fl_index i = 0; i < c->rows; ++i)
            count += c->idx[i] != c->ignore;
        if (denom != (double)count)
            fail("ce_check_targets: count denominator", "ce_check_targets", c->f32, c->rows);
    }
}

/* A class index that fl_ce_index must report: neither ignored nor in [0, C). */
static int is_bad_index(const call_t *c, fl_index r)
{
    const int64_t v = c->idx[r];
    return v != c->ignore && (v < 0 || v >= (int64_t)c->C);
}

/* fl_ce_index's bad_pos / bad_value answer for one call. */
static void check_bad_pos(const call_t *c, fl_index want, fl_index got, int64_t got_value,
                          const char *which)
{
    char what[120];
    if (got != want) {
        snprintf(what, sizeof what, "ce_index %s: bad_pos %ld, want %ld", which, (long)got,
                 (long)want);
        fail(what, "ce_index", c->f32, c->rows);
    }
    if (want >= 0 && got_value != c->idx[want]) {
        snprintf(what, sizeof what, "ce_index %s: bad_value %lld, want %lld", which,
                 (long long)got_value, (long long)c->idx[want]);
        fail(what, "ce_index", c->f32, c->rows);
    }
}

static void exercise(const call_t *c, int want_loss, int want_grad)
{
    const int f32 = c->f32;
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    const fl_index n = c->n;
    const fl_index n_loss = (c->kernel == K_CE_INDEX || c->kernel == K_CE_PROB) ? c->rows : n;
    const char *kn = KNAME[c->kernel];
    const int ce_index = c->kernel == K_CE_INDEX;
    fl_index first_bad = -1, bp;
    int64_t bv;
    if (ce_index)
        for (fl_index r = 0; r < c->rows && first_bad < 0; ++r)
            if (is_bad_index(c, r))
                first_bad = r;
#define BAD_CALL(which, expr)                                                                      \
    (bp = 4242, bv = 4242, tmp_sum = (expr),                                                       \
     ce_index ? check_bad_pos(c, first_bad, bp, bv, which) : (void)0, tmp_sum)
    double tmp_sum;

    /* copies of every input, to detect writes */
    void *x0 = dup(c->x, (size_t)n * es);
    void *t0 = c->t ? dup(c->t, (size_t)n * es) : NULL;
    void *w0 = c->w ? dup(c->w, (size_t)c->C * es) : NULL;
    int64_t *i0 = c->idx ? dup(c->idx, (size_t)c->rows * sizeof(int64_t)) : NULL;

    void *lo1 = want_loss ? xalloc((size_t)n_loss * es) : NULL;
    void *g1 = want_grad ? xalloc((size_t)n * es) : NULL;
    const double s0 = BAD_CALL("loss only", run_bad(c, c->x, NULL, NULL, 1, &bp, &bv));
    const double s1 = BAD_CALL("fused", run_bad(c, c->x, lo1, g1, 1, &bp, &bv));

    if (memcmp(x0, c->x, (size_t)n * es) || (t0 && memcmp(t0, c->t, (size_t)n * es)) ||
        (w0 && memcmp(w0, c->w, (size_t)c->C * es)) ||
        (i0 && memcmp(i0, c->idx, (size_t)c->rows * sizeof(int64_t))))
        fail("an input was modified", kn, f32, n);
    if (!same_double(s0, s1) && !(isnan(s0) && isnan(s1)))
        fail("loss-only sum differs from the fused sum", kn, f32, n);

    /* n_threads = 3: bitwise the same */
    void *lo3 = want_loss ? xalloc((size_t)n_loss * es) : NULL;
    void *g3 = want_grad ? xalloc((size_t)n * es) : NULL;
    const double s3 = BAD_CALL("n_threads=3", run_bad(c, c->x, lo3, g3, 3, &bp, &bv));
    if (!same_double(s1, s3) && !(isnan(s1) && isnan(s3)))
        fail("n_threads=3 sum differs", kn, f32, n);
    if (lo1 && memcmp(lo1, lo3, (size_t)n_loss * es)) {
        report_diff(lo1, lo3, f32, n_loss, c->x);
        fail("n_threads=3 losses differ", kn, f32, n);
    }
    if (g1 && memcmp(g1, g3, (size_t)n * es)) {
        report_diff(g1, g3, f32, n, c->x);
        fail("n_threads=3 gradient differs", kn, f32, n);
    }

    /* in place: the gradient overwrites a copy of the logits */
    if (want_grad) {
        void *xi = dup(c->x, (size_t)n * es);
        const double si = BAD_CALL("in place", run_bad(c, xi, NULL, xi, 2, &bp, &bv));
        if (!same_double(s1, si) && !(isnan(s1) && isnan(si)))
            fail("in-place sum differs", kn, f32, n);
        if (!same_values(xi, g1, f32, n)) {
            report_diff(xi, g1, f32, n, c->x);
            fail("in-place gradient differs", kn, f32, n);
        }
        free(xi);
    }
#undef BAD_CALL

    /* class indices out of range: NaN rows, and the other rows as when the
     * bad ones are ignored */
    void *g_ref = NULL;
    if (ce_index && first_bad >= 0) {
        const fl_index C = c->C;
        if (!isnan(s0) || !isnan(s1))
            fail("ce_index: a bad index but the sum is not NaN", kn, f32, n);
        call_t cr = *c;
        int64_t *idx_ref = dup(c->idx, (size_t)c->rows * sizeof(int64_t));
        for (fl_index r = 0; r < c->rows; ++r)
            if (is_bad_index(c, r))
                idx_ref[r] = c->ignore;
        cr.idx = idx_ref;
        void *lo_ref = want_loss ? xalloc((size_t)n_loss * es) : NULL;
        g_ref = want_grad ? xalloc((size_t)n * es) : NULL;
        fl_index bp_ref = 4242;
        run_bad(&cr, c->x, lo_ref, g_ref, 3, &bp_ref, NULL);
        if (bp_ref != -1)
            fail("ce_index: bad_pos set with every index valid or ignored", kn, f32, n);
        for (fl_index r = 0; r < c->rows; ++r) {
            const int bad = is_bad_index(c, r);
            if (lo1 && (bad ? !isnan(get(lo1, f32, r))
                            : !same_values((const char *)lo1 + (size_t)r * es,
                                           (const char *)lo_ref + (size_t)r * es, f32, 1)))
                fail(bad ? "ce_index: a bad row's loss is not NaN"
                         : "ce_index: a good row's loss changed next to bad rows",
                     kn, f32, n);
            if (g1) {
                const char *gr = (const char *)g1 + (size_t)(r * C) * es;
                int ok = 1;
                if (bad) {
                    for (fl_index j = 0; j < C; ++j)
                        ok &= isnan(get(gr, f32, j));
                } else {
                    ok = same_values(gr, (const char *)g_ref + (size_t)(r * C) * es, f32, C);
                }
                if (!ok)
                    fail(bad ? "ce_index: a bad row's gradient is not all NaN"
                             : "ce_index: a good row's gradient changed next to bad rows",
                         kn, f32, n);
            }
        }
        free(idx_ref);
        free(lo_ref);
    }

    /* BCE, general broadcast form: the same as the weights materialised */
    if (c->kernel == K_BCE && (c->bw_full || c->bpw_full)) {
        call_t cs = *c;
        const fl_bcast full_w = { c->bw_full, n, 0, 1, 0, NULL, NULL };
        const fl_bcast full_pw = { c->bpw_full, n, 0, 1, 0, NULL, NULL };
        if (c->bw_full)
            cs.bw = full_w;
        if (c->bpw_full)
            cs.bpw = full_pw;
        void *lo_s = want_loss ? xalloc((size_t)n_loss * es) : NULL;
        void *g_s = want_grad ? xalloc((size_t)n * es) : NULL;
        const double ss = run(&cs, c->x, lo_s, g_s, 1);
        if (!same_double(ss, s1) && !(isnan(ss) && isnan(s1)))
            fail("bce: general broadcast form sum differs from the materialised weights", kn, f32,
                 n);
        if ((lo_s && !same_values(lo_s, lo1, f32, n_loss)) ||
            (g_s && !same_values(g_s, g1, f32, n)))
            fail("bce: general broadcast form differs from the materialised weights", kn, f32, n);
        free(lo_s);
        free(g_s);
    }

    /* finite gradients for finite inputs whose weights cannot overflow (for
     * bad class indices: those of the run with them ignored) */
    const void *g_fin = g_ref ? g_ref : g1;
    if (want_grad && n > 0 && all_finite(c->x, f32, n)) {
        const double big = f32 ? 1e30 : 1e300;
        int expect_finite = 0;
        if (c->kernel == K_HUBER || c->kernel == K_SMOOTH_L1 || c->kernel == K_L1) {
            expect_finite = all_finite(c->t, f32, n);
        } else if (c->kernel == K_BCE) {
            double wmax = c->bw_buf ? max_abs(c->bw_buf, f32, (fl_index)c->bw_len) : 1.0;
            double pmax = c->bpw_buf ? max_abs(c->bpw_buf, f32, (fl_index)c->bpw_len) : 1.0;
            double tmax = max_abs(c->t, f32, n);
            /* |grad| <= |w| (|1 - t| + |pw t|), and the bracket itself must not
             * overflow: a zero weight times an infinite bracket is NaN (e.g.
             * t = 3.4e38 with pw = -11 in float32) */
            wmax = wmax > 1.0 ? wmax : 1.0;
            expect_finite = all_finite(c->t, f32, n) && wmax * (1.0 + tmax + pmax * tmax) < big &&
                            (!c->bw_buf || all_finite(c->bw_buf, f32, (fl_index)c->bw_len)) &&
                            (!c->bpw_buf || all_finite(c->bpw_buf, f32, (fl_index)c->bpw_len));
        } else if (c->kernel == K_CE_INDEX || c->kernel == K_CE_PROB) {
            double wmax = c->w ? max_abs(c->w, f32, c->C) : 1.0;
            double tmax = c->kernel == K_CE_PROB ? max_abs(c->t, f32, n) : 1.0;
            wmax = wmax > 1.0 ? wmax : 1.0; /* as for BCE */
            expect_finite = (!c->w || all_finite(c->w, f32, c->C)) &&
                            (c->kernel != K_CE_PROB || all_finite(c->t, f32, n)) &&
                            wmax * (1.0 + tmax) * (double)c->C * 4.0 < big;
        }
        if (expect_finite && fabs(c->scale) <= 1.0 && !all_finite(g_fin, f32, n))
            fail("non-finite gradient for finite inputs", kn, f32, n);
    }
    free(g_ref);

    free(x0);
    free(t0);
    free(w0);
    free(i0);
    free(lo1);
    free(g1);
    free(lo3);
    free(g3);
}

/* ---------------------------------------------------------------- introspection */

/* name is one of the space-separated words of list */
static int has_token(const char *list, const char *name)
{
    const size_t len = strlen(name);
    if (len == 0)
        return 0;
    for (const char *p = list; *p;) {
        const size_t w = strcspn(p, " ");
        if (w == len && strncmp(p, name, len) == 0)
            return 1;
        p += w;
        p += strspn(p, " ");
    }
    return 0;
}

static void intro_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_kernels: introspection: %s ('%s')\n", what, detail ? detail : "(null)");
    abort();
}

/* fl_target_set(name) and what it must answer, given the lists */
static void intro_set(const char *name, const char *sup, const char *comp)
{
    char before[32];
    snprintf(before, sizeof before, "%s", fl_target_selected());
    const int is_best = !name || !name[0] || strcmp(name, "best") == 0;
    const int want = is_best ? 0 : has_token(sup, name) ? 0 : has_token(comp, name) ? -2 : -1;
    const int got = fl_target_set(name);
    const char *now = fl_target_selected();
    if (got != want)
        intro_fail("fl_target_set answered wrong", name);
    if (!now || !has_token(sup, now))
        intro_fail("fl_target_selected is not a supported target", now);
    if (got != 0 && strcmp(now, before) != 0)
        intro_fail("a refused fl_target_set changed the target", name);
    if (got == 0 && !is_best && strcmp(now, name) != 0)
        intro_fail("fl_target_set did not select the target", name);
    if (got == 0 && is_best) {
        const char *last = strrchr(sup, ' ');
        if (strcmp(now, last ? last + 1 : sup) != 0)
            intro_fail("fl_target_set(best) did not select the best supported target", now);
    }
}

/* A sequence of introspection calls decoded from the input. */
static void introspect(reader *r)
{
    static char sup0[128], comp0[128], cc0[256];
    const char *sup = fl_target_supported(), *comp = fl_target_compiled(), *cc = fl_compiler();
    if (!sup || !comp || !cc || !cc[0] || strlen(sup) >= sizeof sup0 ||
        strlen(comp) >= sizeof comp0 || strlen(cc) >= sizeof cc0)
        intro_fail("a NULL, empty or oversized string", sup);
    if (!sup0[0]) {
        snprintf(sup0, sizeof sup0, "%s", sup);
        snprintf(comp0, sizeof comp0, "%s", comp);
        snprintf(cc0, sizeof cc0, "%s", cc);
        /* baseline first; the supported list a prefix of the compiled one */
        if (strncmp(comp0, "baseline", 8) != 0 || strncmp(comp0, sup0, strlen(sup0)) != 0 ||
            (comp0[strlen(sup0)] != '\0' && comp0[strlen(sup0)] != ' '))
            intro_fail("inconsistent target lists", comp0);
    }
    static const char *const names[] = {
        "best", "baseline",  "avx2",    "avx512",           "",     NULL,
        "AVX2", "baseline ", "avx5120", "baselinebaseline", "neon", "sse2"
    };
    const int n_ops = 1 + (int)(rd_byte(r) % 32);
    for (int k = 0; k < n_ops; ++k) {
        const unsigned b = rd_byte(r);
        const char *s;
        switch (b % 8) {
        case 0:
            if (strcmp(s = fl_target_supported(), sup0) != 0)
                intro_fail("fl_target_supported changed", s);
            break;
        case 1:
            if (strcmp(s = fl_target_compiled(), comp0) != 0)
                intro_fail("fl_target_compiled changed", s);
            break;
        case 2:
            if (!has_token(sup0, s = fl_target_selected()))
                intro_fail("fl_target_selected is not a supported target", s);
            break;
        case 3:
            if (strcmp(s = fl_compiler(), cc0) != 0)
                intro_fail("fl_compiler changed", s);
            break;
        case 4:
        case 7:
            intro_set(names[(b / 8) % (sizeof names / sizeof names[0])], sup0, comp0);
            break;
        case 5: {
            /* any bytes as a name */
            char name[17];
            const unsigned len = rd_byte(r) % 17;
            for (unsigned i = 0; i < len; ++i)
                name[i] = (char)rd_byte(r);
            name[len] = '\0';
            intro_set(name, sup0, comp0);
            break;
        }
        default: {
            /* the selected table works: a row with a bad index in between */
            const float z[12] = { 1, 2, 3, 4, 0, 0, 0, 0, -1, 5, 2, 0 };
            int64_t bad = (int64_t)rd_bits(r, 8);
            if ((bad >= 0 && bad < 4) || bad == -100)
                bad = 4;
            const int64_t t[3] = { 2, bad, 1 };
            float loss[3], g[12];
            fl_index bp = 4242;
            int64_t bv = 0;
            const double sum = fl_ce_index_f32(z, t, 3, 4, NULL, -100, 0.0, 1.0, loss, g,
                                               1 + (int)(b / 8) % 3, &bp, &bv);
            if (!isnan(sum) || bp != 1 || bv != bad || !isnan(loss[1]) || !isfinite(loss[0]) ||
                !isfinite(loss[2]) || !isnan(g[4]) || !isnan(g[7]) || !isfinite(g[0]))
                intro_fail("fl_ce_index under the selected target", fl_target_selected());
            break;
        }
        }
    }
}

/* ---------------------------------------------------------------- every kernel */

/* Any kernel of losses.def through fl_run (layouts: csrc/tests/family_layouts.h),
 * with adversarial values, sizes up to 64K elements, class indices valid,
 * ignored or out of range, domains respected or not.  Checks: a status every
 * call agrees on; on an error found by a check pass (FL_E_INDEX, FL_E_DOMAIN)
 * nothing written; otherwise n_threads 1 and 3 bitwise equal (NaNs compare
 * equal), the loss-only sum the fused one, the first gradient in place the
 * separate one; inputs never modified. */
static void fuzz_family(reader *r, int f32)
{
    const int id = (int)(rd_byte(r) % FL_N_LOSSES);
    const char *name = fl_loss_name(id);
    const kspec *s = fl_family_find(name);
    if (!s) {
        fprintf(stderr, "fuzz_kernels: no layout for kernel %s\n", name);
        abort();
    }
    const unsigned b = rd_byte(r);
    fl_index rows = (fl_index)(rd_byte(r) % 65), F = (fl_index)(rd_byte(r) % 64 + 1);
    if ((b & 7) == 7)
        rows *= 16;
    const fl_index n = rows * F;
    const size_t es = f32 ? sizeof(float) : sizeof(double), bytes = (size_t)n * es;
    const fl_index n_loss = fl_family_per_element(s) ? n : rows;
    void *in[3] = { NULL, NULL, NULL }, *copy[3] = { NULL, NULL, NULL };
    void *tgt = NULL, *tgt_copy = NULL;
    size_t tbytes = 0;
    const int n_in = s->layout == L_SAMPLE ? 2 : s->n_inputs;
    for (int k = 0; k < n_in; ++k) {
        in[k] = xalloc(bytes);
        for (fl_index i = 0; i < n; ++i) {
            double v = rd_value(r, f32);
            if (k == 0 && s->domain == 1 && (b & 8)) /* mostly probabilities */
                v = fabs(v) / (1.0 + fabs(v));
            put(in[k], f32, i, v);
        }
    }
    if (s->layout == L_CLASS) {
        tbytes = (size_t)rows * sizeof(int64_t);
        tgt = xalloc(tbytes);
        for (fl_index i = 0; i < rows; ++i) {
            const unsigned v = rd_byte(r);
            int64_t t = (int64_t)(v % (unsigned)F);
            if (v >= 250)
                t = v == 255 ? (int64_t)F : v == 254 ? -1 : -100;
            ((int64_t *)tgt)[i] = t;
        }
    } else if (s->layout != L_SAMPLE && s->layout != L_ROWS3) {
        const fl_index nt = s->layout == L_ROWS2T ? rows : n;
        tbytes = (size_t)nt * es;
        tgt = xalloc(tbytes);
        for (fl_index i = 0; i < nt; ++i) {
            double v = rd_value(r, f32);
            if (s->domain == 2 && (b & 8))
                v = v >= 0 ? 1.0 : -1.0;
            put(tgt, f32, i, v);
        }
    }
    for (int k = 0; k < 3; ++k)
        if (in[k])
            copy[k] = dup(in[k], bytes);
    if (tgt)
        tgt_copy = dup(tgt, tbytes);
    const int reduction = (int)((b >> 4) % 3);
    void *lo[2], *g[2][3] = { { NULL } }, *sentinel = xalloc(bytes ? bytes : 1);
    memset(sentinel, 0x7f, bytes);
    fl_result res[2], res_lo;
    int st[2];
    for (int c = 0; c < 2; ++c) {
        fl_args a = fl_family_args(s, in, tgt, rows, F, c == 0 ? 1 : 3);
        a.reduction = reduction;
        lo[c] = xalloc((size_t)n_loss * es);
        a.loss_out = lo[c];
        for (int k = 0; k < s->n_inputs; ++k) {
            g[c][k] = xalloc(bytes);
            memset(g[c][k], 0x7f, bytes);
            a.grad[k] = g[c][k];
        }
        st[c] = fl_run(id, f32, &a, &res[c]);
    }
    fl_args a = fl_family_args(s, in, tgt, rows, F, 2);
    a.reduction = reduction;
    const int st_lo = fl_run(id, f32, &a, &res_lo);
    if (st[0] != st[1] || st[0] != st_lo)
        fail("threads or the loss-only call changed the status", name, f32, n);
    if (st[0] == FL_E_DOMAIN ||
        (st[0] == FL_E_INDEX && res[0].bad_pos >= 0 && s->layout == L_CLASS)) {
        for (int c = 0; c < 2; ++c)
            for (int k = 0; k < s->n_inputs; ++k)
                if (memcmp(g[c][k], sentinel, bytes))
                    fail("a check pass error wrote a gradient", name, f32, n);
        if (res[0].bad_pos != res[1].bad_pos)
            fail("threads changed the first bad position", name, f32, n);
    } else if (st[0] == FL_OK) {
        const double s0 = res[0].acc[0], s1 = res[1].acc[0], s2 = res_lo.acc[0];
        if (!(isnan(s0) && isnan(s1)) && !same_double(s0, s1))
            fail("threads: sums differ", name, f32, n);
        if (!(isnan(s0) && isnan(s2)) && !same_double(s0, s2))
            fail("loss-only sum differs", name, f32, n);
        if (!same_values(lo[0], lo[1], f32, n_loss))
            fail("threads: losses differ", name, f32, n);
        for (int k = 0; k < s->n_inputs; ++k)
            if (!same_values(g[0][k], g[1][k], f32, n))
                fail("threads: gradients differ", name, f32, n);
        /* the first gradient in place */
        fl_args ai = fl_family_args(s, in, tgt, rows, F, 2);
        fl_result ri;
        void *x = dup(in[0], bytes);
        ai.reduction = reduction;
        ai.input[0] = x;
        ai.grad[0] = x;
        if (fl_run(id, f32, &ai, &ri) != FL_OK || !same_values(x, g[0][0], f32, n))
            fail("in-place gradient differs", name, f32, n);
        free(x);
        /* the hessian: a kernel that has one gives the same gradient with it and
         * bitwise the same hessian for 1 and 3 threads; the others refuse it
         * before writing anything */
        void *h[2], *gh = xalloc(bytes ? bytes : 1);
        int hst[2];
        for (int c = 0; c < 2; ++c) {
            fl_args ah = fl_family_args(s, in, tgt, rows, F, c == 0 ? 1 : 3);
            fl_result rh;
            ah.reduction = reduction;
            h[c] = xalloc(bytes ? bytes : 1);
            memset(h[c], 0x7f, bytes);
            memset(gh, 0x7f, bytes);
            ah.hess = h[c];
            ah.grad[0] = gh;
            hst[c] = fl_run(id, f32, &ah, &rh);
            if (hst[c] == FL_OK && !same_values(gh, g[0][0], f32, n))
                fail("the gradient differs with a hessian", name, f32, n);
            if (hst[c] == FL_E_UNSUPPORTED &&
                (memcmp(h[c], sentinel, bytes) || memcmp(gh, sentinel, bytes)))
                fail("a refused hessian wrote something", name, f32, n);
        }
        if (hst[0] != hst[1] || (hst[0] != FL_OK && hst[0] != FL_E_UNSUPPORTED))
            fail("unexpected status with a hessian", name, f32, n);
        if (hst[0] == FL_OK && !same_values(h[0], h[1], f32, n))
            fail("threads: hessians differ", name, f32, n);
        free(h[0]);
        free(h[1]);
        free(gh);
    } else {
        fail("unexpected status", name, f32, n);
    }
    for (int k = 0; k < 3; ++k)
        if (in[k] && memcmp(in[k], copy[k], bytes))
            fail("an input was modified", name, f32, n);
    if (tgt && memcmp(tgt, tgt_copy, tbytes))
        fail("the target was modified", name, f32, n);
    for (int k = 0; k < 3; ++k) {
        free(in[k]);
        free(copy[k]);
        free(g[0][k]);
        free(g[1][k]);
    }
    free(lo[0]);
    free(lo[1]);
    free(tgt);
    free(tgt_copy);
    free(sentinel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, size, 0 };
    call_t c;
    memset(&c, 0, sizeof c);
    const unsigned b0 = rd_byte(&r), b1 = rd_byte(&r);
    c.kernel = (int)(b0 % N_KERNELS);
    c.f32 = (b0 >> 3) & 1;
    /* SIMD target: the best, or a lower one this CPU supports */
    static const char *const targets[] = { "best", "baseline", "avx2", "avx512" };
    if (fl_target_set(targets[(b0 >> 4) & 3]) != 0)
        fl_target_set("best");
    if (c.kernel == K_INTROSPECT) {
        introspect(&r);
        return 0;
    }
    if (c.kernel == K_FAMILY) {
        fuzz_family(&r, c.f32);
        return 0;
    }
    const int want_loss = b1 & 1, want_grad = (b1 >> 1) & 1, with_w = (b1 >> 2) & 1;
    const int big = ((b1 >> 3) & 7) == 7; /* an eighth of the inputs */
    c.rows = (fl_index)(rd_byte(&r) % 65);
    c.C = (fl_index)(rd_byte(&r) % 64 + 1);
    if (big)
        c.rows *= 16; /* up to 1024 x 64 = 64K elements: helper threads start */
    c.n = c.rows * c.C;
    const size_t es = c.f32 ? sizeof(float) : sizeof(double);

    /* parameters, each in its documented domain */
    c.eps = (double)rd_byte(&r) / 255.0;
    if (c.eps > 0.9)
        c.eps = 0.0;
    {
        double a = rd_value(&r, 0);
        c.alpha = isfinite(a) ? a : 0.25;
        double g = fabs(rd_value(&r, 0));
        c.gamma = isfinite(g) && g <= 64.0 ? g : 2.0;
        double k = fabs(rd_value(&r, 0));
        c.k = isfinite(k) ? k : 1.0;
        if (c.kernel == K_HUBER && !(c.k > 0))
            c.k = 1.0;
    }
    c.scale = (b1 >> 6) & 1 ? (c.n ? 1.0 / (double)c.n : 0.0) : 1.0;
    static const int64_t ignores[] = { -100, 0, 1, -1, INT64_MIN, INT64_MAX };
    c.ignore = ignores[rd_byte(&r) % 6];

    /* values: read n of them (tiled over the input in big mode) */
    c.x = xalloc((size_t)c.n * es);
    const size_t start = r.i;
    for (fl_index i = 0; i < c.n; ++i) {
        if (big && r.i >= r.n)
            r.i = start;
        put(c.x, c.f32, i, rd_value(&r, c.f32));
    }
    if (c.kernel != K_CHECK && c.kernel != K_CE_INDEX) {
        c.t = xalloc((size_t)c.n * es);
        for (fl_index i = 0; i < c.n; ++i) {
            if (big && r.i >= r.n)
                r.i = start;
            put(c.t, c.f32, i, rd_value(&r, c.f32));
        }
    }
    if (c.kernel == K_CHECK || c.kernel == K_CE_INDEX) {
        c.idx = xalloc((size_t)c.rows * sizeof(int64_t));
        static const int64_t far[] = {
            -1, -2, INT64_MIN, INT64_MAX, INT64_MIN + 1, (int64_t)1 << 40, -((int64_t)1 << 40)
        };
        for (fl_index i = 0; i < c.rows; ++i) {
            /* tiled like the values in big mode, so bad rows reach the later
             * segments (and helper threads) too */
            if (big && r.i >= r.n)
                r.i = start;
            unsigned v = rd_byte(&r);
            /* mostly valid; sometimes the ignore index, just out of range
             * (C .. C + 7), far out of range, or any 64-bit value */
            c.idx[i] = v < 224   ? (int64_t)(v % (unsigned)c.C)
                       : v < 240 ? c.ignore
                       : v < 248 ? (int64_t)c.C + (int64_t)(v - 240)
                       : v < 255 ? far[v - 248]
                                 : (int64_t)rd_bits(&r, 8);
        }
    }
    if (with_w && (c.kernel == K_CHECK || c.kernel == K_CE_INDEX || c.kernel == K_CE_PROB)) {
        c.w = xalloc((size_t)c.C * es);
        for (fl_index j = 0; j < c.C; ++j)
            put(c.w, c.f32, j, rd_value(&r, c.f32));
    }
    if (c.kernel == K_BCE) {
        make_bcast(&r, &c, &c.bw, &c.bw_buf, &c.bw_len, c.bw_shape, c.bw_stride, &c.bw_full);
        make_bcast(&r, &c, &c.bpw, &c.bpw_buf, &c.bpw_len, c.bpw_shape, c.bpw_stride, &c.bpw_full);
    }

    if (c.kernel == K_CHECK || c.kernel == K_CE_INDEX)
        check_targets(&c);
    /* fl_ce_index with any class indices: it must stay memory-safe and flag
     * the invalid ones (a caller cannot rule out a racing writer) */
    if (c.kernel != K_CHECK)
        exercise(&c, want_loss, want_grad);

    free(c.x);
    free(c.t);
    free(c.idx);
    free(c.w);
    free(c.bw_buf);
    free(c.bpw_buf);
    free(c.bw_full);
    free(c.bpw_full);
    return 0;
}
