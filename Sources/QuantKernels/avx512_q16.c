// AVX-512 (F+BW+VL) kernels for the q16 decode product qk_matmul_q16, every weight type, with a
// VNNI twin (vpdpwssd instead of vpmaddwd + vpaddd), and a vectorized qk_quantize_q16. Compiled
// per function with target attributes (the rest of the binary stays baseline x86-64); dispatch.c
// picks them at run time.
//
// Tile: 8 weight rows x up to 8 tokens, accumulators in registers. Eight rows share every vector:
// each 32-element block of rows A0..A3 (r..r+3) and B0..B3 (r+4..r+7) is decoded once into eight
// int16 vectors w[k], 128-bit lane i holding four elements of Ai and the same four of Bi. Against
// a token, w[k] meets a 64-bit broadcast of the matching four activations, so eight multiply-adds
// give one int32 vector with all eight rows' block sums ("layout L", two lanes per row:
// [A0 A0 B0 B0 | A1 A1 B1 B1 | A2 .. | A3 ..]), and the int->float conversion, the scale multiply
// (d*dx per row in layout L) and the FMA run once per 8 rows. Per token and 8 row-blocks that is
// 8 multiply-adds (32 MACs each, the floor) + 4 other ops; decoding is paid once for all tokens.
//
// Decoding avoids the shuffle port, which the row gathers already load: 16-byte pieces of four
// rows are inserted into one zmm (lane i = row i), A and B pieces paired by 8 bytes (vpunpck*qdq),
// and words are cut from bytes with shifts and masks (even bytes, odd bytes, low and high
// nibbles). That puts the elements in a fixed order (q16_perm) that differs from the natural one,
// so each call first permutes the activation codes into it (one vpermw per token and block, into
// a 32 KB stack buffer, a k-chunk at a time when a token group's activations do not fit).
// Codes: unsigned codes as they are (Q4_1, Q5_1, Q4_K, Q5_K; min terms through the activation
// block sum s); Q4_0 and Q5_0 also unsigned, their centring -8 / -16 entering the integer sum
// exactly as -8*sum(qx) / -16*sum(qx) (computed with the permutation) in one lane per row; Q8_0
// sign-extended; IQ4_NL / IQ4_XS nibbles through a vpermw table of the 16 levels; Q6_K centred
// bytes as code*256 times its int8 sub-scale*256 with vpmulhw (exactly (q-32)*sc). Float
// sub-block scales: Q4_K/Q5_K d*sc_j and -dmin*m_j, IQ4_XS d*(ls_j-32).
//
// Int32: a lane sums 16 products (two per multiply-add, 8 vectors: 2 chains of 4, or one of 8 in a
// full tile) of |q16| <= 32767 and |weight word| <= 4096 (Q6_K (q-32)*sc), so
// |sum| <= 16*4096*32767 < 2^31; the Q4_0/Q5_0 centring adds at most 16*32*32767.
//
// Weights stream: each row is prefetched 512 bytes ahead into L1, and when rows are shorter than
// a 4 KB page (then several rows share a page, which defeats the hardware's per-page stream
// prefetch) the next row group's contiguous run is also fetched into L2 along the way.
// More than 8 tokens: two passes over each k-chunk of a row group (its weights still in L1 for
// the second). From QK_Q16_GEMM_TOKENS (16) tokens on, the entry points hand the product to the
// GEMM of avx512_q16_gemm.c instead, which puts tokens in the lanes.
#include "qk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "avx512_transpose.h"

#define A512_TARGET "avx512f,avx512bw,avx512vl,avx2,fma,f16c,bmi2"
#define A512_FN __attribute__((target(A512_TARGET)))
#define A512_INLINE static inline __attribute__((always_inline, target(A512_TARGET)))

enum { TT = 8 };            // tokens per register tile
enum { PF_DIST = 512 };     // bytes ahead of each row for the L1 prefetch
enum { XQ_BYTES = 32768 };  // stack buffer of permuted activation codes (one k-chunk, a token group)

A512_INLINE uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
A512_INLINE uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
A512_INLINE uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
A512_INLINE float ldf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

/// The eight row pointers of a tile (rows past the end repeat the last row; their results are dropped).
/// next: the following row group's weights as one contiguous run, to prefetch (or NULL).
typedef struct {
    const uint8_t *p[8];
    const uint8_t *next;
} rowset;

/// 16 bytes at offset off of rows 4h..4h+3 (lane i = row i).
A512_INLINE __m512i gather4(const rowset *rs, int h, size_t off) {
    const uint8_t *const *p = rs->p + 4 * h;
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[0] + off)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p[1] + off)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p[2] + off)), 2);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p[3] + off)), 3);
    return z;
}

/// 16 bytes at off of the eight rows as z[0] = [Ai bytes 0..7 | Bi bytes 0..7] and
/// z[1] = [Ai bytes 8..15 | Bi bytes 8..15] in 128-bit lane i.
A512_INLINE void rows16(const rowset *rs, size_t off, __m512i z[2]) {
    const __m512i a = gather4(rs, 0, off), b = gather4(rs, 1, off);
    z[0] = _mm512_unpacklo_epi64(a, b);
    z[1] = _mm512_unpackhi_epi64(a, b);
}

A512_INLINE __m512i epi16(int v) { return _mm512_set1_epi16((short)v); }
A512_INLINE __m512i epi8(int v) { return _mm512_set1_epi8((char)v); }

