"""Builds the LLaVA fixtures: tiny random-weight LLaVA-1.5 models and their reference outputs, by transformers.

Run with transformers installed:  python3 tools/make_llava_fixtures.py
Writes Tests/Fixtures/llava-tiny/ (LlavaForConditionalGeneration, saved by save_pretrained: the
`language_model.model.*` / `vision_tower.*` / `multi_modal_projector.*` layout) holding
  config.json, model.safetensors, preprocessor_config.json (CLIP processor, 48-px crops),
  tokenizer.json + tokenizer_config.json (Llama's SentencePiece BPE with byte fallback, as llava-hf ships it:
  tools/make_llama_tokenizer.py; legacy Prepend/Replace normalizer here and in llava-next-video-tiny,
  Metaspace in llava-next-tiny), chat_template.json (the checkpoint's own template),
  reference.safetensors:
    input.rgb              I32 [48, 48, 3]   frame 0, already at the model's size
    pixel_values           F32 [3, 48, 48]   after rescale + normalise
    hidden.<l>             F32 [577, 32]     CLIP hidden_states[l]: l = 0 after pre_layrnorm, l = 2 (the feature layer), 3 (the last)
    patch_scores.<l>       F32 [576]         mean over heads and all 577 queries of layer l's softmax, CLS column dropped
    features               F32 [576, 32]     projector output of hidden_states[vision_feature_layer], CLS dropped
    features_full          F32 [577, 32]     the same with vision_feature_select_strategy "full" (CLS row first)
    resize.rgb             I32 [60, 80, 3]   a 80x60 frame; resize.pixel_values F32 [3, 48, 48] as the CLIP processor
                           makes them (shortest edge 48, bicubic, centre crop 48; see clip_preprocess)
  reference.json:
    kept: {"192": [...], "128": [...], "64": [...]}  HiPrune's published arithmetic (tools/prune_reference.py) on
          frame 0's CLIP scores (object layer 1, deep layer 2 = the feature layer of a 3-layer tower; 24x24 grid)
    frames [{time, rgb, kept}], question, text, ids, tokens (20 greedy tokens, no stop), first_logits:
          transformers' language model fed the kept features at the <image> positions of the video prompt
          (the processor's: apply_chat_template with one image part per frame and the question, each <image>
          expanded to the frame's kept count, tokenized with BOS);
    full: the same question with "full" (each frame's CLS row ahead of its kept rows): text, ids, tokens, first_logits.

The CLIP tower keeps the 24 x 24 grid of ViT-L/14-336 at a small size: 48-px images in 2-px patches.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration, LlavaNextConfig,
                          LlavaNextForConditionalGeneration, LlavaNextProcessor, LlavaNextVideoConfig,
                          LlavaNextVideoForConditionalGeneration, LlavaNextVideoProcessor, LlavaProcessor)
from transformers.image_processing_utils import BaseImageProcessor, select_best_resolution
from transformers.processing_utils import ProcessorMixin
from transformers.video_processing_utils import BaseVideoProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prune_reference import hiprune_reference  # noqa: E402
from make_chat_template_fixtures import LLAVA_MISTRAL, LLAVA_VICUNA  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
LLAMA_TOKENIZER = os.path.join(FIXTURES, "llama-tokenizer")
# llava-hf/LLaVA-NeXT-Video-7B-hf's chat_template.json: the vicuna template with a loop for videos,
# rendering the model card's `USER: <video>\nQUESTION ASSISTANT:`.
LLAVA_NEXT_VIDEO = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def randomise(model, generator):
    """Weights large enough that attention is far from uniform (HiPrune's selection must not hinge
    on float32 noise), rounded to BF16: the checkpoints are saved in BF16 (half the bytes) and the
    float32 reference runs on exactly the values saved."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "position_embedding" not in name and "embed_tokens" not in name:
                fan_in = p[0].numel()
                gain = 3.0 if ("q_proj" in name or "k_proj" in name) and "vision" in name else 1.0
                p.copy_(torch.randn(p.shape, generator=generator) * gain / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def frame(height, width, t=0.0):
    """A deterministic RGB frame: gradients, a bright square and a hash texture."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255) // max(width - 1, 1)
    g = (y * 255) // max(height - 1, 1)
    b = (x * 131 + y * 71 + (x * y) % 97 + int(t * 50)) % 256
    rgb = np.stack([r, g, b], axis=-1).astype(np.uint8)
    top = int(height // 4 + t * 4)
    rgb[top: top + height // 4, width // 2: 3 * width // 4] = [250, 240, 30]
    return rgb


def pixel_values(rgb):
    # transformers' fused rescale + normalise: (x - mean / rf) / (std / rf), all float32.
    x = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)
    m = torch.tensor(CLIP_MEAN) * 255.0
    s = torch.tensor(CLIP_STD) * 255.0
    return (x - m[:, None, None]) / s[:, None, None]


def clip_preprocess(rgb, side):
    """The CLIP image processor of transformers 5 (its torchvision backend, the default; neither PIL nor
    torchvision is installed here, so its steps are written out): uint8 image → resize of the shortest
    edge to `side` (the other edge int(side · long / short)) with antialiased bicubic on the uint8
    image → centre crop side x side → rescale + normalise."""
    h, w = rgb.shape[:2]
    if h <= w:
        size = (side, int(side * w / h))
    else:
        size = (int(side * h / w), side)
    # torchvision's resize of a uint8 tensor is this call: PyTorch's uint8 kernel, which rounds the
    # horizontal pass to uint8 before the vertical one.
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()[None]
    x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    x = x[0].to(torch.float32)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    x = x[:, top: top + side, left: left + side]
    m = torch.tensor(CLIP_MEAN) * 255.0
    s = torch.tensor(CLIP_STD) * 255.0
    return (x - m[:, None, None]) / s[:, None, None]


def preprocessor_config(side):
    return {"crop_size": {"height": side, "width": side}, "do_center_crop": True, "do_convert_rgb": True,
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN,
            "image_processor_type": "CLIPImageProcessor", "image_std": CLIP_STD, "processor_class": "LlavaProcessor",
            "resample": 3, "rescale_factor": 1 / 255, "size": {"shortest_edge": side}}


def clip_forward(tower, pixels):
    tower.config._attn_implementation = "eager"
    out = tower(pixel_values=pixels[None], output_hidden_states=True, output_attentions=True)
    return out.hidden_states, out.attentions


class _NoImages(BaseImageProcessor):
    """Stands in for the image/video processors: neither PIL nor torchvision is installed here, and
    only the processors' text path (chat template, placeholder expansion, tokenizer) is used."""


class _NoVideos(BaseVideoProcessor):
    pass


ProcessorMixin.check_argument_for_proper_class = lambda self, name, argument: type(argument)


def processor_prompt(variant, template, runs, question, video=False):
    """The prompt as transformers' LLaVA processors build it: apply_chat_template with one image part
    per frame (or one video part) and the question, each placeholder expanded by the processor's own
    get_text_with_replacements to `runs[i]` tokens (the frame's kept count, not the full grid), then
    the tokenizer with BOS unless the text starts with it (ProcessorMixin.apply_chat_template's rule).
    Returns the tokenizer, text and ids."""
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(LLAMA_TOKENIZER, variant))
    if video:
        processor = LlavaNextVideoProcessor(video_processor=_NoVideos(), image_processor=_NoImages(), tokenizer=tokenizer,
                                            chat_template=template)
        parts = [{"type": "video"}]
    else:
        processor = LlavaProcessor(image_processor=_NoImages(), tokenizer=tokenizer, chat_template=template,
                                   patch_size=2, vision_feature_select_strategy="default")
        parts = [{"type": "image"} for _ in runs]
    conversation = [{"role": "user", "content": parts + [{"type": "text", "text": question}]}]
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    token = processor.video_token if video else processor.image_token
    replacements = [token * sum(runs)] if video else [token * n for n in runs]
    texts, _ = processor.get_text_with_replacements([rendered], **({"videos_replacements": replacements} if video
                                                                   else {"images_replacements": replacements}))
    text = texts[0]
    special = not text.startswith(tokenizer.bos_token)
    return tokenizer, text, tokenizer(text, add_special_tokens=special)["input_ids"]


