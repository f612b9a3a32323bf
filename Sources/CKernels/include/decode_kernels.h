#pragma once
// Decode-step kernels (single-token matrix-vector products).
