/* Runtime SIMD dispatch: picks, once, the best compiled kernel set this CPU runs.
 *
 * kernels.c is compiled once per target with -DFL_TARGET=<name> (and that
 * target's ISA flags); this file is compiled with baseline flags only, so it
 * runs everywhere, and detects the CPU with __builtin_cpu_supports (GCC,
 * Clang) or cpuid + xgetbv (MSVC).  Both check that the OS saves the wide
 * registers, not only that the CPU has the instructions.
 *
 * Which targets exist is decided by setup.py and passed as FL_HAVE_AVX2 /
 * FL_HAVE_AVX512 (x86-64 only); aarch64 builds have just the baseline, which
 * includes NEON.
 */
#include "fusedloss.h"
#include "fl_atomic.h"

#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define FL_X86_64 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#include <immintrin.h>
#endif
#endif

#ifndef FL_X86_64
#undef FL_HAVE_AVX2
#undef FL_HAVE_AVX512
#endif

/* A target's kernels by id and precision ([0] float64, [1] float32), filled
 * by name from losses.def: a kernel cannot land in another's slot. */
typedef int (*fl_kernel_fn)(const fl_args *, fl_result *);
typedef struct {
    const char *name;
    fl_kernel_fn k[FL_N_LOSSES][2];
} fl_table;

#define FL_TARGET_DECLARE(TGT, name)                                                               \
    int fl_##name##_f32_##TGT(const fl_args *, fl_result *);                                       \
    int fl_##name##_f64_##TGT(const fl_args *, fl_result *);
