// The q16 product for prompts (qk_matmul_q16 with many tokens), AVX-512 with VNNI's vpdpwssd (or
// vpmaddwd + vpaddd without it): a blocked GEMM of int16 weight codes by int16 activation codes.
//
// The decode kernels (avx512_q16.c) put rows in the vector lanes and pay the int->float
// conversion and scale once per token and block for eight rows. With a prompt's many tokens the
// lanes hold tokens instead: 16 tokens' activation codes for one pair of elements make one dword
// vector, a row's pair of weight codes is broadcast against it, and one vpdpwssd adds 32 products
// into 16 (row, token) sums. A register tile of 6 rows x 4 vectors (64 tokens) keeps 24 int32
// accumulators; per 32-element block (16 for Q6_K) they are converted and scaled once, with the
// same arithmetic as the reference (q16.c): (weight scale * dx) * isum, plus the min term through
// the exact block sum s. Only the order of the float additions differs.
//
// Per call: tokens go in chunks of 64 and elements in chunks of 4096 (whole super-blocks). Each
// chunk's activation codes are transposed once (16x16 dwords per block and 16 tokens) into a
// scratch buffer of at most 576 KB, which stays in L2 while every 6-row tile of the call's rows
// streams over it. A tile's weight blocks are decoded to int16 codes and float scales, a block (or
// super-block) at a time, into an L1 scratch; decoding is paid once per row and chunk for all the
// chunk's tokens. Results of the first element chunk are stored, later chunks add to them.
#include "qk_internal.h"
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include "avx512_transpose.h"

#define G512_TARGET "avx512f,avx512bw,avx512vl,avx2,fma,f16c,bmi2"
#define G512_FN __attribute__((target(G512_TARGET)))
#define G512_INLINE static inline __attribute__((always_inline, target(G512_TARGET)))

enum { GR = 6 };       // weight rows per register tile
enum { GV = 4 };       // token vectors (of 16) per register tile
enum { GT = 16 * GV }; // tokens per chunk
enum { GKC = 4096 };   // elements per chunk (a multiple of 256)

G512_INLINE uint16_t g_ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
G512_INLINE uint32_t g_ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/// vpdpwssd without requiring the VNNI target on the caller.
G512_INLINE __m512i g_dpwssd(const int vnni, __m512i acc, __m512i a, __m512i b) {
    if (!vnni) return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/// One chunk's activations: for q16 block b, element pair j and token vector v, the dword vector
/// xt[((b*16 + j)*nv + v)*16 ..] holds the codes (2j, 2j+1) of 16 tokens; dx and s likewise
/// [(b*nv + v)*16 ..]. Tokens past the end are zero.
typedef struct {
    int32_t *xt;
    float *dx, *s;
    int nv;
} xchunk;

/// Fills a chunk from nt tokens (rows xs bytes apart) and nb q16 blocks starting at X.
G512_INLINE void fill_chunk(const xchunk *c, const uint8_t *X, size_t xs, int nt, int64_t nb) {
    for (int v = 0; v < c->nv; v++) {
        const int t0 = 16 * v, tn = nt - t0 < 16 ? nt - t0 : 16;
        for (int64_t b = 0; b < nb; b++) {
            __m512i r[16];
            float dx[16], s[16];
            for (int i = 0; i < 16; i++) {
                if (i < tn) {
                    const uint8_t *p = X + (size_t)(t0 + i) * xs + (size_t)b * sizeof(qk_block_q16);
                    memcpy(&dx[i], p, 4);
                    memcpy(&s[i], p + 4, 4);
                    r[i] = _mm512_loadu_si512(p + 8);
                } else {
                    dx[i] = s[i] = 0.0f;
                    r[i] = _mm512_setzero_si512();
                }
            }
            qk_transpose16x16(r);
            int32_t *o = c->xt + (size_t)b * 16 * c->nv * 16 + (size_t)v * 16;
            for (int j = 0; j < 16; j++) _mm512_store_si512(o + (size_t)j * c->nv * 16, r[j]);
            memcpy(c->dx + ((size_t)b * c->nv + v) * 16, dx, sizeof dx);
            memcpy(c->s + ((size_t)b * c->nv + v) * 16, s, sizeof s);
        }
    }
}

// MARK: - Weight decoding

/// A tile's decoded weights for one weight block (32 elements, or a 256-element super-block):
/// q[r] the int16 codes in element order, sw[r][g] the float scale of scale group g (32 elements,
/// 16 for Q6_K), mw[r][g] the min term's factor (Q4_1, Q5_1: m; Q4_K, Q5_K: -dmin*m_j).
typedef struct {
    _Alignas(64) int16_t q[GR][256];
    float sw[GR][16];
    float mw[GR][8];
} wtile;

G512_INLINE float h2f(const uint8_t *p) { return _cvtsh_ss(g_ld16(p)); }

/// 32 bytes of 4-bit pairs as in Q4_0 (byte l: element l low, l + 16 high), zero-extended words.
G512_INLINE __m512i nib16(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(b, m4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
    return _mm512_cvtepu8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

G512_INLINE __m512i iq4_table(void) {
    return _mm512_cvtepi8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qk_iq4nl_values)));
}

