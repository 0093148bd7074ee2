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

/* max(x, 0) and max(-x, 0); NaN maps to 0 here, callers carry NaN through
 * the log1p(exp(-|x|)) term. */
static inline FL_T FL_SFX(relu)(FL_T x) { return x > 0 ? x : (FL_T)0; }
static inline FL_T FL_SFX(relu_neg)(FL_T x) { return x < 0 ? -x : (FL_T)0; }

/* x^g for g >= 0 with 0^0 == 1; the common integer exponents skip pow(). */
static inline FL_T FL_SFX(powg)(FL_T x, FL_T g, int g_kind)
{
    switch (g_kind) {
    case 0: return (FL_T)1;
    case 1: return x;
    case 2: return x * x;
    default: return FL_POW(x, g);
    }
}
