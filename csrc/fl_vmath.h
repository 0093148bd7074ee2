/* fl_vmath.h -- branch-free exp / log / log1p for float and double.
 *
 *   float  fl_exp_f32(float x);    double fl_exp_f64(double x);
 *   float  fl_log_f32(float x);    double fl_log_f64(double x);
 *   float  fl_log1p_f32(float x);  double fl_log1p_f64(double x);
 *
 * Everything here is `static inline`, portable C99, calls nothing from libm
 * and contains no branches: special inputs are handled with selects
 * (`c ? a : b`) and type punning goes through memcpy, so that a loop such as
 * `for (i = 0; i < n; i++) y[i] = fl_exp_f32(x[i]);` is vectorised by GCC
 * and clang at -O3 (SSE2 baseline, AVX2, AVX-512; NEON on aarch64).  GCC
 * needs -fno-trapping-math for that (else it will not if-convert the
 * selects); clang vectorises either way.
 *
 * Accuracy (see csrc/tests/test_vmath.c and bench/vmath_sweep.c): the f32
 * functions were checked exhaustively (all 2^32 inputs), the f64 ones by
 * sampling against 80-bit long double; all stay below 1 ULP of the correctly
 * rounded result (max measured: f32 exp 0.817, log 0.840, log1p 0.866;
 * f64 exp 0.840, log 0.845, log1p 0.848).  FMA is never needed for that
 * bound: the code is written so that it holds whether or not the compiler
 * contracts a*b+c into an fma (GCC does not in -std=c99 mode; clang does
 * with -mfma; GCC in GNU mode does on aarch64), so results may differ in the
 * last bit between targets but stay within the bound.
 *
 * Special values (C99 Annex F semantics, without setting errno):
 *   exp:   exp(+-0) = 1 exactly, exp(-inf) = +0, exp(+inf) = +inf,
 *          overflow -> +inf (x > 88.7228 f32, x > 709.7827 f64),
 *          gradual underflow: results in the subnormal range are rounded
 *          once to the nearest subnormal (no flush to zero), and -> +0
 *          below that (x < -103.972 f32, x < -745.133 f64).  NaN -> NaN.
 *   log:   log(1) = +0 exactly, log(+-0) = -inf, log(x < 0) = NaN,
 *          log(+inf) = +inf, NaN -> NaN; subnormal x are handled exactly.
 *   log1p: log1p(+-0) = +-0, tiny and subnormal x -> x, log1p(-1) = -inf,
 *          log1p(x < -1) = NaN, log1p(+inf) = +inf, NaN -> NaN.
 * (As everywhere in this package, this assumes the CPU runs with
 * subnormals enabled, i.e. no FTZ/DAZ.)
 *
 * Algorithms
 *   exp:  n = round(x / ln2) by the add-and-subtract-1.5*2^p trick,
 *         r = (x - n*ln2_hi) - n*ln2_lo (Cody-Waite; n*ln2_hi is exact),
 *         |r| <= ln2/2, e^r = 1 + r + r^2 q(r) with q a weighted minimax
 *         polynomial (f32: degree 6 in total, f64: degree 11; q(0) = 1/2
 *         exactly).  1 + r is formed together with its exact rounding error
 *         (Fast2Sum), so only the last addition rounds at full magnitude.
 *         The result is scaled by 2^n as two factors 2^n1 * 2^n2 with
 *         n1 = round(n/2), so that both factors are normal numbers even when
 *         the result overflows or is subnormal (the last product is the only
 *         rounding into the subnormal range).  Inputs beyond [-104, 89]
 *         (f32) / [-746, 710] (f64) are mapped to 0 / +inf by selects.
 *   log:  x = 2^k m with m in [sqrt(1/2), sqrt(2)) taken from the exponent
 *         and mantissa bits (subnormal x are first scaled by 2^24 / 2^54),
 *         f = m - 1 (exact), s = f / (2 + f), and
 *         log(1+f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2)), with R a
 *         minimax polynomial (f32: 3 terms, f64: 7 terms); k*ln2 is added
 *         in two parts, the big one last.
 *   log1p: u = 1 + x rounded; the rounding error c = (1 + x) - u is
 *         recovered exactly and log1p(x) = log(u) + c/u, with log(u) from
 *         the log core above.
 *
 * Caveats: do not compile with -ffast-math / -fassociative-math (they
 * would fold the rounding trick (y + C) - C into y and the error terms of
 * the compensated sums to zero); -ffinite-math-only would break the
 * special-value selects.  The rounding mode must be round-to-nearest, and
 * float arithmetic must be evaluated in its own type (FLT_EVAL_METHOD 0, as
 * on x86-64 with SSE and on aarch64; x87 excess precision is not supported).
 */
