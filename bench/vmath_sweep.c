/* Exhaustive float32 accuracy sweep and throughput of csrc/fl_vmath.h.
 *
 * Build and run (from the repository root), once per target:
 *   cc -std=c99 -O3 -fno-math-errno -fno-trapping-math -fopenmp -Icsrc \
 *      bench/vmath_sweep.c -o /tmp/vmath_sweep -lm && /tmp/vmath_sweep
 *   ... add -mavx2 -mfma, or -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma
 * -fopenmp is optional (it only spreads the sweep over the cores).
 * Arguments: `/tmp/vmath_sweep time` runs only the timing, `... sweep` only
 * the sweep (`... sweep exp_f32` only that function's sweep); no argument
 * runs both.
 *
 * Sweep: every one of the 2^32 float32 bit patterns goes through each of
 * fl_exp_f32, fl_log_f32 and fl_log1p_f32 (in 4096-element array loops, so
 * the vectorised code is what is measured), against the double libm result
 * (exp, log, log1p) as reference.  The error is |y - ref| / ulp(ref) in
 * float ULPs (subnormal spacing below FLT_MIN: underflow is gradual and
 * subnormal results are included).  Per input range it prints the max ULP
 * error and the first input where it occurs, and the share of results that
 * are the correctly rounded float (y == (float)ref).  Outside the finite
 * result ranges (overflow, underflow to 0, inf, NaN, log of x <= 0, log1p of
 * x <= -1) any result other than the exact expected one counts as an error.
 *
 * Timing: ns per element for y[i] = f(x[i]) over a 4096-element array (best
 * of several repetitions), fl_* versus libm (expf, logf, log1pf and the
 * double exp, log, log1p), inputs in the kernel ranges: exp on [-20, 0],
 * log on (0, 1], log1p on [0, 1].
 */
#define _POSIX_C_SOURCE 199309L
#include "fl_vmath.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N 4096

/* ---- array loops (vectorised for fl_*; libm calls stay scalar) ----------- */

#define ARRAY_LOOP(name, T, expr)                                                                  \
    static void name(const T *x, T *y, int n)                                                      \
    {                                                                                              \
        int i;                                                                                     \
        for (i = 0; i < n; i++)                                                                    \
            y[i] = expr(x[i]);                                                                     \
    }

ARRAY_LOOP(a_fl_exp_f32, float, fl_exp_f32)
ARRAY_LOOP(a_fl_log_f32, float, fl_log_f32)
ARRAY_LOOP(a_fl_log1p_f32, float, fl_log1p_f32)
ARRAY_LOOP(a_fl_exp_f64, double, fl_exp_f64)
ARRAY_LOOP(a_fl_log_f64, double, fl_log_f64)
ARRAY_LOOP(a_fl_log1p_f64, double, fl_log1p_f64)
ARRAY_LOOP(a_libm_exp_f32, float, expf)
ARRAY_LOOP(a_libm_log_f32, float, logf)
ARRAY_LOOP(a_libm_log1p_f32, float, log1pf)
ARRAY_LOOP(a_libm_exp_f64, double, exp)
ARRAY_LOOP(a_libm_log_f64, double, log)
ARRAY_LOOP(a_libm_log1p_f64, double, log1p)

typedef void (*arr32)(const float *, float *, int);
typedef void (*arr64)(const double *, double *, int);

/* ---- exhaustive sweep ------------------------------------------------------ */

#define MAX_RANGES 6

struct range_stat {
    double max_ulp;
    uint32_t worst_bits;
    uint64_t count, exact, bad_class;
};

struct func {
    const char *name;
    arr32 arr;
    double (*ref)(double);
    int nranges;
    const char *range_name[MAX_RANGES];
    int (*range_of)(float x); /* index into range_name */
};

static int range_exp(float x)
{
    if (x != x)
        return 3;
    if (x >= -104.0f && x <= 89.0f)
        return x <= 0.0f ? 0 : 1;
    return 2;
}

static int range_log(float x)
{
    if (x != x)
        return 3;
    if (x > 0.0f && x < FLT_MIN)
        return 0;
    if (x >= FLT_MIN && x <= 1.0f)
        return 1;
    if (x > 1.0f)
        return 2; /* includes +inf */
    return 3;     /* zeros, negatives */
}

static int range_log1p(float x)
{
    if (x != x)
        return 4;
    if (x >= 0.0f && x <= 1.0f)
        return 0;
    if (x > -1.0f && x < 0.0f)
        return 1;
    if (x > 1.0f)
        return 2;
    return 3; /* x <= -1 */
}

