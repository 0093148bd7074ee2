/* C test driver: checks the kernels without Python.
 *
 * Closed forms (uniform logits, x = 0, kinks), fused vs loss-only vs in-place
 * agreement, and central finite differences of every loss in double.
 * Invalid class indices given straight to fl_ce_index (no fl_ce_check_targets
 * first): NaN rows, bad_pos / bad_value, the other rows bitwise those of a run
 * with the bad rows ignored, and canaries around every output (few-class and
 * row paths, 1 and 4 threads).  The general fl_bcast form against a weight
 * array materialised by a naive loop.  The calling convention itself through
 * fl_run: kernel names and ids, hessians by central differences of the
 * gradient (every way of asking), unsupported options refused before any
 * write, denominators, the mean scale, a mean over nothing.
 * Build and run: csrc/tests/run.sh (or any C99 compiler: see that script).
 */
#include "fusedloss.h"
#include "legacy_api.h"
#define FL_TEST_SEED 88172645463325252ULL
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass = 0, n_fail = 0;

static void check(int ok, const char *what, double got, double want)
{
    if (ok) {
        ++n_pass;
    } else {
        ++n_fail;
        printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
    }
}

static void close_to(const char *what, double got, double want, double tol)
{
    double err = fabs(got - want), scale = fabs(want) > 1 ? fabs(want) : 1;
    check(err <= tol * scale, what, got, want);
}

#define NO_W FL_NO_BCAST

static void test_ce_closed_forms(void)
{
    enum { N = 3, C = 5 };
    double z[N * C], g[N * C], loss[N];
    int64_t t[N] = { 0, 4, -100 };
    for (int i = 0; i < N * C; ++i)
        z[i] = 2.5; /* uniform rows: loss log C, grad 1/C - onehot */
    double sum = fl_ce_index_f64(z, t, N, C, NULL, -100, 0.0, 1.0, loss, g, 1, NULL, NULL);
    close_to("ce uniform loss", loss[0], log(5.0), 1e-15);
    close_to("ce uniform sum", sum, 2 * log(5.0), 1e-15);
    close_to("ce ignored loss", loss[2], 0.0, 0);
    close_to("ce uniform grad target", g[0], 0.2 - 1.0, 1e-15);
    close_to("ce uniform grad other", g[1], 0.2, 1e-15);
    close_to("ce ignored grad", g[2 * C + 3], 0.0, 0);

    double denom = -1;
    fl_index bad = fl_ce_check_targets_f64(t, N, C, -100, NULL, &denom);
    check(bad == -1, "check targets ok", (double)bad, -1);
    close_to("check targets denom", denom, 2.0, 0);
    int64_t t_bad[3] = { 0, 5, 1 };
    bad = fl_ce_check_targets_f64(t_bad, 3, C, -100, NULL, &denom);
    check(bad == 1, "check targets finds position", (double)bad, 1);

    /* A dominant class: loss log1p(e^-80) ~ 1.8e-35 kept to full precision. */
    double z2[2] = { 80.0, 0.0 }, g2[2];
    int64_t t2 = 0;
    double l2 = fl_ce_index_f64(z2, &t2, 1, 2, NULL, -100, 0.0, 1.0, NULL, g2, 1, NULL, NULL);
    close_to("ce dominant loss rel", l2 / log1p(exp(-80.0)), 1.0, 1e-15);
    close_to("ce dominant grad rel", g2[0] / -exp(-80.0), 1.0, 1e-14);
}

static void test_ce_paths_agree(void)
{
    enum { N = 7, C = 33 };
    double z[N * C], zi[N * C], g[N * C], y[N * C], w[C], loss1[N], loss2[N];
    int64_t t[N];
    for (int i = 0; i < N * C; ++i)
        z[i] = urand(6.0);
    for (int j = 0; j < C; ++j)
        w[j] = 0.5 + fabs(urand(1.0));
    for (int r = 0; r < N; ++r)
        t[r] = (r * 7) % C;
    double s1 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 0.5, loss1, g, 1, NULL, NULL);
    double s2 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 0.5, loss2, NULL, 1, NULL, NULL);
    memcpy(zi, z, sizeof z);
    double s3 = fl_ce_index_f64(zi, t, N, C, w, -100, 0.1, 0.5, NULL, zi, 1, NULL, NULL);
    check(s1 == s2, "ce loss-only sum == fused sum", s2, s1);
    check(s1 == s3, "ce in-place sum == fused sum", s3, s1);
    check(memcmp(g, zi, sizeof g) == 0, "ce in-place grad == out-of-place grad", 0, 0);
    check(memcmp(loss1, loss2, sizeof loss1) == 0, "ce loss-only rows", 0, 0);
    /* One-hot probabilities equal class indices. */
    memset(y, 0, sizeof y);
    for (int r = 0; r < N; ++r)
        y[r * C + t[r]] = 1.0;
    double s4 = fl_ce_prob_f64(z, y, N, C, w, 0.1, 1.0, NULL, NULL, 1);
    double s5 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 1.0, NULL, NULL, 1, NULL, NULL);
    close_to("ce one-hot prob == index", s4, s5, 1e-13);
}

/* Central differences of the summed loss against the analytic gradient. */
typedef double (*loss_fn)(double *x, double *g, int n);

static double f_ce(double *x, double *g, int n)
{
    int64_t t[3] = { 1, 0, 2 };
    double w[4] = { 1.0, 2.0, 0.5, 1.5 };
    return fl_ce_index_f64(x, t, n / 4, 4, w, -100, 0.2, 1.0, NULL, g, 1, NULL, NULL);
}
static double f_ce_prob(double *x, double *g, int n)
{
    double y[12] = { .1, .2, .3, .4, 1, 0, 0, 0, .25, .25, .25, .25 };
    return fl_ce_prob_f64(x, y, n / 4, 4, NULL, 0.1, 1.0, NULL, g, 1);
}
static double f_bce(double *x, double *g, int n)
{
    double t[12] = { 0, 1, .3, 1, 0, .5, 1, 1, 0, 0, .9, .1 };
    double w[4] = { 1, 2, .5, 3 }, pw[3] = { 2, 1, .5 };
    fl_bcast wb = { w, 4, 0, 1, 0, NULL, NULL };   /* weight of shape (4,) over a (3, 4) array */
    fl_bcast pwb = { pw, 4, 1, 0, 0, NULL, NULL }; /* pos_weight of shape (3, 1) */
    return fl_bce_f64(x, t, n, wb, pwb, 1.0, NULL, g, 1);
}
static double f_focal(double *x, double *g, int n)
{
    double t[12] = { 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0 };
    return fl_focal_f64(x, t, n, 0.25, 1.5, 1.0, NULL, g, 1);
}
static double f_huber(double *x, double *g, int n)
{
    double t[12] = { 0 };
    return fl_huber_f64(x, t, n, 1.3, 1.0, NULL, g, 1);
}
static double f_sl1(double *x, double *g, int n)
{
    double t[12] = { 0 };
    return fl_smooth_l1_f64(x, t, n, 0.7, 1.0, NULL, g, 1);
}

