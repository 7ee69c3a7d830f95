// Quantized weights times activations in 16-bit fixed point (qk_matmul_q16): the format, the
// scalar reference for every weight type it takes, and AVX2 decode kernels for Q4_0, Q4_1 and Q8_0
// (other types fall back to the reference on AVX2-only machines; avx512_q16.c has them all) that
// multiply int16 weights by int16 activations with vpmaddwd and touch floats once per 32-element block.
//
// Per 32-element block b of one row and token (16-element sub-block for Q6_K): isum = sum_j qw[j] * qx[j]
// exact in int32, then y += (weight scale * dx) * isum, plus a min term through the block's exact f32
// activation sum s where the weight type has one (Q4_1, Q5_1: + m * s; Q4_K, Q5_K: - dmin*m_j * s),
// so that term carries no activation-rounding error. Signed codes enter the integer sum centred:
// Q4_0 as q - 8, Q5_0 as q - 16, Q6_K as q - 32 (the rounding error then scales with |w|, not |q|).
#include "QuantKernels.h"
#include "qk_internal.h"

size_t qk_q16_row_bytes(int64_t n) { return n < 0 ? 0 : (size_t)(n / QK32) * sizeof(qk_block_q16); }

static inline int q16_round_away(double v) {
    int i = (int)v;
    const double frac = v - (double)i;
    if (frac >= 0.5) i++;
    else if (frac <= -0.5) i--;
    return i < -32767 ? -32767 : i > 32767 ? 32767 : i;
}

void qk_ref_quantize_q16(const float *x, void *dst, int64_t n) {
    qk_block_q16 *y = dst;
    for (int64_t i = 0; i < n / QK32; i++, x += 32) {
        float amax = 0.0f, s = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float a = __builtin_fabsf(x[j]);
            amax = amax > a ? amax : a;
            s += x[j];
        }
        const float d = amax / 32767.0f;
        qk_block_q16 b;
        // NaN (from NaN inputs) stored as the one quiet NaN 0x7FC00000: which payload an f32 sum
        // or max of NaNs keeps depends on operand order, which compilers may swap.
        b.d = d == d ? d : qk_u2f(0x7FC00000u);
        b.s = s == s ? s : qk_u2f(0x7FC00000u);
        // x/d in double (not x * (1/d) in f32) keeps every element within d/2 of d*q, up to 2^-30 d.
        for (int j = 0; j < 32; j++) b.q[j] = (int16_t)(d != 0.0f ? q16_round_away((double)x[j] / (double)d) : 0);
        memcpy(&y[i], &b, sizeof b);
    }
}

int qk_q16_supports(uint32_t t) {
    switch (t) {
    case QK_Q4_0: case QK_Q4_1: case QK_Q5_0: case QK_Q5_1: case QK_Q8_0: case QK_IQ4_NL:
    case QK_Q4_K: case QK_Q5_K: case QK_Q6_K: case QK_IQ4_XS: return 1;
    default: return 0;
    }
}

/// Elements per weight block: 256 for the K-quants and IQ4_XS, 32 for the rest, 0 if unsupported.
static int64_t q16_block_elems(uint32_t t) {
    if (!qk_q16_supports(t)) return 0;
    return t == QK_Q4_K || t == QK_Q5_K || t == QK_Q6_K || t == QK_IQ4_XS ? QKK : QK32;
}

int qk_q16_prologue(uint32_t t, int64_t n, int64_t r0, int64_t r1, int64_t nTok, float *Y, int64_t ys) {
    const int64_t be = q16_block_elems(t);
    if (!be || n < 0 || n % be) return -1;
    if (r1 <= r0 || nTok <= 0) return 1;
    if (n == 0) {
        for (int64_t tk = 0; tk < nTok; tk++)
            for (int64_t r = r0; r < r1; r++) Y[tk * ys + r] = 0.0f;
        return 1;
    }
    return 0;
}

// MARK: - Scalar reference