// Words from bytes: word w of a lane holds bytes 2w (even) and 2w+1 (odd).
enum { W_U, W_X256, W_S };  // zero-extended, byte*256 (signed), sign-extended
A512_INLINE __m512i w_even(const int m, __m512i e) {
    return m == W_U ? _mm512_and_si512(e, epi16(0x00FF)) : m == W_X256 ? _mm512_slli_epi16(e, 8)
                                                        : _mm512_srai_epi16(_mm512_slli_epi16(e, 8), 8);
}
A512_INLINE __m512i w_odd(const int m, __m512i e) {
    return m == W_U ? _mm512_srli_epi16(e, 8) : m == W_X256 ? _mm512_and_si512(e, epi16(0xFF00)) : _mm512_srai_epi16(e, 8);
}

/// The eight word vectors of a 32-element block from its element bytes e[0] (elements 0..7),
/// e[1] (8..15), e[2] (16..23), e[3] (24..31), each as from rows16. Vector k holds, per row,
/// the elements perm[4k..4k+3] (see q16_perm): even bytes of e[0], odd of e[0], even of e[2], ...
A512_INLINE void words(const int m, const __m512i e[4], __m512i w[8]) {
    w[0] = w_even(m, e[0]); w[1] = w_odd(m, e[0]);
    w[2] = w_even(m, e[2]); w[3] = w_odd(m, e[2]);
    w[4] = w_even(m, e[1]); w[5] = w_odd(m, e[1]);
    w[6] = w_even(m, e[3]); w[7] = w_odd(m, e[3]);
}

/// Zero-extended 4-bit codes as words straight from packed bytes (low / high nibble of the even /
/// odd bytes).
A512_INLINE __m512i nib_even_lo(__m512i z) { return _mm512_and_si512(z, epi16(0x000F)); }
A512_INLINE __m512i nib_odd_lo(__m512i z) { return _mm512_and_si512(_mm512_srli_epi16(z, 8), epi16(0x000F)); }
A512_INLINE __m512i nib_even_hi(__m512i z) { return _mm512_and_si512(_mm512_srli_epi16(z, 4), epi16(0x000F)); }
A512_INLINE __m512i nib_odd_hi(__m512i z) { return _mm512_srli_epi16(z, 12); }

/// words() for 16 bytes of nibble pairs (Q4_0 layout: byte l holds elements l and l+16), from rows16.
A512_INLINE void nib16_words(const __m512i z[2], __m512i w[8]) {
    w[0] = nib_even_lo(z[0]); w[1] = nib_odd_lo(z[0]);
    w[2] = nib_even_hi(z[0]); w[3] = nib_odd_hi(z[0]);
    w[4] = nib_even_lo(z[1]); w[5] = nib_odd_lo(z[1]);
    w[6] = nib_even_hi(z[1]); w[7] = nib_odd_hi(z[1]);
}

/// words() for one nibble (hi or lo) of 32 bytes, byte l holding element l (Q4_K layout), from two rows16.
A512_INLINE void nib32_words(const __m512i z[4], const int hi, __m512i w[8]) {
    static const int src[4] = {0, 2, 1, 3};  // words() takes elements 0..7, 16..23, 8..15, 24..31
    for (int i = 0; i < 4; i++) {
        w[2 * i] = hi ? nib_even_hi(z[src[i]]) : nib_even_lo(z[src[i]]);
        w[2 * i + 1] = hi ? nib_odd_hi(z[src[i]]) : nib_odd_lo(z[src[i]]);
    }
}

/// Layout-L floats from four half-float pairs: lanes [Ai, Ai, Bi, Bi] (dup) or [Ai, 0, Bi, 0]
/// (once) in 128-bit lane i, from the 16-bit field at off of each row, packed in integer registers.
/// (Converting from memory instead would save shuffle-port uops but stalls on store forwarding.)
A512_INLINE __m512 halves_L(const rowset *rs, size_t off, const int once) {
    uint64_t v[4];
    for (int i = 0; i < 4; i++) {
        const uint64_t a = ld16(rs->p[i] + off), b = ld16(rs->p[4 + i] + off);
        v[i] = once ? a | b << 32 : (a | b << 32) * 0x10001u;
    }
    return _mm512_cvtph_ps(_mm256_setr_epi64x((long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3]));
}

/// vpdpwssd without requiring the VNNI target on the caller (the VNNI kernels only run where
/// the CPU has it).
A512_INLINE __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/// c + sum over k of w[k] . broadcast(q[4k..4k+3]): one int32 vector, layout L; c (if corr) is
/// *corr in one lane per row. Two chains of four (the multiply-add latency, not throughput,
/// limits a single chain of eight).
A512_INLINE __m512i dot8(const int vnni, const __m512i w[8], const int16_t *q, const int32_t *corr) {
    __m512i x[8];
    for (int k = 0; k < 8; k++) x[k] = _mm512_set1_epi64((long long)ld64((const uint8_t *)(q + 4 * k)));
    if (vnni) {
        __m512i p = corr ? dpwssd(_mm512_maskz_set1_epi32(0x5555, *corr), w[0], x[0]) : _mm512_madd_epi16(w[0], x[0]);
        __m512i r = _mm512_madd_epi16(w[4], x[4]);
        for (int k = 1; k < 4; k++) {
            p = dpwssd(p, w[k], x[k]);
            r = dpwssd(r, w[k + 4], x[k + 4]);
        }
        return _mm512_add_epi32(p, r);
    }
    __m512i p[8];
    for (int k = 0; k < 8; k++) p[k] = _mm512_madd_epi16(w[k], x[k]);
    if (corr) p[0] = _mm512_add_epi32(p[0], _mm512_maskz_set1_epi32(0x5555, *corr));
    return _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(p[0], p[1]), _mm512_add_epi32(p[2], p[3])),
                            _mm512_add_epi32(_mm512_add_epi32(p[4], p[5]), _mm512_add_epi32(p[6], p[7])));
}

