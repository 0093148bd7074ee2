/* Work partition, the threads that run it, and build information.
 *
 * Threading design
 * ----------------
 * fl_run_segments starts its helper threads on each call and joins them before
 * returning; there is no pool and no global state.  Reasons:
 *   - concurrent callers (several Python threads with the GIL released, each
 *     with its own n_threads) share nothing, so they cannot block or deadlock
 *     each other, and no lock outlives a call;
 *   - fork() is harmless: no thread or lock exists between calls, so a child
 *     made by multiprocessing (fork start method) has nothing stale to inherit;
 *   - nothing to initialise, tear down or leak at interpreter exit.
 * The price is one thread create + join per helper (tens of microseconds),
 * which FL_PARALLEL_MIN_ELEMS / FL_ELEMS_PER_THREAD keep small against the
 * work each helper gets (see the measurements next to those macros).
 *
 * Determinism: each segment's sum goes to results[segment], whichever thread
 * computed it, and the calling thread adds results[] in segment order after
 * every helper is joined.  The serial path stores and adds the same way, so
 * the return value is bitwise the same for every n_threads.
 *
 * Scheduling: the calling thread and its helpers take segments one at a time
 * from a shared counter until none are left, so a slow or late thread (the
 * caller starts its own work only after creating the helpers) just takes
 * fewer segments.  This also covers thread creation failure: the threads that
 * did start, at least the caller, take every remaining segment.
 *
 * Platforms: POSIX threads everywhere but Windows (link with -pthread where
 * the C library needs it); on Windows _beginthreadex, the C runtime's wrapper
 * of CreateThread, so the CRT's per-thread state (errno, set by the math
 * functions) is set up and freed properly, plus an Interlocked counter.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "runtime.h"
#include "fl_atomic.h"

#include <fenv.h>
#include <math.h>
#include <time.h>
#include <string.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <process.h>
#else
#include <pthread.h>
#endif

/* Below this many elements a segment is not worth splitting further.  This
 * fixes the partition, so changing it changes the low bits of loss sums. */
#define FL_SEGMENT_ELEMS ((fl_index)16384)

/* Work (n_units * unit_cost elements) below which everything runs on the
 * calling thread, and the least work per thread above it: a call with work W
 * uses at most max(2, W / FL_ELEMS_PER_THREAD) threads, the caller included.
 * Both can be overridden with -D for tuning.
 *
 * Chosen from bench/threads_timing.c on a shared 2-vCPU x86-64 VM (Linux,
 * glibc, AVX-512 kernels; timings noisy).  Starting and joining a thread costs
 * about 9 us when the other vCPU is busy but 70-80 us when it is idle (waking
 * an idle vCPU), and the time per element differs a lot between kernels:
 * Huber f32 about 0.3 ns (cache resident), CE with C = 1000 about 0.6 ns,
 * BCE 2 ns, CE with C = 10 3 ns.  Two threads at 128K elements: CE C=10 and
 * BCE 1.2-1.4x, but Huber 0.7x and CE C=1000 0.8x (45-95 us of work alone).
 * At 256K: CE C=10 1.3-1.6x, BCE 1.2-1.4x, CE C=1000 0.8-1.2x, Huber
 * 0.75-0.9x; from 1M up 1.5-2x in quiet runs.  So 256K keeps the worst case
 * (the cheapest kernel on a VM with idle CPUs) to a few tens of microseconds
 * while the transcendental kernels already gain; where a thread costs 10-20 us
 * (bare metal) the cheap kernels should break even or gain there too. */
#ifndef FL_PARALLEL_MIN_ELEMS
#define FL_PARALLEL_MIN_ELEMS ((fl_index)1 << 18)
#endif
#ifndef FL_ELEMS_PER_THREAD
#define FL_ELEMS_PER_THREAD ((fl_index)1 << 17)
#endif

/* Segment s of n_seg even pieces of [0, n): [s*n/n_seg, (s+1)*n/n_seg), computed
 * without overflowing for n up to PTRDIFF_MAX. */
static void fl_segment_bounds(fl_index n, fl_index n_seg, fl_index s, fl_index *begin,
                              fl_index *end)
{
    const fl_index q = n / n_seg, r = n % n_seg;
    *begin = s * q + (s < r ? s : r);
    *end = *begin + q + (s < r ? 1 : 0);
}

/* ---- interruption ------------------------------------------------------
 *
 * A long call must answer Ctrl-C.  The host (the Python module) registers a
 * hook; the thread that called fl_run_segments calls it between pieces of
 * work, at most every FL_POLL_SECONDS, and a non-zero answer stops the call:
 * no new piece starts on any thread, and fl_run_segments returns 1 (acc[0] NaN).  What
 * the pieces already wrote stays written.  Pieces are sub-ranges of a segment
 * of at most FL_PIECE_ELEMS elements; a segment's sum is the sum of its
 * pieces' sums in order, so the result is still the same for every thread
 * count. */
#define FL_PIECE_ELEMS ((fl_index)1 << 20)
#define FL_POLL_SECONDS 0.05

