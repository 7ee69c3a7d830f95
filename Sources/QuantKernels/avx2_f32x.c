// AVX2 + FMA + F16C: weights in their stored type times f32 activations (qk_matmul_f32x).
//
// Decode (1-3 tokens, Q4_0/Q4_1/Q8_0): the weight blocks of four rows are decoded in registers
// straight into FMAs against the activations; weights stream from memory with a prefetch four
// tiles ahead. Everything else: a panel of up to four rows x 1024 elements is dequantized into a
// 64-byte-aligned stack buffer (L1-resident), then a 4-row x 3-token register-blocked f32 kernel
// (12 accumulators) runs over all token tiles; longer rows are done in 1024-element chunks whose
// partial sums are added into Y. Results equal an f32 product on the dequantized weights up to
// summation order and FMA rounding.
#include "qk_internal.h"
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

enum { KC = 1024 };  // elements per row in one dequantized panel chunk (a multiple of 256)

AVX2_INLINE uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
AVX2_INLINE uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
AVX2_INLINE float h2f(const uint8_t *p) { return _cvtsh_ss(ld16(p)); }

/// Eight bytes at p zero- / sign-extended to eight int32 lanes.
AVX2_INLINE __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
AVX2_INLINE __m256i i8x8(const uint8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

AVX2_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// [sum(a) sum(b) sum(c) sum(d)].
AVX2_INLINE __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// Writes the R row sums of token column t: Y[i] = (add ? Y[i] : 0) + sums[i].
AVX2_INLINE void store_rows(float *y, __m256 *acc, const int R, const int add, const float *tail) {
    if (R == 4) {
        __m128 s = hsum4_ps(acc[0], acc[1], acc[2], acc[3]);
        if (tail) s = _mm_add_ps(s, _mm_loadu_ps(tail));
        if (add) s = _mm_add_ps(s, _mm_loadu_ps(y));
        _mm_storeu_ps(y, s);
    } else {
        for (int i = 0; i < R; i++) {
            float s = hsum_ps(acc[i]) + (tail ? tail[i] : 0.0f);
            y[i] = add ? y[i] + s : s;
        }
    }
}

// MARK: - Row dequantizers: elements [k0, k0 + len) of one row into dst (k0, len whole blocks)

AVX2_INLINE void deq_q4(const uint8_t *row, int64_t k0, int64_t len, float *dst, const int q4_1) {
    const size_t bs = q4_1 ? 20 : 18, qo = q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi32(15);
    const uint8_t *b = row + (size_t)(k0 / 32) * bs;
    for (int64_t k = 0; k < len; k += 32, b += bs, dst += 32) {
        const __m256 d = _mm256_set1_ps(h2f(b));
        const __m256 m = q4_1 ? _mm256_set1_ps(h2f(b + 2)) : _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
        const __m256i v0 = u8x8(b + qo), v1 = u8x8(b + qo + 8);
        _mm256_store_ps(dst, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, m4)), d, m));
        _mm256_store_ps(dst + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, m4)), d, m));
        _mm256_store_ps(dst + 16, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), d, m));
        _mm256_store_ps(dst + 24, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), d, m));
    }
}

AVX2_INLINE void deq_q8_0(const uint8_t *row, int64_t k0, int64_t len, float *dst) {
    const uint8_t *b = row + (size_t)(k0 / 32) * 34;
    for (int64_t k = 0; k < len; k += 32, b += 34, dst += 32) {
        const __m256 d = _mm256_set1_ps(h2f(b));
        for (int g = 0; g < 4; g++) _mm256_store_ps(dst + 8 * g, _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8(b + 2 + 8 * g)), d));
    }
}

/// Q4_K (five_bit = 0) and Q5_K (five_bit = 1): x = d*sc*q - dmin*m per 32-element sub-block.
AVX2_INLINE void deq_kmin(const uint8_t *row, int64_t k0, int64_t len, float *dst, const int five_bit) {
    const size_t bs = five_bit ? 176 : 144, qso = five_bit ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi32(15), one = _mm256_set1_epi32(1);
    const uint8_t *b = row + (size_t)(k0 / 256) * bs;
    for (int64_t k = 0; k < len; k += 256, b += bs, dst += 256) {
        const float d = h2f(b), dmin = h2f(b + 2);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            qk_scale_min_k4(2 * c, b + 4, &sc0, &m0);
            qk_scale_min_k4(2 * c + 1, b + 4, &sc1, &m1);
            const __m256 ds0 = _mm256_set1_ps(d * (float)sc0), dm0 = _mm256_set1_ps(dmin * (float)m0);
            const __m256 ds1 = _mm256_set1_ps(d * (float)sc1), dm1 = _mm256_set1_ps(dmin * (float)m1);
            const __m128i sh0 = _mm_cvtsi32_si128(2 * c), sh1 = _mm_cvtsi32_si128(2 * c + 1);
            for (int g = 0; g < 4; g++) {
                const __m256i v = u8x8(b + qso + 32 * c + 8 * g);
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_srli_epi32(v, 4);
                if (five_bit) {
                    const __m256i h = u8x8(b + 16 + 8 * g);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, sh0), one), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, sh1), one), 4));
                }
                _mm256_store_ps(dst + 64 * c + 8 * g, _mm256_fmsub_ps(_mm256_cvtepi32_ps(lo), ds0, dm0));
                _mm256_store_ps(dst + 64 * c + 32 + 8 * g, _mm256_fmsub_ps(_mm256_cvtepi32_ps(hi), ds1, dm1));
            }
        }
    }
}