/// The order in which words() lays out a block's elements: activations are permuted to match.
static const int16_t q16_perm_idx[32] = {0,  2,  4,  6,  1,  3,  5,  7,  16, 18, 20, 22, 17, 19, 21, 23,
                                          8,  10, 12, 14, 9,  11, 13, 15, 24, 26, 28, 30, 25, 27, 29, 31};
A512_INLINE __m512i q16_perm(void) { return _mm512_loadu_si512(q16_perm_idx); }

/// Activations of a tile's tokens for one block: xb, the q16 blocks (for dx and s), xs apart; xq,
/// their 32 codes permuted into the weights' order (q16_perm), xqs int16s apart; xc (Q4_0, Q5_0),
/// the offset term -8 or -16 times the sum of the codes, xcs apart.
typedef struct {
    const uint8_t *xb;
    size_t xs;
    const int16_t *xq;
    size_t xqs;
    const int32_t *xc;
    size_t xcs;
} xblock;

/// One decoded block against the tile's tokens: acc[t] += cvt(c_t + w . x_t) * (dv * dx_t) [+ mv * s_t].
A512_INLINE void block_tokens(const int vnni, const int T, const __m512i w[8], __m512 dv, __m512 mv, const int has_min,
                              const int has_corr, xblock a, __m512 acc[TT]) {
    if (T == TT) {
        // A full tile (T a constant here): the eight vectors outside, tokens inside, so the
        // tokens' multiply-add chains interleave (eight independent chains of eight) rather than
        // each token's two chains of four waiting on one another in the scheduler.
        __m512i p[TT];
        for (int t = 0; t < TT; t++)
            p[t] = has_corr ? _mm512_maskz_set1_epi32(0x5555, a.xc[(size_t)t * a.xcs]) : _mm512_setzero_si512();
        for (int k = 0; k < 8; k++)
            for (int t = 0; t < TT; t++) {
                const __m512i x = _mm512_set1_epi64((long long)ld64((const uint8_t *)(a.xq + (size_t)t * a.xqs + 4 * k)));
                p[t] = vnni ? dpwssd(p[t], w[k], x) : _mm512_add_epi32(p[t], _mm512_madd_epi16(w[k], x));
            }
        for (int t = 0; t < TT; t++) {
            const uint8_t *x = a.xb + (size_t)t * a.xs;
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[t]), _mm512_mul_ps(dv, _mm512_set1_ps(ldf(x))), acc[t]);
            if (has_min) acc[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(ldf(x + 4)), acc[t]);
        }
        return;
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < TT; t++) {
        if (t < T) {
            const uint8_t *x = a.xb + (size_t)t * a.xs;
            const __m512i p = dot8(vnni, w, a.xq + (size_t)t * a.xqs, has_corr ? a.xc + (size_t)t * a.xcs : NULL);
            const __m512 dd = _mm512_mul_ps(dv, _mm512_set1_ps(ldf(x)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), dd, acc[t]);
            if (has_min) acc[t] = _mm512_fmadd_ps(mv, _mm512_set1_ps(ldf(x + 4)), acc[t]);
        }
    }
}

/// The activations of block j (relative to a) of a.
A512_INLINE xblock xat(xblock a, int64_t j) {
    a.xb += (size_t)j * sizeof(qk_block_q16);
    a.xq += (size_t)j * 32;
    if (a.xc) a.xc += j;
    return a;
}

/// Each row PF_DIST bytes ahead of offset off, into L1.
A512_INLINE void prefetch_rows(const rowset *rs, size_t off) {
    for (int i = 0; i < 8; i++) _mm_prefetch((const char *)(rs->p[i] + off + PF_DIST), _MM_HINT_T0);
}

/// Bytes [at, at + len) of the next row group's run, into L2 (when there is one).
A512_INLINE void prefetch_next(const rowset *rs, size_t at, size_t len) {
    if (rs->next)
        for (size_t o = 0; o < len; o += 64) _mm_prefetch((const char *)(rs->next + at + o), _MM_HINT_T1);
}

// MARK: - 32-element block types

/// The block size in bytes of a 32-element type.
static inline size_t bytes32(int kind) {
    switch (kind) {
    case QK_Q4_0: case QK_IQ4_NL: return 18;
    case QK_Q4_1: return 20;
    case QK_Q5_0: return 22;
    case QK_Q5_1: return 24;
    default: return 34;  // QK_Q8_0
    }
}

/// Byte masks of the Q5 high bits for the element bytes e[0..3] (as words() takes them) of the
/// eight rows, from their 32-bit qh fields at off: bit b of 128-bit lane i is qh bit b of Ai
/// (b < 8) or of Bi, offset by 8, 16 or 24 for elements 8.., 16.., 24...
A512_INLINE void q5_masks(const rowset *rs, size_t off, __mmask64 k[4]) {
    __m512i q = _mm512_castsi128_si512(_mm_cvtsi32_si128((int)ld32(rs->p[0] + off)));
    for (int r = 1; r < 8; r++) {
        const int lane = r % 4, slot = r / 4;  // dword 0 of lane i: Ai, dword 1: Bi
        q = _mm512_mask_set1_epi32(q, (__mmask16)(1u << (4 * lane + slot)), (int)ld32(rs->p[r] + off));
    }
    const __m512i bits = _mm512_set1_epi64(0x8040201008040201ll);
    for (int e = 0; e < 4; e++) {  // qh byte e holds the bits of elements 8e..8e+7
        const __m512i idx = _mm512_add_epi8(epi8(e), _mm512_broadcast_i32x4(_mm_set_epi64x(0x0404040404040404ll, 0)));
        k[e] = _mm512_test_epi8_mask(_mm512_shuffle_epi8(q, idx), bits);
    }
}