static void test_finite_differences(const char *name, loss_fn f)
{
    enum { N = 12 };
    double x[N], g[N], xp[N];
    char what[96];
    for (int i = 0; i < N; ++i)
        x[i] = urand(3.0);
    f(x, g, N);
    for (int i = 0; i < N; ++i) {
        const double h = 1e-6;
        memcpy(xp, x, sizeof x);
        xp[i] = x[i] + h;
        double up = f(xp, NULL, N);
        xp[i] = x[i] - h;
        double dn = f(xp, NULL, N);
        snprintf(what, sizeof what, "%s finite difference [%d]", name, i);
        close_to(what, g[i], (up - dn) / (2 * h), 1e-7);
    }
}

static void test_elementwise_closed_forms(void)
{
    double x[4] = { 0, 0, 2, -2 }, t[4] = { 0, 1, 0, 0 }, g[4], loss[4];
    fl_bce_f64(x, t, 2, NO_W, NO_W, 1.0, loss, g, 1);
    close_to("bce x=0 loss", loss[0], log(2.0), 1e-15);
    close_to("bce x=0 grad t=0", g[0], 0.5, 1e-15);
    close_to("bce x=0 grad t=1", g[1], -0.5, 1e-15);

    double xb[1] = { -80.0 }, tb[1] = { 0.0 }, lb;
    fl_bce_f64(xb, tb, 1, NO_W, NO_W, 1.0, &lb, NULL, 1);
    close_to("bce tiny loss rel", lb / log1p(exp(-80.0)), 1.0, 1e-15);

    /* gamma = 0 and alpha < 0: focal loss is BCE */
    double xf[6], tf[6], lf[6], lbce[6], gf[6], gb[6];
    for (int i = 0; i < 6; ++i) {
        xf[i] = urand(5.0);
        tf[i] = i % 2;
    }
    fl_focal_f64(xf, tf, 6, -1.0, 0.0, 1.0, lf, gf, 1);
    fl_bce_f64(xf, tf, 6, NO_W, NO_W, 1.0, lbce, gb, 1);
    for (int i = 0; i < 6; ++i) {
        close_to("focal(gamma=0) == bce loss", lf[i], lbce[i], 1e-15);
        close_to("focal(gamma=0) == bce grad", gf[i], gb[i], 1e-15);
    }
    /* gamma < 1 at a saturated correct prediction: finite gradient */
    double xs[1] = { 1e4 }, ts[1] = { 1.0 }, gs;
    fl_focal_f64(xs, ts, 1, 0.25, 0.5, 1.0, NULL, &gs, 1);
    check(isfinite(gs) && gs == 0.0, "focal saturated gradient finite", gs, 0.0);

    fl_huber_f64(x + 2, t + 2, 2, 1.0, 1.0, loss, g, 1);
    close_to("huber linear loss", loss[0], 1.5, 0);
    close_to("huber clamp grad", g[1], -1.0, 0);
    double z0[1] = { 0.0 }, gz;
    fl_smooth_l1_f64(z0, z0, 1, 0.0, 1.0, NULL, &gz, 1);
    check(gz == 0.0, "l1 sign(0) == 0", gz, 0.0);
    double xn[1] = { NAN };
    fl_huber_f64(xn, z0, 1, 1.0, 1.0, loss, &gz, 1);
    check(isnan(loss[0]) && isnan(gz), "huber NaN propagates", gz, NAN);
}

static void test_float32_matches_float64(void)
{
    enum { N = 4, C = 1000 };
    static float zf[N * C], gf[N * C];
    static double zd[N * C], gd[N * C];
    int64_t t[N] = { 3, 999, 0, 500 };
    for (int i = 0; i < N * C; ++i)
        zd[i] = (double)(zf[i] = (float)urand(4.0));
    double sf = fl_ce_index_f32(zf, t, N, C, NULL, -100, 0.0, 1.0, NULL, gf, 1, NULL, NULL);
    double sd = fl_ce_index_f64(zd, t, N, C, NULL, -100, 0.0, 1.0, NULL, gd, 1, NULL, NULL);
    close_to("ce f32 vs f64 sum", sf / sd, 1.0, 1e-6);
    double maxerr = 0;
    for (int i = 0; i < N * C; ++i) {
        /* not fmax(): aarch64 GCC 12.2 crashes vectorising that reduction,
         * and fmax would skip a NaN */
        const double e = fabs((double)gf[i] - gd[i]);
        if (e > maxerr || e != e)
            maxerr = e;
    }
    check(maxerr < 1e-6, "ce f32 vs f64 grad", maxerr, 0);
}

/* ---- invalid class indices, given straight to fl_ce_index --------------- */

/* Output buffers with canaries: GUARD elements of a byte pattern on each
 * side, checked after every call (without a sanitizer too). */
#define GUARD 64
#define CANARY 0xC3

typedef struct {
    unsigned char *base;
    size_t es;
    fl_index n;
} gbuf;

static void *gb_alloc(gbuf *b, fl_index n, size_t es, int fill)
{
    b->es = es;
    b->n = n;
    b->base = xmalloc(((size_t)n + 2 * GUARD) * es);
    memset(b->base, CANARY, GUARD * es);
    memset(b->base + GUARD * es, fill, (size_t)n * es);
    memset(b->base + (GUARD + (size_t)n) * es, CANARY, GUARD * es);
    return b->base + GUARD * es;
}

static int gb_intact(const gbuf *b)
{
    const unsigned char *tail = b->base + (GUARD + (size_t)b->n) * b->es;
    for (size_t k = 0; k < GUARD * b->es; ++k)
        if (b->base[k] != CANARY || tail[k] != CANARY)
            return 0;
    return 1;
}

