/* A minimal vector abstraction for the few loops GCC does not vectorise well
 * on its own (lane sums, max).  Included by kernels.c once per precision,
 * after FL_T / FL_IS_F32 are defined; the ISA comes from the compile flags of
 * the target being built (AVX-512, AVX2, SSE2, or portable C).
 *
 * FL_V is one vector of FL_VW lanes.  The algorithms use FL_LANES (16)
 * logical lanes = FL_NV vectors, with logical lane j always holding the
 * elements i with i % 16 == j, so every target adds the same numbers in the
 * same order: sums agree bitwise across targets.
 *
 *   FL_VLOAD(p), FL_VSTORE(p, v), FL_VSET1(x), FL_VADD(a, b)
 *   FL_VMAX(v, m)       v > m ? v : m per lane (m kept when either is NaN)
 *   FL_VIS1(v)          1 where v == 1, else 0
 *   FL_VNOT1(v)         v where v != 1, else 0 (NaN kept)
 *   FL_VGATHER(p, s)    the vector p[0], p[s], p[2s], ... (s an int, s * FL_VW
 *                       fits in int32); FL_HAVE_GATHER says it is one instruction
 *   FL_VSCATTER(p, s, v) the inverse store; FL_HAVE_SCATTER likewise
 */
#if FL_IS_F32 && defined(__AVX512F__)
#define FL_V __m512
#define FL_VW 16
#define FL_VLOAD(p) _mm512_loadu_ps(p)
#define FL_VSTORE(p, v) _mm512_storeu_ps(p, v)
#define FL_VSET1(x) _mm512_set1_ps(x)
#define FL_VADD(a, b) _mm512_add_ps(a, b)
#define FL_VMAX(v, m) _mm512_max_ps(v, m)
#define FL_VIS1(v)                                                                                 \
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(1.0f), _CMP_EQ_OQ),                   \
                        _mm512_set1_ps(1.0f))
#define FL_VNOT1(v) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ), v)
#define FL_VIDX(s)                                                                                 \
    _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),    \
                       _mm512_set1_epi32(s))
#define FL_VGATHER(p, s) _mm512_i32gather_ps(FL_VIDX(s), p, 4)
#define FL_VSCATTER(p, s, v) _mm512_i32scatter_ps(p, FL_VIDX(s), v, 4)
#define FL_HAVE_GATHER 1
#define FL_HAVE_SCATTER 1
#elif !FL_IS_F32 && defined(__AVX512F__)
#define FL_V __m512d
#define FL_VW 8
#define FL_VLOAD(p) _mm512_loadu_pd(p)
#define FL_VSTORE(p, v) _mm512_storeu_pd(p, v)
#define FL_VSET1(x) _mm512_set1_pd(x)
#define FL_VADD(a, b) _mm512_add_pd(a, b)
#define FL_VMAX(v, m) _mm512_max_pd(v, m)
#define FL_VIS1(v)                                                                                 \
    _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(v, _mm512_set1_pd(1.0), _CMP_EQ_OQ), _mm512_set1_pd(1.0))
#define FL_VNOT1(v) _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(v, _mm512_set1_pd(1.0), _CMP_NEQ_UQ), v)
#define FL_VIDX(s)                                                                                 \
    _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(s))
#define FL_VGATHER(p, s) _mm512_i32gather_pd(FL_VIDX(s), p, 8)
#define FL_VSCATTER(p, s, v) _mm512_i32scatter_pd(p, FL_VIDX(s), v, 8)
#define FL_HAVE_GATHER 1
#define FL_HAVE_SCATTER 1
#elif FL_IS_F32 && defined(__AVX__)
#define FL_V __m256
#define FL_VW 8
#define FL_VLOAD(p) _mm256_loadu_ps(p)
#define FL_VSTORE(p, v) _mm256_storeu_ps(p, v)
#define FL_VSET1(x) _mm256_set1_ps(x)
#define FL_VADD(a, b) _mm256_add_ps(a, b)
#define FL_VMAX(v, m) _mm256_max_ps(v, m)
#define FL_VIS1(v)                                                                                 \
    _mm256_and_ps(_mm256_cmp_ps(v, _mm256_set1_ps(1.0f), _CMP_EQ_OQ), _mm256_set1_ps(1.0f))
