// Block layouts (ggml's, byte for byte), half-precision conversions and the internal kernel table.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    QK_F32 = 0, QK_F16 = 1, QK_Q4_0 = 2, QK_Q4_1 = 3, QK_Q5_0 = 6, QK_Q5_1 = 7, QK_Q8_0 = 8, QK_Q8_1 = 9,
    QK_Q4_K = 12, QK_Q5_K = 13, QK_Q6_K = 14, QK_Q8_K = 15, QK_IQ4_NL = 20, QK_IQ4_XS = 23, QK_BF16 = 30,
};

#define QK32 32
#define QKK 256

typedef struct { uint16_t d; uint8_t qs[16]; } qk_block_q4_0;              // x = d*(q-8)
typedef struct { uint16_t d, m; uint8_t qs[16]; } qk_block_q4_1;           // x = d*q + m
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } qk_block_q5_0;  // x = d*(q-16), q = nibble | bit<<4
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } qk_block_q5_1; // x = d*q + m
typedef struct { uint16_t d; int8_t qs[32]; } qk_block_q8_0;               // x = d*q
typedef struct { uint16_t d; uint8_t qs[16]; } qk_block_iq4_nl;            // x = d*qk_iq4nl_values[nibble]
typedef struct { uint16_t d, s; int8_t qs[32]; } qk_block_q8_1;            // s = fp16(d*sum(q))
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } qk_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } qk_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } qk_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } qk_block_q8_K;
// x = d*(ls-32)*qk_iq4nl_values[nibble] per 32-element sub-block ib, ls the 6-bit scale: low four
// bits from scales_l[ib/2] >> 4*(ib%2), high two from scales_h >> 2*ib.
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } qk_block_iq4_xs;

/// The sixteen non-uniform levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
static const int8_t qk_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