/// Rows [r .. r+8) x T tokens over blocks [b0, b0+nb) of a 32-element type; acc in/out.
A512_INLINE void tile32(const int kind, const int vnni, const rowset *rs0, int64_t b0, int64_t nb, xblock xa, const int T,
                        __m512 acc[TT]) {
    const size_t bs = bytes32(kind);
    const __m512i m4 = epi8(0x0F);
    const __m512i iq4w = _mm512_cvtepi8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qk_iq4nl_values)));
    for (int64_t b = b0; b < b0 + nb; b++) {
        const size_t off = (size_t)b * bs;
        prefetch_rows(rs0, off);
        prefetch_next(rs0, (size_t)(b - b0) * 8 * bs, 8 * bs);
        __m512i w[8];
        __m512 dv, mv = _mm512_setzero_ps();
        if (kind == QK_Q8_0) {
            __m512i e[4];
            rows16(rs0, off + 2, e);
            rows16(rs0, off + 18, e + 2);
            words(W_S, e, w);
        } else if (kind == QK_Q4_0 || kind == QK_Q4_1 || kind == QK_IQ4_NL) {
            __m512i z[2];
            rows16(rs0, off + (kind == QK_Q4_1 ? 4 : 2), z);
            nib16_words(z, w);
            if (kind == QK_IQ4_NL)
                for (int k = 0; k < 8; k++) w[k] = _mm512_permutexvar_epi16(w[k], iq4w);
        } else {
            // Q5_0 / Q5_1: nibbles | high bit << 4 as bytes, then words.
            __m512i z[2], e[4];
            rows16(rs0, off + (kind == QK_Q5_0 ? 6 : 8), z);
            e[0] = _mm512_and_si512(z[0], m4);
            e[1] = _mm512_and_si512(z[1], m4);
            e[2] = _mm512_and_si512(_mm512_srli_epi16(z[0], 4), m4);
            e[3] = _mm512_and_si512(_mm512_srli_epi16(z[1], 4), m4);
            __mmask64 k[4];
            q5_masks(rs0, off + (kind == QK_Q5_0 ? 2 : 4), k);
            for (int i = 0; i < 4; i++) e[i] = _mm512_mask_add_epi8(e[i], k[i], e[i], epi8(0x10));
            words(W_U, e, w);
        }
        dv = halves_L(rs0, off, 0);
        if (kind == QK_Q4_1 || kind == QK_Q5_1) mv = halves_L(rs0, off + 2, 1);
        block_tokens(vnni, T, w, dv, mv, kind == QK_Q4_1 || kind == QK_Q5_1, kind == QK_Q4_0 || kind == QK_Q5_0,
                     xat(xa, b - b0), acc);
    }
}

// MARK: - 256-element super-block types

static inline size_t bytes256(int kind) {
    switch (kind) {
    case QK_Q4_K: return 144;
    case QK_Q5_K: return 176;
    case QK_Q6_K: return 210;
    default: return 136;  // QK_IQ4_XS
    }
}

/// Q4_K/Q5_K 6-bit scales and mins of four rows (16 bytes from the scales field, lane i = row i)
/// to lane bytes [sc0..sc7, m0..m7].
A512_INLINE __m512i kscales(__m512i s) {
    const __m512i ia = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m512i ib = _mm512_broadcast_i32x4(_mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m512i m1 = _mm512_broadcast_i32x4(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    const __m512i m2 = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    const __m512i a = _mm512_shuffle_epi8(s, ia), b = _mm512_shuffle_epi8(s, ib);
    const __m512i p1 = _mm512_and_si512(a, m1);
    const __m512i p2 = _mm512_and_si512(_mm512_srli_epi16(a, 4), m2);
    const __m512i p3 = _mm512_and_si512(_mm512_srli_epi16(b, 2), epi8(0x30));
    return _mm512_or_si512(_mm512_or_si512(p1, p2), p3);
}

/// Word vector for vpmulhw: in lane i, words 0..3 = byte j of A's half, words 4..7 = byte 8+j
/// (B's half), each as byte*256. (Index bytes 0x80+j still have bit 7 set: those stay zero.)
A512_INLINE __m512i scale_words(__m512i sb, int j) {
    const __m512i base = _mm512_broadcast_i32x4(_mm_setr_epi8(-128, 0, -128, 0, -128, 0, -128, 0, -128, 8, -128, 8, -128,
                                                              8, -128, 8));
    return _mm512_shuffle_epi8(sb, _mm512_add_epi8(base, epi8(j)));
}

/// Float vector in layout L from lane bytes: [byte j, j, 8+j, 8+j] (unsigned) or, once per row,
/// [byte j, 0, 8+j, 0].
A512_INLINE __m512 scale_floats(__m512i sb, int j, const int once) {
    const char z = -128;
    const __m512i base = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, z, z, z, once ? z : 0, z, z, z, 8, z, z, z, once ? z : 8, z, z, z));
    return _mm512_cvtepi32_ps(_mm512_shuffle_epi8(sb, _mm512_add_epi8(base, epi8(j))));
}