static double at(const void *a, int f32, fl_index i)
{
    return f32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static void set_at(void *a, int f32, fl_index i, double v)
{
    if (f32)
        ((float *)a)[i] = (float)v;
    else
        ((double *)a)[i] = v;
}

/* Elements [i, i + n) of a and b are bitwise equal. */
static int same_range(const void *a, const void *b, int f32, fl_index i, fl_index n)
{
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    return memcmp((const char *)a + (size_t)i * es, (const char *)b + (size_t)i * es,
                  (size_t)n * es) == 0;
}

static int same_bits_d(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static double ce_call(int f32, const void *z, const int64_t *t, fl_index R, fl_index C,
                      const void *w, int64_t ign, double eps, double scale, void *loss, void *grad,
                      int nt, fl_index *bp, int64_t *bv)
{
    if (f32)
        return fl_ce_index_f32((const float *)z, t, R, C, (const float *)w, ign, eps, scale,
                               (float *)loss, (float *)grad, nt, bp, bv);
    return fl_ce_index_f64((const double *)z, t, R, C, (const double *)w, ign, eps, scale,
                           (double *)loss, (double *)grad, nt, bp, bv);
}

enum { M_SUM, M_LOSS, M_GRAD, M_INPLACE, N_MODES };
static const char *const MODE_NAME[] = { "sum-only", "loss-only", "grad", "grad-in-place" };

enum { P_SCATTER, P_LAST, P_LATE, P_FIRST_LANES, P_NONE, N_PATTERNS };

/* Which rows get an invalid index. */
static int bad_row(int pattern, fl_index r, fl_index R)
{
    switch (pattern) {
    case P_SCATTER:
        return r % 13 == 3 || r == R - 1;
    case P_LAST:
        return r == R - 1;
    case P_LATE:
        return r >= R / 2 + 7 && r % 5 == 0; /* later segments only */
    case P_FIRST_LANES:
        return r % 16 == 0 || r % 16 == 15; /* first / last tile lane */
    default:
        return 0;
    }
}

typedef struct {
    int f32;
    fl_index C, R;
    int weighted;
    double eps;
    int mode, nt, pattern;
    int64_t ignore;
} bad_cfg;

static int64_t bad_value_for(fl_index r, fl_index C, int64_t ignore)
{
    const int64_t vals[] = { -1,
                             (int64_t)C,
                             (int64_t)C + 1,
                             INT64_MIN,
                             INT64_MAX,
                             (int64_t)1 << 40,
                             -((int64_t)1 << 40),
                             INT64_MIN + 1,
                             (int64_t)C * 1000 + 7,
                             -2,
                             (int64_t)1 << 32,
                             -((int64_t)1 << 31) };
    const int nv = (int)(sizeof vals / sizeof vals[0]);
    for (int k = 0;; ++k) {
        const int64_t v = vals[(r * 7 + k) % nv];
        if (v != ignore)
            return v;
    }
}

static long long n_bad_cases = 0, n_bad_rows_seen = 0;

static void bad_index_case(const bad_cfg *k)
{
    const int f32 = k->f32;
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    const fl_index R = k->R, C = k->C, n = R * C;
    const double scale = 1.0 / (double)R;
    const int want_loss = k->mode != M_SUM, want_grad = k->mode >= M_GRAD;
    const int inplace = k->mode == M_INPLACE;
    char what[256];
    void *z = xmalloc((size_t)n * es), *z0 = xmalloc((size_t)n * es);
    void *w = NULL, *w0 = NULL;
    int64_t *t = xmalloc((size_t)R * sizeof(int64_t)), *tref = xmalloc((size_t)R * sizeof(int64_t));
    int64_t *t0 = xmalloc((size_t)R * sizeof(int64_t));
    fl_index first_bad = -1, n_bad = 0;

    for (fl_index i = 0; i < n; ++i)
        set_at(z, f32, i, urand(4.0));
    memcpy(z0, z, (size_t)n * es);
    if (k->weighted) {
        w = xmalloc((size_t)C * es);
        for (fl_index j = 0; j < C; ++j)
            set_at(w, f32, j, 1.25 + urand(1.0));
        w0 = xmalloc((size_t)C * es);
        memcpy(w0, w, (size_t)C * es);
    }
    for (fl_index r = 0; r < R; ++r) {
        if (bad_row(k->pattern, r, R)) {
            t[r] = bad_value_for(r, C, k->ignore);
            tref[r] = k->ignore;
            if (first_bad < 0)
                first_bad = r;
            ++n_bad;
        } else {
            /* valid, or the ignore index (which may itself be -1, 1, INT64_MIN) */
            t[r] = r % 11 == 5 ? k->ignore : (int64_t)((r * 37 + 11) % C);
            tref[r] = t[r];
        }
    }
    memcpy(t0, t, (size_t)R * sizeof(int64_t));

    /* The reference (bad rows ignored) and the run under test, same mode. */
    gbuf Lr, Gr, Lb, Gb;
    void *lr = gb_alloc(&Lr, want_loss ? R : 0, es, 0x5A);
    void *gr = gb_alloc(&Gr, want_grad ? n : 0, es, 0x5A);
    void *lb = gb_alloc(&Lb, want_loss ? R : 0, es, 0xA5);
    void *gb = gb_alloc(&Gb, want_grad ? n : 0, es, 0xA5);
    if (inplace) {
        memcpy(gr, z, (size_t)n * es);
        memcpy(gb, z, (size_t)n * es);
    }
    fl_index bp_ref = 4242, bp = 4242;
    int64_t bv_ref = 4242, bv = 4242;
    const double s_ref =
        ce_call(f32, inplace ? gr : z, tref, R, C, w, k->ignore, k->eps, scale,
                want_loss ? lr : NULL, want_grad ? gr : NULL, k->nt, &bp_ref, &bv_ref);
    const double s = ce_call(f32, inplace ? gb : z, t, R, C, w, k->ignore, k->eps, scale,
                             want_loss ? lb : NULL, want_grad ? gb : NULL, k->nt, &bp, &bv);
    ++n_bad_cases;
    n_bad_rows_seen += n_bad;

#define WHAT(prop)                                                                                 \
    (snprintf(what, sizeof what,                                                                   \
              "bad index %s %s C=%ld R=%ld w=%d eps=%g nt=%d pat=%d "                              \
              "ign=%lld: %s",                                                                      \
              f32 ? "f32" : "f64", MODE_NAME[k->mode], (long)C, (long)R, k->weighted, k->eps,      \
              k->nt, k->pattern, (long long)k->ignore, prop),                                      \
     what)
    check(bp_ref == -1, WHAT("reference bad_pos == -1"), (double)bp_ref, -1);
    check(isfinite(s_ref), WHAT("reference sum finite"), s_ref, 0);
    check(bp == first_bad, WHAT("bad_pos is the first bad row"), (double)bp, (double)first_bad);
    if (first_bad >= 0)
        check(bv == t[first_bad], WHAT("bad_value is the index read there"), (double)bv,
              (double)t[first_bad]);
    if (first_bad >= 0)
        check(isnan(s), WHAT("sum is NaN"), s, NAN);
    else
        check(same_bits_d(s, s_ref), WHAT("sum equals the reference"), s, s_ref);

    if (want_loss) {
        int ok_bad = 1, ok_good = 1, ok_ign = 1;
        for (fl_index r = 0; r < R; ++r) {
            const double v = at(lb, f32, r);
            if (bad_row(k->pattern, r, R))
                ok_bad &= isnan(v);
            else
                ok_good &= same_range(lb, lr, f32, r, 1) && isfinite(v);
            if (t[r] == k->ignore)
                ok_ign &= v == 0;
        }
        check(ok_bad, WHAT("bad rows have a NaN loss"), 0, 0);
        check(ok_good, WHAT("other rows' losses equal the reference bitwise"), 0, 0);
        check(ok_ign, WHAT("ignored rows have loss 0"), 0, 0);
    }
    if (want_grad) {
        int ok_bad = 1, ok_good = 1, ok_ign = 1;
        for (fl_index r = 0; r < R; ++r) {
            if (bad_row(k->pattern, r, R)) {
                for (fl_index j = 0; j < C; ++j)
                    ok_bad &= isnan(at(gb, f32, r * C + j));
            } else {
                ok_good &= same_range(gb, gr, f32, r * C, C);
                for (fl_index j = 0; j < C; ++j)
                    ok_good &= isfinite(at(gb, f32, r * C + j));
            }
            if (t[r] == k->ignore)
                for (fl_index j = 0; j < C; ++j)
                    ok_ign &= at(gb, f32, r * C + j) == 0;
        }
        check(ok_bad, WHAT("bad rows have an all-NaN gradient"), 0, 0);
        check(ok_good, WHAT("other rows' gradients equal the reference bitwise"), 0, 0);
        check(ok_ign, WHAT("ignored rows have a zero gradient"), 0, 0);
    }
    if (inplace) {
        /* the in-place gradient is the out-of-place one */
        gbuf Go;
        void *go = gb_alloc(&Go, n, es, 0x11);
        fl_index bp2 = 4242;
        ce_call(f32, z, t, R, C, w, k->ignore, k->eps, scale, NULL, go, k->nt, &bp2, NULL);
        int ok = bp2 == first_bad;
        for (fl_index i = 0; i < n && ok; ++i)
            ok = same_range(go, gb, f32, i, 1) || (isnan(at(go, f32, i)) && isnan(at(gb, f32, i)));
        check(ok, WHAT("in-place gradient equals the out-of-place one"), 0, 0);
        check(gb_intact(&Go), WHAT("canaries (out-of-place gradient)"), 0, 0);
        free(Go.base);
    }
    check(gb_intact(&Lr) && gb_intact(&Gr) && gb_intact(&Lb) && gb_intact(&Gb),
          WHAT("canaries intact"), 0, 0);
    check(memcmp(z, z0, (size_t)n * es) == 0 && memcmp(t, t0, (size_t)R * sizeof(int64_t)) == 0 &&
              (!w || memcmp(w, w0, (size_t)C * es) == 0),
          WHAT("inputs unchanged"), 0, 0);
    if (k->mode == M_SUM) {
        /* bad_pos without bad_value, and neither: same verdict */
        fl_index bp3 = 4242;
        const double s3 =
            ce_call(f32, z, t, R, C, w, k->ignore, k->eps, scale, NULL, NULL, k->nt, &bp3, NULL);
        const double s4 =
            ce_call(f32, z, t, R, C, w, k->ignore, k->eps, scale, NULL, NULL, k->nt, NULL, NULL);
        check(bp3 == first_bad && (same_bits_d(s3, s) || (isnan(s3) && isnan(s))) &&
                  (same_bits_d(s4, s) || (isnan(s4) && isnan(s))),
              WHAT("bad_value / bad_pos NULL"), (double)bp3, (double)first_bad);
    }
#undef WHAT
    free(Lr.base);
    free(Gr.base);
    free(Lb.base);
    free(Gb.base);
    free(z);
    free(z0);
    free(w);
    free(w0);
    free(t);
    free(tref);
    free(t0);
}

static void test_ce_bad_indices(int quick)
{
    static const fl_index CS[] = { 2, 10, 16, 17, 1000 };
    static const int64_t IGNORES[] = { -100, -1, INT64_MIN, 1 };
    const int pass0 = n_pass, fail0 = n_fail;
    int counter = 0;
    for (int f32 = 0; f32 < 2; ++f32)
        for (int ci = 0; ci < 5; ++ci)
            for (int combo = 0; combo < 4; ++combo)
                for (int mode = 0; mode < N_MODES; ++mode) {
                    bad_cfg k;
                    k.f32 = f32;
                    k.C = CS[ci];
                    k.weighted = combo & 1;
                    k.eps = combo & 2 ? 0.1 : 0.0;
                    k.mode = mode;
                    k.ignore = IGNORES[counter % 4];
                    /* one thread: a single partial tile, full tiles, full + partial */
                    static const fl_index RS[] = { 7, 48, 53 };
                    for (int ri = 0; ri < 3; ++ri) {
                        k.R = RS[ri];
                        k.nt = 1;
                        k.pattern = (counter + ri) % N_PATTERNS;
                        bad_index_case(&k);
                    }
                    /* four threads: 2^19 elements and more (parallel from 2^18;
                     * quick: just above 2^18, two threads, one gradient mode) */
                    if (quick && mode != (combo % 2 ? M_GRAD : M_INPLACE)) {
                        ++counter;
                        continue;
                    }
                    k.R = ((fl_index)1 << (quick ? 18 : 19)) / k.C + 37;
                    k.nt = 4;
                    k.pattern = counter % N_PATTERNS;
                    bad_index_case(&k);
                    ++counter;
                }
    printf("bad indices: %lld calls compared, %lld bad rows (checks: %d ok, %d failing)\n",
           n_bad_cases, n_bad_rows_seen, n_pass - pass0, n_fail - fail0);
}

/* ---- the general broadcast form of fl_bcast ----------------------------- */

/* weight(i) = w[sum_d k_d stride[d]], k the C-order multi-index of i. */
static fl_index bcast_offset(int nd, const fl_index *shape, const fl_index *stride, fl_index i)
{
    fl_index off = 0;
    for (int d = nd - 1; d >= 0; --d) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

typedef struct {
    int nd; /* 0: no weight */
    const fl_index *shape, *stride;
    fl_index len; /* elements of the weight array (exact allocation) */
} gdesc;

static double bce_call(int f32, const void *x, const void *t, fl_index n, fl_bcast w, fl_bcast pw,
                       void *loss, void *grad, int nt)
{
    if (f32)
        return fl_bce_f32((const float *)x, (const float *)t, n, w, pw, 0.5, (float *)loss,
                          (float *)grad, nt);
    return fl_bce_f64((const double *)x, (const double *)t, n, w, pw, 0.5, (double *)loss,
                      (double *)grad, nt);
}

/* BCE with weight / pos_weight in the general form against the same weights
 * materialised element by element (simple form, full array): bitwise equal
 * losses, gradients and sums.  Weight arrays are allocated at their exact
 * size, so ASan flags any read outside them. */
static void bcast_general_case(const char *name, int f32, fl_index n, const gdesc *dw,
                               const gdesc *dp, int nt)
{
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    void *x = xmalloc((size_t)n * es), *t = xmalloc((size_t)n * es);
    void *w = NULL, *pw = NULL, *wf = NULL, *pwf = NULL;
    fl_bcast gw = { NULL, 1, 0, 0, 0, NULL, NULL }, gp = gw, sw = gw, sp = gw;
    char what[200];
    for (fl_index i = 0; i < n; ++i) {
        set_at(x, f32, i, urand(5.0));
        set_at(t, f32, i, 0.5 + urand(0.5));
    }
    const gdesc *ds[2] = { dw, dp };
    void **bufs[2] = { &w, &pw }, **fulls[2] = { &wf, &pwf };
    fl_bcast *gs[2] = { &gw, &gp }, *ss[2] = { &sw, &sp };
    for (int q = 0; q < 2; ++q) {
        const gdesc *d = ds[q];
        if (!d || d->nd == 0)
            continue;
        *bufs[q] = xmalloc((size_t)d->len * es);
        for (fl_index j = 0; j < d->len; ++j)
            set_at(*bufs[q], f32, j, 1.0 + urand(0.75));
        *fulls[q] = xmalloc((size_t)n * es);
        for (fl_index i = 0; i < n; ++i)
            set_at(*fulls[q], f32, i,
                   at(*bufs[q], f32, bcast_offset(d->nd, d->shape, d->stride, i)));
        gs[q]->ptr = *bufs[q];
        gs[q]->ndim = d->nd;
        gs[q]->shape = d->shape;
        gs[q]->stride = d->stride;
        ss[q]->ptr = *fulls[q];
        ss[q]->cols = n;
        ss[q]->cs = 1;
    }
    gbuf L1, G1, L2, G2;
    void *l1 = gb_alloc(&L1, n, es, 0x5A), *g1 = gb_alloc(&G1, n, es, 0x5A);
    void *l2 = gb_alloc(&L2, n, es, 0xA5), *g2 = gb_alloc(&G2, n, es, 0xA5);
    const double s1 = bce_call(f32, x, t, n, gw, gp, l1, g1, nt);
    const double s2 = bce_call(f32, x, t, n, sw, sp, l2, g2, 1);
    const double s3 = bce_call(f32, x, t, n, gw, gp, NULL, NULL, nt);
    snprintf(what, sizeof what, "bcast general %s %s n=%ld nt=%d", name, f32 ? "f32" : "f64",
             (long)n, nt);
    check(same_bits_d(s1, s2) && same_bits_d(s1, s3) && isfinite(s1), what, s1, s2);
    check(same_range(l1, l2, f32, 0, n), what, 0, 0);
    check(same_range(g1, g2, f32, 0, n), what, 0, 0);
    check(gb_intact(&L1) && gb_intact(&G1) && gb_intact(&L2) && gb_intact(&G2), what, 0, 0);
    free(L1.base);
    free(G1.base);
    free(L2.base);
    free(G2.base);
    free(x);
    free(t);
    free(w);
    free(pw);
    free(wf);
    free(pwf);
}

/* The general form against the simple form, where both can say the same. */
static void bcast_general_vs_simple(int f32)
{
    enum { R = 33, C = 29, N = R * C };
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    static const fl_index sh2[2] = { R, C }, col[2] = { 0, 1 }, row[2] = { 1, 0 };
    static const fl_index sh1[1] = { N }, zero1[1] = { 0 };
    void *x = xmalloc(N * es), *t = xmalloc(N * es), *w = xmalloc(N * es);
    void *l1 = xmalloc(N * es), *l2 = xmalloc(N * es), *g1 = xmalloc(N * es), *g2 = xmalloc(N * es);
    const fl_bcast none = { NULL, 1, 0, 0, 0, NULL, NULL };
    for (int i = 0; i < N; ++i) {
        set_at(x, f32, i, urand(5.0));
        set_at(t, f32, i, 0.5 + urand(0.5));
        set_at(w, f32, i, 1.0 + urand(0.9));
    }
    struct {
        const char *name;
        fl_bcast general, simple;
    } cases[] = {
        { "per column (C,)", { w, 1, 0, 0, 2, sh2, col }, { w, C, 0, 1, 0, NULL, NULL } },
        { "per row (R, 1)", { w, 1, 0, 0, 2, sh2, row }, { w, C, 1, 0, 0, NULL, NULL } },
        { "scalar", { w, 1, 0, 0, 1, sh1, zero1 }, { w, N, 0, 0, 0, NULL, NULL } },
        { "full (R, C)", { w, 1, 0, 0, 1, sh1, col + 1 }, { w, N, 0, 1, 0, NULL, NULL } },
        { "absent (ptr NULL, ndim 2)", { NULL, 1, 0, 0, 2, sh2, col }, none },
    };
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); ++c)
        for (int as_pw = 0; as_pw < 2; ++as_pw) {
            char what[160];
            const fl_bcast gw = as_pw ? none : cases[c].general;
            const fl_bcast gp = as_pw ? cases[c].general : none;
            const fl_bcast sw = as_pw ? none : cases[c].simple;
            const fl_bcast sp = as_pw ? cases[c].simple : none;
            const double s1 = bce_call(f32, x, t, N, gw, gp, l1, g1, 1);
            const double s2 = bce_call(f32, x, t, N, sw, sp, l2, g2, 1);
            snprintf(what, sizeof what, "bcast general == simple %s %s %s", cases[c].name,
                     as_pw ? "pos_weight" : "weight", f32 ? "f32" : "f64");
            /* Per element bitwise; the sums only to rounding: the simple
             * form splits the blocks at its rows (bcast_clip), the general
             * form does not, and block_sum adds per block. */
            check(same_range(l1, l2, f32, 0, N) && same_range(g1, g2, f32, 0, N), what, s1, s2);
            close_to(what, s1, s2, 1e-14);
            if (!same_bits_d(s1, s2))
                printf("note: %s: sums differ in the last bits (%.17g vs %.17g)\n", what, s1, s2);
        }
    free(x);
    free(t);
    free(w);
    free(l1);
    free(l2);
    free(g1);
    free(g2);
}

static void test_bcast_general(int quick)
{
    const int pass0 = n_pass, fail0 = n_fail;
    for (int f32 = 0; f32 < 2; ++f32) {
        /* weight (5, 1, 7) and pos_weight (1, 4, 1) over (5, 4, 7) */
        static const fl_index sh[3] = { 5, 4, 7 }, wst[3] = { 7, 0, 1 }, pst[3] = { 0, 1, 0 };
        const gdesc dw = { 3, sh, wst, 35 }, dp = { 3, sh, pst, 4 };
        bcast_general_case("(5,1,7) over (5,4,7)", f32, 140, &dw, NULL, 1);
        bcast_general_case("(1,4,1) pos_weight over (5,4,7)", f32, 140, NULL, &dp, 1);
        bcast_general_case("both", f32, 140, &dw, &dp, 3);

        /* large, threaded: a transposed (339, 517) weight read as (517, 339)
         * under a broadcast leading axis and a size-1 axis with an arbitrary
         * stride; pos_weight per row of 339, the last axis broadcast */
        const fl_index cols = quick ? 171 : 339; /* quick: just above 2^18 elements */
        const fl_index shb[4] = { 3, 517, 1, cols }, wstb[4] = { 0, 1, 12345, 517 };
        const fl_index shr[2] = { 3 * 517, cols }, pstr[2] = { 1, 0 };
        const gdesc dwb = { 4, shb, wstb, 517 * cols }, dpb = { 2, shr, pstr, 3 * 517 };
        bcast_general_case("transposed + broadcast, large", f32, 3 * 517 * cols, &dwb, &dpb, 4);
        if (!quick)
            bcast_general_case("transposed + broadcast, large, 1 thread", f32, 3 * 517 * cols, &dwb,
                               &dpb, 1);

        /* FL_BCAST_MAXDIM axes, nearly all of size 1 (strides beyond the
         * array there: never used, since their index is always 0) */
        static fl_index sh64[FL_BCAST_MAXDIM], st64[FL_BCAST_MAXDIM], st64b[FL_BCAST_MAXDIM];
        for (int d = 0; d < FL_BCAST_MAXDIM; ++d) {
            sh64[d] = 1;
            st64[d] = st64b[d] = 1000003;
        }
        sh64[5] = 6, st64[5] = 140, st64b[5] = 35;
        sh64[33] = 4, st64[33] = 35, st64b[33] = 0;
        sh64[63] = 35, st64[63] = 1, st64b[63] = 1;
        const gdesc d64 = { FL_BCAST_MAXDIM, sh64, st64, 840 },
                    d64b = { FL_BCAST_MAXDIM, sh64, st64b, 210 };
        bcast_general_case("64 axes", f32, 840, &d64, &d64b, 1);

        /* a trailing size-1 axis: runs of one element */
        static const fl_index sht[2] = { 1000, 1 }, stt[2] = { 1, 7777 };
        const gdesc dt = { 2, sht, stt, 1000 };
        bcast_general_case("trailing size-1 axis", f32, 1000, &dt, NULL, 1);

        /* random shapes and strides, exact-size weight arrays */
        for (int rep = 0; rep < 40; ++rep) {
            fl_index shp[2][6], std[2][6], len[2], n = 1;
            const int nd = 1 + (int)(fabs(urand(1.0)) * 6) % 6;
            for (int d = 0; d < nd; ++d) {
                shp[0][d] = shp[1][d] = 1 + (fl_index)(fabs(urand(1.0)) * 7) % 7;
                n *= shp[0][d];
            }
            for (int q = 0; q < 2; ++q) {
                fl_index top = 0;
                for (int d = 0; d < nd; ++d) {
                    std[q][d] = (fl_index)(fabs(urand(1.0)) * 6) % 6; /* 0 = broadcast */
                    top += (shp[q][d] - 1) * std[q][d];
                }
                len[q] = top + 1;
            }
            const gdesc ra = { nd, shp[0], std[0], len[0] }, rb = { nd, shp[1], std[1], len[1] };
            bcast_general_case("random", f32, n, &ra, &rb, rep % 2 ? 3 : 1);
        }
        bcast_general_vs_simple(f32);
    }
    printf("bcast general form (checks: %d ok, %d failing)\n", n_pass - pass0, n_fail - fail0);
}

/* No classes: every index but ignore_index is out of range, as
 * fl_ce_check_targets says; those rows are NaN and reported. */
static void test_ce_no_classes(void)
{
    const int64_t t[4] = { -100, 5, 0, -100 };
    double loss[4] = { 7, 7, 7, 7 };
    fl_index bad = 7;
    int64_t val = 0;
    double denom = 0;
    const double s =
        fl_ce_index_f64(NULL, t, 4, 0, NULL, -100, 0.0, 1.0, loss, NULL, 1, &bad, &val);
    check(isnan(s), "no classes: sum NaN", s, NAN);
    check(bad == 1 && val == 5, "no classes: first bad row", (double)bad, 1);
    check(loss[0] == 0 && isnan(loss[1]) && isnan(loss[2]) && loss[3] == 0,
          "no classes: per-row losses", loss[1], NAN);
    check(fl_ce_check_targets_f64(t, 4, 0, -100, NULL, &denom) == 1, "no classes: check agrees", 1,
          1);
    const int64_t ign[2] = { -100, -100 };
    bad = 7;
    const double s2 =
        fl_ce_index_f64(NULL, ign, 2, 0, NULL, -100, 0.0, 1.0, NULL, NULL, 1, &bad, NULL);
    check(s2 == 0 && bad == -1, "no classes, all ignored: 0, nothing bad", s2, 0);
}

/* ---- the calling convention itself (fl_args / fl_result, fl_run) -------- */

static fl_args plain_args(const double *x, const double *t, fl_index n)
{
    fl_args a;
    memset(&a, 0, sizeof a);
    a.n = n;
    a.input[0] = x;
    a.target = t;
    a.grad_scale = 1.0;
    a.reduction = FL_REDUCE_SUM;
    a.n_threads = 1;
    return a;
}

/* Every id has a distinct name; out-of-range ids are refused. */
static void test_contract_names(void)
{
    fl_result r;
    fl_args a = plain_args(NULL, NULL, 0);
    for (int i = 0; i < FL_N_LOSSES; ++i) {
        check(fl_loss_name(i) != NULL, "fl_loss_name(id) exists", i, 0);
        for (int j = 0; j < i; ++j)
            check(strcmp(fl_loss_name(i), fl_loss_name(j)) != 0, "kernel names distinct", i, j);
    }
    check(fl_loss_name(-1) == NULL && fl_loss_name(FL_N_LOSSES) == NULL,
          "fl_loss_name out of range is NULL", 0, 0);
    check(fl_run(FL_N_LOSSES, 0, &a, &r) == FL_E_UNKNOWN, "fl_run unknown id", 0, 0);
    check(fl_run(-1, 1, &a, &r) == FL_E_UNKNOWN, "fl_run negative id", 0, 0);
    check(strcmp(fl_loss_name(FL_ID_mse), "mse") == 0, "FL_ID_mse names mse", 0, 0);
}

/* Hessians: central differences of the gradient, every way of asking (no
 * gradient, a separate gradient, the gradient in place), with a weight and a
 * grad_scale applied to both; loss and gradient unchanged by asking. */
static void test_contract_hessians(void)
{
    enum { N = 64 };
    static const int ids[] = { FL_ID_mse,   FL_ID_l1,    FL_ID_huber,         FL_ID_smooth_l1,
                               FL_ID_bce,   FL_ID_focal, FL_ID_heatmap_focal, FL_ID_exponential,
                               FL_ID_hinge, FL_ID_kl_div };
    double x[N], t[N], w[N], h[N], g[N], g0[N], l0[N], l[N], xi[N], gp[N], gm[N], xs[N];
    for (int i = 0; i < N; ++i) {
        x[i] = urand(3.0);
        t[i] = 0.5 + 0.5 * urand(1.0); /* in [0, 1]: valid for BCE too */
        w[i] = 0.5 + 0.25 * urand(1.0);
    }
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; ++k) {
        const int id = ids[k];
        char what[96];
        fl_result r;
        fl_args a = plain_args(x, t, N);
        a.param[0] = id == FL_ID_huber ? 0.7 : id == FL_ID_smooth_l1 ? 0.6 : 0.0;
        a.param[1] = 0.0;
        if (id == FL_ID_focal) { /* alpha 0.25, gamma 1.5 (the general variant) */
            a.param[0] = 0.25;
            a.param[1] = 1.5;
        } else if (id == FL_ID_heatmap_focal) { /* CenterNet's alpha 2, beta 4 */
            a.param[0] = 2.0;
            a.param[1] = 4.0;
        }
        /* labels +-1 for the margin losses, [0.5, 1] otherwise (1 every 8th:
         * the heatmap's positives) */
        const int sign = id == FL_ID_exponential || id == FL_ID_hinge;
        for (int i = 0; i < N; ++i)
            t[i] = sign ? (i % 3 ? 1.0 : -1.0) : (i % 8 ? 0.75 + 0.25 * urand(1.0) : 1.0);
        a.weight.ptr = w;
        a.weight.cols = N;
        a.weight.cs = 1;
        a.grad_scale = 0.5;
        a.loss_out = l0;
        a.grad[0] = g0;
        fl_run(id, 0, &a, &r);
        const double s0 = r.acc[0];
        /* hessian alone, then with the gradient, then in place */
        a.grad[0] = NULL;
        a.loss_out = l;
        a.hess = h;
        snprintf(what, sizeof what, "%s: hess without grad status", fl_loss_name(id));
        check(fl_run(id, 0, &a, &r) == FL_OK, what, 0, 0);
        snprintf(what, sizeof what, "%s: loss unchanged by hess", fl_loss_name(id));
        check(r.acc[0] == s0 && memcmp(l, l0, sizeof l) == 0, what, r.acc[0], s0);
        a.grad[0] = g;
        fl_run(id, 0, &a, &r);
        snprintf(what, sizeof what, "%s: grad unchanged by hess", fl_loss_name(id));
        check(memcmp(g, g0, sizeof g) == 0, what, g[0], g0[0]);
        memcpy(xi, x, sizeof x);
        a.input[0] = xi;
        a.grad[0] = xi;
        double h2[N];
        a.hess = h2;
        fl_run(id, 0, &a, &r);
        snprintf(what, sizeof what, "%s: in-place grad and hess", fl_loss_name(id));
        check(memcmp(xi, g0, sizeof g) == 0 && memcmp(h2, h, sizeof h) == 0, what, xi[0], g0[0]);
        /* finite differences of the gradient, away from the kinks */
        const double eps = 1e-6;
        for (int i = 0; i < N; ++i) {
            xs[i] = x[i] + eps;
        }
        fl_args b = plain_args(xs, t, N);
        b.param[0] = a.param[0];
        b.param[1] = a.param[1];
        b.weight = a.weight;
        b.grad_scale = 0.5;
        b.grad[0] = gp;
        fl_run(id, 0, &b, &r);
        for (int i = 0; i < N; ++i)
            xs[i] = x[i] - eps;
        b.grad[0] = gm;
        fl_run(id, 0, &b, &r);
        for (int i = 0; i < N; ++i) {
            const double e = x[i] - t[i], ae = fabs(e);
            const double kink = id == FL_ID_l1 ? 0 : a.param[0];
            const int piecewise = id == FL_ID_l1 || id == FL_ID_huber || id == FL_ID_smooth_l1;
            if (piecewise && (fabs(ae - kink) < 1e-4 || ae < 1e-4))
                continue;
            if (id == FL_ID_hinge && fabs(1.0 - t[i] * x[i]) < 1e-4)
                continue;
            const double fd = (gp[i] - gm[i]) / (2 * eps);
            snprintf(what, sizeof what, "%s: hess = d grad / dx at %d", fl_loss_name(id), i);
            close_to(what, h[i], fd, 1e-6);
        }
    }
}

