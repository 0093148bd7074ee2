/* Every kernel of losses.def through fl_run, the one calling convention:
 * for each kernel (by name: its layout below), each precision and a few
 * sizes (some large enough for several segments and helper threads),
 *
 *   - n_threads = 1 and 4 agree bitwise (sums, losses, every gradient);
 *   - the loss-only call gives bitwise the fused call's sum;
 *   - each gradient computed in place (grad[k] == input[k]) is bitwise the
 *     separate one;
 *   - inputs are not modified; every buffer is malloc'ed at its exact size
 *     (the sanitizer builds see any access beyond);
 *   - the domain checks (probabilities, labels) answer FL_E_DOMAIN with the
 *     first bad position and write nothing;
 *   - a kernel this driver has no layout for fails the run (a new kernel must
 *     be added here).
 *
 * Usage: test_family [quick]
 */
#define FL_TEST_SEED 0x5eed5eedULL
#include "fusedloss.h"
#include "family_layouts.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static long n_checks = 0, n_failed = 0;

static void check(int ok, const char *what, const char *name, int f32, fl_index rows, fl_index F)
{
    ++n_checks;
    if (!ok) {
        ++n_failed;
        printf("FAIL %s: %s %s rows=%ld F=%ld\n", what, name, f32 ? "f32" : "f64", (long)rows,
               (long)F);
    }
}

typedef struct {
    fl_index rows, F, n; /* n: elements of each input */
    size_t esz;
    void *in[3], *tgt;
    int64_t *idx;
    size_t tgt_bytes;
} data_t;

static void put(void *a, int f32, fl_index i, double v)
{
    if (f32)
        ((float *)a)[i] = (float)v;
    else
        ((double *)a)[i] = v;
}

static void make_data(const kspec *s, int f32, fl_index rows, fl_index F, data_t *d)
{
    memset(d, 0, sizeof *d);
    d->rows = rows;
    d->F = F;
    d->n = rows * F;
    d->esz = f32 ? 4 : 8;
    for (int k = 0; k < s->n_inputs; ++k) {
        d->in[k] = xmalloc((size_t)d->n * d->esz);
        for (fl_index i = 0; i < d->n; ++i)
            put(d->in[k], f32, i, urand(4.0));
    }
    if (s->layout == L_SAMPLE || s->layout == L_ELEM) {
        /* dice's target is its second input */
        void *t = xmalloc((size_t)d->n * d->esz);
        for (fl_index i = 0; i < d->n; ++i) {
            double v = s->target_unit ? 0.5 + urand(0.5) : urand(4.0);
            if (s->domain == 2)
                v = urand(1.0) > 0 ? 1.0 : -1.0;
            if (!strcmp(s->name, "heatmap_focal") && i % 7 == 0)
                v = 1.0;
            put(t, f32, i, v);
        }
        if (s->domain == 1 || !strcmp(s->name, "kl_div"))
            for (fl_index i = 0; i < d->n; ++i) /* probabilities, log-probabilities */
                put(d->in[0], f32, i,
                    !strcmp(s->name, "kl_div") ? -1.0 - (urand(1.0) + 1.0) : 0.5 + urand(0.5));
        if (s->layout == L_SAMPLE)
            d->in[1] = t;
        else
            d->tgt = t;
        d->tgt_bytes = (size_t)d->n * d->esz;
    } else if (s->layout == L_CLASS) {
        d->idx = (int64_t *)xmalloc((size_t)rows * 8);
        for (fl_index r = 0; r < rows; ++r)
            d->idx[r] = (int64_t)((urand(1.0) + 1.0) / 2.0 * (double)F) % F;
        if (!strcmp(s->name, "ce_index") || !strcmp(s->name, "nll"))
            for (fl_index r = 3; r < rows; r += 5)
                d->idx[r] = -100; /* ignored */
    } else if (s->layout == L_PROB_ROWS) {
        d->tgt = xmalloc((size_t)d->n * d->esz);
        for (fl_index i = 0; i < d->n; ++i)
            put(d->tgt, f32, i, 1.0 / (double)F);
        d->tgt_bytes = (size_t)d->n * d->esz;
    } else if (s->layout == L_PAIR_ELEM) {
        d->tgt = xmalloc((size_t)d->n * d->esz);
        for (fl_index i = 0; i < d->n; ++i)
            put(d->tgt, f32, i, urand(1.0) > 0 ? 1.0 : -1.0);
        d->tgt_bytes = (size_t)d->n * d->esz;
    } else if (s->layout == L_ROWS2T) {
        d->tgt = xmalloc((size_t)rows * d->esz);
        for (fl_index r = 0; r < rows; ++r)
            put(d->tgt, f32, r, r % 2);
        d->tgt_bytes = (size_t)rows * d->esz;
    }
}

static void free_data(data_t *d)
{
    for (int k = 0; k < 3; ++k)
        free(d->in[k]);
    free(d->tgt);
    free(d->idx);
}

/* The arguments of one call (outputs set by the caller). */
static fl_args make_args(const kspec *s, const data_t *d, int n_threads)
{
    return fl_family_args(s, d->in, d->idx ? (const void *)d->idx : d->tgt, d->rows, d->F,
                          n_threads);
}

typedef struct {
    fl_result res;
    int status;
    void *loss, *grad[3];
} out_t;

