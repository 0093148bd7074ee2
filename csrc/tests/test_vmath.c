/* Accuracy and special-value tests for csrc/fl_vmath.h.
 *
 * Build and run (from the repository root):
 *   cc -std=c99 -O3 -fno-math-errno -fno-trapping-math -Icsrc \
 *      csrc/tests/test_vmath.c -o /tmp/test_vmath -lm && /tmp/test_vmath
 * and the same with -mavx2 -mfma, with -mavx512f -mavx512dq -mfma, and with
 * clang (which contracts a*b+c into fma under -mfma).  -O3 matters: GCC 12
 * vectorises the array loops below only at -O3 (at -O2 everything runs
 * scalar, which is also a valid configuration to test).
 *
 * What is checked
 *   - special values (zeros, infinities, NaN, overflow / underflow limits,
 *     exp(0) == 1, log(1) == 0, log1p(tiny) == tiny, subnormals);
 *   - max ULP error over sampled sweeps (random and structured points,
 *     about 10^6 per sweep) in the ranges the kernels use and over wide
 *     ranges.  References: float32 results against the double libm result,
 *     float64 results against the long double libm result (expl, logl,
 *     log1pl; 80-bit on x86-64).  ULP error = |y - ref| / ulp(ref), where
 *     ulp(ref) is the spacing of the target format at ref (the subnormal
 *     spacing below the normal range: underflow is gradual and subnormal
 *     results are included).  Every sweep must stay <= 2 ULP;
 *   - the vectorised array loops give bit-identical results to scalar calls.
 * If long double is no wider than double (MSVC), the float64 references are
 * only double libm results and the float64 bound is relaxed by 1 ULP.
 *
 * Prints one line per check and closes with "N passed, N failed"; the exit
 * status is non-zero when anything failed.
 */
#include "fl_vmath.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BATCH 4096
#ifndef SWEEP_N /* points per sweep; e.g. -DSWEEP_N=50000000 for a long run */
#define SWEEP_N 1000000
#endif

static int n_pass = 0, n_fail = 0;

static void check(int ok, const char *what)
{
    if (ok) {
        n_pass++;
    } else {
        n_fail++;
        printf("FAIL: %s\n", what);
    }
}

/* ---- deterministic random numbers (splitmix64) ---------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* uniform double in [0, 1) */
static double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }

