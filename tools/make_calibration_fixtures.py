"""`calibrate`'s dispersion curve recomputed from transformers' attentions, on an encoder deep
enough for the suggestion to be a choice (6 layers: the window is the first 4).

Writes
  Tests/Fixtures/smolvlm-deep/: a tiny random-weight SmolVLMForConditionalGeneration (SigLIP of 6
    layers at 128x128, patch 8, pixel shuffle 2: an 8x8 grid of 64 tokens; a 1-layer text side with
    tied embeddings) with the fixture tokenizer and a preprocessor_config.json;
  Tests/Fixtures/smolvlm-deep/frames.mkv: four 128x128 frames at 1 fps, FFV1 (lossless, planar
    RGB), so the frames our decoder hands the encoder are exactly these pixels (the frames are at
    the model's size: no resize);
  Tests/Fixtures/smolvlm-deep/calibration.json: per layer the dispersion HIPRUNE.md defines (mean
    pairwise grid distance among the top round(0.1 N) = 6 tokens by score, averaged over the four
    frames), each layer's score computed as tools/make_selection_fixtures.py does (softmax attention
    averaged over heads and queries per key patch, mean over each pixel-shuffle block), the
    suggested layer (minimum over the first ceil(2L/3) layers, ties to the lower), and the
    smallest gap between the 6th and 7th score of any layer and frame (how far from a tie).

Run: python3 tools/make_calibration_fixtures.py   (needs the ffmpeg command)
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_selection_fixtures import scores  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "smolvlm-deep")
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
SIDE, PATCH, SCALE, LAYERS = 128, 8, 2, 6


def model():
    torch.manual_seed(11)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(TOKENIZER, "tokenizer.json"))
    config = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=2,
                           image_size=SIDE, patch_size=PATCH, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        text_config=dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=len(tokenizer),
                         max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=10000.0,
                         tie_word_embeddings=True,
                         bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
                         eos_token_id=tokenizer.convert_tokens_to_ids("<end_of_utterance>")),
        scale_factor=SCALE, image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=True)
    m = SmolVLMForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() >= 2:
                # Sharper attention than the default init, so the layers' top tokens differ.
                p.copy_(torch.randn(p.shape) * 2 / p.shape[-1] ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape))
            else:
                p.copy_(0.1 * torch.randn(p.shape))
    return m


def frames():
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    out = []
    for k in range(4):
        rgb = np.stack([(x * (2 + k)) % 256, (y * 2 + 30 * k) % 256, ((x ^ y) * 3 + 50 * k) % 256], -1).astype(np.uint8)
        top, left = 10 + 25 * k, 90 - 20 * k
        rgb[top: top + 24, left: left + 24] = [250, 230, 20]
        out.append(rgb)
    return out


def write_lossless_video(path, images):
    """RGB frames (equal sizes) at 1 fps, FFV1 planar RGB, bit-exact (no muxer date or random
    UID: the same frames give the same file); checks that decoding gives them back."""
    height, width = images[0].shape[:2]
    raw = b"".join(i.tobytes() for i in images)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                    "-r", "1", "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                    path], input=raw, check=True)
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
    assert decoded == raw, "FFV1 round trip is not lossless"


def dispersion(s, side):
    n = s.shape[0]
    k = min(n, max(2, round(0.1 * n)))  # Python's round: half to even
    top = np.argsort(-s, kind="stable")[:k]
    pos = np.stack([top // side, top % side], 1).astype(np.float64)
    d = [np.sqrt(((pos[i] - pos[j]) ** 2).sum()) for i in range(k) for j in range(i + 1, k)]
    gap = float(np.sort(s)[::-1][k - 1] - np.sort(s)[::-1][k])
    return float(np.mean(d)), gap


def main():
    m = model()
    shutil.rmtree(OUT, ignore_errors=True)
    m.save_pretrained(OUT)
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TOKENIZER, name), os.path.join(OUT, name))
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "SmolVLMImageProcessor", "do_convert_rgb": True, "do_image_splitting": False,
                   "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                   "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "resample": 1,
                   "size": {"longest_edge": SIDE}, "max_image_size": {"longest_edge": SIDE},
                   "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": SIDE}}}, f, indent=2)
    images = frames()
    write_lossless_video(os.path.join(OUT, "frames.mkv"), images)

    curve, gaps = np.zeros(LAYERS), []
    for rgb in images:
        per_layer, side = scores(m, rgb, SCALE, PATCH)
        for layer in range(1, LAYERS + 1):
            value, gap = dispersion(per_layer[layer].astype(np.float64), side)
            curve[layer - 1] += value / len(images)
            gaps.append(gap)
    window = (2 * LAYERS + 2) // 3
    suggested = int(np.argmin(curve[:window])) + 1
    ordered = np.sort(curve[:window])
    print("dispersion", np.round(curve, 4), "suggested", suggested, "margin to the next", ordered[1] - ordered[0],
          "smallest 6th/7th score gap", min(gaps))
    assert ordered[1] - ordered[0] > 1e-3, "the suggestion is a near tie"
    with open(os.path.join(OUT, "calibration.json"), "w") as f:
        json.dump({"source": "tools/make_calibration_fixtures.py (transformers eager attentions + numpy)",
                   "frames": len(images), "grid": f"{side}x{side}", "dispersion": [float(v) for v in curve],
                   "suggested_object_layer": suggested, "window": window, "minimum_top_k_gap": min(gaps)}, f, indent=1)
    print("wrote", OUT, sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT)), "bytes")


if __name__ == "__main__":
    main()