// One row against one token, nb 32-element activation blocks. Every integer sum below has at most
// 32 terms of |weight int| <= 128 times |q| <= 32767, so |isum| < 2^7 * 2^15 * 2^5 = 2^27: no int32
// overflow. Float arithmetic is sequential, one (scale * dx) * isum (+ offset * s) per (sub-)block.

/// The 32 values of a 32-element block with 4-bit codes: element j in the low nibble of qs[j],
/// element j + 16 in the high nibble (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and IQ4_XS sub-blocks).
static inline void nibbles32(const uint8_t qs[16], int q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = qs[j] & 0xF;
        q[j + 16] = qs[j] >> 4;
    }
}

static inline int32_t isum32(const int q[32], const int16_t *x) {
    int32_t s = 0;
    for (int j = 0; j < 32; j++) s += q[j] * x[j];
    return s;
}

static float q16_dot_ref(uint32_t type, const uint8_t *row, const qk_block_q16 *x, int64_t nb) {
    float acc = 0.0f;
    int q[32];
    if (type == QK_Q4_K || type == QK_Q5_K || type == QK_Q6_K || type == QK_IQ4_XS) {
        for (int64_t i = 0; i < nb / 8; i++) {
            const qk_block_q16 *xb = x + 8 * i;
            if (type == QK_Q4_K || type == QK_Q5_K) {
                // x = d*sc_j*q - dmin*m_j per 32-element sub-block j; q = low nibbles of qs[32c..32c+31]
                // for j = 2c, high nibbles for j = 2c+1 (+16 from bit j of qh[l] for Q5_K).
                qk_block_q5_K w5;
                qk_block_q4_K w4;
                const uint8_t *scales, *qs, *qh = NULL;
                float d, dmin;
                if (type == QK_Q5_K) {
                    memcpy(&w5, row + (size_t)i * sizeof w5, sizeof w5);
                    d = qk_h2f(w5.d), dmin = qk_h2f(w5.dmin), scales = w5.scales, qs = w5.qs, qh = w5.qh;
                } else {
                    memcpy(&w4, row + (size_t)i * sizeof w4, sizeof w4);
                    d = qk_h2f(w4.d), dmin = qk_h2f(w4.dmin), scales = w4.scales, qs = w4.qs;
                }
                for (int j = 0; j < 8; j++) {
                    uint8_t sc, m;
                    qk_scale_min_k4(j, scales, &sc, &m);
                    for (int l = 0; l < 32; l++) {
                        q[l] = (j & 1) ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 0xF;
                        if (qh) q[l] |= ((qh[l] >> j) & 1) << 4;
                    }
                    const float ds = d * (float)sc, dm = dmin * (float)m;
                    acc += (ds * xb[j].d) * (float)isum32(q, xb[j].q);
                    acc -= dm * xb[j].s;
                }
            } else if (type == QK_Q6_K) {
                // x = d*scales[g]*(q-32) per 16-element sub-block g; see ref.c's unpack_q6_K.
                qk_block_q6_K w;
                memcpy(&w, row + (size_t)i * sizeof w, sizeof w);
                const float d = qk_h2f(w.d);
                for (int j = 0; j < 8; j++) {
                    const int h = j / 4, c = j % 4;  // 128-element half, 32-element quarter within it
                    const uint8_t *ql = w.ql + 64 * h + 32 * (c & 1), *qh = w.qh + 32 * h;
                    for (int l = 0; l < 32; l++)
                        q[l] = (((c & 2) ? ql[l] >> 4 : ql[l] & 0xF) | (((qh[l] >> (2 * c)) & 3) << 4)) - 32;
                    for (int g = 0; g < 2; g++) {
                        int32_t s = 0;
                        for (int l = 16 * g; l < 16 * g + 16; l++) s += q[l] * xb[j].q[l];
                        acc += (d * (float)w.scales[2 * j + g] * xb[j].d) * (float)s;
                    }
                }
            } else {
                // IQ4_XS: x = d*(ls_j-32)*kvalues[nibble] per 32-element sub-block j.
                qk_block_iq4_xs w;
                memcpy(&w, row + (size_t)i * sizeof w, sizeof w);
                const float d = qk_h2f(w.d);
                for (int j = 0; j < 8; j++) {
                    const int ls = ((w.scales_l[j / 2] >> 4 * (j % 2)) & 0xF) | (((w.scales_h >> 2 * j) & 3) << 4);
                    nibbles32(w.qs + 16 * j, q);
                    for (int l = 0; l < 32; l++) q[l] = qk_iq4nl_values[q[l]];
                    acc += (d * (float)(ls - 32) * xb[j].d) * (float)isum32(q, xb[j].q);
                }
            }
        }
        return acc;
    }
    for (int64_t b = 0; b < nb; b++) {
        float dw, mw = 0.0f;
        switch (type) {
        case QK_Q8_0: {
            qk_block_q8_0 w;
            memcpy(&w, row + (size_t)b * sizeof w, sizeof w);
            dw = qk_h2f(w.d);
            for (int j = 0; j < 32; j++) q[j] = w.qs[j];
            break;
        }
        case QK_Q4_0: case QK_IQ4_NL: {  // same layout: d, 16 bytes of nibbles
            qk_block_q4_0 w;
            memcpy(&w, row + (size_t)b * sizeof w, sizeof w);
            dw = qk_h2f(w.d);
            nibbles32(w.qs, q);
            for (int j = 0; j < 32; j++) q[j] = type == QK_Q4_0 ? q[j] - 8 : qk_iq4nl_values[q[j]];
            break;
        }
        case QK_Q4_1: {
            qk_block_q4_1 w;
            memcpy(&w, row + (size_t)b * sizeof w, sizeof w);
            dw = qk_h2f(w.d);
            mw = qk_h2f(w.m);
            nibbles32(w.qs, q);
            break;
        }
        case QK_Q5_0: {
            qk_block_q5_0 w;
            memcpy(&w, row + (size_t)b * sizeof w, sizeof w);
            uint32_t qh;
            memcpy(&qh, w.qh, 4);
            dw = qk_h2f(w.d);
            nibbles32(w.qs, q);
            for (int j = 0; j < 32; j++) q[j] = (q[j] | (int)((qh >> j) & 1) << 4) - 16;
            break;
        }
        default: {  // QK_Q5_1
            qk_block_q5_1 w;
            memcpy(&w, row + (size_t)b * sizeof w, sizeof w);
            uint32_t qh;
            memcpy(&qh, w.qh, 4);
            dw = qk_h2f(w.d);
            mw = qk_h2f(w.m);
            nibbles32(w.qs, q);
            for (int j = 0; j < 32; j++) q[j] |= (int)((qh >> j) & 1) << 4;
            break;
        }
        }
        acc += (dw * x[b].d) * (float)isum32(q, x[b].q);
        if (type == QK_Q4_1 || type == QK_Q5_1) acc += mw * x[b].s;
    }
    return acc;
}

