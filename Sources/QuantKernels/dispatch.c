// Public entry points: CPU-feature detection, a kernel table resolved once, and the timing helper.
#include "QuantKernels.h"
#include "qk_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


int qk_cpu_features(void) {
    int f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= QK_FEATURE_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) f |= QK_FEATURE_AVX512;
    if (__builtin_cpu_supports("avx512vnni")) f |= QK_FEATURE_AVX512VNNI;
#endif
    return f;
}

// MARK: - Dispatch table

enum { TYPE_SLOTS = 31 };  // type numbers 0...30

typedef struct {
    qk_matmul_fn matmul[TYPE_SLOTS];
    qk_matmul_f32x_fn matmul_f32x;
    qk_matmul_q16_fn matmul_q16;
    qk_quantize_q16_fn quantize_q16;
    float (*dot_f32)(const float *, const float *, int64_t);
    void (*axpy_f32)(float, const float *, float *, int64_t);
    const char *isa;
} kernel_table;

static kernel_table table;
static atomic_int table_state;  // 0 unset, 1 being filled, 2 ready

static int avx2_usable(void) {
#if defined(__x86_64__)
    // F16C is used by the AVX2 kernels too; every AVX2 CPU has it, but check anyway.
    __builtin_cpu_init();
    return (qk_cpu_features() & QK_FEATURE_AVX2) && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

/// The q16 kernels of avx512_q16.c need F, BW and VL (and the OS saving zmm state, which
/// __builtin_cpu_supports checks through XGETBV), plus AVX2's FMA and F16C, and BMI2.
static int avx512_usable(void) {
#if defined(__x86_64__)
    return avx2_usable() && (qk_cpu_features() & QK_FEATURE_AVX512) && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("bmi2");
#else
    return 0;
#endif
}

enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_AVX512VNNI };

/// The best level this CPU runs, capped by STRATA_ISA ("scalar", "avx2", "avx512") if set.
static int isa_level(void) {
    int level = ISA_SCALAR;
    if (avx2_usable()) {
        level = ISA_AVX2;
        if (avx512_usable()) level = (qk_cpu_features() & QK_FEATURE_AVX512VNNI) ? ISA_AVX512VNNI : ISA_AVX512;
    }
    const char *cap = getenv("STRATA_ISA");
    if (cap) {
        const int c = !strcmp(cap, "scalar") ? ISA_SCALAR : !strcmp(cap, "avx2") ? ISA_AVX2
                    : !strcmp(cap, "avx512") ? ISA_AVX512 : ISA_AVX512VNNI;
        if (c < level) level = c;
    }
    return level;
}

static void fill_table(kernel_table *t) {
    const int level = isa_level();
    const int avx2 = level >= ISA_AVX2;
    static const char *const names[] = {"scalar", "avx2", "avx512", "avx512vnni"};
    t->isa = names[level];
    t->dot_f32 = avx2 ? qk_avx2_dot_f32 : qk_ref_dot_f32;
    t->axpy_f32 = avx2 ? qk_avx2_axpy_f32 : qk_ref_axpy_f32;
    t->matmul_f32x = level >= ISA_AVX512 ? qk_avx512_matmul_f32x : avx2 ? qk_avx2_matmul_f32x : qk_ref_matmul_f32x;
    // AVX-512 for the f32-activation product, the q16 decode product and its activation
    // quantization; the other kernels stay AVX2.
    t->matmul_q16 = level == ISA_AVX512VNNI ? qk_avx512vnni_matmul_q16
                  : level == ISA_AVX512 ? qk_avx512_matmul_q16
                  : avx2 ? qk_avx2_matmul_q16 : qk_ref_matmul_q16;
    t->quantize_q16 = level >= ISA_AVX512 ? qk_avx512_quantize_q16 : qk_ref_quantize_q16;
    for (uint32_t type = 0; type < TYPE_SLOTS; type++) {
        qk_matmul_fn fast = avx2 ? qk_avx2_matmul_for(type) : NULL;
        t->matmul[type] = fast ? fast : qk_ref_matmul_for(type);
    }
}