_Static_assert(sizeof(qk_block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(qk_block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(qk_block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(qk_block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(qk_block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(qk_block_iq4_nl) == 18, "iq4_nl");
_Static_assert(sizeof(qk_block_iq4_xs) == 136, "iq4_xs");
_Static_assert(sizeof(qk_block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(qk_block_q4_K) == 144, "q4_K");
_Static_assert(sizeof(qk_block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(qk_block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(qk_block_q8_K) == 292, "q8_K");

static inline uint32_t qk_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qk_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// IEEE half -> float, exact (subnormals included), without F16C.
static inline float qk_h2f(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    // Normal numbers: move exponent and mantissa into place, then rebias by multiplying.
    const float normalized = qk_u2f((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    // Subnormals: build 0.5 + m*2^-24 with the mantissa as low bits, then subtract 0.5.
    const float denormalized = qk_u2f((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t bits = two_w < (1u << 27) ? qk_f2u(denormalized) : qk_f2u(normalized);
    return qk_u2f(sign | bits);
}

/// float -> IEEE half, round to nearest even (as F16C and ggml's scalar conversion).
static inline uint16_t qk_f2h(float f) {
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = qk_f2u(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = qk_u2f((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = qk_f2u(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float qk_bf2f(uint16_t h) { return qk_u2f((uint32_t)h << 16); }

/// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
static inline void qk_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/// Elements per block of a weight type the products take (1 for F32/F16/BF16), or 0 for any
/// other type.
static inline int64_t qk_weight_block_elements(uint32_t t) {
    switch (t) {
    case QK_F32: case QK_F16: case QK_BF16: return 1;
    case QK_Q4_0: case QK_Q4_1: case QK_Q5_0: case QK_Q5_1: case QK_Q8_0: case QK_IQ4_NL: return QK32;
    case QK_Q4_K: case QK_Q5_K: case QK_Q6_K: case QK_IQ4_XS: return QKK;
    default: return 0;
    }
}

/// Bytes per block of those types (0 for any other).
static inline size_t qk_weight_block_bytes(uint32_t t) {
    switch (t) {
    case QK_F32: return 4;
    case QK_F16: case QK_BF16: return 2;
    case QK_Q4_0: return sizeof(qk_block_q4_0);
    case QK_Q4_1: return sizeof(qk_block_q4_1);
    case QK_Q5_0: return sizeof(qk_block_q5_0);
    case QK_Q5_1: return sizeof(qk_block_q5_1);
    case QK_Q8_0: return sizeof(qk_block_q8_0);
    case QK_IQ4_NL: return sizeof(qk_block_iq4_nl);
    case QK_Q4_K: return sizeof(qk_block_q4_K);
    case QK_Q5_K: return sizeof(qk_block_q5_K);
    case QK_Q6_K: return sizeof(qk_block_q6_K);
    case QK_IQ4_XS: return sizeof(qk_block_iq4_xs);
    default: return 0;
    }
}

/// One matrix-product kernel: the signature of qk_matmul minus the type.
typedef void (*qk_matmul_fn)(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                             const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);

// Scalar reference (ref.c).
int qk_ref_dequantize(uint32_t type, const void *src, float *dst, int64_t n);
void qk_ref_quantize_q8_0(const float *x, qk_block_q8_0 *y, int64_t n);
void qk_ref_quantize_q8_1(const float *x, qk_block_q8_1 *y, int64_t n);
void qk_ref_quantize_q8_K(const float *x, qk_block_q8_K *y, int64_t n);
qk_matmul_fn qk_ref_matmul_for(uint32_t weightType);
float qk_ref_dot_f32(const float *a, const float *b, int64_t n);
void qk_ref_axpy_f32(float a, const float *x, float *y, int64_t n);

// AVX2 + FMA + F16C (avx2.c); NULL where a type has no AVX2 kernel or on other architectures.
qk_matmul_fn qk_avx2_matmul_for(uint32_t weightType);
float qk_avx2_dot_f32(const float *a, const float *b, int64_t n);
void qk_avx2_axpy_f32(float a, const float *x, float *y, int64_t n);

/// Quantized weights x f32 activations (the signature of qk_matmul_f32x). Return 0, or -1 for a
/// weight type they do not take (Y untouched).
typedef int (*qk_matmul_f32x_fn)(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0,
                                 int64_t r1, const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_ref_matmul_f32x(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                       const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_avx2_matmul_f32x(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                        const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);
/// AVX-512F: the same product with a 512-bit register-blocked micro-kernel (avx512_f32x.c).
int qk_avx512_matmul_f32x(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                          const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);
/// Elements [k0, k0 + len) of one weight row (whole blocks, F32 excepted) to f32 in dst (32-byte
/// aligned), with AVX2 where the type has a vector dequantizer (avx2_f32x.c; x86-64 only).
void qk_avx2_dequantize_row(uint32_t type, const uint8_t *row, int64_t k0, int64_t len, float *dst);

/// One block of 32 activations in 16-bit fixed point (qk_quantize_q16): x[j] ~= d * q[j],
/// d = amax / 32767, s = x[0] + ... + x[31] summed in f32 in that order.
typedef struct { float d, s; int16_t q[32]; } qk_block_q16;
_Static_assert(sizeof(qk_block_q16) == 72, "q16");

/// Quantized weights x q16 activations (q16.c; the signature of qk_matmul_q16).
typedef int (*qk_matmul_q16_fn)(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0,
                                int64_t r1, const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_ref_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                      const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_avx2_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                       const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
/// AVX-512 F+BW+VL (avx512_q16.c), with and without VNNI; every type qk_q16_supports takes.
int qk_avx512_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                         const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_avx512vnni_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                             const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
/// Shared argument checks: -1 (Y untouched) for an unsupported type or an n that is not a whole
/// number of weight blocks, 1 when there is nothing to compute (Y zeroed when n == 0), 0 to go on.
int qk_q16_prologue(uint32_t weightType, int64_t n, int64_t r0, int64_t r1, int64_t nTok, float *Y, int64_t yStride);

/// Activation quantization to q16 (the signature of qk_quantize_q16): scalar reference (q16.c) and
/// AVX-512 (avx512_q16.c), bit-identical.
typedef void (*qk_quantize_q16_fn)(const float *x, void *dst, int64_t n);
void qk_ref_quantize_q16(const float *x, void *dst, int64_t n);
void qk_avx512_quantize_q16(const float *x, void *dst, int64_t n);

/// Token count from which the AVX-512 q16 product runs as the GEMM below (measured: at 16 tokens of
/// a 4096-wide Q4_0 or Q4_K matrix it is 1.1-1.8x the decode kernel, at 12 about even, at 8 behind).
enum { QK_Q16_GEMM_TOKENS = 16 };

/// The q16 product as a GEMM for many tokens (avx512_q16_gemm.c), with (vnni = 1) or without VNNI;
/// the contract of qk_matmul_q16. Allocates a scratch buffer of up to 576 KB per call (-1 if that fails).
int qk_avx512_matmul_q16_gemm(int vnni, uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0,
                              int64_t r1, const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
