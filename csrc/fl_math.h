/* Scalar math helpers for one compute precision.
 *
 * Included by kernels.c once per precision with FL_T (float or double) and
 * FL_SFX(name) defined.  Everything is static inline and branch-free (selects,
 * not jumps) so that loops over contiguous spans can be vectorised.
 */
#include <math.h>

#ifndef FL_MATH_COMMON
#define FL_MATH_COMMON
#define FL_CAT_(a, b) a##_##b
#define FL_CAT(a, b) FL_CAT_(a, b)
#endif

/* exp(-|x|), the building block of the stable sigmoid / softplus forms. */
FL_FORCE_INLINE FL_T FL_SFX(exp_neg_abs)(FL_T x)
{
    FL_T a = x < 0 ? -x : x;
    return FL_EXP(-a);
}

/* v > m ? v : m as a bit blend.  GCC turns the plain select into a scalar
 * max instruction that it then refuses to vectorise (without
 * -ffinite-math-only); the integer blend vectorises on every target.  Same
 * semantics: m is kept when v is NaN or not greater. */
static inline FL_T FL_SFX(select_gt)(FL_T v, FL_T m)
{
    FL_UINT a, b, k = (FL_UINT)0 - (FL_UINT)(v > m);
    FL_T r;
    memcpy(&a, &v, sizeof a);
    memcpy(&b, &m, sizeof b);
    a = (a & k) | (b & ~k);
    memcpy(&r, &a, sizeof r);
    return r;
}

/* max(x, 0) and max(-x, 0); NaN maps to 0 here, callers carry NaN through
 * the log1p(exp(-|x|)) term. */
static inline FL_T FL_SFX(relu)(FL_T x) { return x > 0 ? x : (FL_T)0; }
static inline FL_T FL_SFX(relu_neg)(FL_T x) { return x < 0 ? -x : (FL_T)0; }

/* log1p(e) for e in [0, 1] (or NaN), the softplus term log1p(exp(-|x|)) of
 * the binary losses: e + e^2 Q(e) with Q a Chebyshev fit of
 * (log1p(e) - e) / e^2 (fitted with mpmath; polynomial error 7.5e-10 for
 * float32 at degree 10, 1.6e-18 for float64 at degree 21).  No division and
 * no special cases; max error 1.7 ulp (float32) and 1.3 ulp (float64),
 * largest near e = 1, and full relative accuracy for tiny e, where it returns
 * e - e^2/2 + ...  */
#ifndef FL_HORNER1
/* q = q e + c for each coefficient c in turn (Horner's steps, in order). */
#define FL_HORNER1(q, e, a) ((q) = FL_FMA(q, e, a))
#define FL_HORNER2(q, e, a, b) (FL_HORNER1(q, e, a), FL_HORNER1(q, e, b))
#define FL_HORNER3(q, e, a, b, c) (FL_HORNER2(q, e, a, b), FL_HORNER1(q, e, c))
#define FL_HORNER4(q, e, a, b, c, d) (FL_HORNER2(q, e, a, b), FL_HORNER2(q, e, c, d))
#define FL_HORNER5(q, e, a, b, c, d, f) (FL_HORNER4(q, e, a, b, c, d), FL_HORNER1(q, e, f))
#define FL_HORNER7(q, e, a, b, c, d, f, g, h)                                                      \
    (FL_HORNER4(q, e, a, b, c, d), FL_HORNER3(q, e, f, g, h))
#endif
FL_FORCE_INLINE FL_T FL_SFX(log1p_unit)(FL_T e)
{
    /* Horner written out: a loop over a coefficient table keeps GCC from
     * vectorising the element loops this is inlined into. */
#if FL_IS_F32
    FL_T q = -0.001770662617086398f;
    FL_HORNER5(q, e, 0.01172534098762865f, -0.03631710700126946f, 0.07204850269975431f,
               -0.10774868340732503f, 0.13762709367639858f);
    FL_HORNER5(q, e, -0.165636182748411f, 0.1998781927048246f, -0.24999246332594177f,
               0.3333331484308961f, -0.49999999923880306f);
#else
    FL_T q = 1.507843780222621e-05;
    FL_HORNER7(q, e, -0.0001818830325500265, 0.001043354876634814, -0.0038046517253179694,
               0.009968982838076882, -0.020179668043339125, 0.03327845491726436,
               -0.046798182549893104);
    FL_HORNER7(q, e, 0.05858685252957079, -0.06799320385322372, 0.07573035633807378,
               -0.08299931758127772, 0.09083470413958532, -0.09998705428075007,
               0.11110938960467566);
    FL_HORNER7(q, e, -0.12499983019721868, 0.14285713092791552, -0.1666666661032813,
               0.19999999998361212, -0.2499999999997462, 0.33333333333333176, -0.5);
#endif
    return FL_FMA(e * e, q, e);
}

/* x^g for x >= 0 (or NaN) and g > 0, as exp(g log x): 0^g == 0.  Callers
 * handle the integer exponents 0, 1, 2 separately. */
static inline FL_T FL_SFX(powg)(FL_T x, FL_T g) { return FL_EXP(g * FL_LOG(x)); }

/* Sum of l[0..n) in a fixed order: FL_LANES interleaved partial sums in
 * double (vectorisable: the float32 terms widen exactly), folded in order.
 * Batch-level sums are float64 from the first addition, so a mean of many
 * float32 losses is right to float32 precision. */
static inline double FL_SFX(block_sum)(const FL_T *l, fl_index n)
{
    double acc[FL_LANES] = { 0 };
    fl_index i = 0;
    double total = 0.0;
    for (; i + FL_LANES <= n; i += FL_LANES)
        for (int j = 0; j < FL_LANES; ++j)
            acc[j] += (double)l[i + j];
    for (int j = 0; j < FL_LANES; ++j)
        total += acc[j];
    for (; i < n; ++i)
        total += (double)l[i];
    return total;
}
