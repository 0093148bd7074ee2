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
static inline FL_T FL_SFX(exp_neg_abs)(FL_T x)
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

/* x^g for x >= 0 (or NaN) and g > 0, as exp(g log x): 0^g == 0.  Callers
 * handle the integer exponents 0, 1, 2 separately. */
static inline FL_T FL_SFX(powg)(FL_T x, FL_T g) { return FL_EXP(g * FL_LOG(x)); }

/* Sum of l[0..n) in a fixed order: FL_LANES interleaved partial sums in the
 * compute dtype (vectorisable), folded in order into a double.  Callers keep n
 * to a block (<= a few hundred), so the float partial sums stay exact to a few
 * ulp. */
static inline double FL_SFX(block_sum)(const FL_T *l, fl_index n)
{
    FL_T acc[FL_LANES] = {0};
    fl_index i = 0;
    double total = 0.0;
    for (; i + FL_LANES <= n; i += FL_LANES)
        for (int j = 0; j < FL_LANES; ++j)
            acc[j] += l[i + j];
    for (int j = 0; j < FL_LANES; ++j)
        total += (double)acc[j];
    for (; i < n; ++i)
        total += (double)l[i];
    return total;
}