/* The cross-entropy hessian's diagonal against central differences of the
 * gradient, on the few-class tile (C = 5) and the row path (C = 40), index
 * targets (weights, smoothing, an ignored row: zeros) and probability
 * targets, float64 and float32; loss and gradient unchanged by asking. */
static void test_ce_hessian(void)
{
    enum { N = 21, CMAX = 40 };
    static const int Cs[] = { 5, 40 };
    double z[N * CMAX], zs[N * CMAX], y[N * CMAX], w[CMAX], g[N * CMAX], g0[N * CMAX];
    double h[N * CMAX], gp[N * CMAX], gm[N * CMAX], l[N], l0[N];
    float zf[N * CMAX], yf[N * CMAX], wf[CMAX], gf[N * CMAX], hf[N * CMAX];
    int64_t t[N];
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ++ci) {
        const int C = Cs[ci];
        for (int probs = 0; probs < 2; ++probs) {
            char what[96];
            fl_result r;
            for (int i = 0; i < N * C; ++i) {
                z[i] = urand(4.0);
                y[i] = 0.5 + 0.5 * urand(1.0);
            }
            for (int i = 0; i < N; ++i)
                t[i] = i == 3 ? -100 : (int64_t)(i * 7 % C);
            for (int j = 0; j < C; ++j)
                w[j] = 1.0 + 0.5 * urand(1.0);
            const int id = probs ? FL_ID_ce_prob : FL_ID_ce_index;
            fl_args a = plain_args(z, probs ? (const double *)y : NULL, N);
            if (!probs)
                a.target = t;
            a.n_classes = C;
            a.class_stride = 1;
            a.ignore_index = -100;
            a.param[0] = 0.1; /* label smoothing */
            a.weight.ptr = w;
            a.reduction = FL_REDUCE_MEAN;
            a.loss_out = l0;
            a.grad[0] = g0;
            check(fl_run(id, 0, &a, &r) == FL_OK, "ce hess: plain run", C, probs);
            const double s0 = r.acc[0];
            a.loss_out = l;
            a.grad[0] = g;
            a.hess = h;
            snprintf(what, sizeof what, "ce hess C=%d probs=%d: status", C, probs);
            check(fl_run(id, 0, &a, &r) == FL_OK, what, C, probs);
            snprintf(what, sizeof what, "ce hess C=%d probs=%d: loss, grad unchanged", C, probs);
            check(r.acc[0] == s0 && memcmp(l, l0, N * sizeof l[0]) == 0 &&
                      memcmp(g, g0, (size_t)(N * C) * sizeof g[0]) == 0,
                  what, r.acc[0], s0);
            /* column j of every row at once: rows are independent */
            const double eps = 1e-6;
            fl_args b = a;
            b.input[0] = zs;
            b.hess = NULL;
            b.loss_out = NULL;
            for (int j = 0; j < C; ++j) {
                memcpy(zs, z, (size_t)(N * C) * sizeof z[0]);
                for (int i = 0; i < N; ++i)
                    zs[i * C + j] += eps;
                b.grad[0] = gp;
                fl_run(id, 0, &b, &r);
                for (int i = 0; i < N; ++i)
                    zs[i * C + j] -= 2 * eps;
                b.grad[0] = gm;
                fl_run(id, 0, &b, &r);
                for (int i = 0; i < N; ++i) {
                    const double fd = (gp[i * C + j] - gm[i * C + j]) / (2 * eps);
                    snprintf(what, sizeof what, "ce hess C=%d probs=%d = d grad / dz [%d,%d]", C,
                             probs, i, j);
                    close_to(what, h[i * C + j], fd, 1e-6);
                    if (!probs && i == 3)
                        check(h[i * C + j] == 0, "ce hess: ignored row is 0", h[i * C + j], 0);
                }
            }
            /* float32: the same within float32 rounding */
            for (int i = 0; i < N * C; ++i) {
                zf[i] = (float)z[i];
                yf[i] = (float)y[i];
            }
            for (int j = 0; j < C; ++j)
                wf[j] = (float)w[j];
            fl_args f = a;
            f.input[0] = zf;
            f.target = probs ? (const void *)yf : (const void *)t;
            f.weight.ptr = wf;
            f.loss_out = NULL;
            f.grad[0] = gf;
            f.hess = hf;
            fl_run(id, 1, &f, &r);
            for (int i = 0; i < N * C; ++i) {
                snprintf(what, sizeof what, "ce hess float32 C=%d probs=%d [%d]", C, probs, i);
                close_to(what, hf[i], h[i], 2e-6);
            }
        }
    }
}