int qk_ref_matmul_q16(uint32_t type, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                      const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    const int pro = qk_q16_prologue(type, n, r0, r1, nTok, Y, yStride);
    if (pro) return pro < 0 ? -1 : 0;
    for (int64_t tk = 0; tk < nTok; tk++) {
        const qk_block_q16 *x = (const qk_block_q16 *)((const uint8_t *)X + (size_t)tk * xStride);
        for (int64_t r = r0; r < r1; r++)
            Y[tk * yStride + r] = q16_dot_ref(type, (const uint8_t *)W + (size_t)r * rowBytes, x, n / QK32);
    }
    return 0;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX2_INLINE uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
AVX2_INLINE uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

AVX2_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// vbroadcastss from memory, kept as such (the shuffle ports are the bottleneck here).
AVX2_INLINE void bcast_mem(__m256 *v, const float *p) { __asm__("vbroadcastss %1, %0" : "=x"(*v) : "m"(*p)); }

/// R rows (1 or 4) from w0 against T tokens (1..3) of q16 activations, all nb blocks.
AVX2_INLINE void q16_tile(const uint8_t *w0, size_t rb, int64_t nb, const uint8_t *X, size_t xs, float *Y,
                          int64_t ys, const int R, const int T, const int kind) {
    const size_t bs = kind == QK_Q4_1 ? 20 : kind == QK_Q4_0 ? 18 : 34;
    const size_t qo = kind == QK_Q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi16(15), c8 = _mm256_set1_epi16(8);
    __m256 acc[3][4];
    __m256 accm8[3];  // R == 4, Q4_1: lanes 4..7 hold the rows' sum of mw * sx
    float accm1[3];
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < R; i++) acc[t][i] = _mm256_setzero_ps();
        accm8[t] = _mm256_setzero_ps();
        accm1[t] = 0.0f;
    }
    if (R == 4)
        for (size_t off = 0; off < 4 * rb; off += 64) _mm_prefetch((const char *)(w0 + 16 * rb + off), _MM_HINT_T0);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *wb = w0 + (size_t)b * bs;
        const qk_block_q16 *xb[3];
        for (int t = 0; t < T; t++) xb[t] = (const qk_block_q16 *)(X + (size_t)t * xs) + b;
        _Alignas(16) float dd4[3][4];  // R == 4: the four rows' dw * dx, per token (broadcast from memory)
        float dd1[3];   // R == 1
        if (R == 4) {
            // The four rows' scales packed in integer registers (the vector shuffle ports are the
            // bottleneck), converted at once: [d0 d1 d2 d3 m0 m1 m2 m3] (Q4_1) or [d0 d1 d2 d3 ...].
            __m256 dm;
            if (kind == QK_Q4_1) {
                const uint64_t a = ld32(wb), b1 = ld32(wb + rb), c = ld32(wb + 2 * rb), e = ld32(wb + 3 * rb);
                const uint64_t dp = (a & 0xFFFF) | (b1 & 0xFFFF) << 16 | (c & 0xFFFF) << 32 | (e & 0xFFFF) << 48;
                const uint64_t mp = (a >> 16) | (b1 >> 16) << 16 | (c >> 16) << 32 | (e >> 16) << 48;
                dm = _mm256_cvtph_ps(_mm_set_epi64x((long long)mp, (long long)dp));
            } else {
                const uint64_t dp = (uint64_t)ld16(wb) | (uint64_t)ld16(wb + rb) << 16 | (uint64_t)ld16(wb + 2 * rb) << 32 |
                                    (uint64_t)ld16(wb + 3 * rb) << 48;
                dm = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)dp)));
            }
            for (int t = 0; t < T; t++) {
                _mm_store_ps(dd4[t], _mm256_castps256_ps128(_mm256_mul_ps(dm, _mm256_broadcast_ss(&xb[t]->d))));
                if (kind == QK_Q4_1) accm8[t] = _mm256_fmadd_ps(dm, _mm256_broadcast_ss(&xb[t]->s), accm8[t]);
            }
        } else {
            const float dw = _cvtsh_ss(ld16(wb));
            for (int t = 0; t < T; t++) {
                dd1[t] = dw * xb[t]->d;
                if (kind == QK_Q4_1) accm1[t] = __builtin_fmaf(_cvtsh_ss(ld16(wb + 2)), xb[t]->s, accm1[t]);
            }
        }
        for (int i = 0; i < R; i++) {
            const uint8_t *w = wb + (size_t)i * rb;
            __m256i lo, hi;
            if (kind == QK_Q8_0) {
                lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 2)));
                hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 18)));
            } else {
                __m256i z = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(w + qo)));
                // Keeps one vpmovzxbw per row (the compiler would otherwise mask and widen each half).
                __asm__("" : "+x"(z));
                lo = _mm256_and_si256(z, m4);    // elements 0..15: low nibbles
                hi = _mm256_srli_epi16(z, 4);    // elements 16..31: high nibbles
                if (kind == QK_Q4_0) {
                    lo = _mm256_sub_epi16(lo, c8);
                    hi = _mm256_sub_epi16(hi, c8);
                }
            }
            for (int t = 0; t < T; t++) {
                const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)xb[t]->q)),
                                                   _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb[t]->q + 16))));
                __m256 s;
                if (R == 4) bcast_mem(&s, &dd4[t][i]);  // a load-port broadcast, not a shuffle
                else s = _mm256_set1_ps(dd1[t]);
                acc[t][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[t][i]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        if (R == 4) {
            __m128 s = hsum4_ps(acc[t][0], acc[t][1], acc[t][2], acc[t][3]);
            if (kind == QK_Q4_1) s = _mm_add_ps(s, _mm256_extractf128_ps(accm8[t], 1));
            _mm_storeu_ps(Y + t * ys, s);
        } else {
            Y[t * ys] = hsum_ps(acc[t][0]) + accm1[t];
        }
    }
}

