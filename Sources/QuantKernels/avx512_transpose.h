// A 16 x 16 transpose of dwords in AVX-512 registers, shared by the q16 kernels (activation
// quantization transposes floats, the GEMM transposes int16 pairs). Included only by x86-64
// AVX-512 files; compiled with its own target so the including function's target may be wider.
#ifndef QK_AVX512_TRANSPOSE_H
#define QK_AVX512_TRANSPOSE_H
#include <immintrin.h>

/// r[i] = 16 dwords of row i; on return r[j] = dword j of the 16 rows (64 shuffles).
static inline __attribute__((always_inline, target("avx512f"))) void qk_transpose16x16(__m512i r[16]) {
    __m512i a[16], b[16];
    for (int k = 0; k < 8; k++) {
        a[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 4; m++) {
        b[4 * m] = _mm512_unpacklo_epi64(a[4 * m], a[4 * m + 2]);
        b[4 * m + 1] = _mm512_unpackhi_epi64(a[4 * m], a[4 * m + 2]);
        b[4 * m + 2] = _mm512_unpacklo_epi64(a[4 * m + 1], a[4 * m + 3]);
        b[4 * m + 3] = _mm512_unpackhi_epi64(a[4 * m + 1], a[4 * m + 3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i c1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44), c2 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);
        const __m512i c3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44), c4 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(c1, c3, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(c2, c4, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(c2, c4, 0xDD);
    }
}

#endif