A512_INLINE void tile256(const int kind, const int vnni, const rowset *rs0, int64_t s0, int64_t ns, xblock xa, const int T,
                         __m512 acc[TT]) {
    const size_t bs = bytes256(kind);
    const __m512i m4 = epi8(0x0F);
    const __m512i iq4w = _mm512_cvtepi8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qk_iq4nl_values)));
    for (int64_t sb = s0; sb < s0 + ns; sb++) {
        const size_t off = (size_t)sb * bs;
        const xblock xsb = xat(xa, (sb - s0) * 8);
        const size_t pf0 = (size_t)(sb - s0) * 8 * bs;  // this super-block's share of the next group's run
        if (kind == QK_Q4_K || kind == QK_Q5_K) {
            // x = d*sc_j*q - dmin*m_j: float scale per sub-block, the min through the block sum s.
            const __m512 dvec = halves_L(rs0, off, 0), ndmin = _mm512_sub_ps(_mm512_setzero_ps(), halves_L(rs0, off + 2, 1));
            const __m512i ra = kscales(gather4(rs0, 0, off + 4)), rb = kscales(gather4(rs0, 1, off + 4));
            const __m512i scb = _mm512_unpacklo_epi64(ra, rb), mb = _mm512_unpackhi_epi64(ra, rb);
            __m512i qh[4];
            if (kind == QK_Q5_K) {
                rows16(rs0, off + 16, qh);
                rows16(rs0, off + 32, qh + 2);
            }
            const size_t qso = kind == QK_Q5_K ? 48 : 16;
            for (int c = 0; c < 4; c++) {
                prefetch_rows(rs0, off + qso + 32 * c);
                // Bytes l = 0..31 of qs[32c..]: low nibble = element l of sub-block 2c, high of 2c+1.
                __m512i z[4];
                rows16(rs0, off + qso + 32 * c, z);
                rows16(rs0, off + qso + 32 * c + 16, z + 2);
                for (int s = 0; s < 2; s++) {
                    const int j = 2 * c + s;
                    prefetch_next(rs0, pf0 + (size_t)j * bs, bs);
                    __m512i w[8];
                    if (kind == QK_Q4_K) {
                        nib32_words(z, s, w);
                    } else {
                        __m512i e[4];
                        for (int i = 0; i < 4; i++) {
                            __m512i v = _mm512_and_si512(s ? _mm512_srli_epi16(z[i], 4) : z[i], m4);
                            const __mmask64 k = _mm512_test_epi8_mask(qh[i], epi8(1 << j));
                            e[i] = _mm512_mask_add_epi8(v, k, v, epi8(0x10));
                        }
                        words(W_U, e, w);
                    }
                    const __m512 dv = _mm512_mul_ps(scale_floats(scb, j, 0), dvec);
                    const __m512 mv = _mm512_mul_ps(scale_floats(mb, j, 1), ndmin);
                    block_tokens(vnni, T, w, dv, mv, 1, 0, xat(xsb, j), acc);
                }
            }
        } else if (kind == QK_Q6_K) {
            // x = d*sc_g*(q-32) per 16 elements: the int8 scales multiply into the codes (vpmulhw).
            const __m512 dvec = halves_L(rs0, off + 208, 0);
            const __m512i sa = gather4(rs0, 0, off + 192), sbv = gather4(rs0, 1, off + 192);
            const __m512i sc[2] = {_mm512_unpacklo_epi64(sa, sbv), _mm512_unpackhi_epi64(sa, sbv)};
            for (int hf = 0; hf < 2; hf++) {
                prefetch_rows(rs0, off + 64 * hf);
                prefetch_rows(rs0, off + 128 + 32 * hf);
                __m512i qh[4];
                rows16(rs0, off + 128 + 32 * hf, qh);
                rows16(rs0, off + 128 + 32 * hf + 16, qh + 2);
                // Blocks c and c+2 share the ql bytes (low / high nibbles); all four share qh.
                for (int c0 = 0; c0 < 2; c0++) {
                    __m512i ql[4];
                    rows16(rs0, off + 64 * hf + 32 * c0, ql);
                    rows16(rs0, off + 64 * hf + 32 * c0 + 16, ql + 2);
                    for (int c = c0; c < 4; c += 2) {
                        const int j = 4 * hf + c;
                        prefetch_next(rs0, pf0 + (size_t)j * bs, bs);
                        __m512i e[4];
                        for (int i = 0; i < 4; i++) {
                            __m512i l = (c & 2) ? _mm512_srli_epi16(ql[i], 4) : ql[i];
                            l = _mm512_and_si512(l, m4);
                            __m512i hb = qh[i];
                            const int sh = 2 * c;  // bits sh, sh+1 -> bits 4, 5
                            hb = sh < 4 ? _mm512_slli_epi16(hb, 4 - sh) : sh > 4 ? _mm512_srli_epi16(hb, sh - 4) : hb;
                            // (l | (hb & 0x30)) - 32: the 6-bit code centred, as a signed byte.
                            e[i] = _mm512_sub_epi8(_mm512_ternarylogic_epi32(l, hb, epi8(0x30), 0xF8), epi8(32));
                        }
                        __m512i w[8];
                        words(W_X256, e, w);
                        // Sub-block scales 2j (elements 0..15: w 0,1,4,5) and 2j+1 (w 2,3,6,7), as int8*256.
                        const __m512i s0v = scale_words(sc[hf], 2 * c), s1v = scale_words(sc[hf], 2 * c + 1);
                        for (int k = 0; k < 8; k++) w[k] = _mm512_mulhi_epi16(w[k], (k & 2) ? s1v : s0v);
                        block_tokens(vnni, T, w, dvec, dvec, 0, 0, xat(xsb, j), acc);
                    }
                }
            }
        } else {  // IQ4_XS: x = d*(ls_j-32)*kvalues[nibble]; float scale per sub-block.
            const __m512 dvec = halves_L(rs0, off, 0), d32 = _mm512_mul_ps(dvec, _mm512_set1_ps(32.0f));
            // ls per sub-block as bytes, lane i = [Ai ls0..7, Bi ls0..7].
            uint64_t ls[8];
            for (int i = 0; i < 8; i++) {
                const uint8_t *p = rs0->p[i] + off;
                ls[i] = _pdep_u64(ld32(p + 4), 0x0F0F0F0F0F0F0F0Full) | _pdep_u64(ld16(p + 2), 0x3030303030303030ull);
            }
            const __m512i lsb = _mm512_set_epi64((long long)ls[7], (long long)ls[3], (long long)ls[6], (long long)ls[2],
                                                 (long long)ls[5], (long long)ls[1], (long long)ls[4], (long long)ls[0]);
            for (int j = 0; j < 8; j++) {
                if ((j & 3) == 0) prefetch_rows(rs0, off + 8 + 16 * j);
                prefetch_next(rs0, pf0 + (size_t)j * bs, bs);
                __m512i z[2], w[8];
                rows16(rs0, off + 8 + 16 * j, z);
                nib16_words(z, w);
                for (int k = 0; k < 8; k++) w[k] = _mm512_permutexvar_epi16(w[k], iq4w);
                // d*(ls-32) rounded once, as the reference's d*(float)(ls-32): ls*d - 32d (32d exact).
                const __m512 dv = _mm512_fmsub_ps(scale_floats(lsb, j, 0), dvec, d32);
                block_tokens(vnni, T, w, dv, dv, 0, 0, xat(xsb, j), acc);
            }
        }
    }
}

