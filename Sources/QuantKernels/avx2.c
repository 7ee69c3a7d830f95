// AVX2 + FMA + F16C kernels, compiled per function (the rest of the binary stays baseline x86-64)
// and chosen at run time by dispatch.c. Each matrix product walks the rows in small tiles and,
// inside a tile, keeps R rows x T tokens of accumulators in registers, so a decoded weight block is
// used T times and an activation block R times. Integer sums are exact; only float rounding order
// differs from the scalar reference.
#include "qk_internal.h"
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AVX2_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE float h2f(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/// Everything a tile needs; rows and tokens are indices relative to W and X.
typedef struct {
    const uint8_t *W;
    size_t rowBytes;
    int64_t n, nb;      // elements and blocks per row
    const uint8_t *X;
    size_t xStride;
    const float *dy;    // token scales as floats, [block][tp] (32-element block types)
    const float *sy;    // Q8_1 s, or d*sum(q) for Q8_0, same layout
    int64_t tp;         // tokens rounded up to 4
    float *Y;
    int64_t yStride;
} tile_ctx;

/// Rows outer, tokens inner: the R weight rows of a tile stay in L1 while the token tiles stream.
/// For one token, R_DEC rows at a time; otherwise R_PRE rows by up to 4 tokens.
#define DRIVE(TILE, c, r0, r1, nTok, R_DEC, R_PRE)                                   \
    do {                                                                             \
        int64_t r_ = (r0);                                                           \
        if ((nTok) == 1) {                                                           \
            for (; r_ + (R_DEC) <= (r1); r_ += (R_DEC)) TILE(c, r_, 0, R_DEC, 1);    \
            for (; r_ < (r1); r_++) TILE(c, r_, 0, 1, 1);                            \
        } else {                                                                     \
            for (; r_ + (R_PRE) <= (r1); r_ += (R_PRE)) DRIVE_TOKENS(TILE, c, r_, nTok, R_PRE); \
            for (; r_ < (r1); r_++) DRIVE_TOKENS(TILE, c, r_, nTok, 1);              \
        }                                                                            \
    } while (0)

#define DRIVE_TOKENS(TILE, c, r, nTok, R)                                            \
    do {                                                                             \
        int64_t t_ = 0;                                                              \
        for (; t_ + 4 <= (nTok); t_ += 4) TILE(c, r, t_, R, 4);                      \
        switch ((nTok) - t_) {                                                       \
        case 3: TILE(c, r, t_, R, 3); break;                                         \
        case 2: TILE(c, r, t_, R, 2); break;                                         \
        case 1: TILE(c, r, t_, R, 1); break;                                         \
        default: break;                                                              \
        }                                                                            \
    } while (0)

// MARK: - Token scales for 32-element blocks

enum { SCALE_STACK_FLOATS = 4096 };

/// Fills dy/sy ([block][tp]) for Q8_0 (sy = d*sum(q)) or Q8_1 (sy = s) activations.
/// Returns the heap buffer to free, or NULL when the stack buffer was used.
AVX2_INLINE float *prepare_token_scales(tile_ctx *c, int64_t nTok, int q8_1, float *stack) {
    c->tp = (nTok + 3) & ~(int64_t)3;
    const size_t count = (size_t)(c->nb * c->tp);
    float *buf = stack, *heap = NULL;
    if (2 * count > SCALE_STACK_FLOATS) {
        heap = malloc(2 * count * sizeof(float));
        buf = heap;
    }
    float *dy = buf, *sy = buf + count;
    memset(buf, 0, 2 * count * sizeof(float));
    const size_t bs = q8_1 ? sizeof(qk_block_q8_1) : sizeof(qk_block_q8_0);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t t = 0; t < nTok; t++) {
        const uint8_t *x = c->X + (size_t)t * c->xStride;
        for (int64_t b = 0; b < c->nb; b++) {
            const uint8_t *blk = x + (size_t)b * bs;
            const float d = h2f(blk);
            dy[b * c->tp + t] = d;
            if (q8_1) {
                sy[b * c->tp + t] = h2f(blk + 2);
            } else {
                // sum of the 32 int8 values: |q| via sign trick is wrong for sums, so use maddubs with 1s.
                const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
                const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
                sy[b * c->tp + t] = d * (float)_mm_cvtsi128_si32(h);
            }
        }
    }
    c->dy = dy;
    c->sy = sy;
    return heap;
}