AVX2_INLINE void deq_q6_K(const uint8_t *row, int64_t k0, int64_t len, float *dst) {
    const __m256i m4 = _mm256_set1_epi32(15), m3 = _mm256_set1_epi32(3), c32 = _mm256_set1_epi32(32);
    const uint8_t *b = row + (size_t)(k0 / 256) * 210;
    for (int64_t k = 0; k < len; k += 256, b += 210, dst += 256) {
        const float d = h2f(b + 208);
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            float *o = dst + 128 * h;
            for (int g = 0; g < 4; g++) {
                const __m256i a = u8x8(ql + 8 * g), a2 = u8x8(ql + 32 + 8 * g), hh = u8x8(qh + 8 * g);
                const __m256i q0 = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi32(_mm256_and_si256(hh, m3), 4));
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(a2, m4),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hh, 2), m3), 4));
                const __m256i q2 = _mm256_or_si256(_mm256_srli_epi32(a, 4),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hh, 4), m3), 4));
                const __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a2, 4), _mm256_slli_epi32(_mm256_srli_epi32(hh, 6), 4));
                const __m256i q[4] = {q0, q1, q2, q3};
                for (int j = 0; j < 4; j++) {
                    const int e = 32 * j + 8 * g;  // element within this half
                    const __m256 s = _mm256_set1_ps(d * (float)sc[8 * h + e / 16]);
                    _mm256_store_ps(o + e, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[j], c32))));
                }
            }
        }
    }
}

AVX2_INLINE void deq_half(const uint8_t *row, int64_t k0, int64_t len, float *dst, const int bf16) {
    const uint8_t *p = row + (size_t)k0 * 2;
    int64_t k = 0;
    for (; k + 8 <= len; k += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(p + 2 * k));
        _mm256_store_ps(dst + k, bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                                      : _mm256_cvtph_ps(h));
    }
    for (; k < len; k++) dst[k] = bf16 ? qk_bf2f(ld16(p + 2 * k)) : _cvtsh_ss(ld16(p + 2 * k));
}

/// Elements [k0, k0 + len) of one weight row (whole blocks) to f32, in dst (32-byte aligned).
AVX2_FN void qk_avx2_dequantize_row(uint32_t type, const uint8_t *row, int64_t k0, int64_t len, float *dst) {
    switch (type) {
    case QK_F16: deq_half(row, k0, len, dst, 0); break;
    case QK_BF16: deq_half(row, k0, len, dst, 1); break;
    case QK_Q4_0: deq_q4(row, k0, len, dst, 0); break;
    case QK_Q4_1: deq_q4(row, k0, len, dst, 1); break;
    case QK_Q8_0: deq_q8_0(row, k0, len, dst); break;
    case QK_Q4_K: deq_kmin(row, k0, len, dst, 0); break;
    case QK_Q5_K: deq_kmin(row, k0, len, dst, 1); break;
    case QK_Q6_K: deq_q6_K(row, k0, len, dst); break;
    default: {
        // Types without a vector dequantizer here (Q5_0, Q5_1, IQ4_NL, IQ4_XS): the scalar one.
        const int64_t be = qk_weight_block_elements(type);
        qk_ref_dequantize(type, row + (size_t)(k0 / be) * qk_weight_block_bytes(type), dst, len);
        break;
    }
    }
}

// MARK: - f32 micro-kernel: R rows (lda floats apart) x T tokens over len elements

