/* C test driver: checks the kernels without Python.
 *
 * Closed forms (uniform logits, x = 0, kinks), fused vs loss-only vs in-place
 * agreement, and central finite differences of every loss in double.
 * Build and run: csrc/tests/run.sh (or any C99 compiler: see that script).
 */
#include "fusedloss.h"

#include <math.h>
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

/* Deterministic pseudo-random numbers in [-a, a]. */
static unsigned long long rng_state = 88172645463325252ULL;
static double urand(double a)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return a * (2.0 * (double)(rng_state >> 11) / 9007199254740992.0 - 1.0);
}

static const fl_bcast NO_W = {NULL, 1, 0, 0};

static void test_ce_closed_forms(void)
{
    enum { N = 3, C = 5 };
    double z[N * C], g[N * C], loss[N];
    int64_t t[N] = {0, 4, -100};
    for (int i = 0; i < N * C; ++i)
        z[i] = 2.5; /* uniform rows: loss log C, grad 1/C - onehot */
    double sum = fl_ce_index_f64(z, t, N, C, NULL, -100, 0.0, 1.0, loss, g, 1);
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
    int64_t t_bad[3] = {0, 5, 1};
    bad = fl_ce_check_targets_f64(t_bad, 3, C, -100, NULL, &denom);
    check(bad == 1, "check targets finds position", (double)bad, 1);

    /* A dominant class: loss log1p(e^-80) ~ 1.8e-35 kept to full precision. */
    double z2[2] = {80.0, 0.0}, g2[2];
    int64_t t2 = 0;
    double l2 = fl_ce_index_f64(z2, &t2, 1, 2, NULL, -100, 0.0, 1.0, NULL, g2, 1);
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
    double s1 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 0.5, loss1, g, 1);
    double s2 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 0.5, loss2, NULL, 1);
    memcpy(zi, z, sizeof z);
    double s3 = fl_ce_index_f64(zi, t, N, C, w, -100, 0.1, 0.5, NULL, zi, 1);
    check(s1 == s2, "ce loss-only sum == fused sum", s2, s1);
    check(s1 == s3, "ce in-place sum == fused sum", s3, s1);
    check(memcmp(g, zi, sizeof g) == 0, "ce in-place grad == out-of-place grad", 0, 0);
    check(memcmp(loss1, loss2, sizeof loss1) == 0, "ce loss-only rows", 0, 0);
    /* One-hot probabilities equal class indices. */
    memset(y, 0, sizeof y);
    for (int r = 0; r < N; ++r)
        y[r * C + t[r]] = 1.0;
    double s4 = fl_ce_prob_f64(z, y, N, C, w, 0.1, 1.0, NULL, NULL, 1);
    double s5 = fl_ce_index_f64(z, t, N, C, w, -100, 0.1, 1.0, NULL, NULL, 1);
    close_to("ce one-hot prob == index", s4, s5, 1e-13);
}

/* Central differences of the summed loss against the analytic gradient. */
typedef double (*loss_fn)(double *x, double *g, int n);

static double f_ce(double *x, double *g, int n)
{
    int64_t t[3] = {1, 0, 2};
    double w[4] = {1.0, 2.0, 0.5, 1.5};
    return fl_ce_index_f64(x, t, n / 4, 4, w, -100, 0.2, 1.0, NULL, g, 1);
}
static double f_ce_prob(double *x, double *g, int n)
{
    double y[12] = {.1, .2, .3, .4, 1, 0, 0, 0, .25, .25, .25, .25};
    return fl_ce_prob_f64(x, y, n / 4, 4, NULL, 0.1, 1.0, NULL, g, 1);
}
static double f_bce(double *x, double *g, int n)
{
    double t[12] = {0, 1, .3, 1, 0, .5, 1, 1, 0, 0, .9, .1};
    double w[4] = {1, 2, .5, 3}, pw[3] = {2, 1, .5};
    fl_bcast wb = {w, 4, 0, 1};  /* weight of shape (4,) over a (3, 4) array */
    fl_bcast pwb = {pw, 4, 1, 0}; /* pos_weight of shape (3, 1) */
    return fl_bce_f64(x, t, n, wb, pwb, 1.0, NULL, g, 1);
}
static double f_focal(double *x, double *g, int n)
{
    double t[12] = {0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0};
    return fl_focal_f64(x, t, n, 0.25, 1.5, 1.0, NULL, g, 1);
}
static double f_huber(double *x, double *g, int n)
{
    double t[12] = {0};
    return fl_huber_f64(x, t, n, 1.3, 1.0, NULL, g, 1);
}
static double f_sl1(double *x, double *g, int n)
{
    double t[12] = {0};
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
    double x[4] = {0, 0, 2, -2}, t[4] = {0, 1, 0, 0}, g[4], loss[4];
    fl_bce_f64(x, t, 2, NO_W, NO_W, 1.0, loss, g, 1);
    close_to("bce x=0 loss", loss[0], log(2.0), 1e-15);
    close_to("bce x=0 grad t=0", g[0], 0.5, 1e-15);
    close_to("bce x=0 grad t=1", g[1], -0.5, 1e-15);

    double xb[1] = {-80.0}, tb[1] = {0.0}, lb;
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
    double xs[1] = {1e4}, ts[1] = {1.0}, gs;
    fl_focal_f64(xs, ts, 1, 0.25, 0.5, 1.0, NULL, &gs, 1);
    check(isfinite(gs) && gs == 0.0, "focal saturated gradient finite", gs, 0.0);

    fl_huber_f64(x + 2, t + 2, 2, 1.0, 1.0, loss, g, 1);
    close_to("huber linear loss", loss[0], 1.5, 0);
    close_to("huber clamp grad", g[1], -1.0, 0);
    double z0[1] = {0.0}, gz;
    fl_smooth_l1_f64(z0, z0, 1, 0.0, 1.0, NULL, &gz, 1);
    check(gz == 0.0, "l1 sign(0) == 0", gz, 0.0);
    double xn[1] = {NAN};
    fl_huber_f64(xn, z0, 1, 1.0, 1.0, loss, &gz, 1);
    check(isnan(loss[0]) && isnan(gz), "huber NaN propagates", gz, NAN);
}

static void test_float32_matches_float64(void)
{
    enum { N = 4, C = 1000 };
    static float zf[N * C], gf[N * C];
    static double zd[N * C], gd[N * C];
    int64_t t[N] = {3, 999, 0, 500};
    for (int i = 0; i < N * C; ++i)
        zd[i] = (double)(zf[i] = (float)urand(4.0));
    double sf = fl_ce_index_f32(zf, t, N, C, NULL, -100, 0.0, 1.0, NULL, gf, 1);
    double sd = fl_ce_index_f64(zd, t, N, C, NULL, -100, 0.0, 1.0, NULL, gd, 1);
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

int main(void)
{
    /* FL_FORCE_TARGET selects a SIMD target (set by run.sh, one run per target). */
    const char *target = getenv("FL_FORCE_TARGET");
    if (target && fl_target_set(target) != 0) {
        printf("target %s not supported on this CPU: skipped\n", target);
        return 0;
    }
    printf("kernels: target %s\n", fl_target_selected());
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
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