// MARK: - Q4_0 / Q4_1 (x = d*q + m, q unsigned 4-bit; Q4_0 has m = -8d)

AVX2_INLINE void tile_q4(const tile_ctx *c, int64_t r, int64_t t0, const int R, const int T, const int q4_1) {
    const size_t wbs = q4_1 ? 20 : 18, wqo = q4_1 ? 4 : 2;
    const size_t ybs = q4_1 ? 36 : 34, yqo = q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
    __m128 accm[4];
    for (int i = 0; i < R; i++) {
        accm[i] = _mm_setzero_ps();
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    }
    const uint8_t *w0 = c->W + (size_t)r * c->rowBytes;
    const uint8_t *x0 = c->X + (size_t)t0 * c->xStride;
    for (int64_t b = 0; b < c->nb; b++) {
        const float *dyb = c->dy + b * c->tp + t0;
        const __m128 syv = _mm_loadu_ps(c->sy + b * c->tp + t0);
        for (int i = 0; i < R; i++) {
            const uint8_t *wb = w0 + (size_t)i * c->rowBytes + (size_t)b * wbs;
            const float dx = h2f(wb);
            const float mx = q4_1 ? h2f(wb + 2) : -8.0f * dx;
            accm[i] = _mm_fmadd_ps(_mm_set1_ps(mx), syv, accm[i]);
            const __m128i raw = _mm_loadu_si128((const __m128i *)(wb + wqo));
            const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
            const __m256 dxv = _mm256_set1_ps(dx);
            for (int j = 0; j < T; j++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(x0 + (size_t)j * c->xStride + (size_t)b * ybs + yqo));
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
                const __m256 scale = _mm256_mul_ps(dxv, _mm256_broadcast_ss(dyb + j));
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; i++) {
        float m[4];
        _mm_storeu_ps(m, accm[i]);
        for (int j = 0; j < T; j++) c->Y[(t0 + j) * c->yStride + r + i] = hsum_ps(acc[i][j]) + m[j];
    }
}

/// Per-row sums of four int32x8 vectors: [s0 s1 s2 s3 | s0' s1' s2' s3'] (low / high halves).
AVX2_INLINE __m256i hsum4_epi32(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

AVX2_INLINE uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
AVX2_INLINE uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/// The half-precision field at offset 0 of block b in four rows, as floats in both 128-bit halves.
AVX2_INLINE __m256 four_halves(const uint8_t *w, size_t rowBytes, size_t off) {
    __m128i h = _mm_cvtsi32_si128(load_u16(w + off));
    h = _mm_insert_epi16(h, load_u16(w + rowBytes + off), 1);
    h = _mm_insert_epi16(h, load_u16(w + 2 * rowBytes + off), 2);
    h = _mm_insert_epi16(h, load_u16(w + 3 * rowBytes + off), 3);
    const __m128 f = _mm_cvtph_ps(h);
    return _mm256_set_m128(f, f);
}

/// Decode (one token) over four rows: the four rows' block sums are reduced into one vector before
/// the int->float conversion, so the per-block float work is shared by four rows.
AVX2_INLINE void tile_q4_r4t1(const tile_ctx *c, int64_t r, const int q4_1) {
    const size_t wbs = q4_1 ? 20 : 18, wqo = q4_1 ? 4 : 2;
    const size_t ybs = q4_1 ? 36 : 34, yqo = q4_1 ? 4 : 2;
    const size_t rb = c->rowBytes;
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const __m256i nib_shift = _mm256_setr_epi64x(0, 0, 4, 4);
    const __m256i pick_d = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), pick_m = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * rb;
    // Decode streams weights from memory: ask for the tile 16 rows ahead now, once per cache line
    // (prefetches never fault, so running past the last row is harmless).
    for (size_t off = 0; off < 4 * rb; off += 64) _mm_prefetch((const char *)(w0 + 16 * rb + off), _MM_HINT_T0);
    for (int64_t b = 0; b < c->nb; b++) {
        const uint8_t *wb = w0 + (size_t)b * wbs;
        const __m256i y = _mm256_loadu_si256((const __m256i *)(c->X + (size_t)b * ybs + yqo));
        __m256i p[4];
        for (int i = 0; i < 4; i++) {
            // [16 bytes | same 16 bytes] >> [0 | 4] per 64-bit lane, masked: low nibbles then high.
            const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(wb + (size_t)i * rb + wqo)));
            const __m256i q = _mm256_and_si256(_mm256_srlv_epi64(raw, nib_shift), m4);
            p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
        }
        const __m256 sums = _mm256_cvtepi32_ps(hsum4_epi32(p[0], p[1], p[2], p[3]));
        const __m256 dy = _mm256_broadcast_ss(c->dy + b * c->tp);
        const __m128 sy = _mm_broadcast_ss(c->sy + b * c->tp);
        if (q4_1) {
            __m128i dm = _mm_cvtsi32_si128((int)load_u32(wb));
            dm = _mm_insert_epi32(dm, (int)load_u32(wb + rb), 1);
            dm = _mm_insert_epi32(dm, (int)load_u32(wb + 2 * rb), 2);
            dm = _mm_insert_epi32(dm, (int)load_u32(wb + 3 * rb), 3);
            const __m256 f = _mm256_cvtph_ps(dm);   // d0 m0 d1 m1 d2 m2 d3 m3
            acc = _mm256_fmadd_ps(sums, _mm256_mul_ps(_mm256_permutevar8x32_ps(f, pick_d), dy), acc);
            accm = _mm_fmadd_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(f, pick_m)), sy, accm);
        } else {
            const __m256 d = four_halves(wb, rb, 0);
            acc = _mm256_fmadd_ps(sums, _mm256_mul_ps(d, dy), acc);
            accm = _mm_fmadd_ps(_mm256_castps256_ps128(d), _mm_mul_ps(sy, _mm_set1_ps(-8.0f)), accm);
        }
    }
    const __m128 out = _mm_add_ps(_mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)), accm);
    _mm_storeu_ps(c->Y + r, out);
}

