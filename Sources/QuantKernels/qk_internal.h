// Block layouts (ggml's, byte for byte), half-precision conversions and the internal kernel table.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    QK_F32 = 0, QK_F16 = 1, QK_Q4_0 = 2, QK_Q4_1 = 3, QK_Q8_0 = 8, QK_Q8_1 = 9,
    QK_Q4_K = 12, QK_Q5_K = 13, QK_Q6_K = 14, QK_Q8_K = 15, QK_BF16 = 30,
};

#define QK32 32
#define QKK 256

typedef struct { uint16_t d; uint8_t qs[16]; } qk_block_q4_0;              // x = d*(q-8)
typedef struct { uint16_t d, m; uint8_t qs[16]; } qk_block_q4_1;           // x = d*q + m
typedef struct { uint16_t d; int8_t qs[32]; } qk_block_q8_0;               // x = d*q
typedef struct { uint16_t d, s; int8_t qs[32]; } qk_block_q8_1;            // s = fp16(d*sum(q))
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } qk_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } qk_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } qk_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } qk_block_q8_K;

_Static_assert(sizeof(qk_block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(qk_block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(qk_block_q8_0) == 34, "q8_0");
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

/// Quantized weights x q16 activations (q16.c; the signature of qk_matmul_q16).
typedef int (*qk_matmul_q16_fn)(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0,
                                int64_t r1, const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_ref_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                      const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
int qk_avx2_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                       const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
