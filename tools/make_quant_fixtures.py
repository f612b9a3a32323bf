"""Fixtures for the quantized-weight kernels (Tests/TensorTests/QuantKernelTests, Tests/VLMTests).

Tests/Fixtures/quant/blocks.gguf holds, for each block type we read, a 4 x 512 weight tensor named
after the type ("Q4_K", ...) and "<type>.expected": the F32 values the `gguf` package's numpy
reference (gguf.quants.dequantize) gives for those blocks. Types gguf can quantize (Q8_0, Q4_0,
Q4_1, Q5_0, Q5_1, F16, BF16) are quantized from random normal rows of different scales; the
K-quants, which gguf only dequantizes, are random bytes with valid scales (every 6-bit scale and min
pattern is valid; Q6_K's int8 scales span their range; the f16 super-block scales are small
positives). "Q8_0.source" keeps the F32 rows Q8_0 was made from (the quantize-on-load test).
"unsupported" is one Q2_K tensor: loading it must fail naming tensor and type.

Tests/Fixtures/quant/embedding-untied.gguf and embedding-tied.gguf: a Q4_K token_embd.weight of
9 x 256 (one tile of 8 rows and one row past it), the first beside its own Q4_K output.weight, the
second alone (tied: it is the output head too) -- which of them the loader repacks into tiles.

Run: python3 tools/make_quant_fixtures.py   (numpy, gguf)
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "quant", "blocks.gguf")
ROWS, COLS = 4, 512


def random_blocks(rng, qtype, rows=ROWS, cols=COLS):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    def halves(lo, hi):
        return rng.uniform(lo, hi, size=(rows, cols // block)).astype(np.float16).view(np.uint8).reshape(rows, cols // block, 2)
    if qtype in (Q.Q4_K, Q.Q5_K):
        raw[:, :, 0:2] = halves(1e-4, 2e-3)   # d
        raw[:, :, 2:4] = halves(1e-4, 2e-3)   # dmin
    elif qtype == Q.Q6_K:
        raw[:, :, 208:210] = halves(-2e-3, 2e-3)  # d (sign free: the int8 scales carry sign too)
    return raw.reshape(rows, -1)


def main():
    rng = np.random.default_rng(12)
    w = gguf.GGUFWriter(OUT, "llama")
    source = (rng.standard_normal((ROWS, COLS)) * np.array([[0.02], [0.1], [1.0], [0.005]])).astype(np.float32)
    source[1, 40:72] = 0  # an all-zero block
    for qtype in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.F16, Q.BF16, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            raw = random_blocks(rng, qtype)
        else:
            raw = quants.quantize(source, qtype)
            if raw.dtype != np.uint8:
                raw = raw.view(np.uint8)
        expected = quants.dequantize(raw, qtype).astype(np.float32)
        assert expected.shape == (ROWS, COLS), expected.shape
        w.add_tensor(qtype.name, raw, raw_dtype=qtype)
        w.add_tensor(qtype.name + ".expected", expected)
    w.add_tensor("Q8_0.source", source)
    block, size = gguf.GGML_QUANT_SIZES[Q.Q2_K]
    w.add_tensor("unsupported", np.zeros((2, size), dtype=np.uint8), raw_dtype=Q.Q2_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(OUT, os.path.getsize(OUT), "bytes")

    rng = np.random.default_rng(13)
    for name, tensors in (("embedding-untied.gguf", ("token_embd.weight", "output.weight")),
                          ("embedding-tied.gguf", ("token_embd.weight",))):
        path = os.path.join(os.path.dirname(OUT), name)
        w = gguf.GGUFWriter(path, "llama")
        for tensor in tensors:
            w.add_tensor(tensor, random_blocks(rng, Q.Q4_K, rows=9, cols=256), raw_dtype=Q.Q4_K)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
