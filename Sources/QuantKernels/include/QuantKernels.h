// Hot kernels for quantized tensors: dequantization, activation quantization and matrix products,
// with a portable scalar version of each and AVX2 (and, for the q16 decode product, AVX-512)
// variants chosen once at run time.
//
// Type numbers are ggml's (`enum ggml_type`): F32=0, F16=1, Q4_0=2, Q4_1=3, Q5_0=6, Q5_1=7, Q8_0=8,
// Q8_1=9, Q4_K=12, Q5_K=13, Q6_K=14, Q8_K=15, IQ4_NL=20, IQ4_XS=23, BF16=30. Block layouts are
// ggml's, byte for byte. Quantized blocks are read through 2-byte fields (4-byte for Q8_K): weight
// rows must be at least 2-byte aligned, as GGUF tensor data always is. Every function is
// thread-safe (no shared scratch).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bit set of the CPU features the dispatcher found (QK_FEATURE_*).
enum { QK_FEATURE_AVX2 = 1, QK_FEATURE_AVX512 = 2, QK_FEATURE_AVX512VNNI = 4 };
int qk_cpu_features(void);

/// Dequantizes n elements (a multiple of the type's block size) to f32.
/// Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL,
/// IQ4_XS. Returns 0, or -1 for
/// an unsupported type or an n that is not a whole number of blocks.
int qk_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/// The activation format a weight type's dot product consumes (llama.cpp's vec_dot_type):
/// Q4_0, Q8_0 -> Q8_0; Q4_1 -> Q8_1; Q4_K, Q5_K, Q6_K -> Q8_K; F32, F16, BF16 -> F32.
/// Returns UINT32_MAX for a type that is not a supported weight type.
uint32_t qk_activation_type(uint32_t weightType);

/// Bytes of one activation row of n elements for that weight type (n*4 for f32); 0 if unsupported.
size_t qk_activation_row_bytes(uint32_t weightType, int64_t n);

/// Quantizes n f32 activations into the format above exactly as ggml's reference
/// quantize_row_q8_0_ref / q8_1_ref / q8_K_ref do (bit for bit). For F32/F16/BF16 weights it
/// copies the floats. n must be a multiple of the activation block size (32 or 256).
void qk_quantize_activation(uint32_t weightType, const float *x, void *dst, int64_t n);

/// Y[t*yStride + r] = dot(row r of W, activation row t) for r in [r0, r1), t in [0, nTok).
/// W: weight rows of rowBytes bytes each (row r starts at W + r*rowBytes), n elements per row.
/// X: nTok activation rows, xStride bytes apart, made by qk_quantize_activation(weightType, ...).
/// Weight types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K. Single-threaded; callers
/// split rows across threads. Unsupported types leave Y untouched.
void qk_matmul(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
               const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);

/// The same, computed by the portable scalar reference code only (the oracle for the fast kernels).
void qk_matmul_ref(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                   const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);

/// Quantized weights times f32 activations, no activation quantization:
/// Y[t*yStride + r] = sum_k W[r][k] * X[t*xStride + k] for r in [r0, r1), t in [0, nTok).
/// W: rows of rowBytes bytes in the stored type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K,
/// Q6_K), n elements per row (a whole number of the type's blocks). X and Y are f32; xStride and
/// yStride count floats. The result equals an f32 product on the dequantized weights up to
/// summation order and FMA rounding. Any n; rows of more than 1024 elements are processed in
/// 1024-element chunks with partial sums added into Y (still written, never read before).
/// Single-threaded, no shared scratch (about 17 KB of stack); unsupported types leave Y untouched.
void qk_matmul_f32x(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                    const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);

/// The portable scalar reference of qk_matmul_f32x: each row dequantized by qk_dequantize, then a
/// plain sequential f32 dot product with every activation row.
void qk_matmul_f32x_ref(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                        const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride);

/// 16-bit activations for the decode product qk_matmul_q16. A row of n floats (n a multiple of 32)
/// is n/32 blocks of 72 bytes, `struct { float d; float s; int16_t q[32]; }` (native byte order,
/// 4-byte aligned fields): d = amax/32767 of the block's 32 values, q[j] = x[j]/d rounded half
/// away from zero (|q| <= 32767; all zero when d == 0), s = x[0] + x[1] + ... + x[31] summed in
/// f32 in that order. |x[j] - d*q[j]| <= d/2 (about amax/65534). A NaN d or s is stored as the
/// quiet NaN 0x7FC00000. Dispatched; every version gives the same bytes for every input.
size_t qk_q16_row_bytes(int64_t n);
void qk_quantize_q16(const float *x, void *dst, int64_t n);