def copy_tokenizer(variant, template, out):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(LLAMA_TOKENIZER, variant, name), os.path.join(out, name))
    with open(os.path.join(out, "chat_template.json"), "w") as f:
        json.dump({"chat_template": template}, f, indent=2)


def greedy(model, lm_head, embed, embeddings, steps):
    generated = []
    with torch.no_grad():
        first = lm_head(model(inputs_embeds=embeddings).last_hidden_state[0, -1])
        for _ in range(steps):  # full recompute each step: no cache in the reference
            logits = lm_head(model(inputs_embeds=embeddings).last_hidden_state[0, -1])
            token = int(torch.argmax(logits))
            generated.append(token)
            embeddings = torch.cat([embeddings, embed(torch.tensor([[token]]))], 1)
    return generated, first


def build_llava():
    out = os.path.join(FIXTURES, "llava-tiny")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(LLAMA_TOKENIZER, "legacy"))
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    side, patch = 48, 2
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=2, image_size=side, patch_size=patch, projection_dim=16,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                         max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        image_token_id=image_id, image_seq_length=(side // patch) ** 2, vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu")
    generator = torch.Generator().manual_seed(11)
    model = LlavaForConditionalGeneration(config).eval()
    randomise(model, generator)
    inner = model.model
    layers = config.vision_config.num_hidden_layers
    feature_layer = layers + config.vision_feature_layer + 1  # hidden_states index, 1-based layer

    rgb = frame(side, side)
    pixels = pixel_values(rgb)
    with torch.no_grad():
        hidden, attentions = clip_forward(inner.vision_tower, pixels)
        features = inner.multi_modal_projector(hidden[feature_layer][:, 1:])[0]
        features_full = inner.multi_modal_projector(hidden[feature_layer])[0]
    tensors = {"input.rgb": torch.from_numpy(rgb.astype(np.int32)), "pixel_values": pixels, "features": features,
               "features_full": features_full}
    assert len(hidden) == layers + 1
    for l in sorted({0, feature_layer, layers}):  # the embeddings, the feature layer and the last
        tensors[f"hidden.{l}"] = hidden[l][0]
    scores = {}
    for l, a in enumerate(attentions, start=1):
        scores[l] = a[0].mean(dim=(0, 1))[1:]  # heads, then queries (CLS included) → per key; CLS column dropped
        tensors[f"patch_scores.{l}"] = scores[l]

    # The CLIP processor (PIL, bicubic) on a frame of another size.
    wide = frame(60, 80)
    resized = clip_preprocess(wide, side)
    tensors["resize.rgb"] = torch.from_numpy(wide.astype(np.int32))
    tensors["resize.pixel_values"] = resized
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "reference.safetensors"),
              metadata={"grid": f"{side // patch}x{side // patch}", "feature_layer": str(feature_layer)})

    # HiPrune's published selection on this CLIP grid at the paper's budgets.
    object_layer, deep_layer = 1, feature_layer
    s_obj, s_deep = scores[object_layer].numpy(), scores[deep_layer].numpy()
    kept = {}
    for budget in (192, 128, 64):
        k, _ = hiprune_reference(s_obj, s_deep, side // patch, budget, 0.1)
        kept[str(budget)] = k.tolist()
        # Near-ties at a cut-off would make the comparison hinge on float32 noise.
        anchors = round(budget * 0.1 / 5)
        ordered = np.sort(s_obj)[::-1]
        n, width = s_deep.shape[0], side // patch
        anchor_ids = np.argsort(-s_obj, kind="stable")[:anchors]
        objects = np.zeros(n, dtype=bool)
        objects[np.clip(np.concatenate([anchor_ids + d for d in (0, -1, 1, -width, width)]), 0, n - 1)] = True
        registers = np.zeros(n, dtype=bool)
        registers[k] = True
        registers &= ~objects
        last_in, first_out = s_deep[registers].min(), s_deep[~registers & ~objects].max()
        print(f"budget {budget}: anchor cut gap {ordered[anchors - 1] - ordered[anchors]:.3g}, "
              f"register cut gap {last_in - first_out:.3g} (scores ~{s_deep.mean():.3g})")

    # The whole pruned VLM: two frames, kept tokens from HiPrune at 64 and 48, fed to the language model.
    video = [{"time": 0.0, "rgb": rgb, "kept": kept["64"]}]
    rgb1 = frame(side, side, t=1.5)
    with torch.no_grad():
        h1, a1 = clip_forward(inner.vision_tower, pixel_values(rgb1))
        s1 = {l: a[0].mean(dim=(0, 1))[1:].numpy() for l, a in enumerate(a1, start=1)}
        k1, _ = hiprune_reference(s1[object_layer], s1[deep_layer], side // patch, 48, 0.1)
    video.append({"time": 1.5, "rgb": rgb1, "kept": k1.tolist()})
    for f in video:
        f["tokens"] = len(f["kept"])
    question = "What is happening here?"
    embed = inner.language_model.get_input_embeddings()
    per_frame = []
    with torch.no_grad():
        for f in video:
            hs, _ = clip_forward(inner.vision_tower, pixel_values(f["rgb"]))
            per_frame.append(inner.multi_modal_projector(hs[feature_layer])[0])  # CLS row first

    def answer(rows):
        """Text, ids, greedy tokens and first logits with each frame's `rows(features, kept)` at its <image> run."""
        selected = [rows(x, f["kept"]) for x, f in zip(per_frame, video)]
        runs = [x.shape[0] for x in selected]
        _, text, ids = processor_prompt("legacy", LLAVA_VICUNA, runs, question)
        with torch.no_grad():
            embeddings = embed(torch.tensor([ids]))
            positions = [i for i, t in enumerate(ids) if t == image_id]
            kept_features = torch.cat(selected)
            assert len(positions) == kept_features.shape[0]
            embeddings[0, positions] = kept_features
        tokens, first_logits = greedy(inner.language_model, model.lm_head, embed, embeddings, 20)
        return {"text": text, "ids": ids, "tokens": tokens, "first_logits": first_logits.tolist()}

    default = answer(lambda x, kept: x[1:][kept])
    full = answer(lambda x, kept: torch.cat([x[:1], x[1:][kept]]))
    reference = {
        "kept": kept, "object_layer": object_layer, "deep_layer": deep_layer, "question": question, **default,
        "full": full,
        "frames": [{"time": f["time"], "width": side, "height": side, "rgb": f["rgb"].reshape(-1).tolist(),
                    "kept": f["kept"]} for f in video],
    }
    tokens = default["tokens"]
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)

    model.to(torch.bfloat16).save_pretrained(out)
    for extra in ("generation_config.json",):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)
    copy_tokenizer("legacy", LLAVA_VICUNA, out)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(side), f, indent=2)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"llava-tiny: {sorted(os.listdir(out))}, {total / 1024:.0f} KiB; tokens {tokens}")