/// Decodes weight block `blk` of row p into tile row r.
G512_INLINE void decode(const int kind, const uint8_t *row, int64_t blk, wtile *w, int r) {
    int16_t *q = w->q[r];
    if (kind == QK_Q4_K || kind == QK_Q5_K) {
        const uint8_t *p = row + (size_t)blk * (kind == QK_Q4_K ? 144 : 176);
        const float d = h2f(p), dmin = h2f(p + 2);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            qk_scale_min_k4(j, p + 4, &sc, &m);
            w->sw[r][j] = d * (float)sc;
            w->mw[r][j] = -(dmin * (float)m);
        }
        const uint8_t *qs = p + (kind == QK_Q4_K ? 16 : 48);
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i qh = kind == QK_Q5_K ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            for (int s = 0; s < 2; s++) {
                const int j = 2 * c + s;
                __m512i v = _mm512_cvtepu8_epi16(_mm256_and_si256(s ? _mm256_srli_epi16(b, 4) : b, m4));
                if (kind == QK_Q5_K)
                    v = _mm512_mask_add_epi16(v, _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << j))), v,
                                              _mm512_set1_epi16(16));
                _mm512_store_si512(q + 32 * j, v);
            }
        }
    } else if (kind == QK_Q6_K) {
        const uint8_t *p = row + (size_t)blk * 210;
        const float d = h2f(p + 208);
        for (int g = 0; g < 16; g++) w->sw[r][g] = d * (float)(int8_t)p[192 + g];
        const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
        for (int h = 0; h < 2; h++) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            for (int c = 0; c < 4; c++) {
                const __m256i l = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (c & 1)));
                const __m256i lo = _mm256_and_si256((c & 2) ? _mm256_srli_epi16(l, 4) : l, m4);
                const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), m3), 4);
                const __m512i v = _mm512_sub_epi16(_mm512_cvtepu8_epi16(_mm256_or_si256(lo, hi)), _mm512_set1_epi16(32));
                _mm512_store_si512(q + 128 * h + 32 * c, v);
            }
        }
    } else if (kind == QK_IQ4_XS) {
        const uint8_t *p = row + (size_t)blk * 136;
        const float d = h2f(p);
        const uint16_t sh = g_ld16(p + 2);
        const __m512i tab = iq4_table();
        for (int j = 0; j < 8; j++) {
            const int ls = ((p[4 + j / 2] >> 4 * (j % 2)) & 0xF) | (((sh >> 2 * j) & 3) << 4);
            w->sw[r][j] = d * (float)(ls - 32);
            _mm512_store_si512(q + 32 * j, _mm512_permutexvar_epi16(nib16(p + 8 + 16 * j), tab));
        }
    } else if (kind == QK_Q8_0) {
        const uint8_t *p = row + (size_t)blk * 34;
        w->sw[r][0] = h2f(p);
        _mm512_store_si512(q, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p + 2))));
    } else if (kind == QK_Q4_0 || kind == QK_IQ4_NL) {
        const uint8_t *p = row + (size_t)blk * 18;
        w->sw[r][0] = h2f(p);
        const __m512i v = nib16(p + 2);
        _mm512_store_si512(q, kind == QK_Q4_0 ? _mm512_sub_epi16(v, _mm512_set1_epi16(8))
                                              : _mm512_permutexvar_epi16(v, iq4_table()));
    } else if (kind == QK_Q4_1) {
        const uint8_t *p = row + (size_t)blk * 20;
        w->sw[r][0] = h2f(p);
        w->mw[r][0] = h2f(p + 2);
        _mm512_store_si512(q, nib16(p + 4));
    } else {  // Q5_0, Q5_1: nibbles | bit j of qh << 4
        const int one = kind == QK_Q5_1;
        const uint8_t *p = row + (size_t)blk * (one ? 24 : 22);
        w->sw[r][0] = h2f(p);
        if (one) w->mw[r][0] = h2f(p + 2);
        __m512i v = nib16(p + (one ? 8 : 6));
        v = _mm512_mask_add_epi16(v, (__mmask32)g_ld32(p + (one ? 4 : 2)), v, _mm512_set1_epi16(16));
        _mm512_store_si512(q, one ? v : _mm512_sub_epi16(v, _mm512_set1_epi16(16)));
    }
}

