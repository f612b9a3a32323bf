// CPU feature detection and the kernel-path decision (contract in include/cpu_features.h).
#include "cpu_features.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define HP_X86 1
#include <cpuid.h>
#endif

static const char *const feature_names[HP_CPU_FEATURE_COUNT] = {
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
    "avx512_vnni", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
};

static struct {
    int has[HP_CPU_FEATURE_COUNT];
    hp_isa supported;
    int requested;  // HIPRUNE_ISA: a level, or -1 when unreadable
    char model[49];
} cpu;

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
// The active level: -1 until first read. Written by hp_isa_set; read (relaxed) by every kernel call.
static int active_level = -1;

#ifdef HP_X86
static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect(void) {
    unsigned a, b, c, d, max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    // The OS must save the registers: XCR0 bits 1–2 (XMM, YMM) for AVX, 5–7 (opmask, ZMM) for
    // AVX-512, 17–18 (tile config, tile data) for AMX.
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm = avx && (xcr0 & 0x6) == 0x6;
    int zmm = ymm && (xcr0 & 0xE0) == 0xE0;
    int tiles = (xcr0 & 0x60000) == 0x60000;
    cpu.has[HP_CPU_FMA] = ymm && ((c >> 12) & 1);
    cpu.has[HP_CPU_F16C] = ymm && ((c >> 29) & 1);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned sub1_eax = 0;
        if (a >= 1) {
            unsigned b1, c1, d1;
            __cpuid_count(7, 1, sub1_eax, b1, c1, d1);
        }
        cpu.has[HP_CPU_AVX2] = ymm && ((b >> 5) & 1);
        cpu.has[HP_CPU_AVX512F] = zmm && ((b >> 16) & 1);
        cpu.has[HP_CPU_AVX512DQ] = zmm && ((b >> 17) & 1);
        cpu.has[HP_CPU_AVX512BW] = zmm && ((b >> 30) & 1);
        cpu.has[HP_CPU_AVX512VL] = zmm && ((b >> 31) & 1);
        cpu.has[HP_CPU_AVX512_VNNI] = zmm && ((c >> 11) & 1);
        cpu.has[HP_CPU_AVX512_FP16] = zmm && ((d >> 23) & 1);
        cpu.has[HP_CPU_AMX_BF16] = tiles && ((d >> 22) & 1);
        cpu.has[HP_CPU_AMX_TILE] = tiles && ((d >> 24) & 1);
        cpu.has[HP_CPU_AMX_INT8] = tiles && ((d >> 25) & 1);
        cpu.has[HP_CPU_AVX_VNNI] = ymm && ((sub1_eax >> 4) & 1);
        cpu.has[HP_CPU_AVX512_BF16] = zmm && ((sub1_eax >> 5) & 1);
    }
    if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
        unsigned *words = (unsigned *)cpu.model;
        for (unsigned leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &words[4 * leaf], &words[4 * leaf + 1], &words[4 * leaf + 2],
                        &words[4 * leaf + 3]);
        }
        cpu.model[48] = 0;
    }
}
#else
static void detect(void) {}
#endif

static int parse_level(const char *text) {
    if (!text) return HP_ISA_AVX512;
    if (strcmp(text, "portable") == 0) return HP_ISA_PORTABLE;
    if (strcmp(text, "avx2") == 0) return HP_ISA_AVX2;
    if (strcmp(text, "avx512") == 0) return HP_ISA_AVX512;
    return -1;
}

static void initialise(void) {
    detect();
    int avx2 = cpu.has[HP_CPU_AVX2] && cpu.has[HP_CPU_FMA];
    int avx512 = avx2 && cpu.has[HP_CPU_AVX512F] && cpu.has[HP_CPU_AVX512BW] && cpu.has[HP_CPU_AVX512VL]
              && cpu.has[HP_CPU_AVX512DQ];
    cpu.supported = avx512 ? HP_ISA_AVX512 : avx2 ? HP_ISA_AVX2 : HP_ISA_PORTABLE;
    cpu.requested = parse_level(getenv("HIPRUNE_ISA"));
    // Trim the brand string's padding (some CPUs lead with spaces).
    char *start = cpu.model;
    while (*start == ' ') start++;
    memmove(cpu.model, start, strlen(start) + 1);
    for (size_t n = strlen(cpu.model); n > 0 && cpu.model[n - 1] == ' '; n--) cpu.model[n - 1] = 0;
    if (!cpu.model[0]) strcpy(cpu.model, "unknown");
    // An unreadable request runs portable: the executables refuse to start on it anyway, and a
    // library user who mistyped asked for less than the default.
    int level = cpu.requested < 0 ? HP_ISA_PORTABLE : cpu.requested;
    __atomic_store_n(&active_level, level < (int)cpu.supported ? level : (int)cpu.supported, __ATOMIC_RELAXED);
}

static void ensure(void) { pthread_once(&cpu_once, initialise); }

int hp_cpu_has(hp_cpu_feature feature) {
    if ((int)feature < 0 || feature >= HP_CPU_FEATURE_COUNT) return 0;
    ensure();
    return cpu.has[feature];
}

const char *hp_cpu_feature_name(hp_cpu_feature feature) {
    return (int)feature >= 0 && feature < HP_CPU_FEATURE_COUNT ? feature_names[feature] : "?";
}

hp_isa hp_isa_supported(void) {
    ensure();
    return cpu.supported;
}

hp_isa hp_isa_active(void) {
    int level = __atomic_load_n(&active_level, __ATOMIC_RELAXED);
    if (level >= 0) return (hp_isa)level;
    ensure();
    return (hp_isa)__atomic_load_n(&active_level, __ATOMIC_RELAXED);
}

hp_isa hp_isa_set(hp_isa level) {
    ensure();
    int wanted = (int)level < 0 ? 0 : (int)level;
    if (wanted > (int)cpu.supported) wanted = (int)cpu.supported;
    return (hp_isa)__atomic_exchange_n(&active_level, wanted, __ATOMIC_RELAXED);
}

const char *hp_isa_name(hp_isa level) {
    switch (level) {
    case HP_ISA_PORTABLE: return "portable";
    case HP_ISA_AVX2: return "avx2";
    case HP_ISA_AVX512: return "avx512";
    }
    return "?";
}

int hp_isa_requested(void) {
    ensure();
    return cpu.requested;
}

const char *hp_isa_missing_feature(hp_isa level) {
    static const hp_cpu_feature avx2[] = {HP_CPU_AVX2, HP_CPU_FMA};
    static const hp_cpu_feature avx512[] = {HP_CPU_AVX512F, HP_CPU_AVX512BW, HP_CPU_AVX512VL, HP_CPU_AVX512DQ};
    ensure();
    if (level >= HP_ISA_AVX2)
        for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
            if (!cpu.has[avx2[i]]) return feature_names[avx2[i]];
    if (level >= HP_ISA_AVX512)
        for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
            if (!cpu.has[avx512[i]]) return feature_names[avx512[i]];
    return NULL;
}

const char *hp_cpu_model(void) {
    ensure();
    return cpu.model;
}
