/* Atomic loads (acquire) and stores (release) of a pointer or an int, for the
 * little global state the C core keeps (the selected dispatch table, the best
 * target, the interrupt hook).  GCC and Clang builtins; MSVC Interlocked
 * intrinsics; plain accesses elsewhere.  Internal, not part of the C API. */
#ifndef FL_ATOMIC_H
#define FL_ATOMIC_H

#if defined(__GNUC__) || defined(__clang__)
#define FL_ATOMIC_LOAD_PTR(T, p) ((T)__atomic_load_n(&(p), __ATOMIC_ACQUIRE))
#define FL_ATOMIC_STORE_PTR(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define FL_ATOMIC_LOAD_INT(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define FL_ATOMIC_STORE_INT(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#elif defined(_MSC_VER)
#include <intrin.h>
#define FL_ATOMIC_LOAD_PTR(T, p)                                                                   \
    ((T)_InterlockedCompareExchangePointer((void *volatile *)&(p), NULL, NULL))
#define FL_ATOMIC_STORE_PTR(p, v)                                                                  \
    ((void)_InterlockedExchangePointer((void *volatile *)&(p), (void *)(v)))
#define FL_ATOMIC_LOAD_INT(p) ((int)_InterlockedCompareExchange((volatile long *)&(p), 0, 0))
#define FL_ATOMIC_STORE_INT(p, v) ((void)_InterlockedExchange((volatile long *)&(p), (long)(v)))
#else
#define FL_ATOMIC_LOAD_PTR(T, p) ((T)(p))
#define FL_ATOMIC_STORE_PTR(p, v) ((p) = (v))
#define FL_ATOMIC_LOAD_INT(p) (p)
#define FL_ATOMIC_STORE_INT(p, v) ((p) = (v))
#endif

#endif
