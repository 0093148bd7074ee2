/* Instantiates every loss kernel of losses.def for float32 and float64.
 *
 * The kernel bodies live in one .inc file per loss family and are written
 * once, generically over FL_T; this file includes them once per precision
 * with the matching libm functions.  Everything except the per-target entry
 * points (fl_<name>_<precision>_<target>, reached through dispatch.c) is
 * static.
 */
#include "fusedloss.h"
#include "runtime.h"

#include "fl_vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#define FL_HAVE_SSE2 1
#include <immintrin.h>
#else
#define FL_HAVE_SSE2 0
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define FL_RESTRICT __restrict
#else
#define FL_RESTRICT restrict
#endif

/* Inlining that specialisation depends on (a constant argument folding a
 * branch away inside a loop that must vectorise). */
#if defined(_MSC_VER) && !defined(__clang__)
#define FL_FORCE_INLINE static __forceinline
#elif defined(__GNUC__) || defined(__clang__)
#define FL_FORCE_INLINE static inline __attribute__((always_inline))
#else
#define FL_FORCE_INLINE static inline
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#define FL_NOINLINE __declspec(noinline)
#elif defined(__GNUC__) || defined(__clang__)
#define FL_NOINLINE __attribute__((noinline))
#else
#define FL_NOINLINE
#endif

/* Accumulator lanes of the vectorised sums.  Fixed (not per target), so sums
 * are formed in the same order, and agree bitwise, on every SIMD target. */
#define FL_LANES 16

/* Elements per inner block of the element-wise kernels (stack buffers). */
#define FL_BLOCK ((fl_index)256)

/* The SIMD target this object is compiled for (setup.py compiles this file
 * once per target with -DFL_TARGET=...); exported kernels are named
 * fl_<kernel>_<precision>_<target> and reached through dispatch.c. */
#ifndef FL_TARGET
#define FL_TARGET baseline
#endif
#define FL_PASTE3_(a, b, c) a##b##c
#define FL_PASTE3(a, b, c) FL_PASTE3_(a, b, c)
#define FL_KERNEL(name) FL_PASTE3(FL_SFX(name), _, FL_TARGET)

static inline fl_index fl_min_index(fl_index a, fl_index b) { return a < b ? a : b; }

/* A result before a kernel runs: no sums, no bad index. */
static void fl_result_init(fl_result *r)
{
    memset(r, 0, sizeof *r);
    r->bad_pos = -1;
}

/* Class-axis layouts: rows of C classes, the classes class_stride (P)
 * elements apart, as a C-contiguous (outer, C, P) array with n = outer P rows
 * (row r = o P + i); P <= 1 is the class axis last.  A hessian only where the
 * kernel has one (has_hess). */
static int fl_class_layout_supported(const fl_args *a, int has_hess)
{
    const fl_index P = a->class_stride;
    if (P < 0 || (P > 1 && a->n % P != 0))
        return 0;
    return has_hess || a->hess == NULL;
}

/* The stride between a row's classes (1 for the class axis last). */
static inline fl_index fl_class_step(const fl_args *a)
{
    return a->class_stride > 1 ? a->class_stride : 1;
}

/* Where row r's first class lies; its classes follow P apart. */
static inline fl_index fl_row_base(fl_index r, fl_index C, fl_index P)
{
    return P == 1 ? r * C : (r / P) * (C * P) + r % P;
}

/* The gradient factor of a call whose mean has denominator denom:
 * grad_scale, over denom for a mean (0 for a mean over nothing).  The one
 * place any kernel turns a reduction into a scale. */
static double fl_grad_factor(const fl_args *a, double denom)
{
    const double s = a->grad_scale;
    if (a->reduction != FL_REDUCE_MEAN)
        return s;
    return denom != 0 ? s / denom : 0.0;
}

/* Domains a kernel checks before writing (elementwise.inc's ew_check). */
enum { FL_DOMAIN_UNIT = 0, FL_DOMAIN_SIGN = 1 };

/* ---- the two precisions ------------------------------------------------ */
#define FL_PRECISION 32
#include "instantiate.inc"
#undef FL_PRECISION
#define FL_PRECISION 64
#include "instantiate.inc"
#undef FL_PRECISION