/// The table, filled on first use. Racing first callers wait for the one filling it.
static const kernel_table *kernels(void) {
    if (atomic_load_explicit(&table_state, memory_order_acquire) == 2) return &table;
    int expected = 0;
    if (atomic_compare_exchange_strong(&table_state, &expected, 1)) {
        fill_table(&table);
        atomic_store_explicit(&table_state, 2, memory_order_release);
    } else {
        while (atomic_load_explicit(&table_state, memory_order_acquire) != 2) { }
    }
    return &table;
}

const char *qk_isa_name(void) { return kernels()->isa; }

// MARK: - Formats

int qk_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    return qk_ref_dequantize(type, src, dst, n);
}

uint32_t qk_activation_type(uint32_t w) {
    switch (w) {
    case QK_Q4_0: case QK_Q8_0: return QK_Q8_0;
    case QK_Q4_1: return QK_Q8_1;
    case QK_Q4_K: case QK_Q5_K: case QK_Q6_K: return QK_Q8_K;
    case QK_F32: case QK_F16: case QK_BF16: return QK_F32;
    default: return UINT32_MAX;
    }
}

size_t qk_activation_row_bytes(uint32_t w, int64_t n) {
    if (n < 0) return 0;
    switch (qk_activation_type(w)) {
    case QK_Q8_0: return (size_t)(n / QK32) * sizeof(qk_block_q8_0);
    case QK_Q8_1: return (size_t)(n / QK32) * sizeof(qk_block_q8_1);
    case QK_Q8_K: return (size_t)(n / QKK) * sizeof(qk_block_q8_K);
    case QK_F32: return (size_t)n * 4;
    default: return 0;
    }
}

void qk_quantize_activation(uint32_t w, const float *x, void *dst, int64_t n) {
    switch (qk_activation_type(w)) {
    case QK_Q8_0: qk_ref_quantize_q8_0(x, dst, n); break;
    case QK_Q8_1: qk_ref_quantize_q8_1(x, dst, n); break;
    case QK_Q8_K: qk_ref_quantize_q8_K(x, dst, n); break;
    case QK_F32: memcpy(dst, x, (size_t)n * 4); break;
    default: break;
    }
}

// MARK: - Products

void qk_matmul(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
               const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    if (w >= TYPE_SLOTS || r1 <= r0 || nTok <= 0) return;
    const qk_matmul_fn f = kernels()->matmul[w];
    if (f) f(W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

void qk_matmul_ref(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                   const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    const qk_matmul_fn f = qk_ref_matmul_for(w);
    if (f && r1 > r0 && nTok > 0) f(W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

void qk_matmul_f32x(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                    const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    kernels()->matmul_f32x(w, W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

void qk_matmul_f32x_ref(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                        const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    qk_ref_matmul_f32x(w, W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

int qk_matmul_q16(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                  const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    return kernels()->matmul_q16(w, W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

void qk_quantize_q16(const float *x, void *dst, int64_t n) { kernels()->quantize_q16(x, dst, n); }

int qk_q16_preferred(uint32_t w, int64_t nTok) {
    if (!qk_q16_supports(w)) return 0;
    const kernel_table *k = kernels();
    if (k->matmul_q16 == qk_avx512vnni_matmul_q16 || k->matmul_q16 == qk_avx512_matmul_q16) return 1;
    // AVX2 has q16 kernels for three types only; the others would run the scalar reference.
    // For those three, prompts take them too, although the f32 product runs prompts about a
    // fifth faster: a row's result must not depend on the rows it was batched with, or a
    // sequence replayed after a lost worker (its tokens in one batch) would not rebuild the KV
    // cache it had (each token decoded alone), and greedy text could change at a near-tie.
    (void)nTok;
    return k->matmul_q16 == qk_ref_matmul_q16 || w == QK_Q4_0 || w == QK_Q4_1 || w == QK_Q8_0;
}

int qk_matmul_q16_ref(uint32_t w, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                      const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    return qk_ref_matmul_q16(w, W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);
}

float qk_dot_f32(const float *a, const float *b, int64_t n) { return kernels()->dot_f32(a, b, n); }

void qk_axpy_f32(float a, const float *x, float *y, int64_t n) { kernels()->axpy_f32(a, x, y, n); }
