"""PyTorch peer for `hiprune-bench encode`: the SmolVLM vision encoder + connector, random weights.

Usage: python tools/bench_torch_vision.py [--hidden 768 --layers 12 --heads 12 --intermediate 3072
        --image 512 --patch 16 --scale 4 --text-hidden 576 --threads 2 --runs 5 --warmup 1] [--attentions]
        [--attn eager|sdpa] [--bf16]
--attentions needs eager (sdpa returns no attention weights); --bf16 runs under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's BF16 path on CPUs (oneDNN underneath).
Prints one line of JSON: {"seconds": [per run], "median": s, "threads": n, "attentions": bool, "attn": str, "bf16": bool}.
"""
import contextlib
import argparse
import json
import statistics
import time

import torch
from transformers import SmolVLMConfig, SmolVLMModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--image", type=int, default=512)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--text-hidden", type=int, default=576)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--attentions", action="store_true", help="also return every layer's attention (score capture)")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager", help="attention implementation")
    p.add_argument("--bf16", action="store_true", help="run under torch.autocast(cpu, bfloat16)")
    a = p.parse_args()
    if a.attentions and a.attn != "eager":
        p.error("--attentions needs --attn eager")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config = SmolVLMConfig(
        vision_config=dict(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                           num_attention_heads=a.heads, image_size=a.image, patch_size=a.patch),
        text_config=dict(model_type="llama", hidden_size=a.text_hidden, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, vocab_size=64),
        scale_factor=a.scale)
    config.vision_config._attn_implementation = a.attn
    model = SmolVLMModel(config).eval()
    vision, connector = model.vision_model, model.connector
    vision.config._attn_implementation = a.attn
    pixels = torch.randn(1, 3, a.image, a.image)
    times = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for i in range(a.warmup + a.runs):
            start = time.perf_counter()
            out = vision(pixel_values=pixels, output_attentions=a.attentions)
            if a.attentions:
                # What score capture needs from every layer: mean over heads and queries.
                _ = [att[0].mean(dim=(0, 1)) for att in out.attentions]
            connector(out.last_hidden_state)
            if i >= a.warmup:
                times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": times, "median": statistics.median(times), "threads": a.threads,
                      "attentions": a.attentions, "attn": a.attn, "bf16": a.bf16}))


if __name__ == "__main__":
    main()