#ifndef FL_VMATH_H
#define FL_VMATH_H

/* Forced inline: the element-wise loops vectorise only with these inlined,
 * and a translation unit with many loss kernels exceeds the compiler's
 * inlining heuristics. */
#if defined(_MSC_VER) && !defined(__clang__)
#define FL_VM_INLINE static __forceinline
#elif defined(__GNUC__) || defined(__clang__)
#define FL_VM_INLINE static inline __attribute__((always_inline))
#else
#define FL_VM_INLINE static inline
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

/* a*b + c.  Where the target has a hardware FMA (x86 -mfma, aarch64), this
 * is an explicit fma -- GCC in ISO C mode never contracts on its own -- which
 * only saves instructions: the accuracy bound above does not depend on it,
 * and without FMA it is a plain multiply and add (never a libm call). */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__FP_FAST_FMAF)
#define FL__MADF(a, b, c) fmaf((a), (b), (c))
#else
#define FL__MADF(a, b, c) ((a) * (b) + (c))
#endif
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__FP_FAST_FMA)
#define FL__MADD(a, b, c) fma((a), (b), (c))
#else
#define FL__MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---- bit casts ----------------------------------------------------------- */

/* memcpy: the portable, aliasing-safe bit cast (compiled to a register move) */
#define FL__VM_BITCAST(name, From, To)                                                             \
    static inline To name(From x)                                                                  \
    {                                                                                              \
        To u;                                                                                      \
        memcpy(&u, &x, sizeof u);                                                                  \
        return u;                                                                                  \
    }
FL__VM_BITCAST(fl__vm_bits32, float, uint32_t)
FL__VM_BITCAST(fl__vm_from32, uint32_t, float)
FL__VM_BITCAST(fl__vm_bits64, double, uint64_t)
FL__VM_BITCAST(fl__vm_from64, uint64_t, double)

/* ---- float32 ------------------------------------------------------------- */

/* ln2 = FL__LN2_HI_F + FL__LN2_LO_F; the high part has at most 16
 * significant bits, so k * FL__LN2_HI_F is exact for every |k| < 256. */
#define FL__LN2_HI_F 0.693145752f
#define FL__LN2_LO_F 1.42860677e-06f
#define FL__SHIFT_F 12582912.0f /* 1.5 * 2^23: x + S - S rounds x to an integer */
#define FL__SHIFT_F_BITS 0x4b400000u

FL_VM_INLINE float fl_exp_f32(float x)
{
    float t, n, t1, r, r2, q, p1, e, p, s1, s2, y;
    uint32_t ut, ut1;

    /* The steps below are valid for x in [-104, 89] (exp(89) already
     * overflows, exp(-104) is below half the smallest subnormal); outside,
     * they give garbage that the selects at the end replace.  NaN
     * propagates through the arithmetic and passes both selects. */
    t = FL__MADF(x, 1.44269502f, FL__SHIFT_F); /* 1.5*2^23 + n, n = round(x/ln2) */
    n = t - FL__SHIFT_F;                       /* n in [-150, 128], exact */
    t1 = FL__MADF(n, 0.5f, FL__SHIFT_F);       /* 1.5*2^23 + n1, n1 = round(n/2) */

    /* r = x - n ln2; n * FL__LN2_HI_F is exact, so no fma is needed */
    r = FL__MADF(-n, FL__LN2_LO_F, FL__MADF(-n, FL__LN2_HI_F, x));
    r2 = r * r;
    q = FL__MADF(r, 0.00138625817f, 0.00836882275f);
    q = FL__MADF(r, q, 0.0416672863f);
    q = FL__MADF(r, q, 0.166665241f);
    q = FL__MADF(r, q, 0.5f);
    /* e^r = 1 + r + r^2 q(r): 1 + r is formed with its exact rounding error
     * e (Fast2Sum), so that only the last addition rounds at full size. */
    p1 = 1.0f + r;
    e = (1.0f - p1) + r;
    p = p1 + FL__MADF(r2, q, e); /* e^r, in [0.70, 1.42] */

    /* 2^n = 2^n1 * 2^n2 with n1, n2 in [-75, 64]: both are normal floats.
     * The integers are read from the low mantissa bits of t and t1 with
     * modular unsigned arithmetic. */
    ut = fl__vm_bits32(t);
    ut1 = fl__vm_bits32(t1);
    s1 = fl__vm_from32((ut1 - FL__SHIFT_F_BITS + 127u) << 23);
    s2 = fl__vm_from32((ut - ut1 + 127u) << 23);
    y = (p * s1) * s2;                              /* p * s1 is exact; one rounding at the end */
    y = x > 89.0f ? fl__vm_from32(0x7f800000u) : y; /* includes +inf */
    y = x < -104.0f ? 0.0f : y;                     /* includes -inf */
    return y;
}

