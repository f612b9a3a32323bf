#pragma once
// Hand-written CPU kernels for the loops OpenBLAS does not cover well: single-row products of the
// decode step (in F32, BF16 and ggml's quantized block formats) and the element-wise passes of the
// encoder. Each kernel picks its instruction set at
// run time (AVX2 + FMA where the CPU has them, portable C otherwise), so the package still builds
// for the baseline x86-64 target and runs anywhere.
#include "decode_kernels.h"
#include "encoder_kernels.h"
#include "quant_kernels.h"
