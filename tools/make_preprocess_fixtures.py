"""Preprocessing parity on real clips: transformers' video processors on frames decoded by the ffmpeg CLI.

For the first frame of each clip in CLIPS, decoded to RGB24 at its source size by the ffmpeg CLI with the
conversion our decoder (Sources/Stream/Decoder.swift) uses (swscale, bicubic flags, the stream's matrix and
range, BT.601 limited range when unspecified), this runs the processors of the two tiny fixture models
the parity tests use, and then their vision encoders:
  SmolVLM2   Tests/Fixtures/smolvlm-a     SmolVLMVideoProcessor (resize to size.longest_edge, then to the
                                          max_image_size square; resample 1 = Lanczos, antialiased)
  Qwen2.5-VL Tests/Fixtures/qwen25vl-tiny Qwen2VLVideoProcessor (smart_resize, bicubic, antialiased; one
                                          frame: the temporal patch repeats it)
Writes Tests/Fixtures/preprocess/:
  frames.json             per clip: file, source width/height, fnv1a64 of the decoded RGB24 bytes (hex),
                          and per family the resized size, the grid, the default object/deep layers, the
                          budget's token count and the reference's kept tokens
  <clip>.<family>.rgb     the processor's resized frame (uint8, packed RGB, before rescale/normalise)
  <clip>.safetensors      <family>.features F32 [tokens, dim] (connector / merger output on the processor's
                          pixel_values), <family>.scores.<l> F32 [tokens] for the object and deep layers
Kept tokens: HiPrune's published arithmetic (tools/prune_reference.py, flat-index buffers) with budget
round(0.33 · tokens) (half to even) and alpha 0.1 on the reference's scores.

The video processors need torchvision + pillow, which the venv lacks; install the wheels matching torch
into a side directory and put it on PYTHONPATH (as tools/make_qwen_fixtures.py says):
  pip install --no-deps --target /tmp/pydeps torchvision==0.28.0 pillow
  PYTHONPATH=/tmp/pydeps python3 tools/make_preprocess_fixtures.py
torchvision ≥ 0.27 runs PIL's LANCZOS (SmolVLM2's resample = 1) with torch's antialiased uint8 kernel;
an older torchvision falls back to bicubic, and this script refuses to run with one.
"""
import torch

# The PyPI torchvision wheel is a CUDA build whose C ops cannot load next to CPU torch; importing it
# registers fake kernels for these two ops, which must exist first.
_shim = torch.library.Library("torchvision", "DEF")
_shim.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_shim.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import json
import os
import subprocess
import sys

import numpy as np
from safetensors.torch import save_file
from transformers import AttentionInterface, Qwen2_5_VLForConditionalGeneration, SmolVLMForConditionalGeneration
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as mq
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
from transformers.utils import is_torchvision_greater_or_equal
from transformers.vision_utils import get_vision_window_index

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
OUT = os.path.join(REPO, "Tests", "Fixtures", "preprocess")
SMOLVLM = os.path.join(REPO, "Tests", "Fixtures", "smolvlm-a")
QWEN = os.path.join(REPO, "Tests", "Fixtures", "qwen25vl-tiny")
sys.path.insert(0, HERE)
from prune_reference import hiprune_reference  # noqa: E402

CLIPS = {  # name: file in media/ (16:9 real footage, 4:3, 9:16, odd-sized)
    "bigbuckbunny": "bigbuckbunny.mp4",
    "aspect-4x3": "aspect-4x3.mp4",
    "aspect-9x16": "aspect-9x16.mp4",
    "odd-367x211": "odd-367x211.webm",
}
BUDGET = 0.33
ALPHA = 0.1


