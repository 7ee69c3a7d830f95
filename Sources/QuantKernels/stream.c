// Reading memory as fast as the machine allows: the ceiling a decode step, which reads every
// weight once, is measured against (`strata bench` reports decode as a share of it).
#include "QuantKernels.h"
#include "qk_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)));
    uint64_t s = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
    for (; i < n; i++) s ^= p[i];
    return s;
}
#endif

uint64_t qk_read_bytes(const void *p, size_t n) {
#if defined(__x86_64__)
    if (qk_cpu_features() & QK_FEATURE_AVX2) return read_avx2(p, n);
#endif
    uint64_t s = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, (const uint8_t *)p + i, 8);
        s ^= w;
    }
    for (; i < n; i++) s ^= ((const uint8_t *)p)[i];
    return s;
}