static void run(const kspec *s, int id, int f32, const data_t *d, int n_threads, int with_grad,
                out_t *o)
{
    const fl_index n_loss = fl_family_per_element(s) ? d->n : d->rows;
    fl_args a = make_args(s, d, n_threads);
    memset(o, 0, sizeof *o);
    o->loss = xmalloc((size_t)n_loss * d->esz);
    a.loss_out = o->loss;
    for (int k = 0; k < s->n_inputs && with_grad; ++k) {
        o->grad[k] = xmalloc((size_t)d->n * d->esz);
        a.grad[k] = o->grad[k];
    }
    o->status = fl_run(id, f32, &a, &o->res);
}

static void free_out(out_t *o)
{
    free(o->loss);
    for (int k = 0; k < 3; ++k)
        free(o->grad[k]);
}

static int same_bits(const void *a, const void *b, size_t bytes)
{
    return memcmp(a, b, bytes) == 0;
}

static void one_case(const kspec *s, int id, int f32, fl_index rows, fl_index F)
{
    data_t d;
    out_t o1, o4, lo;
    make_data(s, f32, rows, F, &d);
    const fl_index n_loss = fl_family_per_element(s) ? d.n : d.rows;
    const size_t gbytes = (size_t)d.n * d.esz;
    /* inputs kept to check they are not modified */
    void *copy[3] = { NULL, NULL, NULL };
    for (int k = 0; k < 3; ++k)
        if (d.in[k]) {
            copy[k] = xmalloc(gbytes);
            memcpy(copy[k], d.in[k], gbytes);
        }
    run(s, id, f32, &d, 1, 1, &o1);
    run(s, id, f32, &d, 4, 1, &o4);
    run(s, id, f32, &d, 4, 0, &lo);
    check(o1.status == FL_OK && o4.status == FL_OK && lo.status == FL_OK, "status", s->name, f32,
          rows, F);
    check(same_bits(&o1.res.acc[0], &o4.res.acc[0], 8) &&
              same_bits(o1.loss, o4.loss, (size_t)n_loss * d.esz),
          "threads: sums and losses", s->name, f32, rows, F);
    for (int k = 0; k < s->n_inputs; ++k)
        check(same_bits(o1.grad[k], o4.grad[k], gbytes), "threads: gradient", s->name, f32, rows,
              F);
    check(same_bits(&o1.res.acc[0], &lo.res.acc[0], 8), "loss-only sum", s->name, f32, rows, F);
    for (int k = 0; k < 3; ++k)
        if (copy[k])
            check(same_bits(copy[k], d.in[k], gbytes), "input unmodified", s->name, f32, rows, F);
    /* each gradient in place: over a copy of its input */
    for (int k = 0; k < s->n_inputs; ++k) {
        fl_args a = make_args(s, &d, 2);
        fl_result res;
        void *inplace = xmalloc(gbytes);
        memcpy(inplace, d.in[k], gbytes);
        a.input[k] = inplace;
        a.grad[k] = inplace;
        const int st = fl_run(id, f32, &a, &res);
        check(st == FL_OK && same_bits(inplace, o1.grad[k], gbytes), "in place", s->name, f32, rows,
              F);
        free(inplace);
    }
    /* domain: one value outside, at a known position: FL_E_DOMAIN, nothing written */
    if (s->domain && d.n > 2) {
        const fl_index pos = d.n / 2 + 1;
        void *arr = s->domain == 1 ? d.in[0] : d.tgt;
        put(arr, f32, pos, s->domain == 1 ? 1.5 : 0.0);
        fl_args a = make_args(s, &d, 4);
        fl_result res;
        void *g = xmalloc(gbytes);
        memset(g, 0x7f, gbytes);
        void *sentinel = xmalloc(gbytes);
        memset(sentinel, 0x7f, gbytes);
        a.grad[0] = g;
        const int st = fl_run(id, f32, &a, &res);
        check(st == FL_E_DOMAIN && res.bad_pos == pos &&
                  res.bad_value == (s->domain == 1 ? 0 : 1) && same_bits(g, sentinel, gbytes),
              "domain error", s->name, f32, rows, F);
        free(g);
        free(sentinel);
    }
    for (int k = 0; k < 3; ++k)
        free(copy[k]);
    free_out(&o1);
    free_out(&o4);
    free_out(&lo);
    free_data(&d);
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "quick");
    const fl_index sizes[][2] = { { 1, 1 },    { 3, 7 },    { 17, 5 },
                                  { 64, 130 }, { 4099, 9 }, { 300, 1000 } };
    const int n_sizes = quick ? 4 : 6;
    const char *forced = getenv("FL_FORCE_TARGET");
    if (forced && fl_target_set(forced) != 0) {
        printf("target %s not supported here: skipped\n", forced);
        return 0;
    }
    printf("family: target %s\n", fl_target_selected());
    for (int id = 0; id < FL_N_LOSSES; ++id) {
        const char *name = fl_loss_name(id);
        const kspec *s = fl_family_find(name);
        if (!s) {
            printf("FAIL: no layout for kernel %s in test_family.c\n", name);
            ++n_failed;
            continue;
        }
        for (int f32 = 0; f32 < 2; ++f32)
            for (int z = 0; z < n_sizes; ++z)
                one_case(s, id, f32, sizes[z][0], sizes[z][1]);
    }
    printf("%ld passed, %ld failed\n", n_checks - n_failed, n_failed);
    return n_failed ? 1 : 0;
}