/* Options a kernel does not implement are refused before anything is written. */
static void test_contract_unsupported(void)
{
    enum { N = 8, C = 4 };
    double x[N * C], t[N * C], h[N * C], g[N * C];
    int64_t idx[N];
    fl_result r;
    for (int i = 0; i < N * C; ++i) {
        x[i] = urand(2.0);
        t[i] = 0.5;
        h[i] = g[i] = 1234.0;
    }
    for (int i = 0; i < N; ++i)
        idx[i] = i % C;
    fl_args a = plain_args(x, t, N * C);
    a.hess = h;
    a.grad[0] = g;
    check(fl_run(FL_ID_dice, 0, &a, &r) == FL_E_UNSUPPORTED, "dice hess unsupported", 0, 0);
    check(h[0] == 1234.0 && g[0] == 1234.0 && h[N * C - 1] == 1234.0, "dice: nothing written", 0,
          0);
    fl_args c = plain_args(x, NULL, N);
    c.target = idx;
    c.n_classes = C;
    c.grad[0] = g;
    c.ignore_index = -100;
    /* a class stride must divide the rows (an (n / P, C, P) layout) and not be negative */
    static const int class_ids[] = { FL_ID_ce_index, FL_ID_ce_prob, FL_ID_softmax_focal, FL_ID_nll,
                                     FL_ID_multi_margin };
    for (size_t k = 0; k < sizeof class_ids / sizeof class_ids[0]; ++k) {
        char what[96];
        c.class_stride = 3;
        snprintf(what, sizeof what, "%s class_stride 3 of 8 rows", fl_loss_name(class_ids[k]));
        check(fl_run(class_ids[k], 0, &c, &r) == FL_E_UNSUPPORTED, what, 0, 0);
        c.class_stride = -2;
        snprintf(what, sizeof what, "%s class_stride -2", fl_loss_name(class_ids[k]));
        check(fl_run(class_ids[k], 1, &c, &r) == FL_E_UNSUPPORTED, what, 0, 0);
    }
    c.class_stride = 1;
    c.hess = h;
    static const int no_hess[] = { FL_ID_nll, FL_ID_multi_margin };
    for (size_t k = 0; k < sizeof no_hess / sizeof no_hess[0]; ++k) {
        char what[96];
        snprintf(what, sizeof what, "%s hess unsupported", fl_loss_name(no_hess[k]));
        check(fl_run(no_hess[k], 0, &c, &r) == FL_E_UNSUPPORTED, what, 0, 0);
    }
    check(g[0] == 1234.0 && h[0] == 1234.0, "class kernels: nothing written", 0, 0);
    c.hess = NULL;
    c.reduction = FL_REDUCE_MEAN;
    c.flags = FL_NO_CHECK;
    check(fl_run(FL_ID_ce_index, 0, &c, &r) == FL_E_UNSUPPORTED, "mean without check pass", 0, 0);
}

