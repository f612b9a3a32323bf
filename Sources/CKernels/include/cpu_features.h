#pragma once
// The one place that decides which instruction set the C kernels (and Swift, through CKernels) use.
//
// `hp_cpu_has` answers what the CPU and the operating system provide (CPUID plus the register state
// the OS saves, XGETBV), read once. `hp_isa_active` is the path every kernel's dispatch takes: the
// best level the CPU supports, lowered by the environment variable HIPRUNE_ISA=portable|avx2|avx512
// (read once; a request above what the CPU has is lowered to what it has) and by `hp_isa_set`
// (tests force each path the machine has). Kernels check the level on every call (one relaxed
// load), so a forced level applies from the next call on.
#ifdef __cplusplus
extern "C" {
#endif

/// CPU features, named as /proc/cpuinfo names them (hp_cpu_feature_name).
typedef enum {
    HP_CPU_AVX2 = 0,
    HP_CPU_FMA,
    HP_CPU_F16C,
    HP_CPU_AVX512F,
    HP_CPU_AVX512BW,
    HP_CPU_AVX512VL,
    HP_CPU_AVX512DQ,
    HP_CPU_AVX512_BF16,
    HP_CPU_AVX512_VNNI,
    HP_CPU_AVX512_FP16,
    HP_CPU_AVX_VNNI,
    HP_CPU_AMX_TILE,
    HP_CPU_AMX_BF16,
    HP_CPU_AMX_INT8,
    HP_CPU_FEATURE_COUNT
} hp_cpu_feature;

/// Non-zero when the CPU has `feature` and the OS saves its registers. Not lowered by HIPRUNE_ISA:
/// kernels combine it with `hp_isa_active` (e.g. the AVX512-BF16 kernel runs only on the avx512 path).
/// AMX also needs a per-process permission request (arch_prctl) before use; this only says it exists.
int hp_cpu_has(hp_cpu_feature feature);

/// "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
/// "avx512_vnni", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"; "?" out of range.
const char *hp_cpu_feature_name(hp_cpu_feature feature);

/// Kernel paths, each a superset of the one below it.
/// - HP_ISA_AVX2: avx2 + fma (+ f16c).
/// - HP_ISA_AVX512: the avx2 set + avx512f, avx512bw, avx512vl, avx512dq.
typedef enum { HP_ISA_PORTABLE = 0, HP_ISA_AVX2 = 1, HP_ISA_AVX512 = 2 } hp_isa;

/// The best path this CPU supports.
hp_isa hp_isa_supported(void);

/// The path kernels take now: min(supported, HIPRUNE_ISA, the level set by hp_isa_set).
hp_isa hp_isa_active(void);

/// Forces kernels onto `level` (lowered to the supported level) from the next call on; returns the
/// previously active level, so callers can restore it. Process-wide; meant for tests and benchmarks.
hp_isa hp_isa_set(hp_isa level);

/// "portable", "avx2", "avx512".
const char *hp_isa_name(hp_isa level);

/// The level HIPRUNE_ISA asks for, HP_ISA_AVX512 when it is unset, or -1 when its value is none of
/// portable/avx2/avx512 (the executables refuse to start then).
int hp_isa_requested(void);

/// The first feature `level` needs that this CPU lacks, or NULL when it has them all.
const char *hp_isa_missing_feature(hp_isa level);

/// The CPU's brand string (CPUID 0x80000002–4), e.g. "AMD EPYC 7B13 64-Core Processor"; "unknown"
/// where there is none.
const char *hp_cpu_model(void);

#ifdef __cplusplus
}
#endif
