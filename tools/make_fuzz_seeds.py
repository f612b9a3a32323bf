"""Seed corpora of the parser fuzzer (scripts/fuzz-parsers.sh), small enough for libFuzzer's
-max_len: Tests/Fixtures/hostile/fuzz/{safetensors,gguf,tokenizer}/seed-*. Each is a valid file
of its format made by the format's own library (safetensors, gguf), so the fuzzer starts from
inputs that reach deep into the parsers.

Run: python3 tools/make_fuzz_seeds.py   (needs numpy, safetensors, gguf)
"""
import json
import os

import numpy as np
from gguf import GGUFWriter
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "hostile", "fuzz")


def small_tokenizer(source):
    """The Qwen fixture tokenizer cut to its first 64 tokens and the merges they allow."""
    with open(source) as f:
        t = json.load(f)
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < 64}
    merges = [m for m in t["model"]["merges"] if "".join(m if isinstance(m, list) else m.split(" ")) in vocab][:16]
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    t["added_tokens"] = [{**a, "id": 64 + i} for i, a in enumerate(t["added_tokens"][:3])]
    return t


def main():
    for sub in ("safetensors", "gguf", "tokenizer"):
        os.makedirs(os.path.join(ROOT, sub), exist_ok=True)
    rng = np.random.default_rng(0)
    save_file({"a": rng.standard_normal((2, 3)).astype(np.float32),
               "b": rng.standard_normal(4).astype(np.float16),
               "c": np.arange(3, dtype=np.int32)},
              os.path.join(ROOT, "safetensors", "seed-three"), metadata={"format": "pt"})

    tok = small_tokenizer(os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "qwen-tokenizer", "tokenizer.json"))
    with open(os.path.join(ROOT, "tokenizer", "seed-bpe.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))

    w = GGUFWriter(os.path.join(ROOT, "gguf", "seed-llama"), "llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    tokens = [chr(c) for c in range(ord("a"), ord("a") + 12)] + ["ab", "<s>", "</s>"]
    w.add_token_list(tokens)
    w.add_token_merges(["a b"])
    w.add_token_types([1] * 13 + [3, 3])
    w.add_bos_token_id(13)
    w.add_eos_token_id(14)
    w.add_tensor("token_embd.weight", rng.standard_normal((15, 8)).astype(np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
