// AVX-512F: weights in their stored type times f32 activations (qk_matmul_f32x) for prompt
// batches, where the product is compute-bound.
//
// A panel of up to four rows x 1024 elements is dequantized (by the AVX2 dequantizers) into a
// 64-byte-aligned stack buffer that stays in L1, then a micro-kernel of four rows x six tokens
// (24 zmm accumulators) runs over the tokens: per 16 elements it loads 4 weight and 6 activation
// vectors for 24 FMAs. Tokens are taken 64 at a time, their 1024-element chunk copied to a
// buffer (256 KiB, in L2) that every panel of the rows then passes over; the partial sums of
// successive chunks are added into Y. Decode-sized calls (1-3 tokens) go to the AVX2 code, whose
// register-decoding kernels suit them better.
#include "qk_internal.h"
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

// Elements per panel chunk (a multiple of 256); its padded stride; tokens per block.
enum { KC = 1024, LDP = KC + 16, TB = 64 };

/// [sum(a) sum(b) sum(c) sum(d)] of four 16-lane vectors.
AVX512_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// R rows of A (lda floats apart) times T activation rows over len elements:
/// Y[j*ys + i] = (add ? Y[j*ys + i] : 0) + sum_k A[i][k] * X[j][k].
AVX512_INLINE void mk(const float *A, int64_t lda, const float *X, int64_t xs, int64_t len, float *Y, int64_t ys,
                      const int R, const int T, const int add) {
    __m512 acc[6][4];
    for (int j = 0; j < T; j++)
        for (int i = 0; i < R; i++) acc[j][i] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= len; k += 16) {
        __m512 x[6];
        for (int j = 0; j < T; j++) x[j] = _mm512_loadu_ps(X + j * xs + k);
        for (int i = 0; i < R; i++) {
            const __m512 w = _mm512_loadu_ps(A + i * lda + k);
            for (int j = 0; j < T; j++) acc[j][i] = _mm512_fmadd_ps(w, x[j], acc[j][i]);
        }
    }
    if (k < len) {  // only F32/F16/BF16 rows have a length that is not a multiple of 16
        const __mmask16 m = (__mmask16)((1u << (len - k)) - 1);
        __m512 x[6];
        for (int j = 0; j < T; j++) x[j] = _mm512_maskz_loadu_ps(m, X + j * xs + k);
        for (int i = 0; i < R; i++) {
            const __m512 w = _mm512_maskz_loadu_ps(m, A + i * lda + k);
            for (int j = 0; j < T; j++) acc[j][i] = _mm512_fmadd_ps(w, x[j], acc[j][i]);
        }
    }
    for (int j = 0; j < T; j++) {
        float *y = Y + j * ys;
        if (R == 4) {
            __m128 s = hsum4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
            if (add) s = _mm_add_ps(s, _mm_loadu_ps(y));
            _mm_storeu_ps(y, s);
        } else {
            for (int i = 0; i < R; i++) {
                const float s = _mm512_reduce_add_ps(acc[j][i]);
                y[i] = add ? y[i] + s : s;
            }
        }
    }
}

typedef void (*mk_fn)(const float *, int64_t, const float *, int64_t, int64_t, float *, int64_t, int);
#define MK(R, T)                                                                                            \
    static AVX512_FN void mk_##R##x##T(const float *A, int64_t lda, const float *X, int64_t xs, int64_t len, \
                                       float *Y, int64_t ys, int add) {                                     \
        if (add) mk(A, lda, X, xs, len, Y, ys, R, T, 1);                                                    \
        else mk(A, lda, X, xs, len, Y, ys, R, T, 0);                                                        \
    }
#define MK_ROW(R) MK(R, 1) MK(R, 2) MK(R, 3) MK(R, 4) MK(R, 5) MK(R, 6)
MK_ROW(1) MK_ROW(2) MK_ROW(3) MK_ROW(4)
#define MK_ENTRY(R) {mk_##R##x1, mk_##R##x2, mk_##R##x3, mk_##R##x4, mk_##R##x5, mk_##R##x6}
static const mk_fn mk_table[4][6] = {MK_ENTRY(1), MK_ENTRY(2), MK_ENTRY(3), MK_ENTRY(4)};

AVX512_FN int qk_avx512_matmul_f32x(uint32_t type, const void *Wv, size_t rb, int64_t n, int64_t r0, int64_t r1,
                                    const float *X, int64_t xs, int64_t nTok, float *Y, int64_t ys) {
    const int64_t bsz = qk_weight_block_elements(type);
    if (!bsz || n < 0 || n % bsz) return -1;
    if (nTok <= 3 || n == 0) return qk_avx2_matmul_f32x(type, Wv, rb, n, r0, r1, X, xs, nTok, Y, ys);
    if (r1 <= r0) return 0;
    const uint8_t *W = Wv;
    // Activation rows whose stride is a multiple of 4 KiB (every model width) would all fall in
    // the same L1 sets: each chunk of them is copied to a buffer with a padded stride, once for
    // every panel of rows that passes over it.
    const int64_t tb = nTok < TB ? nTok : TB;
    float *xp = aligned_alloc(64, (size_t)tb * LDP * sizeof(float));
    if (!xp) return qk_avx2_matmul_f32x(type, Wv, rb, n, r0, r1, X, xs, nTok, Y, ys);
    _Alignas(64) float panel[4 * LDP];
    for (int64_t t0 = 0; t0 < nTok; t0 += TB) {
        const int64_t tEnd = nTok - t0 < TB ? nTok : t0 + TB;
        for (int64_t k0 = 0; k0 < n; k0 += KC) {
            const int64_t len = n - k0 < KC ? n - k0 : KC;
            for (int64_t t = t0; t < tEnd; t++) memcpy(xp + (t - t0) * LDP, X + t * xs + k0, (size_t)len * sizeof(float));
            for (int64_t r = r0; r < r1; r += 4) {
                const int R = r1 - r < 4 ? (int)(r1 - r) : 4;
                const uint8_t *w0 = W + (size_t)r * rb;
                const float *A;
                int64_t lda;
                if (type == QK_F32) {
                    A = (const float *)w0 + k0;
                    lda = (int64_t)(rb / 4);
                } else {
                    for (int i = 0; i < R; i++) qk_avx2_dequantize_row(type, w0 + (size_t)i * rb, k0, len, panel + i * LDP);
                    A = panel;
                    lda = LDP;
                }
                int64_t t = t0;
                for (; t + 6 <= tEnd; t += 6) mk_table[R - 1][5](A, lda, xp + (t - t0) * LDP, LDP, len, Y + t * ys + r, ys, k0 > 0);
                if (tEnd - t > 0) mk_table[R - 1][tEnd - t - 1](A, lda, xp + (t - t0) * LDP, LDP, len, Y + t * ys + r, ys, k0 > 0);
            }
        }
    }
    free(xp);
    return 0;
}

#else  // not x86-64: the scalar reference serves.

int qk_avx512_matmul_f32x(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const float *X,
                          int64_t xs, int64_t nTok, float *Y, int64_t ys) {
    return qk_ref_matmul_f32x(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

#endif
