"""PyTorch peer of `hiprune-bench qwen`: Qwen2.5-VL-3B shapes with random weights, eager CPU.

  vision:  seconds per temporal patch (two frames) of Qwen2_5_VisionTransformerPretrainedModel at
           --width × --height (multiples of 28), attention weights captured for two full blocks
           (as the Swift side captures HiPrune's two layers); every block shares one block's weights.
  prefill: seconds of a prefill of --tokens rows (inputs_embeds + 3-D positions) through --layers
           Qwen2.5-VL decoder layers sharing one layer's weights, final norm, lm_head of the last row.
Prints one JSON line: {"median": seconds, "peak_rss_mb": ...}.
Run: python3 tools/bench_torch_qwen.py vision --width 448 --height 252
"""
import argparse
import copy
import json
import time

import torch
from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as mq


def peak_rss_mb():
    """VmHWM of this process. Not ru_maxrss: Linux carries the parent's maximum over fork and exec,
    so a peer started by a large bench process would report the bench's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def median(samples):
    samples = sorted(samples)
    return samples[len(samples) // 2]


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return median(out)


def config():
    vision = dict(depth=32, hidden_size=1280, hidden_act="silu", intermediate_size=3420, num_heads=16, in_channels=3,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=2, window_size=112,
                  fullatt_block_indexes=[7, 15, 23, 31], out_hidden_size=2048)
    text = dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=1,
                num_attention_heads=16, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                tie_word_embeddings=True)
    return Qwen2_5_VLConfig(vision_config=vision, text_config=text)


CAPTURED = []


def capture(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    out, weights = mq.eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    CAPTURED.append(weights.mean(dim=(1, 2)))  # the score reduction, so the peer does the same work
    return out, weights


def bench_vision(args):
    from transformers import AttentionInterface
    cfg = config().vision_config
    AttentionInterface.register("hiprune_capture", capture)
    cfg._attn_implementation = "sdpa"
    model = mq.Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg).eval()
    shared = model.blocks[0]
    model.blocks = torch.nn.ModuleList([shared] * cfg.depth)
    # The two HiPrune blocks capture attention; the others run sdpa.
    capturing = mq.Qwen2_5_VLVisionBlock(cfg)
    capturing.load_state_dict(shared.state_dict())
    capturing.attn.config = copy.deepcopy(cfg)
    capturing.attn.config._attn_implementation = "hiprune_capture"
    for i in (15, 31):
        model.blocks[i] = capturing
    h, w = args.height // 14, args.width // 14
    grid = torch.tensor([[1, h, w]])
    pixels = torch.randn(h * w, 3 * 2 * 14 * 14)

    def run():
        CAPTURED.clear()
        with torch.no_grad():
            model(pixels, grid_thw=grid)
    return timed(run, args.runs, 1 if args.warmup else 0)


def bench_prefill(args):
    cfg = config().text_config
    cfg._attn_implementation = "sdpa"
    layer = mq.Qwen2_5_VLDecoderLayer(cfg, 0).eval()
    rotary = mq.Qwen2_5_VLRotaryEmbedding(cfg)
    norm = mq.Qwen2_5_VLRMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
    embed = torch.nn.Embedding(cfg.vocab_size, cfg.hidden_size)
    n = args.tokens
    x = torch.randn(1, n, cfg.hidden_size)
    positions = torch.arange(n).view(1, 1, -1).expand(3, 1, -1)

    def run():
        with torch.no_grad():
            h = x
            pe = rotary(h, positions)
            for _ in range(args.layers):
                out = layer(h, attention_mask=None, position_ids=positions, position_embeddings=pe)
                h = out[0] if isinstance(out, tuple) else out
            h = norm(h[:, -1:])
            return torch.nn.functional.linear(h, embed.weight)
    return timed(run, args.runs, 1 if args.warmup else 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["vision", "prefill"])
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--height", type=int, default=252)
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--layers", type=int, default=36)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--warmup", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seconds = bench_vision(args) if args.what == "vision" else bench_prefill(args)
    peak = peak_rss_mb()
    print(json.dumps({"median": seconds, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