def decode_first_frame(path):
    """The first frame as RGB24 at the source size, converted as our decoder converts it."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", path], check=True, capture_output=True, text=True).stdout
    width, height = (int(v) for v in probe.strip().split("\n")[0].split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-frames:v", "1", "-sws_flags", "bicubic",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    assert len(raw) == width * height * 3, (path, len(raw), width, height)
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv1a64_fast(array):
    # The same hash in numpy-sized chunks would not be simpler; frames are at most 2.7 MB.
    return f"{fnv1a64(array.tobytes()):016x}"


def keep_count(tokens):
    return int(round(BUDGET * tokens))  # Python's round: half to even, as Budget.resolve


def smolvlm_reference(rgb, processor, model):
    video = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # [1 frame, 3, H, W] uint8
    # The resize alone (uint8, before rescale), then the whole processor for pixel_values.
    from transformers.image_utils import SizeDict
    resized = processor.resize(video, size=SizeDict(**processor.size), resample=processor.resample)
    out = processor(videos=[video], do_sample_frames=False, return_tensors="pt")
    pixels = out["pixel_values"][0]  # [1, 3, side, side]
    mean = torch.tensor(processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_std)[:, None, None]
    rescaled = (resized[0].to(torch.float32) - mean / processor.rescale_factor) / (std / processor.rescale_factor)
    assert torch.allclose(rescaled, pixels[0], atol=1e-6), "pixel_values are not normalise(resize)"
    inner = model.model
    with torch.no_grad():
        result = inner.vision_model(pixel_values=pixels, output_attentions=True)
        features = inner.connector(result.last_hidden_state)[0]
    config = model.config
    side = pixels.shape[-1] // config.vision_config.patch_size
    s = config.scale_factor
    scores = {}
    for l, a in enumerate(result.attentions, start=1):
        patch = a[0].mean(dim=(0, 1)).reshape(side // s, s, side // s, s)
        scores[l] = patch.mean(dim=(1, 3)).reshape(-1)
    layers = config.vision_config.num_hidden_layers
    grid = (side // s, side // s)
    return resized[0].permute(1, 2, 0).contiguous().numpy(), features, scores, grid, (max(1, layers // 2), layers)


CAPTURED = []


def capture_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    out, weights = mq.eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    CAPTURED.append((getattr(module, "block_index", -1), weights.detach().clone()))
    return out, weights


def qwen_reference(rgb, processor, model):
    video = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # [1 frame, 3, H, W]
    out = processor(videos=[video], do_sample_frames=False, return_tensors="pt")
    pixels, grid = out["pixel_values_videos"], out["video_grid_thw"]
    t, gh, gw = grid[0].tolist()
    assert t == 1, grid
    from transformers.image_utils import SizeDict
    resized = processor.resize(video[None], size=SizeDict(shortest_edge=processor.size["shortest_edge"],
                                                         longest_edge=processor.size["longest_edge"]),
                               resample=processor.resample, factor=processor.patch_size * processor.merge_size)
    assert tuple(resized.shape[-2:]) == (gh * 14, gw * 14), (resized.shape, grid)
    visual = model.model.visual
    CAPTURED.clear()
    with torch.no_grad():
        vout = visual(pixels, grid_thw=grid)
    features = vout.pooler_output
    merged = gh * gw // 4
    window_index, _ = get_vision_window_index(grid, 2, model.config.vision_config.window_size, 14)
    scores = {}
    for block in range(model.config.vision_config.depth):
        chunks = [w for (b, w) in CAPTURED if b == block]
        per_patch = torch.cat([w[0].sum(dim=1).mean(dim=0) for w in chunks])
        per_patch = per_patch / per_patch.numel()
        per_group = per_patch.reshape(merged, 4).mean(dim=1)
        raster = torch.empty(merged)
        raster[window_index] = per_group
        scores[block + 1] = raster
    # The encoder's defaults (Qwen25VLVisionConfiguration.defaultScoreLayers): the last full-attention
    # block is the deep layer; the object layer is the middle one of three or more, the first of two.
    full = sorted(b + 1 for b in model.config.vision_config.fullatt_block_indexes)
    object_layer = full[len(full) // 2 - 1] if len(full) >= 3 else full[0]
    layers = (object_layer, full[-1])
    return resized[0, 0].permute(1, 2, 0).contiguous().numpy(), features, scores, (gh // 2, gw // 2), layers


def main():
    if not is_torchvision_greater_or_equal("0.27"):
        sys.exit("torchvision >= 0.27 is needed (older versions run Lanczos as bicubic); see the docstring")
    os.makedirs(OUT, exist_ok=True)
    smol_processor = SmolVLMVideoProcessor.from_pretrained(SMOLVLM)
    smol = SmolVLMForConditionalGeneration.from_pretrained(SMOLVLM, torch_dtype=torch.float32).eval()
    smol.model.vision_model.config._attn_implementation = "eager"
    qwen_processor = Qwen2VLVideoProcessor.from_pretrained(QWEN, cap_pixels_per_frame=False)
    AttentionInterface.register("capture", capture_attention)
    qwen = Qwen2_5_VLForConditionalGeneration.from_pretrained(QWEN, torch_dtype=torch.float32).eval()
    qwen.model.visual.config._attn_implementation = "capture"
    for i, blk in enumerate(qwen.model.visual.blocks):
        blk.attn.block_index = i

    facts = {}
    for name, file in CLIPS.items():
        rgb = decode_first_frame(os.path.join(REPO, "media", file))
        entry = {"file": "media/" + file, "width": rgb.shape[1], "height": rgb.shape[0], "fnv1a64": fnv1a64_fast(rgb)}
        tensors = {}
        for family, run, processor, model in [("smolvlm", smolvlm_reference, smol_processor, smol),
                                              ("qwen", qwen_reference, qwen_processor, qwen)]:
            resized, features, scores, grid, (object_layer, deep_layer) = run(rgb, processor, model)
            resized = np.ascontiguousarray(resized.astype(np.uint8))
            resized.tofile(os.path.join(OUT, f"{name}.{family}.rgb"))
            tokens = grid[0] * grid[1]
            keep = keep_count(tokens)
            kept, _ = hiprune_reference(scores[object_layer].numpy(), scores[deep_layer].numpy(), grid[1], keep, ALPHA)
            entry[family] = {"width": resized.shape[1], "height": resized.shape[0], "grid": list(grid),
                             "object_layer": object_layer, "deep_layer": deep_layer, "keep": keep,
                             "kept": [int(k) for k in kept]}
            tensors[f"{family}.features"] = features.to(torch.float32).contiguous()
            for layer in (object_layer, deep_layer):
                tensors[f"{family}.scores.{layer}"] = scores[layer].to(torch.float32).contiguous()
            print(name, family, rgb.shape[1], "x", rgb.shape[0], "->", resized.shape[1], "x", resized.shape[0],
                  "grid", grid, "kept", len(kept))
        save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))
        facts[name] = entry
    with open(os.path.join(OUT, "frames.json"), "w") as f:
        json.dump(facts, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{OUT}: {len(os.listdir(OUT))} files, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
