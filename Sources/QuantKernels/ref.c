// Portable scalar reference code: dequantization, activation quantization (ggml's *_ref rounding,
// bit for bit) and one dot product per weight type. The fast kernels are tested against these.
#include "qk_internal.h"
#include <math.h>
#include <stdlib.h>

// Keep a*b + c as two roundings, as ggml's reference and gguf-py's numpy do (arm64 would fuse).
#pragma STDC FP_CONTRACT OFF

// MARK: - Unpacking K-quant super-blocks

/// Q4_K: 256 nibbles in element order, 8 sub-block scales and mins.
static void unpack_q4_K(const qk_block_q4_K *b, uint8_t q[256], uint8_t sc[8], uint8_t m[8]) {
    for (int c = 0; c < 4; c++) {
        const uint8_t *qs = b->qs + 32 * c;
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[l] & 0xF;
            q[64 * c + 32 + l] = qs[l] >> 4;
        }
    }
    for (int j = 0; j < 8; j++) qk_scale_min_k4(j, b->scales, &sc[j], &m[j]);
}

/// Q5_K: 256 five-bit values in element order, 8 sub-block scales and mins.
static void unpack_q5_K(const qk_block_q5_K *b, uint8_t q[256], uint8_t sc[8], uint8_t m[8]) {
    for (int c = 0; c < 4; c++) {
        const uint8_t *qs = b->qs + 32 * c;
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((qs[l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((qs[l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
    }
    for (int j = 0; j < 8; j++) qk_scale_min_k4(j, b->scales, &sc[j], &m[j]);
}

/// Q6_K: 256 signed values (-32..31) in element order; scale of element i is scales[i/16].
static void unpack_q6_K(const qk_block_q6_K *b, int8_t q[256]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// MARK: - Dequantization

int qk_ref_dequantize(uint32_t type, const void *src, float *y, int64_t n) {
    if (n < 0) return -1;
    switch (type) {
    case QK_F32:
        memcpy(y, src, (size_t)n * 4);
        return 0;
    case QK_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) y[i] = qk_h2f(h[i]);
        return 0;
    }
    case QK_BF16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++) y[i] = qk_bf2f(h[i]);
        return 0;
    }
    case QK_Q4_0: {
        if (n % QK32) return -1;
        const qk_block_q4_0 *b = src;
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const float d = qk_h2f(b[i].d);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
                y[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
            }
        }
        return 0;
    }
    case QK_Q4_1: {
        if (n % QK32) return -1;
        const qk_block_q4_1 *b = src;
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const float d = qk_h2f(b[i].d), m = qk_h2f(b[i].m);
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)(b[i].qs[j] & 0xF) + m;
                y[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
            }
        }
        return 0;
    }
    case QK_Q5_0: case QK_Q5_1: {
        if (n % QK32) return -1;
        const int has_min = type == QK_Q5_1;
        const size_t bytes = has_min ? sizeof(qk_block_q5_1) : sizeof(qk_block_q5_0);
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const uint8_t *b = (const uint8_t *)src + (size_t)i * bytes;
            uint16_t dh, mh = 0;
            uint32_t qh;
            memcpy(&dh, b, 2);
            if (has_min) memcpy(&mh, b + 2, 2);
            memcpy(&qh, b + (has_min ? 4 : 2), 4);
            const uint8_t *qs = b + (has_min ? 8 : 6);
            const float d = qk_h2f(dh), m = qk_h2f(mh);
            for (int j = 0; j < 16; j++) {
                const int lo = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
                const int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                if (has_min) {
                    y[j] = d * (float)lo + m;
                    y[j + 16] = d * (float)hi + m;
                } else {
                    y[j] = (float)(lo - 16) * d;
                    y[j + 16] = (float)(hi - 16) * d;
                }
            }
        }
        return 0;
    }
    case QK_IQ4_NL: {
        if (n % QK32) return -1;
        const qk_block_iq4_nl *b = src;
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const float d = qk_h2f(b[i].d);
            for (int j = 0; j < 16; j++) {
                y[j] = d * (float)qk_iq4nl_values[b[i].qs[j] & 0xF];
                y[j + 16] = d * (float)qk_iq4nl_values[b[i].qs[j] >> 4];
            }
        }
        return 0;
    }
    case QK_IQ4_XS: {
        if (n % QKK) return -1;
        const qk_block_iq4_xs *b = src;
        for (int64_t i = 0; i < n / QKK; i++) {
            const float d = qk_h2f(b[i].d);
            for (int ib = 0; ib < 8; ib++, y += 32) {
                const int ls = ((b[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) | (((b[i].scales_h >> 2 * ib) & 3) << 4);
                const float dl = d * (float)(ls - 32);
                const uint8_t *qs = b[i].qs + 16 * ib;
                for (int j = 0; j < 16; j++) {
                    y[j] = dl * (float)qk_iq4nl_values[qs[j] & 0xF];
                    y[j + 16] = dl * (float)qk_iq4nl_values[qs[j] >> 4];
                }
            }
        }
        return 0;
    }
    case QK_Q8_0: {
        if (n % QK32) return -1;
        const qk_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const float d = qk_h2f(b[i].d);
            for (int j = 0; j < 32; j++) y[j] = (float)b[i].qs[j] * d;
        }
        return 0;
    }
    case QK_Q8_1: {
        if (n % QK32) return -1;
        const qk_block_q8_1 *b = src;
        for (int64_t i = 0; i < n / QK32; i++, y += 32) {
            const float d = qk_h2f(b[i].d);
            for (int j = 0; j < 32; j++) y[j] = (float)b[i].qs[j] * d;
        }
        return 0;
    }
    case QK_Q4_K: {
        if (n % QKK) return -1;
        const qk_block_q4_K *b = src;
        uint8_t q[256], sc[8], m[8];
        for (int64_t i = 0; i < n / QKK; i++, y += 256) {
            unpack_q4_K(&b[i], q, sc, m);
            const float d = qk_h2f(b[i].d), dmin = qk_h2f(b[i].dmin);
            for (int j = 0; j < 256; j++) {
                const float ds = d * (float)sc[j / 32], dm = dmin * (float)m[j / 32];
                y[j] = ds * (float)q[j] - dm;
            }
        }
        return 0;
    }
    case QK_Q5_K: {
        if (n % QKK) return -1;
        const qk_block_q5_K *b = src;
        uint8_t q[256], sc[8], m[8];
        for (int64_t i = 0; i < n / QKK; i++, y += 256) {
            unpack_q5_K(&b[i], q, sc, m);
            const float d = qk_h2f(b[i].d), dmin = qk_h2f(b[i].dmin);
            for (int j = 0; j < 256; j++) {
                const float ds = d * (float)sc[j / 32], dm = dmin * (float)m[j / 32];
                y[j] = ds * (float)q[j] - dm;
            }
        }
        return 0;
    }
    case QK_Q6_K: {
        if (n % QKK) return -1;
        const qk_block_q6_K *b = src;
        int8_t q[256];
        for (int64_t i = 0; i < n / QKK; i++, y += 256) {
            unpack_q6_K(&b[i], q);
            const float d = qk_h2f(b[i].d);
            for (int j = 0; j < 256; j++) y[j] = (d * (float)b[i].scales[j / 16]) * (float)q[j];
        }
        return 0;
    }
    case QK_Q8_K: {
        if (n % QKK) return -1;
        const qk_block_q8_K *b = src;
        for (int64_t i = 0; i < n / QKK; i++, y += 256)
            for (int j = 0; j < 256; j++) y[j] = b[i].d * (float)b[i].qs[j];
        return 0;
    }
    default:
        return -1;
    }
}

