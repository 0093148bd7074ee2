/* Helpers shared by the C test drivers.  Define FL_TEST_SEED (the random
 * stream's start) before including. */
#ifndef FL_TEST_UTIL_H
#define FL_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* Deterministic pseudo-random numbers in [-a, a] (xorshift64). */
static unsigned long long rng_state = FL_TEST_SEED;
static double urand(double a)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return a * (2.0 * (double)(rng_state >> 11) / 9007199254740992.0 - 1.0);
}

/* malloc that ends the driver (exit 2) when memory runs out. */
static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("out of memory (%lu bytes)\n", (unsigned long)bytes);
        exit(2);
    }
    return p;
}

#endif