static float f32_of_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t bits_of_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static double f64_of_bits(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint64_t bits_of_f64(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* ---- the functions under test: array loops (vectorised) and scalar -------- */

typedef float (*fn32)(float);
typedef double (*fn64)(double);

static void arr_exp_f32(const float *x, float *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_exp_f32(x[i]);
}
static void arr_log_f32(const float *x, float *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_log_f32(x[i]);
}
static void arr_log1p_f32(const float *x, float *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_log1p_f32(x[i]);
}
static void arr_exp_f64(const double *x, double *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_exp_f64(x[i]);
}
static void arr_log_f64(const double *x, double *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_log_f64(x[i]);
}
static void arr_log1p_f64(const double *x, double *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        y[i] = fl_log1p_f64(x[i]);
}

static float sc_exp_f32(float x) { return fl_exp_f32(x); }
static float sc_log_f32(float x) { return fl_log_f32(x); }
static float sc_log1p_f32(float x) { return fl_log1p_f32(x); }
static double sc_exp_f64(double x) { return fl_exp_f64(x); }
static double sc_log_f64(double x) { return fl_log_f64(x); }
static double sc_log1p_f64(double x) { return fl_log1p_f64(x); }

/* Called through volatile pointers so that the scalar code path is used. */
static fn32 volatile p_exp_f32 = sc_exp_f32, p_log_f32 = sc_log_f32, p_log1p_f32 = sc_log1p_f32;
static fn64 volatile p_exp_f64 = sc_exp_f64, p_log_f64 = sc_log_f64, p_log1p_f64 = sc_log1p_f64;

typedef void (*arr32)(const float *, float *, int);
typedef void (*arr64)(const double *, double *, int);

struct fun32 {
    const char *name;
    arr32 arr;
    fn32 volatile *scalar;
    double (*ref)(double);
};

struct fun64 {
    const char *name;
    arr64 arr;
    fn64 volatile *scalar;
    long double (*ref)(long double);
};

static const struct fun32 F_EXP32 = { "exp_f32", arr_exp_f32, &p_exp_f32, exp };
static const struct fun32 F_LOG32 = { "log_f32", arr_log_f32, &p_log_f32, log };
static const struct fun32 F_LOG1P32 = { "log1p_f32", arr_log1p_f32, &p_log1p_f32, log1p };
static const struct fun64 F_EXP64 = { "exp_f64", arr_exp_f64, &p_exp_f64, expl };
static const struct fun64 F_LOG64 = { "log_f64", arr_log_f64, &p_log_f64, logl };
static const struct fun64 F_LOG1P64 = { "log1p_f64", arr_log1p_f64, &p_log1p_f64, log1pl };

/* ---- ULP error -------------------------------------------------------------- */

/* Error of float y against the exact-ish value ref, in float ULPs at ref.
 * Returns a huge value for a wrong class (inf / NaN where none is due). */
static double ulp_err_f32(float y, double ref)
{
    double a = fabs(ref), ulp;
    int e;
    if (isnan(ref))
        return isnan(y) ? 0.0 : 1e30;
    if (isnan(y))
        return 1e30;
    if ((float)ref == (float)INFINITY || (float)ref == -(float)INFINITY || isinf(y))
        return (float)ref == y ? 0.0 : 1e30; /* overflow must round to inf */
    if (a < FLT_MIN) {
        ulp = ldexp(1.0, -149);
    } else {
        frexp(a, &e);
        ulp = ldexp(1.0, e - 24);
    }
    return fabs((double)y - ref) / ulp;
}

static double ulp_err_f64(double y, long double ref)
{
    long double a = fabsl(ref), ulp;
    int e;
    if (isnan(ref))
        return isnan(y) ? 0.0 : 1e30;
    if (isnan(y))
        return 1e30;
    if (isinf((double)ref) || isinf(y))
        return (double)ref == y ? 0.0 : 1e30;
    if (a < DBL_MIN) {
        ulp = ldexpl(1.0L, -1074);
    } else {
        frexpl(a, &e);
        ulp = ldexpl(1.0L, e - 53);
    }
    return (double)(fabsl((long double)y - ref) / ulp);
}

/* ---- sweeps ----------------------------------------------------------------- */

#if LDBL_MANT_DIG > 53
#define BOUND64 2.0
#else
#define BOUND64 3.0 /* reference is only a double libm result */
#endif
#define BOUND32 2.0

static float gx32[BATCH], gy32[BATCH];
static double gx64[BATCH], gy64[BATCH];

/* generator: fills x[0..n) */
typedef void (*gen32)(float *x, int n, double a, double b);
typedef void (*gen64)(double *x, int n, double a, double b);

/* uniform values in [a, b] */
static void g32_uniform(float *x, int n, double a, double b)
{
    int i;
    for (i = 0; i < n; i++)
        x[i] = (float)(a + (b - a) * rng_unit());
}
/* uniform bit patterns with magnitudes between |a| and |b|; the sign is
 * negative if a and b are both negative, random if only a is, else positive */
static void g32_bits(float *x, int n, double a, double b)
{
    uint32_t ua = bits_of_f32((float)fabs(a)), ub = bits_of_f32((float)fabs(b));
    uint32_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
    int i;
    for (i = 0; i < n; i++) {
        uint32_t u = lo + (uint32_t)(rng_next() % ((uint64_t)(hi - lo) + 1));
        float v = f32_of_bits(u);
        int neg = a < 0 && (b < 0 || (rng_next() & 1));
        x[i] = neg ? -v : v;
    }
}
/* 1 + uniform in [a, b] (values around 1) */
static void g32_near1(float *x, int n, double a, double b)
{
    int i;
    for (i = 0; i < n; i++)
        x[i] = (float)(1.0 + (a + (b - a) * rng_unit()));
}

static void g64_uniform(double *x, int n, double a, double b)
{
    int i;
    for (i = 0; i < n; i++)
        x[i] = a + (b - a) * rng_unit();
}
static void g64_bits(double *x, int n, double a, double b)
{
    uint64_t ua = bits_of_f64(fabs(a)), ub = bits_of_f64(fabs(b));
    uint64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
    int i;
    for (i = 0; i < n; i++) {
        uint64_t u = lo + rng_next() % (hi - lo + 1);
        double v = f64_of_bits(u);
        int neg = a < 0 && (b < 0 || (rng_next() & 1));
        x[i] = neg ? -v : v;
    }
}
static void g64_near1(double *x, int n, double a, double b)
{
    int i;
    for (i = 0; i < n; i++)
        x[i] = 1.0 + (a + (b - a) * rng_unit());
}

/* points within +-|a| ulps (a <= 2^20) of the centres set in g_centres */
#define MAX_CENTRES 8192
static double g_centres[MAX_CENTRES];
static int g_ncentres;

static void g32_around(float *x, int n, double a, double b)
{
    uint32_t k = (uint32_t)fabs(a);
    int i;
    (void)b;
    for (i = 0; i < n; i++) {
        float c = (float)g_centres[rng_next() % (uint64_t)g_ncentres];
        uint32_t off = (uint32_t)(rng_next() % (2u * k + 1u));
        uint32_t u = bits_of_f32(c) + off - k; /* may cross zero into -0/NaN: fine */
        x[i] = f32_of_bits(u);
    }
}

static void g64_around(double *x, int n, double a, double b)
{
    uint64_t k = (uint64_t)fabs(a);
    int i;
    (void)b;
    for (i = 0; i < n; i++) {
        double c = g_centres[rng_next() % (uint64_t)g_ncentres];
        uint64_t off = rng_next() % (2u * k + 1u);
        x[i] = f64_of_bits(bits_of_f64(c) + off - k);
    }
}

static void add_centre(double c)
{
    if (g_ncentres < MAX_CENTRES)
        g_centres[g_ncentres++] = c;
}

/* critical points: overflow / underflow limits, the points where n = round(x/ln2)
 * changes (|r| largest), exponent boundaries and the sqrt(2) mantissa split */
static void centres_exp(int f64)
{
    int k, kmin = f64 ? -1076 : -151, kmax = f64 ? 1024 : 128;
    g_ncentres = 0;
    for (k = kmin; k <= kmax; k++)
        add_centre((k + 0.5) * 0.69314718055994530942);
    add_centre(0.0);
    add_centre(f64 ? 709.78271289338397 : 88.7228394);   /* overflow */
    add_centre(f64 ? -708.39641853226408 : -87.3365448); /* ln(min normal) */
    add_centre(f64 ? -744.44007192138122 : -103.278931); /* ln(min subnormal) */
    add_centre(f64 ? -745.13321910194111 : -103.972076); /* ln(min subnormal / 2) */
}

static void centres_log(int f64)
{
    int k, kmin = f64 ? -1074 : -149, kmax = f64 ? 1023 : 127;
    g_ncentres = 0;
    for (k = kmin; k <= kmax; k++) {
        add_centre(ldexp(1.0, k));
        if (k < kmax)
            add_centre(ldexp(1.4142135623730951, k));
    }
}

static void centres_log1p(int f64)
{
    int k, kmax = f64 ? 1023 : 127;
    g_ncentres = 0;
    for (k = 0; k <= kmax; k++) {
        add_centre(ldexp(1.0, k) - 1.0);
        if (k < kmax)
            add_centre(ldexp(1.4142135623730951, k) - 1.0);
    }
    for (k = 1; k <= (f64 ? 53 : 24); k++)
        add_centre(-1.0 + ldexp(1.0, -k));
    for (k = -1074; k < 0; k++)
        add_centre(ldexp(1.0, k));
}

static void sweep32(const struct fun32 *f, const char *label, gen32 gen, double a, double b)
{
    double maxe = 0.0, worst_x = 0.0;
    long over1 = 0, mism = 0;
    int done = 0, i;
    char buf[256];
    while (done < SWEEP_N) {
        int n = SWEEP_N - done < BATCH ? SWEEP_N - done : BATCH;
        gen(gx32, n, a, b);
        f->arr(gx32, gy32, n);
        for (i = 0; i < n; i++) {
            double e = ulp_err_f32(gy32[i], f->ref((double)gx32[i]));
            float ys = (*f->scalar)(gx32[i]);
            if (bits_of_f32(ys) != bits_of_f32(gy32[i]) && !(isnan(ys) && isnan(gy32[i])))
                mism++;
            if (e > 1.0)
                over1++;
            if (e > maxe) {
                maxe = e;
                worst_x = gx32[i];
            }
        }
        done += n;
    }
    printf("  %-10s %-34s max %.4f ulp at x=%.9g (%ld > 1 ulp)\n", f->name, label, maxe, worst_x,
           over1);
    sprintf(buf, "%s %s: max ulp %.4f > %.1f", f->name, label, maxe, BOUND32);
    check(maxe <= BOUND32, buf);
    sprintf(buf, "%s %s: %ld array/scalar mismatches", f->name, label, mism);
    check(mism == 0, buf);
}

static void sweep64(const struct fun64 *f, const char *label, gen64 gen, double a, double b)
{
    double maxe = 0.0, worst_x = 0.0;
    long over1 = 0, mism = 0;
    int done = 0, i;
    char buf[256];
    while (done < SWEEP_N) {
        int n = SWEEP_N - done < BATCH ? SWEEP_N - done : BATCH;
        gen(gx64, n, a, b);
        f->arr(gx64, gy64, n);
        for (i = 0; i < n; i++) {
            double e = ulp_err_f64(gy64[i], f->ref((long double)gx64[i]));
            double ys = (*f->scalar)(gx64[i]);
            if (bits_of_f64(ys) != bits_of_f64(gy64[i]) && !(isnan(ys) && isnan(gy64[i])))
                mism++;
            if (e > 1.0)
                over1++;
            if (e > maxe) {
                maxe = e;
                worst_x = gx64[i];
            }
        }
        done += n;
    }
    printf("  %-10s %-34s max %.4f ulp at x=%.17g (%ld > 1 ulp)\n", f->name, label, maxe, worst_x,
           over1);
    sprintf(buf, "%s %s: max ulp %.4f > %.1f", f->name, label, maxe, BOUND64);
    check(maxe <= BOUND64, buf);
    sprintf(buf, "%s %s: %ld array/scalar mismatches", f->name, label, mism);
    check(mism == 0, buf);
}

/* ---- special values ------------------------------------------------------- */

/* expected: exact value (sign of zero included) or NaN */
static int same32(float y, float want)
{
    if (isnan(want))
        return isnan(y);
    return y == want && signbit(y) == signbit(want);
}
static int same64(double y, double want)
{
    if (isnan(want))
        return isnan(y);
    return y == want && signbit(y) == signbit(want);
}

static void spec32(const struct fun32 *f, float x, float want)
{
    float xa[1], ya[1], ys;
    char buf[256];
    xa[0] = x;
    f->arr(xa, ya, 1);
    ys = (*f->scalar)(x);
    sprintf(buf, "%s(%.9g) = %.9g / %.9g (scalar / array), want %.9g", f->name, x, ys, ya[0], want);
    check(same32(ys, want) && same32(ya[0], want), buf);
}

static void spec64(const struct fun64 *f, double x, double want)
{
    double xa[1], ya[1], ys;
    char buf[256];
    xa[0] = x;
    f->arr(xa, ya, 1);
    ys = (*f->scalar)(x);
    sprintf(buf, "%s(%.17g) = %.17g / %.17g (scalar / array), want %.17g", f->name, x, ys, ya[0],
            want);
    check(same64(ys, want) && same64(ya[0], want), buf);
}

static void special_values(void)
{
    const float inf32 = (float)INFINITY, nan32 = (float)NAN;
    const double inf64 = INFINITY, nan64 = NAN;
    const float sub32 = f32_of_bits(1u), sub32b = f32_of_bits(0x00400123u);
    const double sub64 = f64_of_bits(1u), sub64b = f64_of_bits(UINT64_C(0x0008000000012345));
    int i;

    /* exp, float32 */
    spec32(&F_EXP32, 0.0f, 1.0f);
    spec32(&F_EXP32, -0.0f, 1.0f);
    spec32(&F_EXP32, sub32, 1.0f);
    spec32(&F_EXP32, -sub32, 1.0f);
    spec32(&F_EXP32, 1e-30f, 1.0f);
    spec32(&F_EXP32, -inf32, 0.0f);
    spec32(&F_EXP32, inf32, inf32);
    spec32(&F_EXP32, nan32, nan32);
    spec32(&F_EXP32, -nan32, nan32);
    spec32(&F_EXP32, 88.7229f, inf32);
    spec32(&F_EXP32, 89.0f, inf32);
    spec32(&F_EXP32, 1000.0f, inf32);
    spec32(&F_EXP32, FLT_MAX, inf32);
    spec32(&F_EXP32, -104.0f, 0.0f);
    spec32(&F_EXP32, -1000.0f, 0.0f);
    spec32(&F_EXP32, -FLT_MAX, 0.0f);
    spec32(&F_EXP32, -103.9721f, 0.0f);                             /* just below ln(2^-150) */
    spec32(&F_EXP32, -103.9720f, f32_of_bits(1u));                  /* just above: 2^-149 */
    spec32(&F_EXP32, -87.3365479f, (float)exp(-87.3365479));        /* near ln(2^-126) */
    spec32(&F_EXP32, 88.7228394f, (float)exp((double)88.7228394f)); /* last finite */
    /* exp, float64 */
    spec64(&F_EXP64, 0.0, 1.0);
    spec64(&F_EXP64, -0.0, 1.0);
    spec64(&F_EXP64, sub64, 1.0);
    spec64(&F_EXP64, -sub64, 1.0);
    spec64(&F_EXP64, 1e-300, 1.0);
    spec64(&F_EXP64, -inf64, 0.0);
    spec64(&F_EXP64, inf64, inf64);
    spec64(&F_EXP64, nan64, nan64);
    spec64(&F_EXP64, -nan64, nan64);
    spec64(&F_EXP64, 709.79, inf64);
    spec64(&F_EXP64, 710.0, inf64);
    spec64(&F_EXP64, 1e300, inf64);
    spec64(&F_EXP64, DBL_MAX, inf64);
    spec64(&F_EXP64, -746.0, 0.0);
    spec64(&F_EXP64, -1e300, 0.0);
    spec64(&F_EXP64, -DBL_MAX, 0.0);
    spec64(&F_EXP64, -745.14, 0.0);   /* below ln(2^-1075) */
    spec64(&F_EXP64, -745.13, sub64); /* 2^-1074 */
    spec64(&F_EXP64, 709.782712893384, (double)expl((long double)709.782712893384));
    for (i = -20; i <= 20; i++) { /* exp of small integers, against libm's */
        char buf[64];
        double y = fl_exp_f64((double)i);
        float yf = fl_exp_f32((float)i);
        sprintf(buf, "exp(%d) within 1 ulp", i);
        check(ulp_err_f64(y, expl((long double)i)) <= 1.0 && ulp_err_f32(yf, exp((double)i)) <= 1.0,
              buf);
    }

    /* log, float32 */
    spec32(&F_LOG32, 1.0f, 0.0f);
    spec32(&F_LOG32, 0.0f, -inf32);
    spec32(&F_LOG32, -0.0f, -inf32);
    spec32(&F_LOG32, -sub32, nan32);
    spec32(&F_LOG32, -1.0f, nan32);
    spec32(&F_LOG32, -inf32, nan32);
    spec32(&F_LOG32, inf32, inf32);
    spec32(&F_LOG32, nan32, nan32);
    spec32(&F_LOG32, -nan32, nan32);
    spec32(&F_LOG32, sub32, (float)log(ldexp(1.0, -149)));
    spec32(&F_LOG32, sub32b, (float)log((double)sub32b));
    spec32(&F_LOG32, FLT_MIN, (float)log((double)FLT_MIN));
    spec32(&F_LOG32, FLT_MAX, (float)log((double)FLT_MAX));
    spec32(&F_LOG32, 2.0f, (float)log(2.0));
    spec32(&F_LOG32, 0.5f, (float)log(0.5));
    /* log, float64 */
    spec64(&F_LOG64, 1.0, 0.0);
    spec64(&F_LOG64, 0.0, -inf64);
    spec64(&F_LOG64, -0.0, -inf64);
    spec64(&F_LOG64, -sub64, nan64);
    spec64(&F_LOG64, -1.0, nan64);
    spec64(&F_LOG64, -inf64, nan64);
    spec64(&F_LOG64, inf64, inf64);
    spec64(&F_LOG64, nan64, nan64);
    spec64(&F_LOG64, -nan64, nan64);
    spec64(&F_LOG64, sub64, (double)logl(ldexpl(1.0L, -1074)));
    spec64(&F_LOG64, sub64b, (double)logl((long double)sub64b));
    spec64(&F_LOG64, DBL_MIN, (double)logl((long double)DBL_MIN));
    spec64(&F_LOG64, DBL_MAX, (double)logl((long double)DBL_MAX));
    spec64(&F_LOG64, 2.0, (double)logl(2.0L));
    spec64(&F_LOG64, 0.5, (double)logl(0.5L));

    /* log1p, float32 */
    spec32(&F_LOG1P32, 0.0f, 0.0f);
    spec32(&F_LOG1P32, -0.0f, -0.0f);
    spec32(&F_LOG1P32, 1e-30f, 1e-30f);
    spec32(&F_LOG1P32, -1e-30f, -1e-30f);
    spec32(&F_LOG1P32, 1e-10f, 1e-10f);
    spec32(&F_LOG1P32, sub32, sub32);
    spec32(&F_LOG1P32, sub32b, sub32b);
    spec32(&F_LOG1P32, -sub32b, -sub32b);
    spec32(&F_LOG1P32, FLT_MIN, FLT_MIN);
    spec32(&F_LOG1P32, -1.0f, -inf32);
    spec32(&F_LOG1P32, -1.0000001f, nan32);
    spec32(&F_LOG1P32, -2.0f, nan32);
    spec32(&F_LOG1P32, -inf32, nan32);
    spec32(&F_LOG1P32, inf32, inf32);
    spec32(&F_LOG1P32, nan32, nan32);
    spec32(&F_LOG1P32, -nan32, nan32);
    spec32(&F_LOG1P32, 1.0f, (float)log(2.0));
    spec32(&F_LOG1P32, FLT_MAX, (float)log((double)FLT_MAX));
    spec32(&F_LOG1P32, -0.99999994f, (float)log1p((double)-0.99999994f));
    /* log1p, float64 */
    spec64(&F_LOG1P64, 0.0, 0.0);
    spec64(&F_LOG1P64, -0.0, -0.0);
    spec64(&F_LOG1P64, 1e-30, 1e-30);
    spec64(&F_LOG1P64, -1e-30, -1e-30);
    spec64(&F_LOG1P64, 1e-300, 1e-300);
    spec64(&F_LOG1P64, sub64, sub64);
    spec64(&F_LOG1P64, sub64b, sub64b);
    spec64(&F_LOG1P64, -sub64b, -sub64b);
    spec64(&F_LOG1P64, DBL_MIN, DBL_MIN);
    spec64(&F_LOG1P64, -1.0, -inf64);
    spec64(&F_LOG1P64, -1.0000000000000002, nan64);
    spec64(&F_LOG1P64, -2.0, nan64);
    spec64(&F_LOG1P64, -inf64, nan64);
    spec64(&F_LOG1P64, inf64, inf64);
    spec64(&F_LOG1P64, nan64, nan64);
    spec64(&F_LOG1P64, -nan64, nan64);
    spec64(&F_LOG1P64, 1.0, (double)logl(2.0L));
    spec64(&F_LOG1P64, DBL_MAX, (double)logl((long double)DBL_MAX));
    spec64(&F_LOG1P64, -0.99999999999999989, (double)log1pl((long double)-0.99999999999999989));
}

/* ---- main --------------------------------------------------------------------- */

int main(void)
{
    printf("special values\n");
    special_values();

    printf("float32 sweeps (reference: double libm), %d points each\n", SWEEP_N);
    sweep32(&F_EXP32, "uniform [-104, 89]", g32_uniform, -104.0, 89.0);
    sweep32(&F_EXP32, "uniform [-30, 0] (kernels)", g32_uniform, -30.0, 0.0);
    sweep32(&F_EXP32, "bits |x| in [2^-40, 1], +-", g32_bits, -1.0, ldexp(1.0, -40));
    sweep32(&F_EXP32, "uniform [86, 89] (overflow)", g32_uniform, 86.0, 89.0);
    sweep32(&F_EXP32, "uniform [-104, -85] (subnormal)", g32_uniform, -104.0, -85.0);
    sweep32(&F_LOG32, "bits (0, 1] incl. subnormals", g32_bits, f32_of_bits(1u), 1.0);
    sweep32(&F_LOG32, "uniform (0, 1]", g32_uniform, 1e-7, 1.0);
    sweep32(&F_LOG32, "1 + [-2^-8, 2^-8]", g32_near1, -ldexp(1.0, -8), ldexp(1.0, -8));
    sweep32(&F_LOG32, "bits [1, FLT_MAX]", g32_bits, 1.0, FLT_MAX);
    sweep32(&F_LOG32, "uniform [0.5, 4]", g32_uniform, 0.5, 4.0);
    sweep32(&F_LOG1P32, "uniform [0, 1] (kernels)", g32_uniform, 0.0, 1.0);
    sweep32(&F_LOG1P32, "bits [0, 1] incl. subnormals", g32_bits, 0.0, 1.0);
    sweep32(&F_LOG1P32, "bits (-1, 0)", g32_bits, -0.99999994, -f32_of_bits(1u));
    sweep32(&F_LOG1P32, "uniform (-1, 0)", g32_uniform, -0.99999994, 0.0);
    sweep32(&F_LOG1P32, "bits [1, FLT_MAX]", g32_bits, 1.0, FLT_MAX);
    centres_exp(0);
    sweep32(&F_EXP32, "+-64 ulps around critical points", g32_around, 64.0, 0.0);
    centres_log(0);
    sweep32(&F_LOG32, "+-64 ulps around critical points", g32_around, 64.0, 0.0);
    centres_log1p(0);
    sweep32(&F_LOG1P32, "+-64 ulps around critical points", g32_around, 64.0, 0.0);

    printf("float64 sweeps (reference: long double libm, %d-bit mantissa), %d points each\n",
           LDBL_MANT_DIG, SWEEP_N);
    sweep64(&F_EXP64, "uniform [-746, 710]", g64_uniform, -746.0, 710.0);
    sweep64(&F_EXP64, "uniform [-40, 0] (kernels)", g64_uniform, -40.0, 0.0);
    sweep64(&F_EXP64, "bits |x| in [2^-60, 1], +-", g64_bits, -1.0, ldexp(1.0, -60));
    sweep64(&F_EXP64, "uniform [705, 710] (overflow)", g64_uniform, 705.0, 710.0);
    sweep64(&F_EXP64, "uniform [-746, -705] (subnormal)", g64_uniform, -746.0, -705.0);
    sweep64(&F_LOG64, "bits (0, 1] incl. subnormals", g64_bits, f64_of_bits(1u), 1.0);
    sweep64(&F_LOG64, "uniform (0, 1]", g64_uniform, 1e-16, 1.0);
    sweep64(&F_LOG64, "1 + [-2^-8, 2^-8]", g64_near1, -ldexp(1.0, -8), ldexp(1.0, -8));
    sweep64(&F_LOG64, "bits [1, DBL_MAX]", g64_bits, 1.0, DBL_MAX);
    sweep64(&F_LOG64, "uniform [0.5, 4]", g64_uniform, 0.5, 4.0);
    sweep64(&F_LOG1P64, "uniform [0, 1] (kernels)", g64_uniform, 0.0, 1.0);
    sweep64(&F_LOG1P64, "bits [0, 1] incl. subnormals", g64_bits, 0.0, 1.0);
    sweep64(&F_LOG1P64, "bits (-1, 0)", g64_bits, -0.99999999999999989, -f64_of_bits(1u));
    sweep64(&F_LOG1P64, "uniform (-1, 0)", g64_uniform, -0.99999999999999989, 0.0);
    sweep64(&F_LOG1P64, "bits [1, DBL_MAX]", g64_bits, 1.0, DBL_MAX);
    centres_exp(1);
    sweep64(&F_EXP64, "+-64 ulps around critical points", g64_around, 64.0, 0.0);
    centres_log(1);
    sweep64(&F_LOG64, "+-64 ulps around critical points", g64_around, 64.0, 0.0);
    centres_log1p(1);
    sweep64(&F_LOG1P64, "+-64 ulps around critical points", g64_around, 64.0, 0.0);

    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail == 0 ? 0 : 1;
}