// MARK: - Activation quantization (ggml's quantize_row_q8_{0,1,K}_ref)

/// roundf (halves away from zero) for |x| < 2^31, without libm: x - trunc(x) is exact.
static inline int round_away(float x) {
    int i = (int)x;
    const float frac = x - (float)i;
    if (frac >= 0.5f) i++;
    else if (frac <= -0.5f) i--;
    return i;
}

static inline float max_abs32(const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

void qk_ref_quantize_q8_0(const float *x, qk_block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK32; i++, x += 32) {
        const float amax = max_abs32(x);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qk_f2h(d);
        for (int j = 0; j < 32; j++) y[i].qs[j] = (int8_t)round_away(x[j] * id);
    }
}

void qk_ref_quantize_q8_1(const float *x, qk_block_q8_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK32; i++, x += 32) {
        const float amax = max_abs32(x);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qk_f2h(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t)round_away(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = qk_f2h((float)sum * d);
    }
}

/// Round to nearest, ties to even, for |f| < 2^22 (ggml's nearest_int).
static inline int nearest_int(float f) {
    const float v = f + 12582912.0f;
    return (int)(qk_f2u(v) & 0x007FFFFF) - 0x00400000;
}

void qk_ref_quantize_q8_K(const float *x, qk_block_q8_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QKK; i++, x += 256) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < 256; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