// MARK: - Driver

/// Layout-L accumulators of one token to eight row results, stored (or added, for later k-chunks)
/// for rows < nr.
A512_INLINE void store_rows(__m512 acc, float *y, int nr, int add) {
    const __m512 s = _mm512_add_ps(acc, _mm512_permute_ps(acc, 0xB1));
    const __m512 r = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0), s);
    const __mmask8 m = (__mmask8)((1u << nr) - 1);
    __m256 v = _mm512_castps512_ps256(r);
    if (add) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, y));
    _mm256_mask_storeu_ps(y, m, v);
}

A512_INLINE void tile_any(const int kind, const int vnni, const rowset *rs, int64_t k0, int64_t nk, xblock xa, const int T,
                          __m512 acc[TT]) {
    if (kind == QK_Q4_K || kind == QK_Q5_K || kind == QK_Q6_K || kind == QK_IQ4_XS)
        tile256(kind, vnni, rs, k0 / 8, nk / 8, xa, T, acc);
    else
        tile32(kind, vnni, rs, k0, nk, xa, T, acc);
}

/// Rows [r0, r1) x nTok tokens. Tokens go in groups of up to 16; each group's activation codes are
/// permuted (q16_perm) into a stack buffer a k-chunk at a time (the whole row when it fits, as for
/// one or two tokens of a 7B model), and every row group of 8 runs over the chunk: one register
/// pass of up to 8 tokens, or two with the chunk's weights still in L1 for the second.
A512_INLINE void run(const int kind, const int vnni, const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                     const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    _Alignas(64) int16_t xq[XQ_BYTES / 2];
    int32_t xc[XQ_BYTES / 64];
    const int64_t nk = n / QK32;
    const int centre = kind == QK_Q4_0 ? 8 : kind == QK_Q5_0 ? 16 : 0;  // codes enter unsigned; -centre*sum(q) per block
    const __m512i perm = q16_perm();
    for (int64_t t0 = 0; t0 < nTok; t0 += 2 * TT) {
        const int64_t nt = nTok - t0 < 2 * TT ? nTok - t0 : 2 * TT;
        const uint8_t *x = X + (size_t)t0 * xs;
        float *y = Y + t0 * ys;
        int64_t kc = XQ_BYTES / (64 * nt) / 8 * 8;  // blocks per chunk, whole super-blocks
        if (kc > nk) kc = nk;
        for (int64_t k0 = 0; k0 < nk; k0 += kc) {
            const int64_t kn = nk - k0 < kc ? nk - k0 : kc;
            for (int64_t t = 0; t < nt; t++)
                for (int64_t b = 0; b < kn; b++) {
                    const __m512i q = _mm512_loadu_si512(x + (size_t)t * xs + (size_t)(k0 + b) * sizeof(qk_block_q16) + 8);
                    _mm512_store_si512(xq + (size_t)(t * kn + b) * 32, _mm512_permutexvar_epi16(perm, q));
                    if (centre) xc[t * kn + b] = -centre * _mm512_reduce_add_epi32(_mm512_madd_epi16(q, epi16(1)));
                }
            for (int64_t r = r0; r < r1; r += 8) {
                const int nr = r1 - r < 8 ? (int)(r1 - r) : 8;
                rowset rs;
                for (int i = 0; i < 8; i++) rs.p[i] = W + (size_t)(r + (i < nr ? i : nr - 1)) * rb;
                // Rows shorter than a page share pages, which defeats the hardware's per-page stream
                // prefetch: then fetch the next group's run (whole rows only) into L2 along the way.
                rs.next = kn == nk && rb < 4096 && r + 8 < r1 ? W + (size_t)(r + 8) * rb : NULL;
                for (int64_t p0 = 0; p0 < nt; p0 += TT) {
                    const int T = nt - p0 < TT ? (int)(nt - p0) : TT;
                    const xblock xa = {x + (size_t)p0 * xs + (size_t)k0 * sizeof(qk_block_q16), xs, xq + (size_t)(p0 * kn) * 32,
                                       (size_t)kn * 32, centre ? xc + p0 * kn : NULL, (size_t)kn};
                    __m512 acc[TT];
                    for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();
                    if (T == TT) tile_any(kind, vnni, &rs, k0, kn, xa, TT, acc);  // full tiles: a constant T
                    else tile_any(kind, vnni, &rs, k0, kn, xa, T, acc);
                    for (int t = 0; t < T; t++) store_rows(acc[t], y + (p0 + t) * ys + r, nr, k0 > 0);
                }
            }
        }
    }
}