AVX2_INLINE void mk(const float *A, int64_t lda, const float *X, int64_t xs, int64_t len, float *Y, int64_t ys,
                    const int R, const int T, const int add) {
    __m256 acc[3][4];
    for (int j = 0; j < T; j++)
        for (int i = 0; i < R; i++) acc[j][i] = _mm256_setzero_ps();
    const int64_t len8 = len & ~(int64_t)7;
    for (int64_t k = 0; k < len8; k += 8) {
        __m256 x[3];
        for (int j = 0; j < T; j++) x[j] = _mm256_loadu_ps(X + j * xs + k);
        for (int i = 0; i < R; i++) {
            const __m256 w = _mm256_loadu_ps(A + i * lda + k);
            for (int j = 0; j < T; j++) acc[j][i] = _mm256_fmadd_ps(w, x[j], acc[j][i]);
        }
    }
    for (int j = 0; j < T; j++) {
        float tail[4] = {0, 0, 0, 0};
        for (int64_t k = len8; k < len; k++)
            for (int i = 0; i < R; i++) tail[i] = __builtin_fmaf(A[i * lda + k], X[j * xs + k], tail[i]);
        store_rows(Y + j * ys, acc[j], R, add, len8 < len ? tail : NULL);
    }
}

typedef void (*mk_fn)(const float *, int64_t, const float *, int64_t, int64_t, float *, int64_t, int);
#define MK(R, T)                                                                                          \
    static AVX2_FN void mk_##R##x##T(const float *A, int64_t lda, const float *X, int64_t xs, int64_t len, \
                                     float *Y, int64_t ys, int add) {                                     \
        if (add) mk(A, lda, X, xs, len, Y, ys, R, T, 1);                                                  \
        else mk(A, lda, X, xs, len, Y, ys, R, T, 0);                                                      \
    }
MK(1, 1) MK(1, 2) MK(1, 3) MK(2, 1) MK(2, 2) MK(2, 3) MK(3, 1) MK(3, 2) MK(3, 3) MK(4, 1) MK(4, 2) MK(4, 3)
static const mk_fn mk_table[4][3] = {
    {mk_1x1, mk_1x2, mk_1x3}, {mk_2x1, mk_2x2, mk_2x3}, {mk_3x1, mk_3x2, mk_3x3}, {mk_4x1, mk_4x2, mk_4x3}};

/// The panel path: every type, any token count.
static AVX2_FN void panel_matmul(uint32_t type, const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                                 const float *X, int64_t xs, int64_t nTok, float *Y, int64_t ys) {
    _Alignas(64) float panel[4 * KC];
    for (int64_t r = r0; r < r1; r += 4) {
        const int R = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *w0 = W + (size_t)r * rb;
        // Streams weights: start fetching the next tile's rows (prefetches never fault).
        if (nTok <= 8)
            for (size_t off = 0; off < 4 * rb && off < 64 * 64; off += 64) _mm_prefetch((const char *)(w0 + 4 * rb + off), _MM_HINT_T0);
        for (int64_t k0 = 0; k0 < n; k0 += KC) {
            const int64_t len = n - k0 < KC ? n - k0 : KC;
            const float *A;
            int64_t lda;
            if (type == QK_F32) {
                A = (const float *)w0 + k0;
                lda = (int64_t)(rb / 4);
            } else {
                for (int i = 0; i < R; i++) qk_avx2_dequantize_row(type, w0 + (size_t)i * rb, k0, len, panel + i * KC);
                A = panel;
                lda = KC;
            }
            int64_t t = 0;
            for (; t + 3 <= nTok; t += 3) mk_table[R - 1][2](A, lda, X + t * xs + k0, xs, len, Y + t * ys + r, ys, k0 > 0);
            if (nTok - t > 0) mk_table[R - 1][nTok - t - 1](A, lda, X + t * xs + k0, xs, len, Y + t * ys + r, ys, k0 > 0);
        }
    }
}

// MARK: - Decode: Q4_0 / Q4_1 / Q8_0 decoded in registers, 1-3 tokens