// MARK: - Dot products, one weight row with one activation row

static float dot_f32(const void *w, const void *x, int64_t n) {
    const float *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16(const void *w, const void *x, int64_t n) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += qk_h2f(a[i]) * b[i];
    return s;
}

static float dot_bf16(const void *w, const void *x, int64_t n) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += qk_bf2f(a[i]) * b[i];
    return s;
}

static float dot_q4_0(const void *w, const void *x, int64_t n) {
    const qk_block_q4_0 *a = w;
    const qk_block_q8_0 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j];
            sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        }
        s += (float)sumi * (qk_h2f(a[i].d) * qk_h2f(b[i].d));
    }
    return s;
}

static float dot_q4_1(const void *w, const void *x, int64_t n) {
    const qk_block_q4_1 *a = w;
    const qk_block_q8_1 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK32; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (a[i].qs[j] & 0xF) * b[i].qs[j];
            sumi += (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        }
        s += (qk_h2f(a[i].d) * qk_h2f(b[i].d)) * (float)sumi + qk_h2f(a[i].m) * qk_h2f(b[i].s);
    }
    return s;
}

static float dot_q8_0(const void *w, const void *x, int64_t n) {
    const qk_block_q8_0 *a = w;
    const qk_block_q8_0 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK32; i++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += a[i].qs[j] * b[i].qs[j];
        s += (float)sumi * (qk_h2f(a[i].d) * qk_h2f(b[i].d));
    }
    return s;
}

/// Shared by Q4_K and Q5_K: unsigned values q with 6-bit scales and mins against Q8_K.
static float dot_kmin(const uint8_t q[256], const uint8_t sc[8], const uint8_t m[8], float d, float dmin,
                      const qk_block_q8_K *b) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int s = 0;
        for (int l = 0; l < 32; l++) s += q[32 * j + l] * b->qs[32 * j + l];
        sumi += sc[j] * s;
        summ += m[j] * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    return d * b->d * (float)sumi - dmin * b->d * (float)summ;
}

static float dot_q4_K(const void *w, const void *x, int64_t n) {
    const qk_block_q4_K *a = w;
    const qk_block_q8_K *b = x;
    uint8_t q[256], sc[8], m[8];
    float s = 0.0f;
    for (int64_t i = 0; i < n / QKK; i++) {
        unpack_q4_K(&a[i], q, sc, m);
        s += dot_kmin(q, sc, m, qk_h2f(a[i].d), qk_h2f(a[i].dmin), &b[i]);
    }
    return s;
}

static float dot_q5_K(const void *w, const void *x, int64_t n) {
    const qk_block_q5_K *a = w;
    const qk_block_q8_K *b = x;
    uint8_t q[256], sc[8], m[8];
    float s = 0.0f;
    for (int64_t i = 0; i < n / QKK; i++) {
        unpack_q5_K(&a[i], q, sc, m);
        s += dot_kmin(q, sc, m, qk_h2f(a[i].d), qk_h2f(a[i].dmin), &b[i]);
    }
    return s;
}