#define TILE_Q4_0(c, r, t, R, T) \
    do { if ((R) == 4 && (T) == 1) tile_q4_r4t1(c, r, 0); else tile_q4(c, r, t, R, T, 0); } while (0)
#define TILE_Q4_1(c, r, t, R, T) \
    do { if ((R) == 4 && (T) == 1) tile_q4_r4t1(c, r, 1); else tile_q4(c, r, t, R, T, 1); } while (0)

#define MM_Q4(name, TILE, q8_1)                                                                          \
    static AVX2_FN void name(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,          \
                             const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {   \
        tile_ctx c = {W, rowBytes, n, n / 32, X, xStride, NULL, NULL, 0, Y, yStride};                    \
        float stack[SCALE_STACK_FLOATS];                                                                 \
        float *heap = prepare_token_scales(&c, nTok, q8_1, stack);                                       \
        if (c.dy == NULL) return;                                                                        \
        DRIVE(TILE, &c, r0, r1, nTok, 4, 2);                                                             \
        free(heap);                                                                                      \
    }
MM_Q4(mm_q4_0, TILE_Q4_0, 0)
MM_Q4(mm_q4_1, TILE_Q4_1, 1)

// MARK: - Q8_0

AVX2_INLINE void tile_q8_0(const tile_ctx *c, int64_t r, int64_t t0, const int R, const int T) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * c->rowBytes;
    const uint8_t *x0 = c->X + (size_t)t0 * c->xStride;
    for (int64_t b = 0; b < c->nb; b++) {
        const float *dyb = c->dy + b * c->tp + t0;
        for (int i = 0; i < R; i++) {
            const uint8_t *wb = w0 + (size_t)i * c->rowBytes + (size_t)b * 34;
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + 2));
            const __m256i aq = _mm256_sign_epi8(q, q);  // |q| (as unsigned, so -128 -> 128)
            const __m256 dxv = _mm256_set1_ps(h2f(wb));
            for (int j = 0; j < T; j++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(x0 + (size_t)j * c->xStride + (size_t)b * 34 + 2));
                // q*y = |q| * (y with q's sign); activations never hold -128, so this cannot overflow.
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q)), ones);
                const __m256 scale = _mm256_mul_ps(dxv, _mm256_broadcast_ss(dyb + j));
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) c->Y[(t0 + j) * c->yStride + r + i] = hsum_ps(acc[i][j]);
}