static const struct func funcs[3] = {
    { "exp_f32",
      a_fl_exp_f32,
      exp,
      4,
      { "[-104, 0]", "(0, 89]", "outside [-104, 89] (0 / inf)", "NaN" },
      range_exp },
    { "log_f32",
      a_fl_log_f32,
      log,
      4,
      { "(0, FLT_MIN) subnormal", "[FLT_MIN, 1]", "(1, inf]", "<= 0 and NaN" },
      range_log },
    { "log1p_f32",
      a_fl_log1p_f32,
      log1p,
      5,
      { "[0, 1] (incl. subnormals)", "(-1, 0)", "(1, inf]", "<= -1", "NaN" },
      range_log1p },
};

static float from_bits32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ULP error of y against ref (in float ULPs at ref); -1 flags a wrong class
 * (NaN / inf / finite where the reference says otherwise). */
static double ulp_err(float y, double ref)
{
    double a = fabs(ref), ulp;
    float rf = (float)ref;
    int e;
    if (ref != ref)
        return y != y ? 0.0 : -1.0;
    if (y != y)
        return -1.0;
    if (rf - rf != 0.0f || y - y != 0.0f) /* an infinity on either side */
        return rf == y ? 0.0 : -1.0;
    if (a < FLT_MIN) {
        ulp = ldexp(1.0, -149);
    } else {
        frexp(a, &e);
        ulp = ldexp(1.0, e - 24);
    }
    return fabs((double)y - ref) / ulp;
}

static void sweep_block(const struct func *f, uint32_t base, struct range_stat *st)
{
    float x[N], y[N];
    int i;
    for (i = 0; i < N; i++)
        x[i] = from_bits32(base + (uint32_t)i);
    f->arr(x, y, N);
    for (i = 0; i < N; i++) {
        double ref = f->ref((double)x[i]);
        double e = ulp_err(y[i], ref);
        struct range_stat *s = &st[f->range_of(x[i])];
        s->count++;
        if (e < 0.0) {
            s->bad_class++;
            continue;
        }
        if (y[i] == (float)ref || (y[i] != y[i] && ref != ref))
            s->exact++;
        if (e > s->max_ulp || (e == s->max_ulp && base + (uint32_t)i < s->worst_bits)) {
            s->max_ulp = e;
            s->worst_bits = base + (uint32_t)i;
        }
    }
}

static void merge(struct range_stat *into, const struct range_stat *from, int n)
{
    int r;
    for (r = 0; r < n; r++) {
        if (from[r].max_ulp > into[r].max_ulp ||
            (from[r].max_ulp == into[r].max_ulp && from[r].worst_bits < into[r].worst_bits &&
             from[r].count)) {
            into[r].max_ulp = from[r].max_ulp;
            into[r].worst_bits = from[r].worst_bits;
        }
        into[r].count += from[r].count;
        into[r].exact += from[r].exact;
        into[r].bad_class += from[r].bad_class;
    }
}

static int run_sweep(const char *only)
{
    int fi, failed = 0;
    printf("exhaustive float32 sweep (all 2^32 inputs), reference: double libm\n");
    for (fi = 0; fi < 3; fi++) {
        const struct func *f = &funcs[fi];
        struct range_stat total[MAX_RANGES];
        long blk;
        int r;
        if (only && strcmp(only, f->name) != 0)
            continue;
        memset(total, 0, sizeof total);
        for (r = 0; r < MAX_RANGES; r++)
            total[r].worst_bits = 0xffffffffu;
#ifdef _OPENMP
#pragma omp parallel
#endif
        {
            struct range_stat mine[MAX_RANGES];
            int q;
            memset(mine, 0, sizeof mine);
            for (q = 0; q < MAX_RANGES; q++)
                mine[q].worst_bits = 0xffffffffu;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 64)
#endif
            for (blk = 0; blk < (1L << 20); blk++)
                sweep_block(f, (uint32_t)blk * N, mine);
#ifdef _OPENMP
#pragma omp critical
#endif
            merge(total, mine, MAX_RANGES);
        }
        for (r = 0; r < f->nranges; r++) {
            const struct range_stat *s = &total[r];
            printf("  %-10s %-28s %11llu inputs  max %.4f ulp", f->name, f->range_name[r],
                   (unsigned long long)s->count, s->max_ulp);
            if (s->max_ulp > 0)
                printf(" at x=%.9g (0x%08lx)", from_bits32(s->worst_bits),
                       (unsigned long)s->worst_bits);
            printf("  correctly rounded %.4f%%", 100.0 * (double)s->exact / (double)s->count);
            if (s->bad_class)
                printf("  WRONG CLASS x%llu", (unsigned long long)s->bad_class);
            printf("\n");
            if (s->bad_class || s->max_ulp > 2.0)
                failed = 1;
        }
    }
    return failed;
}