/// R rows from w0 against T tokens; Q4: acc += (d*q + m) * x; Q8_0: acc += d * sum_block(q * x).
AVX2_INLINE void dec_tile(const uint8_t *w0, size_t rb, int64_t nb, const float *X, int64_t xs, float *Y, int64_t ys,
                          const int R, const int T, const int kind) {
    const size_t bs = kind == QK_Q4_1 ? 20 : kind == QK_Q4_0 ? 18 : 34;
    const size_t qo = kind == QK_Q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi32(15);
    __m256 acc[3][4], acc2[3][4];
    for (int j = 0; j < T; j++)
        for (int i = 0; i < R; i++) acc[j][i] = acc2[j][i] = _mm256_setzero_ps();
    if (R == 4)
        for (size_t off = 0; off < 4 * rb; off += 64) _mm_prefetch((const char *)(w0 + 16 * rb + off), _MM_HINT_T0);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = X + 32 * b;
        for (int i = 0; i < R; i++) {
            const uint8_t *wb = w0 + (size_t)i * rb + (size_t)b * bs;
            if (kind == QK_Q8_0) {
                const __m256 d = _mm256_set1_ps(h2f(wb));
                __m256 q[4];
                for (int g = 0; g < 4; g++) q[g] = _mm256_cvtepi32_ps(i8x8(wb + 2 + 8 * g));
                for (int j = 0; j < T; j++) {
                    const float *x = xb + j * xs;
                    __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
                    __m256 s2 = _mm256_mul_ps(q[1], _mm256_loadu_ps(x + 8));
                    s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + 16), s);
                    s2 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), s2);
                    acc[j][i] = _mm256_fmadd_ps(_mm256_add_ps(s, s2), d, acc[j][i]);
                }
            } else {
                __m256 d, m;
                if (kind == QK_Q4_1) {
                    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)ld32(wb)));
                    d = _mm256_broadcastss_ps(dm);
                    m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
                } else {
                    d = _mm256_set1_ps(h2f(wb));
                    m = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
                }
                const __m256i v0 = u8x8(wb + qo), v1 = u8x8(wb + qo + 8);
                const __m256 w0v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, m4)), d, m);
                const __m256 w1v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, m4)), d, m);
                const __m256 w2v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), d, m);
                const __m256 w3v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), d, m);
                for (int j = 0; j < T; j++) {
                    const float *x = xb + j * xs;
                    acc[j][i] = _mm256_fmadd_ps(w0v, _mm256_loadu_ps(x), acc[j][i]);
                    acc2[j][i] = _mm256_fmadd_ps(w1v, _mm256_loadu_ps(x + 8), acc2[j][i]);
                    acc[j][i] = _mm256_fmadd_ps(w2v, _mm256_loadu_ps(x + 16), acc[j][i]);
                    acc2[j][i] = _mm256_fmadd_ps(w3v, _mm256_loadu_ps(x + 24), acc2[j][i]);
                }
            }
        }
    }
    for (int j = 0; j < T; j++) {
        for (int i = 0; i < R; i++) acc[j][i] = _mm256_add_ps(acc[j][i], acc2[j][i]);
        store_rows(Y + j * ys, acc[j], R, 0, NULL);
    }
}

/// One token, four Q4_0/Q4_1 rows: acc_i += d_i * sum_block(q*x) (8 lanes per row), and the four
/// rows' m_i * sx_b in one 4-lane FMA, sx_b the block's activation sum (times -8 for Q4_0, m = d).
AVX2_INLINE void dec4_q4_t1(const uint8_t *w0, size_t rb, int64_t nb, const float *X, const float *sxb, float *Y,
                            const int q4_1) {
    const size_t bs = q4_1 ? 20 : 18, qo = q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi32(15);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 accm = _mm_setzero_ps();
    for (size_t off = 0; off < 4 * rb; off += 64) _mm_prefetch((const char *)(w0 + 16 * rb + off), _MM_HINT_T0);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = X + 32 * b;
        const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
        const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
        const uint8_t *wb = w0 + (size_t)b * bs;
        __m256 dm;  // Q4_1: [d0 m0 d1 m1 d2 m2 d3 m3]; Q4_0: [d0 d1 d2 d3 ...]
        if (q4_1) {
            __m128i h = _mm_cvtsi32_si128((int)ld32(wb));
            h = _mm_insert_epi32(h, (int)ld32(wb + rb), 1);
            h = _mm_insert_epi32(h, (int)ld32(wb + 2 * rb), 2);
            h = _mm_insert_epi32(h, (int)ld32(wb + 3 * rb), 3);
            dm = _mm256_cvtph_ps(h);
            accm = _mm_fmadd_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7))),
                                _mm_broadcast_ss(sxb + b), accm);
        } else {
            __m128i h = _mm_cvtsi32_si128(ld16(wb));
            h = _mm_insert_epi16(h, ld16(wb + rb), 1);
            h = _mm_insert_epi16(h, ld16(wb + 2 * rb), 2);
            h = _mm_insert_epi16(h, ld16(wb + 3 * rb), 3);
            const __m128 d4 = _mm_cvtph_ps(h);
            dm = _mm256_castps128_ps256(d4);
            accm = _mm_fmadd_ps(d4, _mm_broadcast_ss(sxb + b), accm);
        }
        for (int i = 0; i < 4; i++) {
            const __m256i v0 = u8x8(wb + (size_t)i * rb + qo), v1 = u8x8(wb + (size_t)i * rb + qo + 8);
            __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, m4)), x0);
            __m256 p2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, m4)), x1);
            p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), x2, p);
            p2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), x3, p2);
            const __m256 d = _mm256_permutevar8x32_ps(dm, _mm256_set1_epi32(q4_1 ? 2 * i : i));
            acc[i] = _mm256_fmadd_ps(_mm256_add_ps(p, p2), d, acc[i]);
        }
    }
    _mm_storeu_ps(Y, _mm_add_ps(hsum4_ps(acc[0], acc[1], acc[2], acc[3]), accm));
}

