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

/* ---- a class axis in the middle ------------------------------------------
 * Every class-axis kernel on a C-contiguous (outer, C, P) layout (class_stride
 * P) against the same kernel on its class-last transpose (outer, P, C): the
 * losses (row r = o P + i in both), their sum and the gradient / hessian
 * transposed back agree bitwise (both layouts take the same path: the
 * few-class tile up to 32 classes, the row path beyond).  Also: threads 1 and
 * 4 bitwise, in place bitwise, the input unmodified, ignored rows zero. */

static double get(const void *a, int f32, fl_index i)
{
    return f32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

/* (outer, C, P) index of row r = o P + i, class j; and the class-last one. */
static fl_index mid_at(fl_index r, fl_index j, fl_index C, fl_index P)
{
    return (r / P) * C * P + j * P + r % P;
}

static void strided_case(const kspec *s, int id, int f32, fl_index outer, fl_index C, fl_index P,
                         int with_hess)
{
    const fl_index rows = outer * P, n = rows * C;
    const size_t esz = f32 ? 4 : 8, bytes = (size_t)n * esz;
    const int probs = s->layout == L_PROB_ROWS;
    const int ignore = !strcmp(s->name, "ce_index") || !strcmp(s->name, "nll") ||
                       !strcmp(s->name, "softmax_focal");
    void *xm = xmalloc(bytes), *xl = xmalloc(bytes), *xcopy = xmalloc(bytes);
    void *tm = probs ? xmalloc(bytes) : NULL, *tl = probs ? xmalloc(bytes) : NULL;
    int64_t *idx = probs ? NULL : (int64_t *)xmalloc((size_t)rows * 8);
    for (fl_index r = 0; r < rows; ++r) {
        for (fl_index j = 0; j < C; ++j) {
            const double v = urand(6.0), y = (urand(1.0) + 1.0) / (2.0 * (double)C);
            put(xm, f32, mid_at(r, j, C, P), v);
            put(xl, f32, r * C + j, v);
            if (probs) {
                put(tm, f32, mid_at(r, j, C, P), y);
                put(tl, f32, r * C + j, y);
            }
        }
        if (idx)
            idx[r] = ignore && r % 7 == 3 ? -100 : (int64_t)(r * 5 + r / 3) % C;
    }
    memcpy(xcopy, xm, bytes);
    void *lm = xmalloc((size_t)rows * esz), *ll = xmalloc((size_t)rows * esz);
    void *l4 = xmalloc((size_t)rows * esz);
    void *gm = xmalloc(bytes), *gl = xmalloc(bytes), *g4 = xmalloc(bytes), *gi = xmalloc(bytes);
    void *hm = with_hess ? xmalloc(bytes) : NULL, *hl = with_hess ? xmalloc(bytes) : NULL;
    void *h4 = with_hess ? xmalloc(bytes) : NULL;
    fl_args a;
    memset(&a, 0, sizeof a);
    a.n = rows;
    a.n_classes = C;
    a.ignore_index = -100;
    memcpy(a.param, s->param, sizeof a.param);
    a.grad_scale = 1.0;
    a.reduction = FL_REDUCE_MEAN;
    a.n_threads = 1;
    fl_args al = a, a4 = a, ai = a;
    a.class_stride = P;
    a.input[0] = xm;
    a.target = probs ? tm : (const void *)idx;
    a.loss_out = lm;
    a.grad[0] = gm;
    a.hess = hm;
    al.class_stride = 1;
    al.input[0] = xl;
    al.target = probs ? tl : (const void *)idx;
    al.loss_out = ll;
    al.grad[0] = gl;
    al.hess = hl;
    a4 = a;
    a4.n_threads = 4;
    a4.loss_out = l4;
    a4.grad[0] = g4;
    a4.hess = h4;
    memcpy(gi, xm, bytes);
    ai = a;
    ai.input[0] = gi;
    ai.grad[0] = gi;
    ai.loss_out = NULL;
    ai.hess = NULL;
    fl_result rm, rl, r4, ri;
    const int sm = fl_run(id, f32, &a, &rm), sl = fl_run(id, f32, &al, &rl);
    const int s4 = fl_run(id, f32, &a4, &r4), si = fl_run(id, f32, &ai, &ri);
    check(sm == FL_OK && sl == FL_OK && s4 == FL_OK && si == FL_OK, "strided: status", s->name, f32,
          rows, C);
    int ok_loss = 1, ok_grad = 1, ok_hess = 1, ok_zero = 1;
    for (fl_index r = 0; r < rows; ++r) {
        const double u = get(lm, f32, r), v = get(ll, f32, r);
        ok_loss &= same_bits(&u, &v, 8);
        for (fl_index j = 0; j < C; ++j) {
            const fl_index im = mid_at(r, j, C, P), il = r * C + j;
            const double g1 = get(gm, f32, im), g2 = get(gl, f32, il);
            ok_grad &= same_bits(&g1, &g2, 8);
            if (with_hess) {
                const double h1 = get(hm, f32, im), h2 = get(hl, f32, il);
                ok_hess &= same_bits(&h1, &h2, 8);
            }
            if (idx && idx[r] == -100)
                ok_zero &= g1 == 0 && (!with_hess || get(hm, f32, im) == 0);
        }
    }
    check(ok_loss && same_bits(&rm.acc[0], &rl.acc[0], 8), "strided: losses as class-last", s->name,
          f32, rows, C);
    check(ok_grad, "strided: gradient as class-last", s->name, f32, rows, C);
    check(ok_hess, "strided: hessian as class-last", s->name, f32, rows, C);
    check(ok_zero, "strided: ignored rows zero", s->name, f32, rows, C);
    check(same_bits(&rm.acc[0], &r4.acc[0], 8) && same_bits(lm, l4, (size_t)rows * esz) &&
              same_bits(gm, g4, bytes) && (!with_hess || same_bits(hm, h4, bytes)),
          "strided: threads 1 and 4", s->name, f32, rows, C);
    check(same_bits(gi, gm, bytes) && same_bits(&ri.acc[0], &rm.acc[0], 8), "strided: in place",
          s->name, f32, rows, C);
    check(same_bits(xcopy, xm, bytes), "strided: input unmodified", s->name, f32, rows, C);
    void *bufs[] = { xm, xl, xcopy, tm, tl, idx, lm, ll, l4, gm, gl, g4, gi, hm, hl, h4 };
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; ++k)
        free(bufs[k]);
}