#define FL_VNOT1(v) _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_set1_ps(1.0f), _CMP_EQ_OQ), v)
#if defined(__AVX2__)
#define FL_VGATHER(p, s)                                                                           \
    _mm256_i32gather_ps(                                                                           \
        p, _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(s)), 4)
#define FL_HAVE_GATHER 1
#endif
#elif !FL_IS_F32 && defined(__AVX__)
#define FL_V __m256d
#define FL_VW 4
#define FL_VLOAD(p) _mm256_loadu_pd(p)
#define FL_VSTORE(p, v) _mm256_storeu_pd(p, v)
#define FL_VSET1(x) _mm256_set1_pd(x)
#define FL_VADD(a, b) _mm256_add_pd(a, b)
#define FL_VMAX(v, m) _mm256_max_pd(v, m)
#define FL_VIS1(v)                                                                                 \
    _mm256_and_pd(_mm256_cmp_pd(v, _mm256_set1_pd(1.0), _CMP_EQ_OQ), _mm256_set1_pd(1.0))
#define FL_VNOT1(v) _mm256_andnot_pd(_mm256_cmp_pd(v, _mm256_set1_pd(1.0), _CMP_EQ_OQ), v)
#if defined(__AVX2__)
#define FL_VGATHER(p, s)                                                                           \
    _mm256_i32gather_pd(p, _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(s)), 8)
#define FL_HAVE_GATHER 1
#endif
#elif FL_IS_F32 && FL_HAVE_SSE2
#define FL_V __m128
#define FL_VW 4
#define FL_VLOAD(p) _mm_loadu_ps(p)
#define FL_VSTORE(p, v) _mm_storeu_ps(p, v)
#define FL_VSET1(x) _mm_set1_ps(x)
#define FL_VADD(a, b) _mm_add_ps(a, b)
#define FL_VMAX(v, m) _mm_max_ps(v, m)
#define FL_VIS1(v) _mm_and_ps(_mm_cmpeq_ps(v, _mm_set1_ps(1.0f)), _mm_set1_ps(1.0f))
#define FL_VNOT1(v) _mm_andnot_ps(_mm_cmpeq_ps(v, _mm_set1_ps(1.0f)), v)
#elif !FL_IS_F32 && FL_HAVE_SSE2
#define FL_V __m128d
#define FL_VW 2
#define FL_VLOAD(p) _mm_loadu_pd(p)
#define FL_VSTORE(p, v) _mm_storeu_pd(p, v)
#define FL_VSET1(x) _mm_set1_pd(x)
#define FL_VADD(a, b) _mm_add_pd(a, b)
#define FL_VMAX(v, m) _mm_max_pd(v, m)
#define FL_VIS1(v) _mm_and_pd(_mm_cmpeq_pd(v, _mm_set1_pd(1.0)), _mm_set1_pd(1.0))
#define FL_VNOT1(v) _mm_andnot_pd(_mm_cmpeq_pd(v, _mm_set1_pd(1.0)), v)
#else
/* Portable: one-lane "vectors"; the compiler may still vectorise the loops. */
#define FL_V FL_T
#define FL_VW 1
#define FL_VLOAD(p) (*(p))
#define FL_VSTORE(p, v) (*(p) = (v))
#define FL_VSET1(x) (x)
#define FL_VADD(a, b) ((a) + (b))
#define FL_VMAX(v, m) FL_SFX(select_gt)(v, m)
#define FL_VIS1(v) ((v) == 1 ? (FL_T)1 : (FL_T)0)
#define FL_VNOT1(v) ((v) == 1 ? (FL_T)0 : (v))
#endif
#ifndef FL_HAVE_GATHER
#define FL_HAVE_GATHER 0
#endif
#ifndef FL_HAVE_SCATTER
#define FL_HAVE_SCATTER 0
#endif
#define FL_NV (FL_LANES / FL_VW)
