// Hot kernels for quantized tensors: dequantization, activation quantization and dot products,
// with a portable scalar version of each and AVX2 / AVX-512 variants chosen at run time.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Bit set of the CPU features the dispatcher found (QK_FEATURE_*).
enum { QK_FEATURE_AVX2 = 1, QK_FEATURE_AVX512 = 2, QK_FEATURE_AVX512VNNI = 4 };
int qk_cpu_features(void);
