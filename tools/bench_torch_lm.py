"""PyTorch peer of `hiprune-bench prefill`: a random-weight LlamaForCausalLM at SmolLM2-135M's
shapes (the SmolVLM2-256M text model), float32, 2 threads. Prints one JSON object:
{"prefill": {"612": seconds, ...}, "decode_tokens_per_second": x, "threads": 2}
Run: python3 tools/bench_torch_lm.py [--runs N] [--decode-tokens N]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--lengths", default="612,268,142")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    lengths = [int(x) for x in args.lengths.split(",")]
    prefill = {}
    with torch.inference_mode():
        for n in lengths:
            ids = torch.randint(0, config.vocab_size, (1, n))
            model(ids, use_cache=True)  # warm-up
            samples = []
            for _ in range(args.runs):
                t = time.perf_counter()
                model(ids, use_cache=True)
                samples.append(time.perf_counter() - t)
            prefill[str(n)] = statistics.median(samples)
        rates = []
        ids = torch.randint(0, config.vocab_size, (1, min(lengths)))
        for _ in range(args.runs):
            out = model(ids, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for _ in range(args.decode_tokens):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            rates.append(args.decode_tokens / (time.perf_counter() - t))
    print(json.dumps({"prefill": prefill, "decode_tokens_per_second": statistics.median(rates), "threads": args.threads}))


if __name__ == "__main__":
    main()
