#pragma once
// Hand-written CPU kernels for the loops OpenBLAS does not cover well: single-row products of the
// decode step (in F32, BF16 and ggml's quantized block formats) and the element-wise passes of the
// encoder. Each kernel picks its instruction set at run time through cpu_features.h (AVX-512,
// AVX2 + FMA, or portable C), so the package still builds
// for the baseline x86-64 target and runs anywhere.
#include "cpu_features.h"
#include "decode_kernels.h"
#include "encoder_kernels.h"
#include "bf16_gemm.h"
#include "quant_kernels.h"
#include "weight_check.h"
#include "image_resample.h"
