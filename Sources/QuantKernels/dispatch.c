#include "QuantKernels.h"

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
