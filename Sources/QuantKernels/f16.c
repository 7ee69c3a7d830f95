// f16 conversions and the f16 key/value products of attention, with an F16C/AVX2 variant chosen
// at run time.
#include "QuantKernels.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline float h2f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7F800000 | (mant << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// Round to nearest even, as F16C's vcvtps2ph with _MM_FROUND_TO_NEAREST_INT.
static inline uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t absx = x & 0x7FFFFFFF;
    if (absx >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (absx > 0x7F800000 ? 0x200 : 0));
    if (absx >= 0x477FF000) return (uint16_t)(sign | 0x7C00);  // rounds to infinity
    if (absx < 0x38800000) {  // subnormal or zero in f16
        if (absx < 0x33000000) return (uint16_t)sign;
        // value = m · 2^(e-150) with the implicit bit; in units of f16's 2^-24: m >> (126 - e).
        const uint32_t e = absx >> 23, m = (absx & 0x7FFFFF) | 0x800000;
        const int s = 126 - (int)e;  // 14..24
        uint32_t q = m >> s;
        const uint32_t rem = m & ((1u << s) - 1), half = 1u << (s - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((absx >> 13) - ((127 - 15) << 10));
    const uint32_t rem = absx & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static void f32_to_f16_scalar(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f2h(x[i]);
}
static float dot_f32_f16_scalar(const float *a, const uint16_t *b, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * h2f(b[i]);
    return s;
}
static void axpy_f16_scalar(float a, const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * h2f(x[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c")))
static void f32_to_f16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(x[i]);
}
__attribute__((target("avx2,fma,f16c")))
static float dot_f32_f16_avx2(const float *a, const uint16_t *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8))), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), acc0);
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++) r += a[i] * h2f(b[i]);
    return r;
}
__attribute__((target("avx2,fma,f16c")))
static void axpy_f16_avx2(float a, const uint16_t *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * h2f(x[i]);
}
#endif

typedef struct {
    void (*to_f16)(const float *, uint16_t *, int64_t);
    float (*dot)(const float *, const uint16_t *, int64_t);
    void (*axpy)(float, const uint16_t *, float *, int64_t);
} f16_kernels;

static const f16_kernels *f16_select(void) {
    static const f16_kernels scalar = {f32_to_f16_scalar, dot_f32_f16_scalar, axpy_f16_scalar};
#if defined(__x86_64__)
    static const f16_kernels avx2 = {f32_to_f16_avx2, dot_f32_f16_avx2, axpy_f16_avx2};
    if (qk_cpu_features() & QK_FEATURE_AVX2) return &avx2;
#endif
    return &scalar;
}

static const f16_kernels *f16(void) {
    static const f16_kernels *chosen;
    const f16_kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!k) {
        k = f16_select();
        __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    }
    return k;
}

void qk_f32_to_f16(const float *x, uint16_t *y, int64_t n) { f16()->to_f16(x, y, n); }
float qk_dot_f32_f16(const float *a, const uint16_t *b, int64_t n) { return f16()->dot(a, b, n); }
void qk_axpy_f16(float a, const uint16_t *x, float *y, int64_t n) { f16()->axpy(a, x, y, n); }
void qk_f32_to_f16_ref(const float *x, uint16_t *y, int64_t n) { f32_to_f16_scalar(x, y, n); }
float qk_dot_f32_f16_ref(const float *a, const uint16_t *b, int64_t n) { return dot_f32_f16_scalar(a, b, n); }
void qk_axpy_f16_ref(float a, const uint16_t *x, float *y, int64_t n) { axpy_f16_scalar(a, x, y, n); }

// MARK: - Attention of one query head over a sequence's cache

/// out = softmax(q·K[p] · scale for p < n) · V over a paged cache: position p lies in page
/// p / pageRows at row p % pageRows, its key `keyOffset` bytes into the page plus the row times
/// `stride` elements, its value likewise from `valueOffset`; f16 (kv16 = 1) or f32 elements.
/// `scores` has room for n floats. Softmax in f32 with the max subtracted.
static void attend(const float *q, const void *const *pages, int64_t pageRows, int64_t keyOffset, int64_t valueOffset,
                   int64_t n, int64_t headDim, int64_t stride, float scale, float *scores, float *out, int kv16,
                   float (*dot16)(const float *, const uint16_t *, int64_t), void (*axpy16)(float, const uint16_t *, float *, int64_t)) {
    const int64_t rowBytes = stride * (kv16 ? 2 : 4);
    float maxScore = -INFINITY;
    for (int64_t p0 = 0; p0 < n; p0 += pageRows) {
        const char *keys = (const char *)pages[p0 / pageRows] + keyOffset;
        const int64_t rows = n - p0 < pageRows ? n - p0 : pageRows;
        for (int64_t r = 0; r < rows; r++) {
            const void *k = keys + r * rowBytes;
            const float s = (kv16 ? dot16(q, (const uint16_t *)k, headDim) : qk_dot_f32(q, (const float *)k, headDim)) * scale;
            scores[p0 + r] = s;
            if (s > maxScore) maxScore = s;
        }
    }
    float sum = 0;
    for (int64_t p = 0; p < n; p++) {
        scores[p] = expf(scores[p] - maxScore);
        sum += scores[p];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < headDim; i++) out[i] = 0;
    for (int64_t p0 = 0; p0 < n; p0 += pageRows) {
        const char *values = (const char *)pages[p0 / pageRows] + valueOffset;
        const int64_t rows = n - p0 < pageRows ? n - p0 : pageRows;
        for (int64_t r = 0; r < rows; r++) {
            const void *v = values + r * rowBytes;
            if (kv16) axpy16(scores[p0 + r] * inv, (const uint16_t *)v, out, headDim);
            else qk_axpy_f32(scores[p0 + r] * inv, (const float *)v, out, headDim);
        }
    }
}

void qk_attend_head(const float *q, const void *const *pages, int64_t pageRows, int64_t keyOffset, int64_t valueOffset,
                    int64_t n, int64_t headDim, int64_t stride, float scale, float *scores, float *out, int kvIsF16) {
    const f16_kernels *k = f16();
    attend(q, pages, pageRows, keyOffset, valueOffset, n, headDim, stride, scale, scores, out, kvIsF16, k->dot, k->axpy);
}

void qk_attend_head_ref(const float *q, const void *const *pages, int64_t pageRows, int64_t keyOffset, int64_t valueOffset,
                        int64_t n, int64_t headDim, int64_t stride, float scale, float *scores, float *out, int kvIsF16) {
    attend(q, pages, pageRows, keyOffset, valueOffset, n, headDim, stride, scale, scores, out, kvIsF16, dot_f32_f16_scalar,
           axpy_f16_scalar);
}