/* The hook: the pointer itself is the atomic object, so a reader always sees
 * a whole old or new value, however often it is set.  It is kept as a data
 * pointer (copied with memcpy), which has the function pointer's size and
 * representation on every platform this builds for (POSIX requires it, and
 * Windows has it). */
static void *volatile fl_hook_ptr = NULL;

void fl_set_interrupt_hook(fl_interrupt_fn fn)
{
    void *p;
    memcpy(&p, &fn, sizeof p);
    FL_ATOMIC_STORE_PTR(fl_hook_ptr, p);
}

static fl_interrupt_fn fl_hook_get(void)
{
    void *p = FL_ATOMIC_LOAD_PTR(void *, fl_hook_ptr);
    fl_interrupt_fn fn;
    memcpy(&fn, &p, sizeof fn);
    return fn;
}

static double fl_now(void)
{
#ifdef _WIN32
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

/* State of one call's interruption polling, owned by the calling thread. */
typedef struct {
    fl_interrupt_fn hook;
    double next_poll;
} fl_poll;

/* next_poll < 0: not started.  The clock is first read at the first chance
 * to poll (after a piece of work), so a call of one piece, every small call,
 * never reads it. */
static void fl_poll_init(fl_poll *p)
{
    p->hook = fl_hook_get();
    p->next_poll = -1.0;
}

/* Non-zero when the host asks the call to stop. */
static int fl_poll_stop(fl_poll *p)
{
    if (!p->hook)
        return 0;
    const double now = fl_now();
    if (p->next_poll < 0)
        p->next_poll = now + FL_POLL_SECONDS;
    if (now < p->next_poll)
        return 0;
    p->next_poll = now + FL_POLL_SECONDS;
    return p->hook() != 0;
}

/* Everything the threads of one call share; it lives on the caller's stack. */
typedef struct {
    fl_segment_fn fn;
    void *ctx;
    fl_index n_units;
    fl_index n_seg;
    fl_index piece; /* units per piece */
    int parallel;   /* helpers run: the lock (or Interlocked state) is live */
    double (*results)[FL_NACC];
    fenv_t fenv; /* the caller's floating-point environment, for the helpers */
#ifdef _WIN32
    volatile LONG next;
    volatile LONG stop;
#else
    pthread_mutex_t lock;
    fl_index next;
    int stop;
#endif
} fl_job;

/* Index of the next segment to compute, n_seg once all are taken (or the
 * call was stopped). */
static fl_index fl_claim(fl_job *job)
{
    fl_index s;
#ifdef _WIN32
    s = (fl_index)InterlockedIncrement(&job->next) - 1;
    if (InterlockedCompareExchange(&job->stop, 0, 0))
        s = job->n_seg;
#else
    pthread_mutex_lock(&job->lock);
    s = job->stop ? job->n_seg : job->next;
    if (s < job->n_seg)
        job->next = s + 1;
    pthread_mutex_unlock(&job->lock);
#endif
    return s < job->n_seg ? s : job->n_seg;
}

static int fl_stopped(fl_job *job)
{
    if (!job->parallel)
        return 0;
#ifdef _WIN32
    return InterlockedCompareExchange(&job->stop, 0, 0) != 0;
#else
    int s;
    pthread_mutex_lock(&job->lock);
    s = job->stop;
    pthread_mutex_unlock(&job->lock);
    return s;
#endif
}

static void fl_set_stop(fl_job *job)
{
    if (!job->parallel)
        return;
#ifdef _WIN32
    InterlockedExchange(&job->stop, 1);
#else
    pthread_mutex_lock(&job->lock);
    job->stop = 1;
    pthread_mutex_unlock(&job->lock);
#endif
}

/* Runs segment s piece by piece; poll is non-NULL on the calling thread only.
 * Returns 0, or 1 when the call was stopped. */
static int fl_run_one(fl_job *job, fl_index s, fl_poll *poll)
{
    fl_index begin, end, b;
    double sum[FL_NACC] = { 0.0 };
    int k;
    fl_segment_bounds(job->n_units, job->n_seg, s, &begin, &end);
    for (b = begin; b < end; b += job->piece) {
        const fl_index e = end - b > job->piece ? b + job->piece : end;
        if (b > begin) {
            if (poll && fl_poll_stop(poll)) {
                fl_set_stop(job);
                return 1;
            }
            if (!poll && fl_stopped(job))
                return 1;
        }
        {
            /* each piece sums from zero; pieces are added in order */
            double piece[FL_NACC] = { 0.0 };
            job->fn(job->ctx, b, e, (int)s, piece);
            for (k = 0; k < FL_NACC; ++k)
                sum[k] += piece[k];
        }
    }
    for (k = 0; k < FL_NACC; ++k)
        job->results[s][k] = sum[k];
    return 0;
}

static void fl_work(fl_job *job, fl_poll *poll)
{
    for (;;) {
        fl_index s = fl_claim(job);
        if (s >= job->n_seg)
            return;
        if (fl_run_one(job, s, poll))
            return;
        if (poll && fl_poll_stop(poll)) {
            fl_set_stop(job);
            return;
        }
    }
}

#ifdef _WIN32
static unsigned __stdcall fl_worker(void *arg)
{
    fesetenv(&((fl_job *)arg)->fenv);
    fl_work((fl_job *)arg, NULL);
    return 0;
}
#else
static void *fl_worker(void *arg)
{
    fesetenv(&((fl_job *)arg)->fenv);
    fl_work((fl_job *)arg, NULL);
    return NULL;
}
#endif

/* Runs every segment of job on the calling thread plus up to n_helpers helper
 * threads; returns once all segments are done (or the call was stopped:
 * then 1). */
static int fl_run_parallel(fl_job *job, int n_helpers, fl_poll *poll)
{
    int started = 0, i, stopped;
#ifdef _WIN32
    HANDLE helpers[FL_MAX_SEGMENTS];
    job->next = 0;
    job->stop = 0;
    job->parallel = 1;
    fegetenv(&job->fenv);
    for (i = 0; i < n_helpers; ++i) {
        uintptr_t h = _beginthreadex(NULL, 0, fl_worker, job, 0, NULL);
        if (h == 0)
            break; /* out of threads: the ones running take the rest */
        helpers[started++] = (HANDLE)h;
    }
    fl_work(job, poll);
    for (i = 0; i < started; ++i) {
        WaitForSingleObject(helpers[i], INFINITE);
        CloseHandle(helpers[i]);
    }
    stopped = job->stop != 0;
#else
    pthread_t helpers[FL_MAX_SEGMENTS];
    job->next = 0;
    job->stop = 0;
    fegetenv(&job->fenv);
    if (pthread_mutex_init(&job->lock, NULL) != 0) {
        /* Cannot share the counter: run everything here, in order (job->parallel
         * stays 0, so nothing touches the lock). */
        fl_index s;
        for (s = 0; s < job->n_seg; ++s)
            if (fl_run_one(job, s, poll) || (poll && fl_poll_stop(poll)))
                return 1;
        return 0;
    }
    job->parallel = 1;
    for (i = 0; i < n_helpers; ++i) {
        if (pthread_create(&helpers[started], NULL, fl_worker, job) != 0)
            break; /* out of threads: the ones running take the rest */
        ++started;
    }
    fl_work(job, poll);
    for (i = 0; i < started; ++i)
        pthread_join(helpers[i], NULL);
    stopped = job->stop;
    pthread_mutex_destroy(&job->lock);
#endif
    return stopped;
}

/* How many threads (caller included) a call should use. */
static fl_index fl_thread_count(fl_index n_units, fl_index unit_cost, fl_index n_seg, int n_threads)
{
    fl_index work, by_work, n;
    if (n_threads <= 1 || n_seg <= 1)
        return 1;
    work = n_units > PTRDIFF_MAX / unit_cost ? PTRDIFF_MAX : n_units * unit_cost;
    if (work < FL_PARALLEL_MIN_ELEMS)
        return 1;
    by_work = work / FL_ELEMS_PER_THREAD;
    n = by_work < 2 ? 2 : by_work;
    if (n > (fl_index)n_threads)
        n = (fl_index)n_threads;
    if (n > n_seg)
        n = n_seg;
    return n;
}

int fl_run_segments(fl_segment_fn fn, void *ctx, fl_index n_units, fl_index unit_cost,
                    int n_threads, double *acc)
{
    double results[FL_MAX_SEGMENTS][FL_NACC];
    fl_index n_seg, s, n_use;
    int k;
    for (k = 0; k < FL_NACC; ++k)
        acc[k] = 0.0;
    if (n_units <= 0)
        return 0;
    if (unit_cost < 1)
        unit_cost = 1;
    /* The partition: depends on n_units and unit_cost only.  The guard keeps
     * n_units * unit_cost from overflowing on huge shapes. */
    if (n_units > FL_MAX_SEGMENTS * FL_SEGMENT_ELEMS / unit_cost)
        n_seg = FL_MAX_SEGMENTS;
    else
        n_seg = (n_units * unit_cost) / FL_SEGMENT_ELEMS;
    if (n_seg < 1)
        n_seg = 1;
    if (n_seg > n_units)
        n_seg = n_units;

    n_use = fl_thread_count(n_units, unit_cost, n_seg, n_threads);
    fl_job job;
    fl_poll poll;
    job.fn = fn;
    job.ctx = ctx;
    job.n_units = n_units;
    job.n_seg = n_seg;
    job.piece = FL_PIECE_ELEMS / unit_cost > 0 ? FL_PIECE_ELEMS / unit_cost : 1;
    job.results = results;
    job.parallel = 0;
    fl_poll_init(&poll);
    if (n_use <= 1) {
        for (s = 0; s < n_seg; ++s)
            if (fl_run_one(&job, s, &poll) || (s + 1 < n_seg && fl_poll_stop(&poll))) {
                acc[0] = NAN;
                return 1;
            }
    } else if (fl_run_parallel(&job, (int)(n_use - 1), &poll)) {
        acc[0] = NAN;
        return 1;
    }
    /* Same additions in the same order whichever path ran the segments. */
    for (s = 0; s < n_seg; ++s)
        for (k = 0; k < FL_NACC; ++k)
            acc[k] += results[s][k];
    return 0;
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