/* log(u) + c for a positive normal u with exponent offset kofs (u is the
 * argument scaled by 2^kofs); c must be tiny next to log(u)'s ulp scale. */
FL_VM_INLINE float fl__log_core_f32(float u, float kofs, float c)
{
    uint32_t iu;
    float k, m, f, s, z, R, hfsq, lo;

    /* Adding 1.0 - sqrt(1/2) in the bits carries into the exponent exactly
     * when the mantissa is >= sqrt(2), which yields m in [sqrt(1/2), sqrt(2)). */
    iu = fl__vm_bits32(u) + (0x3f800000u - 0x3f3504f3u);
    k = (fl__vm_from32((iu >> 23) | 0x4b000000u) - 8388608.0f) - (127.0f + kofs);
    m = fl__vm_from32((iu & 0x007fffffu) + 0x3f3504f3u);

    f = m - 1.0f; /* exact, |f| <= 0.4143 */
    s = f / (2.0f + f);
    z = s * s;
    R = z * FL__MADF(z, FL__MADF(z, 0.298986554f, 0.399766117f), 0.666667819f);
    hfsq = 0.5f * f * f;
    /* log(u) = k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo + c)) - f) */
    lo = FL__MADF(s, hfsq + R, FL__MADF(k, FL__LN2_LO_F, c));
    return FL__MADF(k, FL__LN2_HI_F, -((hfsq - lo) - f));
}

FL_VM_INLINE float fl_log_f32(float x)
{
    const float inf = fl__vm_from32(0x7f800000u);
    const float nan = fl__vm_from32(0x7fc00000u);
    float xs, kofs, y;
    int sub = x < 1.17549435e-38f; /* subnormal (or <= 0: fixed below) */

    xs = sub ? x * 16777216.0f : x; /* 2^24 */
    kofs = sub ? 24.0f : 0.0f;
    y = fl__log_core_f32(xs, kofs, 0.0f);

    y = x > 0.0f ? y : (x == 0.0f ? -inf : nan);
    y = x < inf ? y : x; /* +inf -> +inf, NaN -> NaN */
    return y;
}

FL_VM_INLINE float fl_log1p_f32(float x)
{
    const float inf = fl__vm_from32(0x7f800000u);
    const float nan = fl__vm_from32(0x7fc00000u);
    float u, c, y;

    /* u = 1 + x rounded; c = (1 + x) - u exactly (Sterbenz in both arms). */
    u = 1.0f + x;
    c = x < 1.0f ? x - (u - 1.0f) : 1.0f - (u - x);
    c = c / u; /* log(u + c) = log(u) + c/u to first order */
    /* u >= 2^-24 for x > -1, so the core needs no subnormal scaling. */
    y = fl__log_core_f32(u, 0.0f, c);

    y = x > -1.0f ? y : (x == -1.0f ? -inf : nan);
    y = x < inf ? y : x;   /* +inf -> +inf, NaN -> NaN */
    y = x == 0.0f ? x : y; /* keep the sign of zero */
    return y;
}

/* ---- float64 ------------------------------------------------------------- */

/* ln2 = FL__LN2_HI_D + FL__LN2_LO_D; the high part has 29 significant bits,
 * so k * FL__LN2_HI_D is exact for every |k| < 2^24. */
#define FL__LN2_HI_D 0.69314718060195446
#define FL__LN2_LO_D -4.2009150726810846e-11
#define FL__SHIFT_D 6755399441055744.0 /* 1.5 * 2^52 */
#define FL__SHIFT_D_BITS UINT64_C(0x4338000000000000)

