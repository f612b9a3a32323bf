#pragma once
// Encoder element-wise kernels (softmax rows, GELU, layer norm).