AVX2_INLINE void tile_q8_0_r4t1(const tile_ctx *c, int64_t r) {
    const size_t rb = c->rowBytes;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * rb;
    // Decode streams weights from memory: ask for the tile 16 rows ahead now, once per cache line
    // (prefetches never fault, so running past the last row is harmless).
    for (size_t off = 0; off < 4 * rb; off += 64) _mm_prefetch((const char *)(w0 + 16 * rb + off), _MM_HINT_T0);
    for (int64_t b = 0; b < c->nb; b++) {
        const uint8_t *wb = w0 + (size_t)b * 34;
        const __m256i y = _mm256_loadu_si256((const __m256i *)(c->X + (size_t)b * 34 + 2));
        __m256i p[4];
        for (int i = 0; i < 4; i++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb + (size_t)i * rb + 2));
            p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)), ones);
        }
        const __m256 sums = _mm256_cvtepi32_ps(hsum4_epi32(p[0], p[1], p[2], p[3]));
        const __m256 scale = _mm256_mul_ps(four_halves(wb, rb, 0), _mm256_broadcast_ss(c->dy + b * c->tp));
        acc = _mm256_fmadd_ps(sums, scale, acc);
    }
    _mm_storeu_ps(c->Y + r, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
}

#define TILE_Q8_0(c, r, t, R, T) \
    do { if ((R) == 4 && (T) == 1) tile_q8_0_r4t1(c, r); else tile_q8_0(c, r, t, R, T); } while (0)

static AVX2_FN void mm_q8_0(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1, const void *X,
                            size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    tile_ctx c = {W, rowBytes, n, n / 32, X, xStride, NULL, NULL, 0, Y, yStride};
    float stack[SCALE_STACK_FLOATS];
    float *heap = prepare_token_scales(&c, nTok, 0, stack);
    if (c.dy == NULL) return;
    DRIVE(TILE_Q8_0, &c, r0, r1, nTok, 4, 2);
    free(heap);
}

// MARK: - F32 / F16 / BF16 weights with f32 activations (plain FMA accumulation)

