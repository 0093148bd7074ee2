/* Work partition and build information. */
#include "runtime.h"

/* Below this many elements a segment is not worth splitting further. */
#define FL_SEGMENT_ELEMS ((fl_index)16384)

double fl_run_segments(fl_segment_fn fn, void *ctx, fl_index n_units, fl_index unit_cost,
                       int n_threads)
{
    fl_index n_seg, s;
    double total = 0.0;
    (void)n_threads; /* segments run on the calling thread for now */
    if (n_units <= 0)
        return 0.0;
    if (unit_cost < 1)
        unit_cost = 1;
    /* Guard the multiplication against overflow on huge shapes. */
    if (n_units > FL_MAX_SEGMENTS * FL_SEGMENT_ELEMS / unit_cost)
        n_seg = FL_MAX_SEGMENTS;
    else
        n_seg = (n_units * unit_cost) / FL_SEGMENT_ELEMS;
    if (n_seg < 1)
        n_seg = 1;
    if (n_seg > n_units)
        n_seg = n_units;
    for (s = 0; s < n_seg; ++s) {
        /* Even split: segment s covers [s*n/n_seg, (s+1)*n/n_seg), computed
         * without overflowing for n up to PTRDIFF_MAX. */
        fl_index q = n_units / n_seg, r = n_units % n_seg;
        fl_index begin = s * q + (s < r ? s : r);
        fl_index end = begin + q + (s < r ? 1 : 0);
        total += fn(ctx, begin, end);
    }
    return total;
}

#define FL_STR_(x) #x
#define FL_STR(x) FL_STR_(x)

const char *fl_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc " FL_STR(_MSC_FULL_VER);
#else
    return "unknown C compiler";
#endif
}

const char *fl_simd_compiled(void) { return "baseline"; }
const char *fl_simd_selected(void) { return "baseline"; }