/* ---- timing ------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static arr32 volatile vp32;
static arr64 volatile vp64;
static volatile double sink;

static double time32(arr32 fn, const float *x, float *y)
{
    double best = 1e30;
    int rep, it;
    vp32 = fn;
    for (rep = 0; rep < 7; rep++) {
        double t0 = now_s(), t;
        for (it = 0; it < 200; it++)
            vp32(x, y, N);
        t = (now_s() - t0) / (200.0 * N) * 1e9;
        if (t < best)
            best = t;
        sink += y[rep];
    }
    return best;
}

static double time64(arr64 fn, const double *x, double *y)
{
    double best = 1e30;
    int rep, it;
    vp64 = fn;
    for (rep = 0; rep < 7; rep++) {
        double t0 = now_s(), t;
        for (it = 0; it < 200; it++)
            vp64(x, y, N);
        t = (now_s() - t0) / (200.0 * N) * 1e9;
        if (t < best)
            best = t;
        sink += y[rep];
    }
    return best;
}

static void run_timing(void)
{
    static float xe32[N], xl32[N], xp32[N], y32[N];
    static double xe64[N], xl64[N], xp64[N], y64[N];
    uint64_t s = 12345;
    int i;
    double a, b;
    for (i = 0; i < N; i++) {
        double u;
        s = s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        u = (double)(s >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
        xe64[i] = -20.0 * u;
        xl64[i] = 1.0 - u; /* (0, 1] */
        xp64[i] = u;
        xe32[i] = (float)xe64[i];
        xl32[i] = (float)xl64[i];
        xp32[i] = (float)xp64[i];
    }
    printf("throughput, ns/element over a %d-element array (best of 7 x 200 passes)\n", N);
    printf("  %-28s %10s %10s %8s\n", "function (input range)", "fl_vmath", "libm", "speedup");
#define ROW(label, t_ours, t_libm)                                                                 \
    a = (t_ours);                                                                                  \
    b = (t_libm);                                                                                  \
    printf("  %-28s %10.3f %10.3f %7.2fx\n", label, a, b, b / a);
    ROW("exp_f32   [-20, 0]", time32(a_fl_exp_f32, xe32, y32), time32(a_libm_exp_f32, xe32, y32));
    ROW("log_f32   (0, 1]", time32(a_fl_log_f32, xl32, y32), time32(a_libm_log_f32, xl32, y32));
    ROW("log1p_f32 [0, 1]", time32(a_fl_log1p_f32, xp32, y32), time32(a_libm_log1p_f32, xp32, y32));
    ROW("exp_f64   [-20, 0]", time64(a_fl_exp_f64, xe64, y64), time64(a_libm_exp_f64, xe64, y64));
    ROW("log_f64   (0, 1]", time64(a_fl_log_f64, xl64, y64), time64(a_libm_log_f64, xl64, y64));
    ROW("log1p_f64 [0, 1]", time64(a_fl_log1p_f64, xp64, y64), time64(a_libm_log1p_f64, xp64, y64));
#undef ROW
}

int main(int argc, char **argv)
{
    int failed = 0;
    int do_time = argc < 2 || strcmp(argv[1], "time") == 0;
    int do_sweep = argc < 2 || strcmp(argv[1], "sweep") == 0;
#if defined(__AVX512F__)
    const char *target = "AVX-512";
#elif defined(__AVX2__)
    const char *target = "AVX2";
#elif defined(__SSE2__) || defined(_M_X64)
    const char *target = "SSE2 (x86-64 baseline)";
#else
    const char *target = "generic";
#endif
    printf("target: %s%s\n", target,
#ifdef __FMA__
           " + FMA"
#else
           ""
#endif
    );
    if (do_time)
        run_timing();
    if (do_sweep)
        failed = run_sweep(argc > 2 ? argv[2] : NULL);
    printf("%s (checksum %g)\n", failed ? "SWEEP FAILED" : "done", (double)sink);
    return failed;
}