// MARK: - Register tile

/// One scale group: np element pairs starting at pair p0 of the tile's decoded codes (at element
/// offset e0 in them), against the chunk's activations at xt (pair 0 of that group); then
/// acc[r][v] += cvt(isum) * (sw[r] * dx[v]) (+ mw[r] * s[v]).
G512_INLINE void group(const int vnni, const int nv, const int np, const int has_min, const wtile *w, int e0, int g,
                       const int32_t *xt, int xvs, const float *dx, const float *s, __m512 acc[GR][GV]) {
    __m512i ia[GR][GV];
    for (int r = 0; r < GR; r++)
        for (int v = 0; v < GV; v++) ia[r][v] = _mm512_setzero_si512();
    for (int j = 0; j < np; j++) {
        for (int v = 0; v < GV; v++) {
            if (v >= nv) break;
            const __m512i a = _mm512_load_si512(xt + (size_t)j * xvs + 16 * v);
            for (int r = 0; r < GR; r++) {
                int32_t wp;
                memcpy(&wp, w->q[r] + e0 + 2 * j, 4);
                ia[r][v] = g_dpwssd(vnni, ia[r][v], a, _mm512_set1_epi32(wp));
            }
        }
    }
    for (int v = 0; v < GV; v++) {
        if (v >= nv) break;
        const __m512 dxv = _mm512_load_ps(dx + 16 * v);
        const __m512 sv = has_min ? _mm512_load_ps(s + 16 * v) : _mm512_setzero_ps();
        for (int r = 0; r < GR; r++) {
            const __m512 sc = _mm512_mul_ps(_mm512_set1_ps(w->sw[r][g]), dxv);
            acc[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r][v]), sc, acc[r][v]);
            if (has_min) acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(w->mw[r][g]), sv, acc[r][v]);
        }
    }
}

/// Rows p[0..GR) (decoded block by block) times the chunk's tokens over its nb q16 blocks.
G512_INLINE void tile(const int kind, const int vnni, const int nv, const uint8_t *const p[GR], int64_t b0, int64_t nb,
                      const xchunk *c, __m512 acc[GR][GV]) {
    _Alignas(64) wtile w;
    const int big = kind == QK_Q4_K || kind == QK_Q5_K || kind == QK_Q6_K || kind == QK_IQ4_XS;
    const int per = big ? 8 : 1;  // q16 blocks per weight block
    const int has_min = kind == QK_Q4_1 || kind == QK_Q5_1 || kind == QK_Q4_K || kind == QK_Q5_K;
    const int xvs = 16 * c->nv;   // int32s between element pairs in the chunk
    for (int64_t b = 0; b < nb; b += per) {
        for (int r = 0; r < GR; r++) decode(kind, p[r], (b0 + b) / per, &w, r);
        for (int k = 0; k < per; k++) {
            const int32_t *xt = c->xt + (size_t)(b + k) * 16 * xvs;
            const float *dx = c->dx + (size_t)(b + k) * xvs, *s = c->s + (size_t)(b + k) * xvs;
            if (kind == QK_Q6_K) {
                group(vnni, nv, 8, 0, &w, 32 * k, 2 * k, xt, xvs, dx, s, acc);
                group(vnni, nv, 8, 0, &w, 32 * k + 16, 2 * k + 1, xt + 8 * xvs, xvs, dx, s, acc);
            } else {
                group(vnni, nv, 16, has_min, &w, 32 * k, k, xt, xvs, dx, s, acc);
            }
        }
    }
}

// MARK: - Driver