/* The mean: denominators in acc[1], the scale applied once, a mean over
 * nothing writes a zero gradient whatever the logits hold, the check pass
 * stops before any write. */
static void test_contract_mean(void)
{
    enum { N = 6, C = 3 };
    double z[N * C], g[N * C], gs[N * C], loss[N], w[C] = { 0.5, 2.0, 1.5 };
    int64_t t[N] = { 0, 2, -100, 1, 1, -100 };
    fl_result r;
    for (int i = 0; i < N * C; ++i)
        z[i] = urand(2.0);
    fl_args a = plain_args(z, NULL, N);
    a.target = t;
    a.n_classes = C;
    a.ignore_index = -100;
    a.weight.ptr = w;
    a.grad[0] = gs;
    check(fl_run(FL_ID_ce_index, 0, &a, &r) == FL_OK, "ce sum status", 0, 0);
    const double sum = r.acc[0];
    check(r.acc[1] == 0.5 + 1.5 + 2.0 + 2.0, "ce denominator = summed weights", r.acc[1], 6.0);
    a.reduction = FL_REDUCE_MEAN;
    a.grad[0] = g;
    fl_run(FL_ID_ce_index, 0, &a, &r);
    check(r.acc[0] == sum && r.acc[1] == 6.0, "ce mean: same sum and denominator", r.acc[0], sum);
    for (int i = 0; i < N * C; ++i)
        close_to("ce mean gradient = sum gradient / denominator", g[i], gs[i] / 6.0, 1e-15);
    a.flags = FL_CHECK_ONLY;
    a.grad[0] = NULL;
    check(fl_run(FL_ID_ce_index, 0, &a, &r) == FL_OK && r.acc[1] == 6.0 && r.acc[0] == 0,
          "FL_CHECK_ONLY: the denominator only", r.acc[1], 6.0);
    a.flags = 0;
    /* every row ignored: zero gradient even over NaN logits */
    int64_t ign[N] = { -100, -100, -100, -100, -100, -100 };
    for (int i = 0; i < N * C; ++i) {
        z[i] = NAN;
        g[i] = 99.0;
    }
    a.target = ign;
    a.grad[0] = g;
    check(fl_run(FL_ID_ce_index, 0, &a, &r) == FL_OK && r.acc[1] == 0, "mean over nothing", 0, 0);
    int zero = 1;
    for (int i = 0; i < N * C; ++i)
        zero &= g[i] == 0.0;
    check(zero, "mean over nothing: zero gradient", g[0], 0);
    /* a bad index: FL_E_INDEX from the check pass, nothing written */
    int64_t bad[N] = { 0, 1, 7, 1, 0, 2 };
    for (int i = 0; i < N; ++i)
        loss[i] = -5.0;
    for (int i = 0; i < N * C; ++i)
        g[i] = -5.0;
    a.target = bad;
    a.loss_out = loss;
    a.reduction = FL_REDUCE_NONE;
    check(fl_run(FL_ID_ce_index, 0, &a, &r) == FL_E_INDEX && r.bad_pos == 2 && r.bad_value == 7,
          "check pass: first bad index", (double)r.bad_pos, 2);
    check(loss[0] == -5.0 && loss[N - 1] == -5.0 && g[0] == -5.0 && g[N * C - 1] == -5.0,
          "check pass: nothing written", loss[0], -5.0);
    /* element-wise: grad_scale 0 gives zeros, the mean divides by n */
    double x[5] = { 1, -2, 3, 0.5, 4 }, y[5] = { 0, 0, 1, 1, -1 }, ge[5], ge2[5];
    fl_args e = plain_args(x, y, 5);
    e.grad[0] = ge;
    e.reduction = FL_REDUCE_MEAN;
    fl_run(FL_ID_mse, 0, &e, &r);
    check(r.acc[1] == 5.0, "mse denominator", r.acc[1], 5.0);
    for (int i = 0; i < 5; ++i)
        close_to("mse mean gradient 2e/n", ge[i], 2 * (x[i] - y[i]) / 5, 1e-15);
    e.grad_scale = 0.0;
    e.grad[0] = ge2;
    fl_run(FL_ID_mse, 0, &e, &r);
    check(ge2[0] == 0 && ge2[4] == 0, "grad_scale 0: zero gradient", ge2[0], 0);
}

