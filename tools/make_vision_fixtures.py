"""Builds the SmolVLM vision fixtures: tiny random-weight SmolVLM models and their reference outputs.

Run with the project venv:  python3 tools/make_vision_fixtures.py
Writes Tests/Fixtures/smolvlm-a/ and Tests/Fixtures/smolvlm-b/, each holding
  config.json, model.safetensors (or shards + model.safetensors.index.json), preprocessor_config.json
  reference.safetensors:
    input.rgb            I32 [H, W, 3]   the frame, packed RGB24 values 0...255
    pixel_values         F32 [3, H, W]   after rescale + normalise (the processor's fused arithmetic)
    hidden.<l>           F32 [patches, hidden]   l = 0 embeddings, l = 1...L encoder layer outputs
    last_hidden_state    F32 [patches, hidden]   after post_layernorm
    patch_scores.<l>     F32 [patches]   mean over heads and queries of layer l's softmax (1-based)
    scores.<l>           F32 [tokens]    patch scores pooled (mean) over each pixel-shuffle block
    features             F32 [tokens, text hidden]   connector output
The frame is already at the model's size, so the processor does not resize it.
Model a: scale factor 2, F32 weights, one file. Model b: scale factor 4, BF16 weights, sharded.
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures")

FIXTURES = {
    "smolvlm-a": dict(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=64, patch_size=8),
        text_hidden=48, scale_factor=2, dtype=torch.float32, shard=None, seed=1),
    "smolvlm-b": dict(
        vision=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
                    image_size=96, patch_size=6),
        text_hidden=40, scale_factor=4, dtype=torch.bfloat16, shard="150KB", seed=2),
}


def make_config(spec):
    text = dict(model_type="llama", hidden_size=spec["text_hidden"], intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, vocab_size=128, max_position_embeddings=256,
                rms_norm_eps=1e-5, rope_theta=10000.0, pad_token_id=2)
    return SmolVLMConfig(vision_config=dict(spec["vision"], hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
                         text_config=text, scale_factor=spec["scale_factor"], image_token_id=127)


def randomise(model, dtype, generator):
    """Weights large enough that attention is far from uniform; rounded to `dtype` so the
    float32 reference runs on exactly the values that are saved."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embedding" not in name:
                fan_in = p[0].numel()
                gain = 3.0 if ("q_proj" in name or "k_proj" in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=generator) * gain / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            p.copy_(p.to(dtype).to(torch.float32))


def frame(height, width):
    """A deterministic RGB frame: gradients, a bright square and a hash texture."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255) // max(width - 1, 1)
    g = (y * 255) // max(height - 1, 1)
    b = (x * 131 + y * 71 + (x * y) % 97) % 256
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint8)
    rgb[height // 4: height // 2, width // 2: 3 * width // 4] = [250, 240, 30]
    return rgb


def pixel_values(rgb, mean, std, rescale_factor):
    # transformers' fused rescale + normalise: (x - mean / rf) / (std / rf), all float32.
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)
    m = torch.tensor(mean) * (1.0 / rescale_factor)
    s = torch.tensor(std) * (1.0 / rescale_factor)
    return (x - m[:, None, None]) / s[:, None, None]


def pool(patch_scores, side, scale):
    """Mean over each scale × scale block, blocks in raster order (the connector's token order)."""
    grid = patch_scores.reshape(side // scale, scale, side // scale, scale)
    return grid.mean(dim=(1, 3)).reshape(-1)


def build(name, spec):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    generator = torch.Generator().manual_seed(spec["seed"])
    config = make_config(spec)
    model = SmolVLMForConditionalGeneration(config).eval()
    randomise(model, spec["dtype"], generator)

    vision = spec["vision"]
    size = vision["image_size"]
    mean, std, rescale = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 1 / 255
    rgb = frame(size, size)
    pixels = pixel_values(rgb, mean, std, rescale)

    inner = model.model
    inner.vision_model.config._attn_implementation = "eager"
    with torch.no_grad():
        result = inner.vision_model(pixel_values=pixels[None], output_hidden_states=True, output_attentions=True)
        features = inner.connector(result.last_hidden_state)[0]

    side = size // vision["patch_size"]
    tensors = {
        "input.rgb": torch.from_numpy(rgb.astype(np.int32)),
        "pixel_values": pixels,
        "last_hidden_state": result.last_hidden_state[0],
        "features": features,
    }
    assert len(result.hidden_states) == vision["num_hidden_layers"] + 1
    for l, h in enumerate(result.hidden_states):
        tensors[f"hidden.{l}"] = h[0]
    for l, a in enumerate(result.attentions, start=1):
        patch_scores = a[0].mean(dim=(0, 1))  # heads, then queries → per key
        tensors[f"patch_scores.{l}"] = patch_scores
        tensors[f"scores.{l}"] = pool(patch_scores, side, spec["scale_factor"])
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "reference.safetensors"),
              metadata={"grid": f"{side // spec['scale_factor']}x{side // spec['scale_factor']}"})

    model = model.to(spec["dtype"])
    if spec["shard"]:
        model.save_pretrained(out, max_shard_size=spec["shard"])
    else:
        model.save_pretrained(out)
    for extra in ("generation_config.json",):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)
    preprocessor = {
        "image_processor_type": "SmolVLMImageProcessor",
        "processor_class": "SmolVLMProcessor",
        "do_convert_rgb": True, "do_image_splitting": False, "do_normalize": True, "do_pad": True,
        "do_rescale": True, "do_resize": True,
        "image_mean": mean, "image_std": std, "rescale_factor": rescale,
        "resample": 1,
        "size": {"longest_edge": size * 4},
        "max_image_size": {"longest_edge": size},
        "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": size}},
    }
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor, f, indent=2)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: {sorted(os.listdir(out))}, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    torch.manual_seed(0)
    for name, spec in FIXTURES.items():
        build(name, spec)