def resize_uint8(rgb, height, width):
    """torchvision's resize of a uint8 image (bicubic, antialiased): PyTorch's uint8 kernel."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()[None]
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).numpy()


def anyres(rgb, pinpoints, side, grid):
    """LLaVA-NeXT's processor (transformers 5, torchvision backend; steps written out as neither PIL nor
    torchvision is installed here) and the geometry of its packing.
    Returns pixel values [1 + crops, 3, side, side] (base first, crops in raster order) and the views
    as Swift yields them: base, then every crop with a part inside the unpadded feature map, each
    with its local row and column range on its own grid x grid patch grid."""
    h, w = rgb.shape[:2]
    best_h, best_w = select_best_resolution((h, w), pinpoints)
    # get_patch_output_size, then the zero padding of _pad_for_patching
    if best_w / w < best_h / h:
        new_w, new_h = best_w, min(math.ceil(h * best_w / w), best_h)
    else:
        new_h, new_w = best_h, min(math.ceil(w * best_h / h), best_w)
    canvas = np.zeros((best_h, best_w, 3), dtype=np.uint8)
    top, left = (best_h - new_h) // 2, (best_w - new_w) // 2
    canvas[top: top + new_h, left: left + new_w] = resize_uint8(rgb, new_h, new_w)
    images = [resize_uint8(rgb, side, side)]
    gh, gw = best_h // side, best_w // side
    for r in range(gh):
        for c in range(gw):
            images.append(canvas[r * side:(r + 1) * side, c * side:(c + 1) * side])
    pixels = torch.stack([pixel_values(np.ascontiguousarray(i)) for i in images])
    # unpad_image on the (gh·grid) x (gw·grid) map
    ch, cw = gh * grid, gw * grid
    rows, cols = (0, ch), (0, cw)
    if w / h > cw / ch:
        new = int(round(h * (cw / w), 7))
        pad = (ch - new) // 2
        rows = (pad, ch - pad)
    else:
        new = int(round(w * (ch / h), 7))
        pad = (cw - new) // 2
        cols = (pad, cw - pad)
    views = [{"place": "base", "rows": (0, grid), "cols": (0, grid)}]
    for r in range(gh):
        for c in range(gw):
            lr = (max(rows[0], r * grid) - r * grid, min(rows[1], (r + 1) * grid) - r * grid)
            lc = (max(cols[0], c * grid) - c * grid, min(cols[1], (c + 1) * grid) - c * grid)
            if lr[1] > lr[0] and lc[1] > lc[0]:
                views.append({"place": [r, c], "rows": lr, "cols": lc})
    return pixels, (h, w), views, gw


def anyres_view_features(inner, pixels, views, grid, grid_cols):
    """Each view's projected rows (layer −1, CLS dropped), cut to the view's unpadded part."""
    with torch.no_grad():
        per_view = inner.multi_modal_projector(inner.vision_tower(pixel_values=pixels, output_hidden_states=True)
                                               .hidden_states[-1][:, 1:])
    features = []
    for v in views:
        f = per_view[0] if v["place"] == "base" else per_view[1 + v["place"][0] * grid_cols + v["place"][1]]
        f = f.reshape(grid, grid, -1)[v["rows"][0]:v["rows"][1], v["cols"][0]:v["cols"][1]]
        features.append(f.reshape(-1, f.shape[-1]))
    return features


def pack(view_features, views, kept, newline, grid_cols):
    """Packs pruned views as Swift does: the base's kept rows, then the unpadded crop map row by row,
    each row's kept tokens (crops left to right) followed by the newline when the row kept any.
    view_features[v]: [local rows · local cols, hidden] in raster order; kept[v]: ascending indices."""
    out = [view_features[0][kept[0]]]
    crops = {tuple(v["place"]): i for i, v in enumerate(views) if v["place"] != "base"}
    crop_rows = sorted({p[0] for p in crops})
    for r in crop_rows:
        in_row = [crops[(r, c)] for c in range(grid_cols) if (r, c) in crops]
        local_rows = views[in_row[0]]["rows"][1] - views[in_row[0]]["rows"][0]
        for lr in range(local_rows):
            row = []
            for v in in_row:
                width = views[v]["cols"][1] - views[v]["cols"][0]
                ks = [k for k in kept[v] if lr * width <= k < (lr + 1) * width]
                if ks:
                    row.append(view_features[v][ks])
            if row:
                out += row + [newline[None]]
    return torch.cat(out)


def build_llava_next():
    """LLaVA-NeXT with a Mistral decoder (tied embeddings), saved under transformers 5's module names
    (model.vision_tower.*, model.language_model.*, model.image_newline): 32-px crops in 4-px patches
    (8 x 8 per view), pinpoints 1x2, 2x1, 2x2 crops. reference.safetensors: for three frames
    (wide, tall, near square) input.<i>, pixels.<i> (each view's pixel values) and packed.<i>
    (transformers' pack_image_features, newlines included); reference.json: each frame's size and views, and a pruned question on the wide frame
    (kept indices per view, prompt ids, 20 greedy tokens, first logits)."""
    out = os.path.join(FIXTURES, "llava-next-tiny")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(LLAMA_TOKENIZER, "metaspace"))
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    side, patch = 32, 4
    grid = side // patch
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=side, patch_size=patch, projection_dim=16,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text_config=dict(model_type="mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer), head_dim=8,
                         max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id),
        image_token_id=image_id, image_grid_pinpoints=pinpoints, vision_feature_layer=-1,
        vision_feature_select_strategy="default", projector_hidden_act="gelu", tie_word_embeddings=True)
    generator = torch.Generator().manual_seed(12)
    model = LlavaNextForConditionalGeneration(config).eval()
    randomise(model, generator)
    with torch.no_grad():  # tied: small embeddings, or the head's logits favour repeating the last token
        model.model.language_model.embed_tokens.weight.mul_(0.1)
        w = model.model.language_model.embed_tokens.weight
        w.copy_(w.to(torch.bfloat16).to(torch.float32))
    inner = model.model
    inner.vision_tower.config._attn_implementation = "eager"
    tensors, frames = {}, []
    for i, (h, w) in enumerate([(30, 50), (50, 30), (40, 45)]):
        rgb = frame(h, w, t=i)
        pixels, size, views, grid_cols = anyres(rgb, pinpoints, side, grid)
        with torch.no_grad():
            packed = inner.get_image_features(pixel_values=pixels, image_sizes=torch.tensor([size])).pooler_output[0]
        view_features = anyres_view_features(inner, pixels, views, grid, grid_cols)
        everything = [list(range(f.shape[0])) for f in view_features]
        mine = pack(view_features, views, everything, inner.image_newline.detach(), grid_cols)
        assert torch.equal(mine, packed), "the packing rule differs from transformers' pack_image_features"
        tensors[f"input.{i}"] = torch.from_numpy(rgb.astype(np.int32))
        tensors[f"packed.{i}"] = packed
        # The processor's pixel values of each view (base, then crops with a view): Swift's resize
        # differs by a level here and there (torch's uint8 kernel has fixed-point weights), which
        # moves features by ~1 %; the feature parity is checked from these.
        tensors[f"pixels.{i}"] = torch.stack([pixels[0] if v["place"] == "base" else pixels[1 + v["place"][0] * grid_cols + v["place"][1]]
                                              for v in views])
        frames.append({"width": w, "height": h, "views": views})
        print(f"frame {w}x{h}: views {[(v['place'], v['rows'], v['cols']) for v in views]}, packed {tuple(packed.shape)}")
        if i == 0:
            question_frame = (rgb, view_features, views, grid_cols)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "reference.safetensors"))

    # A pruned question on the wide frame: every view keeps a third of its tokens (a fixed random draw).
    rgb, view_features, views, grid_cols = question_frame
    rng = np.random.default_rng(5)
    kept = [sorted(rng.choice(f.shape[0], size=max(1, f.shape[0] // 3), replace=False).tolist()) for f in view_features]
    packed = pack(view_features, views, kept, inner.image_newline.detach(), grid_cols)
    question = "Describe the picture."
    _, text, ids = processor_prompt("metaspace", LLAVA_MISTRAL, [packed.shape[0]], question)
    with torch.no_grad():
        embed = inner.language_model.get_input_embeddings()
        embeddings = embed(torch.tensor([ids]))
        positions = [i for i, t in enumerate(ids) if t == image_id]
        assert len(positions) == packed.shape[0]
        embeddings[0, positions] = packed
    tokens, first_logits = greedy(inner.language_model, model.lm_head, embed, embeddings, 20)
    reference = {"frames": frames, "question": {"frame": 0, "time": 2.0, "kept": kept, "question": question, "text": text,
                                                "ids": ids, "tokens": tokens, "first_logits": first_logits.tolist()}}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)

    # transformers 5's module names, as the model holds them (save_pretrained would write llava-hf's);
    # the tied lm_head is not stored.
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out)
    copy_tokenizer("metaspace", LLAVA_MISTRAL, out)
    pre = preprocessor_config(side)
    pre.update({"image_processor_type": "LlavaNextImageProcessor", "processor_class": "LlavaNextProcessor",
                "image_grid_pinpoints": pinpoints, "do_pad": True})
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"llava-next-tiny: {sorted(os.listdir(out))}, {total / 1024:.0f} KiB; tokens {tokens}")


def build_llava_next_video():
    """LLaVA-NeXT-Video: the 24 x 24 CLIP grid of llava-tiny's shapes, 2 x 2 average pooling to 12 x 12
    before the projector, a Llama decoder; saved by save_pretrained with llava-hf's layout renamed to
    `vision_tower.vision_model.*` (as llava-hf checkpoints ship it). The fixture tokenizer gains a
    <video> token. reference.safetensors: input.<i>, pooled.<i> (projector output of the pooled
    features, [144, 32]) and scores.<i>.<l> (patch scores, CLS column dropped, mean over each 2 x 2
    block); reference.json: kept (HiPrune's published arithmetic at 48 of 144 per frame), the
    prompt and 20 greedy tokens."""
    out = os.path.join(FIXTURES, "llava-next-video-tiny")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    copy_tokenizer("legacy", LLAVA_NEXT_VIDEO, out)
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(LLAMA_TOKENIZER, "legacy"))
    video_id = tokenizer.convert_tokens_to_ids("<video>")
    side, patch, stride = 48, 2, 2
    grid, pooled = side // patch, side // patch // stride
    config = LlavaNextVideoConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=2, image_size=side, patch_size=patch, projection_dim=16,
                           hidden_act="quick_gelu", layer_norm_eps=1e-5),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                         max_position_embeddings=1024, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), video_token_id=video_id,
        spatial_pool_mode="average", spatial_pool_stride=stride, vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu")
    generator = torch.Generator().manual_seed(13)
    model = LlavaNextVideoForConditionalGeneration(config).eval()
    randomise(model, generator)
    inner = model.model
    feature_layer = 2
    tensors, video = {}, []
    for i, t in enumerate([0.0, 2.5]):
        rgb = frame(side, side, t=t)
        with torch.no_grad():
            pixels = pixel_values(rgb)
            features = inner.get_video_features(pixel_values_videos=pixels[None, None]).pooler_output[0]
            _, attentions = clip_forward(inner.vision_tower, pixels)
        scores = {}
        for l, a in enumerate(attentions, start=1):
            s = a[0].mean(dim=(0, 1))[1:].reshape(pooled, stride, pooled, stride).mean(dim=(1, 3)).reshape(-1)
            scores[l] = s.numpy()
            tensors[f"scores.{i}.{l}"] = s
        tensors[f"input.{i}"] = torch.from_numpy(rgb.astype(np.int32))
        tensors[f"pooled.{i}"] = features
        kept, _ = hiprune_reference(scores[1], scores[feature_layer], pooled, 48, 1.0)
        video.append({"time": t, "rgb": rgb, "kept": kept.tolist(), "features": features})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "reference.safetensors"))
    question = "What moves?"
    total = sum(len(f["kept"]) for f in video)
    _, text, ids = processor_prompt("legacy", LLAVA_NEXT_VIDEO, [len(f["kept"]) for f in video], question, video=True)
    with torch.no_grad():
        embed = inner.language_model.get_input_embeddings()
        embeddings = embed(torch.tensor([ids]))
        positions = [i for i, t in enumerate(ids) if t == video_id]
        assert len(positions) == total
        embeddings[0, positions] = torch.cat([f["features"][f["kept"]] for f in video])
    tokens, first_logits = greedy(inner.language_model, model.lm_head, embed, embeddings, 20)
    reference = {"object_layer": 1, "deep_layer": feature_layer, "question": question, "text": text, "ids": ids,
                 "tokens": tokens, "first_logits": first_logits.tolist(),
                 "frames": [{"time": f["time"], "width": side, "height": side, "kept": f["kept"]} for f in video]}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f)
    model.to(torch.bfloat16).save_pretrained(out)
    # llava-hf's checkpoints name the tower vision_tower.vision_model.*; transformers 5 writes vision_tower.*.
    path = os.path.join(out, "model.safetensors")
    from safetensors.torch import load_file
    state = load_file(path)
    state = {(k.replace("vision_tower.", "vision_tower.vision_model.", 1) if k.startswith("vision_tower.") else k): v
             for k, v in state.items()}
    save_file(state, path, metadata={"format": "pt"})
    generation = os.path.join(out, "generation_config.json")
    if os.path.exists(generation):
        os.remove(generation)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(side), f, indent=2)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"llava-next-video-tiny: {sorted(os.listdir(out))}, {size / 1024:.0f} KiB; tokens {tokens}")


if __name__ == "__main__":
    build_llava()
    build_llava_next()
    build_llava_next_video()