int main(int argc, char **argv)
{
    /* FL_FORCE_TARGET selects a SIMD target (set by run.sh, one run per target). */
    const char *target = getenv("FL_FORCE_TARGET");
    if (target && fl_target_set(target) != 0) {
        printf("target %s not supported on this CPU: skipped\n", target);
        return 0;
    }
    printf("kernels: target %s\n", fl_target_selected());
    if (argc > 1 && strcmp(argv[1], "probe") == 0)
        return 0; /* run.sh: does this CPU run the target? */
    /* "quick" (or FL_TEST_QUICK=1): fewer large cases, for slow runners */
    const char *quick_env = getenv("FL_TEST_QUICK");
    const int quick =
        (argc > 1 && strcmp(argv[1], "quick") == 0) || (quick_env && strcmp(quick_env, "1") == 0);
    test_ce_closed_forms();
    test_ce_paths_agree();
    test_elementwise_closed_forms();
    test_float32_matches_float64();
    test_finite_differences("ce index", f_ce);
    test_finite_differences("ce prob", f_ce_prob);
    test_finite_differences("bce", f_bce);
    test_finite_differences("focal", f_focal);
    test_finite_differences("huber", f_huber);
    test_finite_differences("smooth_l1", f_sl1);
    test_ce_bad_indices(quick);
    test_bcast_general(quick);
    test_ce_no_classes();
    test_contract_names();
    test_contract_hessians();
    test_ce_hessian();
    test_contract_unsupported();
    test_contract_mean();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