AVX2_INLINE __m256 load8_w(const uint8_t *p, const int kind) {
    if (kind == QK_F32) return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (kind == QK_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2_INLINE float load1_w(const uint8_t *p, const int kind) {
    if (kind == QK_F32) { float f; memcpy(&f, p, 4); return f; }
    uint16_t h;
    memcpy(&h, p, 2);
    return kind == QK_F16 ? _cvtsh_ss(h) : qk_bf2f(h);
}

AVX2_INLINE void tile_f(const tile_ctx *c, int64_t r, int64_t t0, const int R, const int T, const int kind) {
    const size_t es = kind == QK_F32 ? 4 : 2;
    __m256 acc[8][4];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * c->rowBytes;
    const float *x0 = (const float *)(c->X + (size_t)t0 * c->xStride);
    const size_t xs = c->xStride / 4;
    const int64_t n8 = c->n & ~(int64_t)7;
    for (int64_t k = 0; k < n8; k += 8) {
        __m256 x[4];
        for (int j = 0; j < T; j++) x[j] = _mm256_loadu_ps(x0 + (size_t)j * xs + k);
        for (int i = 0; i < R; i++) {
            const __m256 w = load8_w(w0 + (size_t)i * c->rowBytes + (size_t)k * es, kind);
            for (int j = 0; j < T; j++) acc[i][j] = _mm256_fmadd_ps(w, x[j], acc[i][j]);
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) {
            float s = hsum_ps(acc[i][j]);
            for (int64_t k = n8; k < c->n; k++)
                s = __builtin_fmaf(load1_w(w0 + (size_t)i * c->rowBytes + (size_t)k * es, kind), x0[(size_t)j * xs + k], s);
            c->Y[(t0 + j) * c->yStride + r + i] = s;
        }
}

#define TILE_F32(c, r, t, R, T) tile_f(c, r, t, R, T, QK_F32)
#define TILE_F16(c, r, t, R, T) tile_f(c, r, t, R, T, QK_F16)
#define TILE_BF16(c, r, t, R, T) tile_f(c, r, t, R, T, QK_BF16)

#define MM_F(name, TILE)                                                                                 \
    static AVX2_FN void name(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,          \
                             const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {   \
        const tile_ctx c = {W, rowBytes, n, 0, X, xStride, NULL, NULL, 0, Y, yStride};                   \
        DRIVE(TILE, &c, r0, r1, nTok, 8, 2);                                                             \
    }
MM_F(mm_f32, TILE_F32)
MM_F(mm_f16, TILE_F16)
MM_F(mm_bf16, TILE_BF16)

// MARK: - K-quants against Q8_K activations

/// The 8 scales (bytes 0-7) and 8 mins (bytes 8-15) of a Q4_K/Q5_K super-block, 6 bits each.
AVX2_INLINE __m128i k4_scales_mins(const uint8_t *s) {
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    const uint32_t mins_lo = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = mins_lo;
    u[0] &= k1;
    return _mm_loadu_si128((const __m128i *)u);
}

/// int16 vector [s[2k] x8 | s[2k+1] x8] from 16 int8 scales (Q6_K) via a byte shuffle.
AVX2_INLINE __m256i pair_scale16(__m128i s8, int k) {
    const __m128i idx = _mm_set_epi8(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                     2 * k + 1, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, idx));
}

/// Q4_K (five_bit = 0) and Q5_K (five_bit = 1).
AVX2_INLINE void tile_kmin(const tile_ctx *c, int64_t r, int64_t t0, const int R, const int T, const int five_bit) {
    const size_t wbs = five_bit ? sizeof(qk_block_q5_K) : sizeof(qk_block_q4_K);
    const size_t qso = five_bit ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1 = _mm256_set1_epi8(1);
    const __m128i dup = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    __m256 acc[4][4];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * c->rowBytes;
    const uint8_t *x0 = c->X + (size_t)t0 * c->xStride;
    for (int64_t b = 0; b < c->nb; b++) {
        for (int i = 0; i < R; i++) {
            const uint8_t *wb = w0 + (size_t)i * c->rowBytes + (size_t)b * wbs;
            const __m128i sm = k4_scales_mins(wb + 4);
            // Scales as int16 in both halves, to be broadcast per 32-element group.
            const __m256i sc16 = _mm256_cvtepu8_epi16(sm);   // lanes 0-7 scales, 8-15 mins
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_srli_si128(sm, 8), dup));
            const __m256i hbits = five_bit ? _mm256_loadu_si256((const __m256i *)(wb + 16)) : _mm256_setzero_si256();
            __m256i isum[4], msum[4];
            for (int j = 0; j < T; j++) {
                isum[j] = _mm256_setzero_si256();
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(x0 + (size_t)j * c->xStride + (size_t)b * 292 + 260));
                msum[j] = _mm256_madd_epi16(bs, mins16);
            }
            int16_t sc[16];
            _mm256_storeu_si256((__m256i *)sc, sc16);
            for (int ch = 0; ch < 4; ch++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(wb + qso + 32 * ch));
                __m256i lo = _mm256_and_si256(raw, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                if (five_bit) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * ch), m1), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * ch + 1), m1), 4));
                }
                const __m256i slo = _mm256_set1_epi16(sc[2 * ch]), shi = _mm256_set1_epi16(sc[2 * ch + 1]);
                for (int j = 0; j < T; j++) {
                    const uint8_t *yq = x0 + (size_t)j * c->xStride + (size_t)b * 292 + 4 + 64 * ch;
                    const __m256i ylo = _mm256_loadu_si256((const __m256i *)yq);
                    const __m256i yhi = _mm256_loadu_si256((const __m256i *)(yq + 32));
                    const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), slo);
                    const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), shi);
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(plo, phi));
                }
            }
            const float d = h2f(wb), dmin = h2f(wb + 2);
            for (int j = 0; j < T; j++) {
                float dyv;
                memcpy(&dyv, x0 + (size_t)j * c->xStride + (size_t)b * 292, 4);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * dyv), acc[i][j]);
                acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[j]), _mm256_set1_ps(dmin * dyv), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) c->Y[(t0 + j) * c->yStride + r + i] = hsum_ps(acc[i][j]);
}