/// Y[t*yStride + r] = sum_k W[r][k] * x^_t[k] for r in [r0, r1), t in [0, nTok): weights in their
/// stored type times q16 activation rows (X: nTok rows, xStride bytes apart). Weight types: Q4_0,
/// Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (32-element blocks), Q4_K, Q5_K, Q6_K, IQ4_XS (256-element
/// super-blocks; see qk_q16_supports). Per 32-element block (16-element sub-block for Q6_K):
/// (weight scale * dx) * sum(qw*qx) with the integer sum exact, where qw is the block's integer code
/// (centred for the offset types: Q4_0 q-8, Q5_0 q-16, Q6_K q-32; IQ4 codes through their table;
/// K-quant and IQ4_XS sub-block scales fold into the weight scale), plus for types with a min the
/// min term through s, the exact f32 block sum, so it has no activation rounding (Q4_1, Q5_1: + m*s;
/// Q4_K, Q5_K: - dmin*m_j*s). Error against the f32 product on dequantized weights is at most the sum
/// over blocks of sum|qw * weight scale| * dx/2 (dx/2 <= amax/65534) plus f32 rounding; for the
/// types without a min that is sum|w| * dx/2. Returns 0; for another type, or n not a whole number
/// of the type's blocks, returns -1 and leaves Y untouched. Any nTok; decode-sized batches (1..16
/// tokens) read and decode each weight block once for all tokens; from 16 tokens on the AVX-512
/// version is a blocked GEMM that decodes each weight block once per 64 tokens. Single-threaded;
/// the AVX-512 version uses about 35 KB of stack, and the GEMM allocates up to 576 KB per call
/// (returning -1, Y untouched, if that fails).
int qk_matmul_q16(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                  const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);
/// 1 if qk_matmul_q16 takes this weight type (the list above), else 0.
int qk_q16_supports(uint32_t weightType);
/// 1 if the engine's fast path takes the q16 product for this weight type, at any token count
/// (nTok is not looked at: a row's result must not depend on its batch): with AVX-512, every type
/// qk_q16_supports takes (decode kernels up to 15 tokens, a blocked GEMM from 16); with AVX2 only,
/// Q4_0, Q4_1 and Q8_0; without either, any supported type. Otherwise qk_matmul_f32x.
int qk_q16_preferred(uint32_t weightType, int64_t nTok);
/// The portable scalar reference of qk_matmul_q16 (same per-block arithmetic, sequential order).
int qk_matmul_q16_ref(uint32_t weightType, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                      const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride);

/// f32 helpers for attention (dispatched): sum of a[i]*b[i]; y += a*x.
float qk_dot_f32(const float *a, const float *b, int64_t n);
void qk_axpy_f32(float a, const float *x, float *y, int64_t n);

/// Reads n bytes at p as fast as the machine streams memory and returns a checksum of them (so
/// the reads cannot be left out): the ceiling for products that read each weight once.
uint64_t qk_read_bytes(const void *p, size_t n);

/// What the dispatcher chose: "avx512vnni", "avx512", "avx2" or "scalar". AVX-512 serves the f32x
/// and q16 products and q16 activation quantization; the other kernels stay AVX2 there. The
/// environment variable STRATA_ISA ("scalar", "avx2" or "avx512"), read once, caps the choice.
const char *qk_isa_name(void);

/// Which product qk_bench_matmul times: 8-bit activations (qk_matmul), f32 activations
/// (qk_matmul_f32x) or 16-bit activations (qk_matmul_q16).
typedef enum { QK_BENCH_Q8 = 0, QK_BENCH_F32X = 1, QK_BENCH_Q16 = 2 } qk_bench_kind;

/// Times one product (its scalar reference when useRef != 0) on random weights of the given type,
/// rows x n, with nTok activation rows, single thread. Runs `reps` timed repetitions after one
/// warm-up and returns the median in microseconds of this thread's CPU time (so time the OS gave to
/// other processes does not count), or -1 for a type the product does not take.
double qk_bench_matmul(qk_bench_kind kind, uint32_t weightType, int64_t rows, int64_t n, int64_t nTok, int reps, int useRef);

#ifdef __cplusplus
}
#endif
#ifdef __cplusplus
}
#endif

// f16 (IEEE half, as bit patterns) for the KV cache: conversion with round-to-nearest-even,
// and attention's products of f32 queries/weights with f16 keys/values. *_ref: scalar only.
void qk_f32_to_f16(const float *x, uint16_t *y, int64_t n);
float qk_dot_f32_f16(const float *a, const uint16_t *b, int64_t n);
void qk_axpy_f16(float a, const uint16_t *x, float *y, int64_t n);   // y += a*x
void qk_f32_to_f16_ref(const float *x, uint16_t *y, int64_t n);
float qk_dot_f32_f16_ref(const float *a, const uint16_t *b, int64_t n);
void qk_axpy_f16_ref(float a, const uint16_t *x, float *y, int64_t n);

/// One query head's attention over a sequence's paged cache: out = softmax(q·K[p]·scale, p < n) · V.
/// Position p lies in pages[p / pageRows] at row p % pageRows: its key at byte keyOffset of the
/// page plus the row times `stride` elements (f16 bit patterns when kvIsF16, else f32), its value
/// likewise from valueOffset; the offsets include this head's KV-head column. scores: room for n
/// floats. *_ref: scalar f16 products.
void qk_attend_head(const float *q, const void *const *pages, int64_t pageRows, int64_t keyOffset, int64_t valueOffset,
                    int64_t n, int64_t headDim, int64_t stride, float scale, float *scores, float *out, int kvIsF16);
void qk_attend_head_ref(const float *q, const void *const *pages, int64_t pageRows, int64_t keyOffset, int64_t valueOffset,
                        int64_t n, int64_t headDim, int64_t stride, float scale, float *scores, float *out, int kvIsF16);
