/* Internal runtime shared by the kernels: the fixed work partition that makes
 * loss sums independent of the thread count. Not part of the public C API. */
#ifndef FL_RUNTIME_H
#define FL_RUNTIME_H

#include "fusedloss.h"

/* Sums fn(ctx, begin, end, seg, acc) over a partition of [0, n_units) into at most
 * FL_MAX_SEGMENTS contiguous segments.  The partition depends only on n_units
 * and unit_cost (elements per unit), and the segment sums are added in
 * segment order, so the result is the same for every n_threads.
 *
 * Large calls run the segments on up to n_threads threads, the calling thread
 * included (small ones stay on the caller), so fn must be safe to call at the
 * same time on distinct segments.  Safe to call from several threads at once;
 * keeps no state between calls; never fails (if threads cannot be created the
 * caller runs the remaining segments itself).  POSIX builds need -pthread. */
#define FL_MAX_SEGMENTS 64
/* fn gets the segment's index (0 <= seg < FL_MAX_SEGMENTS) so it can keep
 * per-segment state; a segment may be run as several consecutive calls (its
 * pieces), all on one thread, in order.  A call stopped by the interrupt hook
 * (fl_set_interrupt_hook) makes it return 1. */
/* fn adds its results into acc[0 .. FL_NACC), which is zeroed before each
 * call; fl_run_segments adds them per segment, then the segments' vectors in
 * segment order, into acc.  Returns 0, or 1 when the interrupt hook stopped
 * the call (acc[0] is then NaN). */
typedef void (*fl_segment_fn)(void *ctx, fl_index begin, fl_index end, int seg, double *acc);
int fl_run_segments(fl_segment_fn fn, void *ctx, fl_index n_units, fl_index unit_cost,
                    int n_threads, double *acc);

#endif
