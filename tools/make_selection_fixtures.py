"""End-to-end selection parity fixture: HiPrune's kept tokens recomputed from transformers' attentions.

Loads Tests/Fixtures/smolvlm-vqa with transformers (eager attention, output_attentions=True), runs
three deterministic frames already at the model's size (64x64, so the processor does not resize),
computes every layer's score as HIPRUNE.md says (softmax attention averaged over heads and queries,
per key patch; pooled by mean over each pixel-shuffle block, blocks in the connector's raster
order), and recomputes the selection in numpy: grid mode (true 4-neighbours, max(1, ...) anchors,
object set over budget cut by object score) and reference mode (the published flat-index
arithmetic, tools/prune_reference.py). Temporal de-duplication is off.

Writes Tests/Fixtures/selection/reference.json:
  frames: [{width, height, rgb}], cases: [{mode, budget, alpha, object_layer, deep_layer,
  frames: [{indices, roles}]}], and the minimum score gap (how far from a tie the decisions are).

Run: python3 tools/make_selection_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import SmolVLMForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prune_reference import hiprune_reference, topk  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "smolvlm-vqa")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "selection", "reference.json")

# mode, budget (tokens), alpha, object layer, deep layer
CASES = [
    ("grid", 5, 0.1, 1, 2), ("grid", 8, 1.0, 1, 2), ("grid", 11, 2.0, 1, 2), ("grid", 3, 5.0, 2, 2),
    ("grid", 16, 0.1, 1, 2), ("grid", 6, 0.5, 2, 1),
    ("reference", 5, 0.1, 1, 2), ("reference", 8, 0.5, 1, 2), ("reference", 11, 1.0, 1, 2),
    ("reference", 13, 1.0, 2, 1),
]


def frames(size):
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for k in range(3):
        r = (x * (200 + 20 * k)) // size
        g = (y * 255) // size
        b = (x * (131 + 17 * k) + y * 71 + (x * y) % (97 - 10 * k)) % 256
        rgb = np.stack([r, g, b], axis=-1).astype(np.uint8)
        top, left = 8 + 12 * k, 40 - 14 * k
        rgb[top: top + 16, left: left + 16] = [250, 240, 30]
        out.append(rgb)
    return out


def scores(model, rgb, scale, patch):
    # transformers' fused rescale + normalise: (x - mean / rf) / (std / rf), float32.
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)
    pixels = (x - 0.5 * 255) / (0.5 * 255)
    vision = model.model.vision_model
    vision.config._attn_implementation = "eager"
    with torch.no_grad():
        result = vision(pixel_values=pixels[None], output_attentions=True)
    side = rgb.shape[0] // patch
    per_layer = {}
    for layer, a in enumerate(result.attentions, start=1):
        patch_scores = a[0].mean(dim=(0, 1))
        blocks = patch_scores.reshape(side // scale, scale, side // scale, scale).mean(dim=(1, 3))
        per_layer[layer] = blocks.reshape(-1).numpy().astype(np.float32)
    return per_layer, side // scale


def hiprune_grid(s_obj, s_deep, rows, cols, keep, alpha, prompt=None):
    """HIPRUNE.md's grid mode; returns {index: role}. `prompt(open_tokens, room)`, for HiPrune++,
    returns the prompt tokens chosen among the open tokens after the buffers, before the registers."""
    n = rows * cols
    keep = min(keep, n)
    roles = {}
    if keep == 0:
        return roles
    anchor_count = min(keep, max(1, round(keep * alpha / 5)))  # Python's round: half to even
    for a in topk(s_obj, anchor_count):
        roles[int(a)] = "anchor"
    buffers = set()
    for a in list(roles):
        r, c = divmod(a, cols)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < rows and 0 <= cc < cols and rr * cols + cc not in roles:
                buffers.add(rr * cols + cc)
    buffers = np.array(sorted(buffers), dtype=np.int64)
    room = keep - anchor_count
    if buffers.size > room:
        buffers = buffers[topk(s_obj[buffers], room)]
    for b in buffers:
        roles[int(b)] = "buffer"
    if prompt is not None and len(roles) < keep:
        for i in prompt(np.array([i for i in range(n) if i not in roles], dtype=np.int64), keep - len(roles)):
            roles[int(i)] = "prompt"
    open_tokens = np.array([i for i in range(n) if i not in roles], dtype=np.int64)
    for i in open_tokens[topk(s_deep[open_tokens], keep - len(roles))]:
        roles[int(i)] = "register"
    return roles


def hiprune_published(s_obj, s_deep, cols, keep, alpha):
    kept, anchors = hiprune_reference(s_obj, s_deep, cols, keep, alpha)
    anchors = set(int(a) for a in anchors)
    n = s_obj.shape[0]
    neighbours = {min(n - 1, max(0, a + d)) for a in anchors for d in (-1, 1, -cols, cols)}
    roles = {}
    for i in kept:
        i = int(i)
        roles[i] = "anchor" if i in anchors else "buffer" if i in neighbours else "register"
    return roles


def main():
    model = SmolVLMForConditionalGeneration.from_pretrained(MODEL, dtype=torch.float32).eval()
    config = model.config
    patch, scale = config.vision_config.patch_size, config.scale_factor
    size = config.vision_config.image_size
    images = frames(size)
    per_frame = [scores(model, rgb, scale, patch) for rgb in images]
    side = per_frame[0][1]
    gap = min(float(np.min(np.diff(np.sort(s)))) for layers, _ in per_frame for s in layers.values())
    cases = []
    for mode, budget, alpha, object_layer, deep_layer in CASES:
        results = []
        for layers, _ in per_frame:
            s_obj, s_deep = layers[object_layer], layers[deep_layer]
            if mode == "grid":
                roles = hiprune_grid(s_obj, s_deep, side, side, budget, alpha)
            else:
                roles = hiprune_published(s_obj, s_deep, side, budget, alpha)
            indices = sorted(roles)
            results.append({"indices": indices, "roles": [roles[i] for i in indices]})
        cases.append({"mode": mode, "budget": budget, "alpha": alpha, "object_layer": object_layer,
                      "deep_layer": deep_layer, "frames": results})
        print(mode, budget, alpha, object_layer, deep_layer, [r["indices"] for r in results])
    with open(OUT, "w") as f:
        json.dump({"source": "tools/make_selection_fixtures.py (transformers eager attentions + numpy HiPrune)",
                   "grid": f"{side}x{side}", "minimum_score_gap": gap,
                   "frames": [{"width": size, "height": size, "rgb": rgb.reshape(-1).tolist()} for rgb in images],
                   "cases": cases}, f, separators=(",", ":"))
    print(f"minimum gap between two scores of a layer: {gap:.3g}; wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