static float dot_q6_K(const void *w, const void *x, int64_t n) {
    const qk_block_q6_K *a = w;
    const qk_block_q8_K *b = x;
    int8_t q[256];
    float s = 0.0f;
    for (int64_t i = 0; i < n / QKK; i++) {
        unpack_q6_K(&a[i], q);
        int sumi = 0;
        for (int g = 0; g < 16; g++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * g + l] * b[i].qs[16 * g + l];
            sumi += a[i].scales[g] * t;
        }
        s += qk_h2f(a[i].d) * b[i].d * (float)sumi;
    }
    return s;
}

// MARK: - Matrix product from the row dot products

typedef float (*dot_fn)(const void *w, const void *x, int64_t n);

static void matmul_with(dot_fn dot, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                        const void *X, size_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    for (int64_t t = 0; t < nTok; t++) {
        const char *x = (const char *)X + (size_t)t * xStride;
        for (int64_t r = r0; r < r1; r++)
            Y[t * yStride + r] = dot((const char *)W + (size_t)r * rowBytes, x, n);
    }
}

#define REF_MATMUL(name, dot)                                                                          \
    static void name(const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1, const void *X, \
                     size_t xStride, int64_t nTok, float *Y, int64_t yStride) {                        \
        matmul_with(dot, W, rowBytes, n, r0, r1, X, xStride, nTok, Y, yStride);                        \
    }
REF_MATMUL(ref_mm_f32, dot_f32)
REF_MATMUL(ref_mm_f16, dot_f16)
REF_MATMUL(ref_mm_bf16, dot_bf16)
REF_MATMUL(ref_mm_q4_0, dot_q4_0)
REF_MATMUL(ref_mm_q4_1, dot_q4_1)
REF_MATMUL(ref_mm_q8_0, dot_q8_0)
REF_MATMUL(ref_mm_q4_K, dot_q4_K)
REF_MATMUL(ref_mm_q5_K, dot_q5_K)
REF_MATMUL(ref_mm_q6_K, dot_q6_K)

qk_matmul_fn qk_ref_matmul_for(uint32_t t) {
    switch (t) {
    case QK_F32: return ref_mm_f32;
    case QK_F16: return ref_mm_f16;
    case QK_BF16: return ref_mm_bf16;
    case QK_Q4_0: return ref_mm_q4_0;
    case QK_Q4_1: return ref_mm_q4_1;
    case QK_Q8_0: return ref_mm_q8_0;
    case QK_Q4_K: return ref_mm_q4_K;
    case QK_Q5_K: return ref_mm_q5_K;
    case QK_Q6_K: return ref_mm_q6_K;
    default: return NULL;
    }
}

float qk_ref_dot_f32(const float *a, const float *b, int64_t n) { return dot_f32(a, b, n); }

void qk_ref_axpy_f32(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// MARK: - Weights in their stored type times f32 activations

/// Supported weight types for the f32-activation product, and their block sizes.
static int64_t f32x_block(uint32_t t) { return qk_weight_block_elements(t); }

int qk_ref_matmul_f32x(uint32_t type, const void *W, size_t rowBytes, int64_t n, int64_t r0, int64_t r1,
                       const float *X, int64_t xStride, int64_t nTok, float *Y, int64_t yStride) {
    const int64_t bs = f32x_block(type);
    if (!bs || n < 0 || n % bs) return -1;
    if (r1 <= r0 || nTok <= 0) return 0;
    enum { STACK_FLOATS = 4096 };
    float stack[STACK_FLOATS];
    float *w = n <= STACK_FLOATS ? stack : malloc((size_t)n * sizeof(float));
    if (!w) return -1;
    for (int64_t r = r0; r < r1; r++) {
        qk_ref_dequantize(type, (const char *)W + (size_t)r * rowBytes, w, n);
        for (int64_t t = 0; t < nTok; t++) {
            const float *x = X + t * xStride;
            float s = 0.0f;
            for (int64_t k = 0; k < n; k++) s += w[k] * x[k];
            Y[t * yStride + r] = s;
        }
    }
    if (w != stack) free(w);
    return 0;
}
