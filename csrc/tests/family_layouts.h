/* The layout of every kernel of losses.def, by name, for the drivers that
 * call them all through fl_run (csrc/tests/test_family.c, fuzz/fuzz_kernels.c):
 * how its arguments are laid out, its domain check, parameters in its domain.
 * A kernel missing here fails those drivers. */
#ifndef FL_FAMILY_LAYOUTS_H
#define FL_FAMILY_LAYOUTS_H

#include "fusedloss.h"

#include <string.h>

enum {
    L_ELEM,      /* n elements: input[0], target (the input's shape) */
    L_CLASS,     /* rows x C: input[0], int64 class indices (rows) */
    L_PROB_ROWS, /* rows x C: input[0], class probabilities (rows x C) */
    L_SAMPLE,    /* rows x F: input[0], input[1] (the target, same shape) */
    L_PAIR_ELEM, /* n elements: input[0], input[1], target (n) */
    L_ROWS2T,    /* rows x F: input[0], input[1], target (rows) */
    L_ROWS3      /* rows x F: input[0..2] */
};

typedef struct {
    const char *name;
    int layout;
    int domain;      /* 0 none, 1 input in [0, 1], 2 target in {-1, +1} */
    double param[4]; /* parameters, in the kernel's domain */
    int target_unit; /* element-wise target in [0, 1] (else real) */
    int n_inputs;    /* differentiable inputs */
} kspec;

static const kspec FL_FAMILY[] = {
    { "ce_index", L_CLASS, 0, { 0.1, 0, 0, 0 }, 0, 1 },
    { "ce_prob", L_PROB_ROWS, 0, { 0.1, 0, 0, 0 }, 0, 1 },
    { "bce", L_ELEM, 0, { 0, 0, 0, 0 }, 1, 1 },
    { "focal", L_ELEM, 0, { 0.25, 2.0, 0, 0 }, 1, 1 },
    { "huber", L_ELEM, 0, { 1.0, 0, 0, 0 }, 0, 1 },
    { "smooth_l1", L_ELEM, 0, { 0.5, 0, 0, 0 }, 0, 1 },
    { "mse", L_ELEM, 0, { 0, 0, 0, 0 }, 0, 1 },
    { "l1", L_ELEM, 0, { 0, 0, 0, 0 }, 0, 1 },
    { "bce_prob", L_ELEM, 1, { 0, 0, 0, 0 }, 1, 1 },
    { "hinge", L_ELEM, 2, { 1.0, 0, 0, 0 }, 0, 1 },
    { "exponential", L_ELEM, 2, { 0, 0, 0, 0 }, 0, 1 },
    { "kl_div", L_ELEM, 0, { 0, 0, 0, 0 }, 1, 1 },
    { "heatmap_focal", L_ELEM, 0, { 2.0, 4.0, 0, 0 }, 1, 1 },
    { "nll", L_CLASS, 0, { 0, 0, 0, 0 }, 0, 1 },
    { "softmax_focal", L_CLASS, 0, { 2.0, 0, 0, 0 }, 0, 1 },
    { "multi_margin", L_CLASS, 0, { 2, 1.0, 0, 0 }, 0, 1 },
    { "dice", L_SAMPLE, 0, { 1.0, 0, 0, 0 }, 1, 1 },
    { "margin_ranking", L_PAIR_ELEM, 0, { 0.1, 0, 0, 0 }, 0, 2 },
    { "triplet", L_ROWS3, 0, { 1.0, 2.0, 1e-6, 1 }, 0, 3 },
    { "contrastive", L_ROWS2T, 0, { 1.0, 1e-6, 0, 0 }, 0, 2 },
};
#define FL_N_FAMILY ((int)(sizeof FL_FAMILY / sizeof FL_FAMILY[0]))

/* The layout of kernel `name`, or NULL. */
static const kspec *fl_family_find(const char *name)
{
    for (int i = 0; i < FL_N_FAMILY; ++i)
        if (!strcmp(FL_FAMILY[i].name, name))
            return &FL_FAMILY[i];
    return NULL;
}

/* Whether the kernel's losses are per element (else per row). */
static int fl_family_per_element(const kspec *s)
{
    return s->layout == L_ELEM || s->layout == L_PAIR_ELEM;
}

/* The arguments of a call over rows x F (elements: rows * F) with the inputs
 * in[], the target (float or int64 as the layout says); outputs left NULL. */
static fl_args fl_family_args(const kspec *s, void *const in[3], const void *target, fl_index rows,
                              fl_index F, int n_threads)
{
    fl_args a;
    memset(&a, 0, sizeof a);
    for (int k = 0; k < 3; ++k)
        a.input[k] = in[k];
    a.target = s->layout == L_SAMPLE ? NULL : target;
    a.ignore_index = -100;
    memcpy(a.param, s->param, sizeof a.param);
    a.grad_scale = 1.0;
    a.reduction = FL_REDUCE_MEAN;
    a.n_threads = n_threads;
    if (fl_family_per_element(s)) {
        a.n = rows * F;
        a.n_classes = 1;
    } else {
        a.n = rows;
        a.n_classes = F;
        a.class_stride = 1;
    }
    return a;
}

#endif