static void strided_cases(int quick)
{
    /* (outer, C, P): tiles within one outer index and across them, P below a
     * tile, the tile's 17..32 classes, the row path (on the stack and, with
     * 3000 classes, from the heap), sizes with several segments */
    static const fl_index shapes[][3] = { { 2, 5, 40 },   { 3, 21, 64 },   { 1, 9, 3 },
                                          { 4, 2, 16 },   { 2, 40, 17 },   { 1, 32, 33 },
                                          { 2, 3000, 5 }, { 4, 10, 5000 }, { 3, 100, 700 } };
    const int n_shapes = quick ? 7 : 9;
    for (int id = 0; id < FL_N_LOSSES; ++id) {
        const kspec *s = fl_family_find(fl_loss_name(id));
        if (!s || (s->layout != L_CLASS && s->layout != L_PROB_ROWS))
            continue;
        const int has_hess = strcmp(s->name, "nll") && strcmp(s->name, "multi_margin");
        for (int f32 = 0; f32 < 2; ++f32)
            for (int z = 0; z < n_shapes; ++z)
                for (int h = 0; h <= has_hess; ++h)
                    strided_case(s, id, f32, shapes[z][0], shapes[z][1], shapes[z][2], h);
    }
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
    strided_cases(quick);
    printf("%ld passed, %ld failed\n", n_checks - n_failed, n_failed);
    return n_failed ? 1 : 0;
}
