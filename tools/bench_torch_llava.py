"""PyTorch peer of `hiprune-bench llava`: LLaVA-1.5-7B shapes with random weights, eager CPU.

  vision:  seconds per frame of transformers' CLIPVisionModel at ViT-L/14-336 shapes (F32, eager
           attention), run to the feature layer (23 of 24 layers: vision_feature_layer -2, as LLaVA
           reads hidden_states[-2]), then the multi_modal_projector (1024 → 4096 → 4096, GELU).
  prefill: seconds of a prefill of --tokens rows (inputs_embeds) through --layers Llama-2-7B decoder
           layers in BF16 (sdpa), final norm and lm_head of the last row; then --decode-tokens greedy
           steps with the KV cache: tokens/s.
Prints one JSON line: {"median": seconds, "decode_tokens_per_second": ..., "peak_rss_mb": ...}.
Run: python3 tools/bench_torch_llava.py vision | prefill --tokens 2344 --layers 4
"""
import argparse
import json
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from bench_torch_qwen import peak_rss_mb, timed


def bench_vision(args):
    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                           image_size=336, patch_size=14, hidden_act="quick_gelu", projection_dim=768)
    cfg._attn_implementation = "eager"
    tower = CLIPVisionModel(cfg).eval()
    projector = torch.nn.Sequential(torch.nn.Linear(1024, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 4096)).eval()
    pixels = torch.randn(1, 3, 336, 336)

    def run():
        with torch.no_grad():
            out = tower(pixel_values=pixels, output_hidden_states=True)
            projector(out.hidden_states[-1][:, 1:])
    return {"median": timed(run, args.runs, 0)}


def bench_prefill(args):
    torch.set_default_dtype(torch.bfloat16)
    cfg = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=args.layers,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5)
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg).eval()
    x = torch.randn(1, args.tokens, 4096)

    def prefill():
        with torch.no_grad():
            h = model.model(inputs_embeds=x).last_hidden_state
            model.lm_head(h[:, -1:])
    seconds = timed(prefill, args.runs, 0)
    with torch.no_grad():
        out = model(inputs_embeds=x, use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(args.decode_tokens):
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        rate = args.decode_tokens / (time.perf_counter() - start)
    return {"median": seconds, "decode_tokens_per_second": rate}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["vision", "prefill"])
    p.add_argument("--tokens", type=int, default=2344)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--decode-tokens", type=int, default=8)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = bench_vision(args) if args.what == "vision" else bench_prefill(args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