#define Q16_KERNELS(SUFFIX, VNNI)                                                                              \
    static A512_FN void q4_0_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q4_0, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q4_1_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q4_1, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q5_0_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q5_0, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q5_1_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q5_1, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q8_0_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q8_0, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void iq4_nl_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,        \
                                        const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {   \
        run(QK_IQ4_NL, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                            \
    }                                                                                                          \
    static A512_FN void q4_k_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q4_K, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q5_k_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q5_K, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void q6_k_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,          \
                                      const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {     \
        run(QK_Q6_K, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                              \
    }                                                                                                          \
    static A512_FN void iq4_xs_##SUFFIX(const uint8_t *W, size_t rb, int64_t n, int64_t r0, int64_t r1,        \
                                        const uint8_t *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {   \
        run(QK_IQ4_XS, VNNI, W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                            \
    }                                                                                                          \
    static int matmul_##SUFFIX(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,     \
                               const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {                \
        const int pro = qk_q16_prologue(type, n, r0, r1, nTok, Y, ys);                                         \
        if (pro) return pro < 0 ? -1 : 0;                                                                      \
        void (*f)(const uint8_t *, size_t, int64_t, int64_t, int64_t, const uint8_t *, size_t, int64_t, float *, \
                  int64_t);                                                                                    \
        switch (type) {                                                                                        \
        case QK_Q4_0: f = q4_0_##SUFFIX; break;                                                                \
        case QK_Q4_1: f = q4_1_##SUFFIX; break;                                                                \
        case QK_Q5_0: f = q5_0_##SUFFIX; break;                                                                \
        case QK_Q5_1: f = q5_1_##SUFFIX; break;                                                                \
        case QK_Q8_0: f = q8_0_##SUFFIX; break;                                                                \
        case QK_IQ4_NL: f = iq4_nl_##SUFFIX; break;                                                            \
        case QK_Q4_K: f = q4_k_##SUFFIX; break;                                                                \
        case QK_Q5_K: f = q5_k_##SUFFIX; break;                                                                \
        case QK_Q6_K: f = q6_k_##SUFFIX; break;                                                                \
        default: f = iq4_xs_##SUFFIX; break;                                                                   \
        }                                                                                                      \
        f(W, rb, n, r0, r1, X, xs, nTok, Y, ys);                                                               \
        return 0;                                                                                              \
    }

Q16_KERNELS(plain, 0)
Q16_KERNELS(vnni, 1)

// From QK_Q16_GEMM_TOKENS tokens on, the GEMM of avx512_q16_gemm.c (tokens in the lanes) is faster.
int qk_avx512_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const void *X,
                         size_t xs, int64_t nTok, float *Y, int64_t ys) {
    if (nTok >= QK_Q16_GEMM_TOKENS) return qk_avx512_matmul_q16_gemm(0, type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
    return matmul_plain(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

int qk_avx512vnni_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                             const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    if (nTok >= QK_Q16_GEMM_TOKENS) return qk_avx512_matmul_q16_gemm(1, type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
    return matmul_vnni(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

// MARK: - Activation quantization

/// q[j] = x[j]/d rounded half away from zero, clamped to +-32767, exactly as the scalar
/// reference's round_away((double)x / (double)d), for 16 floats. The scalar's double quotient
/// cannot cross a half-integer k+1/2 (x and d have 24-bit significands, so x/d is either exactly
/// k+1/2 or more than 2^-41 relative away from it, far beyond double rounding), so both equal
/// round-half-away of the exact quotient. Here: k0 = floor(|x| * (1/d) + 1/2) in float is within
/// one of it (relative error < 2^-22 at |x/d| <= 32768), and two FMAs decide exactly whether
/// |x| >= (k0 + 1/2)*d or |x| < (k0 - 1/2)*d (k0 +- 1/2 is exact, the FMA rounds the exact
/// difference once, which keeps its sign; d >= 2^-100 keeps it out of the subnormal range).
A512_INLINE __m256i q16_round(__m512 x, __m512 d, __m512 inv) {
    const __m512 a = _mm512_abs_ps(x);
    const __m512 k0 = _mm512_roundscale_ps(_mm512_fmadd_ps(a, inv, _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_fnmadd_ps(_mm512_add_ps(k0, half), d, a), _mm512_setzero_ps(), _CMP_GE_OQ);
    const __mmask16 dn = _mm512_cmp_ps_mask(_mm512_fnmadd_ps(_mm512_sub_ps(k0, half), d, a), _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 k = _mm512_mask_add_ps(k0, up, k0, one);
    k = _mm512_mask_sub_ps(k, dn, k, one);
    k = _mm512_min_ps(k, _mm512_set1_ps(32767.0f));
    __m512i i = _mm512_cvttps_epi32(k);
    i = _mm512_mask_sub_epi32(i, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_si512(), i);
    return _mm512_cvtepi32_epi16(i);
}

/// The scalar reference's rounding for one block, lane by lane in double, including its x86
/// behaviour on NaN and out-of-range quotients (blocks with NaN or infinite values, or tiny d).
A512_INLINE void q16_block_exact(const float *x, float d, int16_t *q) {
    const __m512d dd = _mm512_set1_pd((double)d);
    for (int k = 0; k < 4; k++) {
        const __m512d v = _mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + 8 * k)), dd);
        // (int)v as the scalar's cvttsd2si (NaN -> INT_MIN), then the half-away step on v - (int)v.
        __m256i iv = _mm512_cvttpd_epi32(v);
        const __m512d f = _mm512_sub_pd(v, _mm512_cvtepi32_pd(iv));
        iv = _mm256_mask_add_epi32(iv, _mm512_cmp_pd_mask(f, _mm512_set1_pd(0.5), _CMP_GE_OQ), iv, _mm256_set1_epi32(1));
        iv = _mm256_mask_sub_epi32(iv, _mm512_cmp_pd_mask(f, _mm512_set1_pd(-0.5), _CMP_LE_OQ), iv, _mm256_set1_epi32(1));
        iv = _mm256_max_epi32(_mm256_min_epi32(iv, _mm256_set1_epi32(32767)), _mm256_set1_epi32(-32767));
        _mm_storeu_si128((__m128i *)(q + 8 * k), _mm256_cvtepi32_epi16(iv));
    }
}

/// Bit-identical to qk_ref_quantize_q16. Sixteen blocks at a time, transposed so that lane b
/// holds block b: amax and s then run in the scalar's order (j = 0..31, vmaxps(amax, a) being the
/// scalar's `amax > a ? amax : a`, NaN included), d = amax / 32767 in f32 as the scalar; q per
/// block through q16_round.
A512_FN void qk_avx512_quantize_q16(const float *x, void *dst, int64_t n) {
    uint8_t *y = dst;
    const int64_t nb = n / QK32;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int cnt = nb - b0 < 16 ? (int)(nb - b0) : 16;
        const float *xb = x + b0 * QK32;
        __m512 amax = _mm512_setzero_ps(), s = _mm512_setzero_ps();
        for (int h = 0; h < 2; h++) {
            __m512 r[16];
            __m512i t[16];
            for (int i = 0; i < 16; i++) t[i] = i < cnt ? _mm512_loadu_si512(xb + i * QK32 + 16 * h) : _mm512_setzero_si512();
            qk_transpose16x16(t);
            for (int j = 0; j < 16; j++) r[j] = _mm512_castsi512_ps(t[j]);
            for (int j = 0; j < 16; j++) {
                amax = _mm512_max_ps(amax, _mm512_abs_ps(r[j]));
                s = _mm512_add_ps(s, r[j]);
            }
        }
        const __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(32767.0f));
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), d);
        // The fast rounding needs 2^-100 <= d <= 2^127 and every |x| <= amax: no NaN or infinity in
        // the block (a NaN makes the scalar's running max skip values), which a finite s vouches for.
        const __mmask16 fast = _mm512_cmp_ps_mask(d, _mm512_set1_ps(0x1p-100f), _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(d, _mm512_set1_ps(0x1p+127f), _CMP_LE_OQ) &
                               _mm512_cmp_ps_mask(_mm512_abs_ps(s), _mm512_set1_ps(0x1.fffffep+127f), _CMP_LE_OQ);
        float dv[16], sv[16];
        const __m512 qnan = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000));  // as the scalar: one NaN
        _mm512_storeu_ps(dv, _mm512_mask_mov_ps(d, _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q), qnan));
        _mm512_storeu_ps(sv, _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(s, s, _CMP_UNORD_Q), qnan));
        for (int i = 0; i < cnt; i++) {
            uint8_t *o = y + (size_t)(b0 + i) * sizeof(qk_block_q16);
            memcpy(o, &dv[i], 4);
            memcpy(o + 4, &sv[i], 4);
            const float *xi = xb + i * QK32;
            if (fast >> i & 1) {
                const __m512 di = _mm512_set1_ps(dv[i]), ii = _mm512_permutexvar_ps(_mm512_set1_epi32(i), inv);
                _mm256_storeu_si256((__m256i *)(o + 8), q16_round(_mm512_loadu_ps(xi), di, ii));
                _mm256_storeu_si256((__m256i *)(o + 40), q16_round(_mm512_loadu_ps(xi + 16), di, ii));
            } else if (dv[i] == 0.0f) {
                memset(o + 8, 0, 64);
            } else {
                int16_t q[32];
                q16_block_exact(xi, dv[i], q);
                memcpy(o + 8, q, 64);
            }
        }
    }
}

#else  // not x86-64: never dispatched; the scalar versions stand in.

int qk_avx512_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1, const void *X,
                         size_t xs, int64_t nTok, float *Y, int64_t ys) {
    return qk_ref_matmul_q16(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

int qk_avx512vnni_matmul_q16(uint32_t type, const void *W, size_t rb, int64_t n, int64_t r0, int64_t r1,
                             const void *X, size_t xs, int64_t nTok, float *Y, int64_t ys) {
    return qk_ref_matmul_q16(type, W, rb, n, r0, r1, X, xs, nTok, Y, ys);
}

void qk_avx512_quantize_q16(const float *x, void *dst, int64_t n) { qk_ref_quantize_q16(x, dst, n); }

#endif