AVX2_INLINE void tile_q6_K(const tile_ctx *c, int64_t r, int64_t t0, const int R, const int T) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    __m256 acc[4][4];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    const uint8_t *w0 = c->W + (size_t)r * c->rowBytes;
    const uint8_t *x0 = c->X + (size_t)t0 * c->xStride;
    for (int64_t b = 0; b < c->nb; b++) {
        for (int i = 0; i < R; i++) {
            const uint8_t *wb = w0 + (size_t)i * c->rowBytes + (size_t)b * 210;
            const __m128i s8 = _mm_loadu_si128((const __m128i *)(wb + 192));
            const __m256i s16 = _mm256_cvtepi8_epi16(s8);
            __m256i isum[4];
            for (int j = 0; j < T; j++) {
                // The values are stored as q+32: subtract 32 * sum over groups of scale * sum(y).
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(x0 + (size_t)j * c->xStride + (size_t)b * 292 + 260));
                isum[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(bs, s16), 5));
            }
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(wb + 128 + 32 * h));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
                for (int g = 0; g < 4; g++) {
                    const __m256i sc = pair_scale16(s8, 4 * h + g);
                    for (int j = 0; j < T; j++) {
                        const __m256i y = _mm256_loadu_si256(
                            (const __m256i *)(x0 + (size_t)j * c->xStride + (size_t)b * 292 + 4 + 128 * h + 32 * g));
                        isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], y), sc));
                    }
                }
            }
            const float d = h2f(wb + 208);
            for (int j = 0; j < T; j++) {
                float dyv;
                memcpy(&dyv, x0 + (size_t)j * c->xStride + (size_t)b * 292, 4);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * dyv), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) c->Y[(t0 + j) * c->yStride + r + i] = hsum_ps(acc[i][j]);
}

#define TILE_Q4_K(c, r, t, R, T) tile_kmin(c, r, t, R, T, 0)
#define TILE_Q5_K(c, r, t, R, T) tile_kmin(c, r, t, R, T, 1)
#define TILE_Q6_K(c, r, t, R, T) tile_q6_K(c, r, t, R, T)

#define MM_K(name, TILE)                                                                                 \
    static AVX2_FN void name(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,          \
                             const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {   \
        const tile_ctx c = {W, rowBytes, n, n / 256, X, xStride, NULL, NULL, 0, Y, yStride};             \
        DRIVE(TILE, &c, r0, r1, nTok, 4, 2);                                                             \
    }
MM_K(mm_q4_K, TILE_Q4_K)
MM_K(mm_q5_K, TILE_Q5_K)
MM_K(mm_q6_K, TILE_Q6_K)

// MARK: - f32 helpers

AVX2_FN float qk_avx2_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s = __builtin_fmaf(a[i], b[i], s);
    return s;
}

AVX2_FN void qk_avx2_axpy_f32(float a, const float *x, float *y, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

qk_matmul_fn qk_avx2_matmul_for(uint32_t t) {
    switch (t) {
    case QK_F32: return mm_f32;
    case QK_F16: return mm_f16;
    case QK_BF16: return mm_bf16;
    case QK_Q4_0: return mm_q4_0;
    case QK_Q4_1: return mm_q4_1;
    case QK_Q8_0: return mm_q8_0;
    case QK_Q4_K: return mm_q4_K;
    case QK_Q5_K: return mm_q5_K;
    case QK_Q6_K: return mm_q6_K;
    default: return NULL;
    }
}

#else  // not x86-64: no fast kernels; dispatch.c falls back to the scalar reference.

qk_matmul_fn qk_avx2_matmul_for(uint32_t t) { (void)t; return NULL; }
float qk_avx2_dot_f32(const float *a, const float *b, int64_t n) { return qk_ref_dot_f32(a, b, n); }
void qk_avx2_axpy_f32(float a, const float *x, float *y, int64_t n) { qk_ref_axpy_f32(a, x, y, n); }

#endif