#define FL_TARGET_ENTRY(TGT, name)                                                                 \
    [FL_ID_##name] = { fl_##name##_f64_##TGT, fl_##name##_f32_##TGT },
#define FL_TARGET_TABLE(TGT)                                                                       \
    FL_LOSSES(FL_TARGET_DECLARE, TGT)                                                              \
    static const fl_table fl_table_##TGT = { #TGT, { FL_LOSSES(FL_TARGET_ENTRY, TGT) } };

FL_TARGET_TABLE(baseline)
#ifdef FL_HAVE_AVX2
FL_TARGET_TABLE(avx2)
#endif
#ifdef FL_HAVE_AVX512
FL_TARGET_TABLE(avx512)
#endif

/* Compiled targets, worst first. */
static const fl_table *const fl_tables[] = {
    &fl_table_baseline,
#ifdef FL_HAVE_AVX2
    &fl_table_avx2,
#endif
#ifdef FL_HAVE_AVX512
    &fl_table_avx512,
#endif
};
#define FL_N_TABLES ((int)(sizeof fl_tables / sizeof fl_tables[0]))

/* ---- CPU detection ------------------------------------------------------ */

#if defined(FL_X86_64) && defined(_MSC_VER) && !defined(__clang__)
static int fl_cpu_avx2(void)
{
    int r[4];
    __cpuid(r, 1);
    const int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!(fma && osxsave && avx) || (_xgetbv(0) & 0x6) != 0x6)
        return 0;
    __cpuidex(r, 7, 0);
    return (r[1] >> 5) & 1;
}
static int fl_cpu_avx512(void)
{
    int r[4];
    if (!fl_cpu_avx2() || (_xgetbv(0) & 0xe6) != 0xe6)
        return 0;
    __cpuidex(r, 7, 0);
    /* F (16), DQ (17), BW (30), VL (31) */
    return ((r[1] >> 16) & 1) && ((r[1] >> 17) & 1) && ((r[1] >> 30) & 1) && ((r[1] >> 31) & 1);
}
#elif defined(FL_X86_64) && (defined(__GNUC__) || defined(__clang__))
static int fl_cpu_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int fl_cpu_avx512(void)
{
    __builtin_cpu_init();
    return fl_cpu_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#endif

static int fl_table_supported(const fl_table *t)
{
    if (strcmp(t->name, "baseline") == 0)
        return 1;
#if defined(FL_X86_64) && (defined(_MSC_VER) || defined(__GNUC__) || defined(__clang__))
    if (strcmp(t->name, "avx2") == 0)
        return fl_cpu_avx2();
    if (strcmp(t->name, "avx512") == 0)
        return fl_cpu_avx512();
#endif
    return 0;
}

/* The selected table.  Read by every kernel call and written by
 * fl_target_set, possibly from different threads (free-threaded Python), so
 * both go through atomic loads and stores. */
static const fl_table *fl_active = NULL;

/* Index of the best table this CPU runs.  Computed from the CPU alone, so
 * concurrent first calls compute the same value; cached atomically. */
static int fl_best_cache = -1;

static int fl_best_index(void)
{
    int i, b = FL_ATOMIC_LOAD_INT(fl_best_cache);
    if (b >= 0)
        return b;
    b = 0;
    for (i = FL_N_TABLES - 1; i > 0; --i)
        if (fl_table_supported(fl_tables[i])) {
            b = i;
            break;
        }
    FL_ATOMIC_STORE_INT(fl_best_cache, b);
    return b;
}

static const fl_table *fl_best(void) { return fl_tables[fl_best_index()]; }

/* First use selects the best target; a race between two first calls stores
 * the same table twice.  The Python module selects at import. */
static const fl_table *fl_get(void)
{
    const fl_table *t = FL_ATOMIC_LOAD_PTR(const fl_table *, fl_active);
    if (!t) {
        t = fl_best();
        FL_ATOMIC_STORE_PTR(fl_active, t);
    }
    return t;
}

int fl_target_set(const char *name)
{
    int i;
    if (name == NULL || strcmp(name, "best") == 0 || name[0] == '\0') {
        FL_ATOMIC_STORE_PTR(fl_active, fl_best());
        return 0;
    }
    for (i = 0; i < FL_N_TABLES; ++i) {
        if (strcmp(fl_tables[i]->name, name) == 0) {
            if (i > fl_best_index())
                return -2;
            FL_ATOMIC_STORE_PTR(fl_active, fl_tables[i]);
            return 0;
        }
    }
    return -1;
}

const char *fl_target_selected(void) { return fl_get()->name; }

/* The lists are constant strings, so no caller ever shares a buffer. */
static const char *const fl_target_lists[] = {
    "baseline",
#ifdef FL_HAVE_AVX2
    "baseline avx2",
#endif
#ifdef FL_HAVE_AVX512
#ifdef FL_HAVE_AVX2
    "baseline avx2 avx512",
#else
    "baseline avx512",
#endif
#endif
};

const char *fl_target_compiled(void) { return fl_target_lists[FL_N_TABLES - 1]; }

/* Every target up to the best supported one: each x86-64 level implies the
 * ones below it (the AVX-512 check includes AVX2 + FMA). */
const char *fl_target_supported(void) { return fl_target_lists[fl_best_index()]; }

/* ---- the public entry points ------------------------------------------- */

int fl_run(int id, int f32, const fl_args *args, fl_result *result)
{
    if (id < 0 || id >= FL_N_LOSSES) {
        memset(result, 0, sizeof *result);
        result->bad_pos = -1;
        return FL_E_UNKNOWN;
    }
    return fl_get()->k[id][f32 != 0](args, result);
}

#define FL_NAME_STRING(arg, name) #name,
static const char *const fl_loss_names[] = { FL_LOSSES(FL_NAME_STRING, ~) };

const char *fl_loss_name(int id) { return id >= 0 && id < FL_N_LOSSES ? fl_loss_names[id] : NULL; }

#define FL_FORWARD(S, name)                                                                        \
    int fl_##name##_##S(const fl_args *args, fl_result *result)                                    \
    {                                                                                              \
        return fl_run(FL_ID_##name, FL_IS_##S, args, result);                                      \
    }
#define FL_IS_f32 1
#define FL_IS_f64 0
FL_LOSSES(FL_FORWARD, f32)
FL_LOSSES(FL_FORWARD, f64)