#define Q16_RUN(KIND, NAME)                                                                                 \
    static AVX2_FN void NAME(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const uint8_t *X, \
                             size_t xs, int64_t nTok, float *Y, int64_t ys) {                               \
        const int64_t nb = n / QK32;                                                                        \
        for (int64_t t0 = 0; t0 < nTok; t0 += 3) {                                                          \
            const int64_t T = nTok - t0 < 3 ? nTok - t0 : 3;                                                \
            const uint8_t *x = X + (size_t)t0 * xs;                                                         \
            float *y = Y + t0 * ys;                                                                         \
            int64_t r = r0;                                                                                 \
            for (; r + 4 <= r1; r += 4) {                                                                   \
                const uint8_t *w = W + (size_t)r * rb;                                                      \
                if (T == 1) q16_tile(w, rb, nb, x, xs, y + r, ys, 4, 1, KIND);                              \
                else if (T == 2) q16_tile(w, rb, nb, x, xs, y + r, ys, 4, 2, KIND);                         \
                else q16_tile(w, rb, nb, x, xs, y + r, ys, 4, 3, KIND);                                     \
            }                                                                                               \
            for (; r < r1; r++) {                                                                           \
                const uint8_t *w = W + (size_t)r * rb;                                                      \
                if (T == 1) q16_tile(w, rb, nb, x, xs, y + r, ys, 1, 1, KIND);                              \
                else if (T == 2) q16_tile(w, rb, nb, x, xs, y + r, ys, 1, 2, KIND);                         \
                else q16_tile(w, rb, nb, x, xs, y + r, ys, 1, 3, KIND);                                     \
            }                                                                                               \
        }                                                                                                   \
    }
Q16_RUN(QK_Q4_0, q16_q4_0)
Q16_RUN(QK_Q4_1, q16_q4_1)
Q16_RUN(QK_Q8_0, q16_q8_0)

AVX2_FN int qk_avx2_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                               const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    if (type != QK_Q4_0 && type != QK_Q4_1 && type != QK_Q8_0)
        return qk_ref_matmul_q16(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
    const int pro = qk_q16_prologue(type, n, r0, r1, nTok, Y, ys);
    if (pro) return pro < 0 ? -1 : 0;
    switch (type) {
    case QK_Q4_0: q16_q4_0(W, rb, n, r0, r1, X, xs, nTok, Y, ys); break;
    case QK_Q4_1: q16_q4_1(W, rb, n, r0, r1, X, xs, nTok, Y, ys); break;
    default: q16_q8_0(W, rb, n, r0, r1, X, xs, nTok, Y, ys); break;
    }
    return 0;
}

#else  // not x86-64: the scalar reference serves.

int qk_avx2_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const void *X,
                       size_t xs, int64_t nTok, float *Y, int64_t ys) {
    return qk_ref_matmul_q16(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

#endif
