// Times the QuantKernels matrix products on one thread (medians). Build and run from the repo root:
//   clang -O3 -ISources/QuantKernels/include Sources/QuantKernels/*.c scripts/kernel_bench.c -o /tmp/kbench -lm && /tmp/kbench
// `/tmp/kbench x` times the f32-activation products (qk_matmul_f32x) against the int8 ones instead;
// `/tmp/kbench q` the 16-bit-activation decode product (qk_matmul_q16) against f32x and int8.
#include "QuantKernels.h"
#include <stdio.h>

static void row(const char *label, uint32_t type, int64_t rows, int64_t n, int64_t nTok, int reps) {
    const double fast = qk_bench_matmul(QK_BENCH_Q8, type, rows, n, nTok, reps, 0);
    const double ref = qk_bench_matmul(QK_BENCH_Q8, type, rows, n, nTok, reps > 20 ? reps / 10 : 3, 1);
    const double gflop = 2.0 * (double)rows * (double)n * (double)nTok / 1e3;  // per µs -> GFLOP/s
    printf("%-28s %6lldx%-5lld nTok %4lld  fast %9.1f us (%6.1f GFLOP/s)  ref %10.1f us  x%.1f\n", label,
           (long long)rows, (long long)n, (long long)nTok, fast, gflop / fast, ref, ref / fast);
}

/// The f32-activation product (qk_matmul_f32x) next to the int8 qk_matmul, in the same run.
static void row_f32x(const char *label, uint32_t type, int64_t rows, int64_t n, int64_t nTok, int reps) {
    const double q8 = qk_bench_matmul(QK_BENCH_Q8, type, rows, n, nTok, reps, 0);
    const double fx = qk_bench_matmul(QK_BENCH_F32X, type, rows, n, nTok, reps, 0);
    const double ref = qk_bench_matmul(QK_BENCH_F32X, type, rows, n, nTok, reps > 20 ? reps / 10 : 3, 1);
    const double gflop = 2.0 * (double)rows * (double)n * (double)nTok / 1e3;
    printf("f32x %-23s %6lldx%-5lld nTok %4lld  f32x %9.1f us (%6.1f GFLOP/s)  int8 %9.1f us  f32x/int8 %.2f  ref %10.1f us\n",
           label, (long long)rows, (long long)n, (long long)nTok, fx, gflop / fx, q8, fx / q8, ref);
}

/// The 16-bit-activation product (qk_matmul_q16) next to f32x and the int8 qk_matmul, in the same run.
static void row_q16(const char *label, uint32_t type, int64_t rows, int64_t n, int64_t nTok, int reps) {
    const double q16 = qk_bench_matmul(QK_BENCH_Q16, type, rows, n, nTok, reps, 0);
    const double fx = qk_bench_matmul(QK_BENCH_F32X, type, rows, n, nTok, reps, 0);
    const double q8 = qk_bench_matmul(QK_BENCH_Q8, type, rows, n, nTok, reps, 0);
    const double ref = qk_bench_matmul(QK_BENCH_Q16, type, rows, n, nTok, reps > 20 ? reps / 10 : 3, 1);
    const double gflop = 2.0 * (double)rows * (double)n * (double)nTok / 1e3;
    printf("q16 %-24s %6lldx%-5lld nTok %lld  q16 %8.1f us (%6.1f GFLOP/s)  f32x %8.1f us  int8 %8.1f us  "
           "q16/f32x %.2f  ref %9.1f us\n",
           label, (long long)rows, (long long)n, (long long)nTok, q16, gflop / q16, fx, q8, q16 / fx, ref);
}

int main(int argc, char **argv) {
    if (argc > 1 && argv[1][0] == 'q') {  // 16-bit-activation decode products
        printf("isa: %s\n", qk_isa_name());
        row_q16("Q4_1 matvec", 3, 1536, 576, 1, 2001);
        row_q16("Q4_1 matvec 576x1536", 3, 576, 1536, 1, 2001);
        row_q16("Q8_0 matvec (LM head)", 8, 49152, 576, 1, 101);
        row_q16("Q4_0 matvec", 2, 1536, 576, 1, 1001);
        row_q16("Q8_0 matvec", 8, 1536, 576, 1, 1001);
        row_q16("Q4_1 x2", 3, 1536, 576, 2, 1001);
        row_q16("Q4_1 x3", 3, 1536, 576, 3, 1001);
        return 0;
    }
    if (argc > 1 && argv[1][0] == 'x') {  // f32-activation products only
        printf("isa: %s\n", qk_isa_name());
        row_f32x("Q4_1 matvec", 3, 1536, 576, 1, 2001);
        row_f32x("Q4_1 matvec 576x1536", 3, 576, 1536, 1, 2001);
        row_f32x("Q8_0 matvec (LM head)", 8, 49152, 576, 1, 101);
        row_f32x("Q4_1 x3", 3, 1536, 576, 3, 1001);
        row_f32x("Q4_0 matvec", 2, 1536, 576, 1, 1001);
        row_f32x("Q4_K matvec", 12, 1536, 768, 1, 1001);
        row_f32x("Q5_K matvec", 13, 1536, 768, 1, 1001);
        row_f32x("Q6_K matvec", 14, 1536, 768, 1, 1001);
        row_f32x("F16 matvec", 1, 1536, 576, 1, 1001);
        row_f32x("Q4_1 x128", 3, 1536, 576, 128, 51);
        row_f32x("Q8_0 x128", 8, 1536, 576, 128, 51);
        row_f32x("F32 x128", 0, 1536, 576, 128, 51);
        row_f32x("Q4_K x128", 12, 1536, 768, 128, 51);
        row_f32x("Q6_K x128", 14, 1536, 768, 128, 51);
        return 0;
    }
    printf("isa: %s\n", qk_isa_name());
    row("Q4_1 matvec", 3, 1536, 576, 1, 2001);
    row("Q4_1 matvec 576x1536", 3, 576, 1536, 1, 2001);
    row("Q8_0 matvec (LM head)", 8, 49152, 576, 1, 101);
    row("F32 matvec", 0, 1536, 576, 1, 1001);
    row("Q4_0 matvec", 2, 1536, 576, 1, 1001);
    row("Q4_K matvec", 12, 1536, 768, 1, 1001);
    row("Q5_K matvec", 13, 1536, 768, 1, 1001);
    row("Q6_K matvec", 14, 1536, 768, 1, 1001);
    row("Q4_1 x128", 3, 1536, 576, 128, 51);
    row("Q8_0 x128", 8, 1536, 576, 128, 51);
    row("F32 x128", 0, 1536, 576, 128, 51);
    row("Q4_K x128", 12, 1536, 768, 128, 51);
    row("Q6_K x128", 14, 1536, 768, 128, 51);
    return 0;
}