G512_INLINE void run_gemm(const int kind, const int vnni, const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                          const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys, xchunk *c) {
    const int64_t nbAll = n / QK32, kcb = GKC / QK32;
    for (int64_t t0 = 0; t0 < nTok; t0 += GT) {
        const int nt = nTok - t0 < GT ? (int)(nTok - t0) : GT;
        const int nv = (nt + 15) / 16;
        c->nv = nv;
        for (int64_t k0 = 0; k0 < nbAll; k0 += kcb) {
            const int64_t nb = nbAll - k0 < kcb ? nbAll - k0 : kcb;
            fill_chunk(c, X + (size_t)t0 * xs + (size_t)k0 * sizeof(qk_block_q16), xs, nt, nb);
            for (int64_t r = r0; r < r1; r += GR) {
                const int nr = r1 - r < GR ? (int)(r1 - r) : GR;
                const uint8_t *p[GR];
                for (int i = 0; i < GR; i++) p[i] = W + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
                __m512 acc[GR][GV];
                for (int i = 0; i < GR; i++)
                    for (int v = 0; v < GV; v++) acc[i][v] = _mm512_setzero_ps();
                switch (nv) {  // constant token-vector counts, so the tile stays in registers
                case 1: tile(kind, vnni, 1, p, k0, nb, c, acc); break;
                case 2: tile(kind, vnni, 2, p, k0, nb, c, acc); break;
                case 3: tile(kind, vnni, 3, p, k0, nb, c, acc); break;
                default: tile(kind, vnni, 4, p, k0, nb, c, acc); break;
                }
                _Alignas(64) float out[GR][GT];
                for (int i = 0; i < GR; i++)
                    for (int v = 0; v < nv; v++) _mm512_store_ps(out[i] + 16 * v, acc[i][v]);
                for (int t = 0; t < nt; t++) {
                    float *y = Y + (t0 + t) * ys + r;
                    for (int i = 0; i < nr; i++) y[i] = k0 ? y[i] + out[i][t] : out[i][t];
                }
            }
        }
    }
}

#define GEMM_KIND(NAME, KIND)                                                                                  \
    static G512_FN void NAME##_plain(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,           \
                                     const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys, xchunk *c) { \
        run_gemm(KIND, 0, W, rb, n, r0, r1, X, xs, nTok, Y, ys, c);                                            \
    }                                                                                                          \
    static G512_FN void NAME##_vnni(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,            \
                                    const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys, xchunk *c) { \
        run_gemm(KIND, 1, W, rb, n, r0, r1, X, xs, nTok, Y, ys, c);                                            \
    }

GEMM_KIND(q4_0, QK_Q4_0)
GEMM_KIND(q4_1, QK_Q4_1)
GEMM_KIND(q5_0, QK_Q5_0)
GEMM_KIND(q5_1, QK_Q5_1)
GEMM_KIND(q8_0, QK_Q8_0)
GEMM_KIND(iq4_nl, QK_IQ4_NL)
GEMM_KIND(q4_k, QK_Q4_K)
GEMM_KIND(q5_k, QK_Q5_K)
GEMM_KIND(q6_k, QK_Q6_K)
GEMM_KIND(iq4_xs, QK_IQ4_XS)

typedef void (*gemm_fn)(const uint8_t *, size_t, int64_t, int64_t, int64_t, const uint8_t *, size_t, int64_t, float *,
                        int64_t, xchunk *);

int qk_avx512_matmul_q16_gemm(int vnni, uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                              const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    const int pro = qk_q16_prologue(type, n, r0, r1, nTok, Y, ys);
    if (pro) return pro < 0 ? -1 : 0;
    gemm_fn f;
    switch (type) {
    case QK_Q4_0: f = vnni ? q4_0_vnni : q4_0_plain; break;
    case QK_Q4_1: f = vnni ? q4_1_vnni : q4_1_plain; break;
    case QK_Q5_0: f = vnni ? q5_0_vnni : q5_0_plain; break;
    case QK_Q5_1: f = vnni ? q5_1_vnni : q5_1_plain; break;
    case QK_Q8_0: f = vnni ? q8_0_vnni : q8_0_plain; break;
    case QK_IQ4_NL: f = vnni ? iq4_nl_vnni : iq4_nl_plain; break;
    case QK_Q4_K: f = vnni ? q4_k_vnni : q4_k_plain; break;
    case QK_Q5_K: f = vnni ? q5_k_vnni : q5_k_plain; break;
    case QK_Q6_K: f = vnni ? q6_k_vnni : q6_k_plain; break;
    default: f = vnni ? iq4_xs_vnni : iq4_xs_plain; break;
    }
    // The chunk's transposed activations: per q16 block 16 pairs x 4 vectors x 16 dwords, plus dx, s.
    const int64_t nb = n / QK32 < GKC / QK32 ? n / QK32 : GKC / QK32;
    const size_t xtBytes = (size_t)nb * 16 * GT * 4, fBytes = (size_t)nb * GT * 4;
    uint8_t *buf = aligned_alloc(64, xtBytes + 2 * fBytes);
    if (!buf) return -1;
    xchunk c = {(int32_t *)buf, (float *)(buf + xtBytes), (float *)(buf + xtBytes + fBytes), 0};
    f(W, rb, n, r0, r1, X, xs, nTok, Y, ys, &c);
    free(buf);
    return 0;
}

#else

int qk_avx512_matmul_q16_gemm(int vnni, uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                              const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    (void)vnni;
    return qk_ref_matmul_q16(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

#endif
