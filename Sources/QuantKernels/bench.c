// Timing of the matrix products, for scripts/kernel_bench.c: one thread, random weights.
#include "QuantKernels.h"
#include "qk_internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);  // CPU time: robust on a shared machine
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/// Bytes of one weight row, or 0 for a type qk_matmul does not take.
static size_t weight_row_bytes(uint32_t w, int64_t n) {
    switch (w) {
    case QK_F32: return (size_t)n * 4;
    case QK_F16: case QK_BF16: return (size_t)n * 2;
    case QK_Q4_0: return (size_t)(n / QK32) * sizeof(qk_block_q4_0);
    case QK_Q4_1: return (size_t)(n / QK32) * sizeof(qk_block_q4_1);
    case QK_Q5_0: return (size_t)(n / QK32) * sizeof(qk_block_q5_0);
    case QK_Q5_1: return (size_t)(n / QK32) * sizeof(qk_block_q5_1);
    case QK_IQ4_NL: return (size_t)(n / QK32) * sizeof(qk_block_iq4_nl);
    case QK_Q8_0: return (size_t)(n / QK32) * sizeof(qk_block_q8_0);
    case QK_Q4_K: return (size_t)(n / QKK) * sizeof(qk_block_q4_K);
    case QK_Q5_K: return (size_t)(n / QKK) * sizeof(qk_block_q5_K);
    case QK_Q6_K: return (size_t)(n / QKK) * sizeof(qk_block_q6_K);
    case QK_IQ4_XS: return (size_t)(n / QKK) * sizeof(qk_block_iq4_xs);
    default: return 0;
    }
}

/// Random bytes whose half-precision scale fields are replaced by a small positive value.
static void fill_weights(uint32_t w, uint8_t *p, size_t bytes, uint64_t *seed) {
    if (w == QK_F32 || w == QK_F16 || w == QK_BF16) {
        // Plain floats in [-1, 1].
        const size_t n = w == QK_F32 ? bytes / 4 : bytes / 2;
        for (size_t i = 0; i < n; i++) {
            *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
            const float v = (float)((int)(*seed >> 40) % 2001 - 1000) / 1000.0f;
            if (w == QK_F32) memcpy(p + 4 * i, &v, 4);
            else {
                const uint16_t h = w == QK_F16 ? qk_f2h(v) : (uint16_t)(qk_f2u(v) >> 16);
                memcpy(p + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(*seed >> 56);
    }
    const uint16_t small = qk_f2h(0.01f);
    size_t block = 0;
    switch (w) {
    case QK_Q4_0: case QK_IQ4_NL: block = 18; break;
    case QK_Q4_1: block = 20; break;
    case QK_Q5_0: block = 22; break;
    case QK_Q5_1: block = 24; break;
    case QK_IQ4_XS: block = 136; break;
    case QK_Q8_0: block = 34; break;
    case QK_Q4_K: block = 144; break;
    case QK_Q5_K: block = 176; break;
    case QK_Q6_K: block = 210; break;
    default: return;
    }
    for (size_t off = 0; off + block <= bytes; off += block) {
        if (w == QK_Q6_K) memcpy(p + off + 208, &small, 2);
        else {
            memcpy(p + off, &small, 2);
            if (w == QK_Q4_1 || w == QK_Q5_1 || w == QK_Q4_K || w == QK_Q5_K) memcpy(p + off + 2, &small, 2);
        }
    }
}

/// Activations for `kind`: nTok rows of random floats in [-1, 1], quantized as the product reads
/// them. Returns the row stride in bytes, or 0 when the kind does not take weight type w.
static size_t make_activations(qk_bench_kind kind, uint32_t w, int64_t n, int64_t nTok, uint8_t **out, uint64_t *seed) {
    const size_t stride = kind == QK_BENCH_F32X ? (size_t)n * 4
                        : kind == QK_BENCH_Q16 ? qk_q16_row_bytes(n) : qk_activation_row_bytes(w, n);
    if (!stride || (kind == QK_BENCH_Q16 && !qk_q16_supports(w))) return 0;
    float *xf = malloc((size_t)n * 4);
    *out = malloc(stride * (size_t)nTok);
    if (!xf || !*out) { free(xf); free(*out); *out = NULL; return 0; }
    for (int64_t t = 0; t < nTok; t++) {
        for (int64_t i = 0; i < n; i++) {
            *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
            xf[i] = (float)((int)(*seed >> 40) % 2001 - 1000) / 1000.0f;
        }
        uint8_t *row = *out + (size_t)t * stride;
        if (kind == QK_BENCH_F32X) memcpy(row, xf, (size_t)n * 4);
        else if (kind == QK_BENCH_Q16) qk_quantize_q16(xf, row, n);
        else qk_quantize_activation(w, xf, row, n);
    }
    free(xf);
    return stride;
}

static void run_product(qk_bench_kind kind, int useRef, uint32_t w, const uint8_t *W, size_t rowBytes, int64_t n,
                        int64_t rows, const uint8_t *X, size_t xStride, int64_t nTok, float *Y) {
    switch (kind) {
    case QK_BENCH_Q8:
        (useRef ? qk_matmul_ref : qk_matmul)(w, W, rowBytes, n, 0, rows, X, xStride, nTok, Y, rows);
        break;
    case QK_BENCH_F32X:
        (useRef ? qk_matmul_f32x_ref : qk_matmul_f32x)(w, W, rowBytes, n, 0, rows, (const float *)X, n, nTok, Y, rows);
        break;
    case QK_BENCH_Q16:
        (useRef ? qk_matmul_q16_ref : qk_matmul_q16)(w, W, rowBytes, n, 0, rows, X, xStride, nTok, Y, rows);
        break;
    }
}

double qk_bench_matmul(qk_bench_kind kind, uint32_t w, int64_t rows, int64_t n, int64_t nTok, int reps, int useRef) {
    const size_t rowBytes = weight_row_bytes(w, n);
    if (!rowBytes || rows <= 0 || nTok <= 0 || reps <= 0) return -1;
    uint64_t seed = 12345;
    uint8_t *X = NULL;
    const size_t xStride = make_activations(kind, w, n, nTok, &X, &seed);
    uint8_t *W = malloc(rowBytes * (size_t)rows);
    float *Y = malloc((size_t)rows * (size_t)nTok * 4);
    double *times = malloc((size_t)reps * sizeof(double));
    if (!xStride || !W || !Y || !times) { free(X); free(W); free(Y); free(times); return -1; }
    fill_weights(w, W, rowBytes * (size_t)rows, &seed);
    run_product(kind, useRef, w, W, rowBytes, n, rows, X, xStride, nTok, Y);  // warm-up
    for (int i = 0; i < reps; i++) {
        const double t0 = now_us();
        run_product(kind, useRef, w, W, rowBytes, n, rows, X, xStride, nTok, Y);
        times[i] = now_us() - t0;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    const double median = times[reps / 2];
    free(X); free(W); free(Y); free(times);
    return median;
}