FL_VM_INLINE double fl_exp_f64(double x)
{
    double t, n, t1, r, r2, q, p1, e, p, s1, s2, y;
    uint64_t ut, ut1;

    /* Valid for x in [-746, 710] (exp(710) overflows, exp(-746) is below
     * half the smallest subnormal); the selects at the end fix the rest. */
    t = FL__MADD(x, 1.4426950408889634, FL__SHIFT_D);
    n = t - FL__SHIFT_D;                /* n in [-1076, 1024] */
    t1 = FL__MADD(n, 0.5, FL__SHIFT_D); /* n1 = round(n/2) */

    r = FL__MADD(-n, FL__LN2_LO_D, FL__MADD(-n, FL__LN2_HI_D, x));
    r2 = r * r;
    q = FL__MADD(r, 2.4975457141911579e-08, 2.7627912119015103e-07);
    q = FL__MADD(r, q, 2.7557667119649831e-06);
    q = FL__MADD(r, q, 2.4801502246829174e-05);
    q = FL__MADD(r, q, 0.00019841269419284418);
    q = FL__MADD(r, q, 0.0013888888931541687);
    q = FL__MADD(r, q, 0.008333333333528441);
    q = FL__MADD(r, q, 0.041666666666593286);
    q = FL__MADD(r, q, 0.16666666666666383);
    q = FL__MADD(r, q, 0.5);
    p1 = 1.0 + r;
    e = (1.0 - p1) + r;
    p = p1 + FL__MADD(r2, q, e);

    /* 2^n = 2^n1 * 2^n2 with n1, n2 in [-538, 512]. */
    ut = fl__vm_bits64(t);
    ut1 = fl__vm_bits64(t1);
    s1 = fl__vm_from64((ut1 - FL__SHIFT_D_BITS + 1023u) << 52);
    s2 = fl__vm_from64((ut - ut1 + 1023u) << 52);
    y = (p * s1) * s2;
    y = x > 710.0 ? fl__vm_from64(UINT64_C(0x7ff0000000000000)) : y;
    y = x < -746.0 ? 0.0 : y;
    return y;
}

FL_VM_INLINE double fl__log_core_f64(double u, double kofs, double c)
{
    uint64_t iu;
    double k, m, f, s, z, z2, Ro, Re, hfsq, lo;

    iu = fl__vm_bits64(u) + (UINT64_C(0x3ff0000000000000) - UINT64_C(0x3fe6a09e667f3bcd));
    /* biased exponent -> double without an int64 conversion instruction */
    k = (fl__vm_from64((iu >> 52) | UINT64_C(0x4330000000000000)) - 4503599627370496.0) -
        (1023.0 + kofs);
    m = fl__vm_from64((iu & UINT64_C(0x000fffffffffffff)) + UINT64_C(0x3fe6a09e667f3bcd));

    f = m - 1.0;
    s = f / (2.0 + f);
    z = s * s;
    z2 = z * z;
    /* R(z) = z*(c0 + c1 z + ... + c6 z^6), split in odd / even powers of z
     * to shorten the dependency chain. */
    Ro = FL__MADD(z2, 0.14827151521986462, 0.18183674826255466);
    Ro = FL__MADD(z2, Ro, 0.28571428760595219);
    Ro = z * FL__MADD(z2, Ro, 0.66666666666667451);
    Re = FL__MADD(z2, 0.15311072383560778, 0.22222196570148858);
    Re = z2 * FL__MADD(z2, Re, 0.39999999999339336);
    hfsq = 0.5 * f * f;
    lo = FL__MADD(s, hfsq + (Ro + Re), FL__MADD(k, FL__LN2_LO_D, c));
    return FL__MADD(k, FL__LN2_HI_D, -((hfsq - lo) - f));
}

FL_VM_INLINE double fl_log_f64(double x)
{
    const double inf = fl__vm_from64(UINT64_C(0x7ff0000000000000));
    const double nan = fl__vm_from64(UINT64_C(0x7ff8000000000000));
    double xs, kofs, y;
    int sub = x < 2.2250738585072014e-308;

    xs = sub ? x * 18014398509481984.0 : x; /* 2^54 */
    kofs = sub ? 54.0 : 0.0;
    y = fl__log_core_f64(xs, kofs, 0.0);

    y = x > 0.0 ? y : (x == 0.0 ? -inf : nan);
    y = x < inf ? y : x;
    return y;
}

FL_VM_INLINE double fl_log1p_f64(double x)
{
    const double inf = fl__vm_from64(UINT64_C(0x7ff0000000000000));
    const double nan = fl__vm_from64(UINT64_C(0x7ff8000000000000));
    double u, c, y;

    u = 1.0 + x;
    c = x < 1.0 ? x - (u - 1.0) : 1.0 - (u - x);
    c = c / u;
    y = fl__log_core_f64(u, 0.0, c); /* u >= 2^-53 for x > -1 */

    y = x > -1.0 ? y : (x == -1.0 ? -inf : nan);
    y = x < inf ? y : x;
    y = x == 0.0 ? x : y;
    return y;
}

#endif /* FL_VMATH_H */