/// Per-block activation sums for one token (times -8 for Q4_0), into sx[0..nb).
AVX2_INLINE void block_sums(const float *X, int64_t nb, float *sx, float scale) {
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = X + 32 * b;
        const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8)),
                                       _mm256_add_ps(_mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)));
        sx[b] = hsum_ps(v) * scale;
    }
}

#define DEC(KIND, NAME)                                                                                        \
    static AVX2_FN void NAME(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const float *X,   \
                             int64_t xs, int64_t nTok, float *Y, int64_t ys) {                                 \
        const int64_t nb = n / 32;                                                                             \
        int64_t r = r0;                                                                                        \
        if (nTok == 1 && KIND != QK_Q8_0 && r1 - r0 >= 4) {                                                                \
            enum { SX_STACK = 512 };                                                                           \
            float sx_stack[SX_STACK];                                                                          \
            float *sx = nb <= SX_STACK ? sx_stack : malloc((size_t)nb * sizeof(float));                        \
            if (sx) {                                                                                          \
                block_sums(X, nb, sx, KIND == QK_Q4_0 ? -8.0f : 1.0f);                                         \
                for (; r + 4 <= r1; r += 4) dec4_q4_t1(W + (size_t)r * rb, rb, nb, X, sx, Y + r, KIND == QK_Q4_1); \
                if (sx != sx_stack) free(sx);                                                                  \
            }                                                                                                  \
        }                                                                                                      \
        for (; r + 4 <= r1; r += 4) {                                                                          \
            const uint8_t *w = W + (size_t)r * rb;                                                             \
            if (nTok == 1) dec_tile(w, rb, nb, X, xs, Y + r, ys, 4, 1, KIND);                                  \
            else if (nTok == 2) dec_tile(w, rb, nb, X, xs, Y + r, ys, 4, 2, KIND);                             \
            else dec_tile(w, rb, nb, X, xs, Y + r, ys, 4, 3, KIND);                                            \
        }                                                                                                      \
        for (; r < r1; r++) {                                                                                  \
            const uint8_t *w = W + (size_t)r * rb;                                                             \
            if (nTok == 1) dec_tile(w, rb, nb, X, xs, Y + r, ys, 1, 1, KIND);                                  \
            else if (nTok == 2) dec_tile(w, rb, nb, X, xs, Y + r, ys, 1, 2, KIND);                             \
            else dec_tile(w, rb, nb, X, xs, Y + r, ys, 1, 3, KIND);                                            \
        }                                                                                                      \
    }
DEC(QK_Q4_0, dec_q4_0)
DEC(QK_Q4_1, dec_q4_1)
DEC(QK_Q8_0, dec_q8_0)

// MARK: - Entry

AVX2_FN int qk_avx2_matmul_f32x(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                                const float *X, int64_t xs, int64_t nTok, float *Y, int64_t ys) {
    const int64_t bsz = qk_weight_block_elements(type);
    if (!bsz || n < 0 || n % bsz) return -1;
    if (r1 <= r0 || nTok <= 0) return 0;
    if (n == 0) {
        for (int64_t t = 0; t < nTok; t++)
            for (int64_t r = r0; r < r1; r++) Y[t * ys + r] = 0.0f;
        return 0;
    }
    if (nTok <= 3) {
        switch (type) {
        case QK_Q4_0: dec_q4_0(W, rb, n, r0, r1, X, xs, nTok, Y, ys); return 0;
        case QK_Q4_1: dec_q4_1(W, rb, n, r0, r1, X, xs, nTok, Y, ys); return 0;
        case QK_Q8_0: dec_q8_0(W, rb, n, r0, r1, X, xs, nTok, Y, ys); return 0;
        default: break;
        }
    }
    panel_matmul(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
    return 0;
}

#else  // not x86-64: the scalar reference serves.

int qk_avx2_matmul_f32x(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const float *X,
                        int64_t xs, int64_t nTok, float *Y, int64_t ys) {
    return qk_ref_matmul_f32x(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

#endif
