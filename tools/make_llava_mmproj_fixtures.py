"""llama.cpp GGUF pairs (text model + vision projector) of the tiny LLaVA fixtures, made the way
LLaVA-1.5 / LLaVA-NeXT mmproj files in the wild are made: by llama.cpp's legacy scripts
(tools/mtmd/legacy-models: llava_surgery_v2.py, then convert_image_encoder_to_gguf.py on a CLIP
model directory with the extracted projector, as docs/multimodal/llava.md's LLaVA-1.5 recipe runs
them), and the text model by convert_hf_to_gguf.py from the language-model part.
convert_hf_to_gguf.py --mmproj takes LlavaForConditionalGeneration only for pixtral towers, so it
cannot make these.

Usage: PYTHONPATH=PKGS python3 tools/make_llava_mmproj_fixtures.py --llama-cpp DIR   (or LLAMA_CPP_DIR=DIR)
  DIR: a llama.cpp source tree (e.g. the llama-cpp-python sdist's vendor/llama.cpp)
  PKGS: where `pip install --target PKGS pillow sentencepiece` put the two packages the converters
  import and the venv lacks (CLIPProcessor needs an image backend; convert_hf_to_gguf.py imports
  sentencepiece before it looks for tokenizer.model). Kept out of the venv: with Pillow there,
  transformers would pick other image processor classes for every tool.

Writes, for each pair:
  Tests/Fixtures/llava-tiny      → Tests/Fixtures/mmproj-llava/       (LLaVA-1.5, projector "mlp")
  Tests/Fixtures/llava-next-tiny → Tests/Fixtures/mmproj-llava-next/  (LLaVA-NeXT, "mlp" + pinpoints)
  text-f32.gguf    convert_hf_to_gguf.py --outtype f32 on the language model alone
  mmproj-f32.gguf  convert_image_encoder_to_gguf.py --llava-projector … --use-f32
  mmproj-f16.gguf  convert_image_encoder_to_gguf.py --llava-projector …

What the legacy scripts do, and so what the files hold (our reader, Families/LlavaMmproj.swift,
relies on each point):
- tensor names: vision_model.* → v.*, embeddings.class_embedding → v.class_embd, patch_embedding →
  v.patch_embd, position_embedding → v.position_embd, pre_layrnorm → v.pre_ln, encoder.layers.N →
  v.blk.N, self_attn.{q,k,v,out}_proj → attn_{q,k,v,out}, layer_norm1/2 → ln1/ln2, and mlp.fc1 →
  ffn_down, mlp.fc2 → ffn_up (swapped: clip.cpp swaps them back for "mlp" projectors);
  multi_modal_projector.linear_1 / linear_2 → mm.0 / mm.2; image_newline → model.image_newline;
  post_layernorm, the text tower and both CLIP projections are dropped.
- the tower is cut: without vision_feature_layer in the CLIP config.json the last layer is dropped
  (block_count = num_hidden_layers − 1, LLaVA's vision_feature_layer −2) and no
  clip.vision.feature_layer is written; with it, max(feature layers) layers are kept (non-negative
  hidden_states indices) and written as clip.vision.feature_layer. LLaVA-NeXT-tiny reads layer −1,
  so its CLIP config carries it; LLaVA-1.5-tiny's (−2) does not, as openai's CLIP configs do not.
- types: the patch embedding (4-D) is always F16 and the projector's matrices (2-D) always F16,
  even with --use-f32; the rest is F32 with --use-f32, and without it every 2-D ".weight" is F16.
- metadata: image_size, patch_size, embedding_length, feed_forward_length, projection_dim (CLIP's
  own projection_dim, not the language model's width), head_count, layer_norm_epsilon, block_count,
  image_mean / image_std (the CLIP processor's), use_gelu (hidden_act == "gelu"; false for CLIP's
  quick_gelu), projector_type "mlp", and for LLaVA-NeXT the vision config's image_grid_pinpoints
  (flattened, [height, width] pairs as in the checkpoint's config), image_aspect_ratio and
  mm_patch_merge_type.

The scripts are run unchanged. What is adapted is their input, where a transformers-5 checkpoint
differs from what they were written for:
- llava_surgery_v2.py finds the tower under `vision_tower` and takes the name from `vision_model.`
  on, and the projector under `multi_modal_projector`: the staged checkpoint uses llava-hf's names
  (`vision_tower.vision_model.*`, `multi_modal_projector.*`, `image_newline`) where transformers 5
  saves `vision_tower.*` / `model.vision_tower.*` and `model.multi_modal_projector.*`;
- the fixtures are stored in BF16, which convert_image_encoder_to_gguf.py cannot hand to numpy:
  the staged tensors are F32 (BF16 → F32 is exact);
- the LLaVA-1.6 recipe's --clip-model-is-vision route loads a CLIPVisionModel and cuts
  `model.vision_model.encoder.layers`, an attribute transformers 5's CLIPVisionModel no longer has
  (it is the tower itself); the LLaVA-1.5 route loads a CLIPModel, whose `vision_model` is there.
  So both fixtures take that route: a CLIP model directory (stage_clip) with the checkpoint's
  vision_config (plus LLaVA-NeXT's pinpoints, "anyres", "spatial_unpad" as the 1.6 recipe's
  config_vit.json carries them), the tower's weights from llava_surgery_v2.py, a CLIP image
  processor with the checkpoint's sizes and mean/std, a byte-level CLIP tokenizer, and a small text
  tower that is never written.
The text side: convert_hf_to_gguf.py on a directory holding the language model alone (text_config
as config.json, the decoder's tensors under their causal-LM names, the tokenizer and chat template),
as llava.md suggests for language models the legacy converter does not take. The fixture tokenizer
has no SentencePiece tokenizer.model, so the converter takes its LlamaHfVocab path
(tokenizer.ggml.model "llama", every score −1000: ids follow the BPE merge order, which our reader
uses to break ties).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")

PAIRS = {
    "mmproj-llava": "llava-tiny",
    "mmproj-llava-next": "llava-next-tiny",
}

TOWER = ["model.vision_tower.vision_model.", "vision_tower.vision_model.", "model.vision_tower.", "vision_tower."]
PROJECTOR = ["model.multi_modal_projector.", "multi_modal_projector."]
NEWLINE = ["model.image_newline", "image_newline"]
TEXT = ["model.language_model.", "language_model.model."]
HEAD = ["lm_head.weight", "language_model.lm_head.weight"]


def strip(name, prefixes):
    for p in prefixes:
        if name.startswith(p):
            return name[len(p):]
    return None


def run(arguments, cwd, env):
    """One llama.cpp script in a child process (the scripts keep global state); its output on failure."""
    print("+", " ".join(arguments), flush=True)
    result = subprocess.run(arguments, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        sys.exit(f"make_llava_mmproj_fixtures.py: {os.path.basename(arguments[1])} failed ({result.returncode})")


def stage_llava(source, config, tensors, stage):
    """The checkpoint as llava_surgery_v2.py expects it: llava-hf's names, F32."""
    os.makedirs(stage)
    staged = {}
    for name, t in tensors.items():
        if (rest := strip(name, TOWER)) is not None:
            staged["vision_tower.vision_model." + rest] = t.float().contiguous()
        elif (rest := strip(name, PROJECTOR)) is not None:
            staged["multi_modal_projector." + rest] = t.float().contiguous()
        elif name in NEWLINE:
            staged["image_newline"] = t.float().contiguous()
    save_file(staged, os.path.join(stage, "model.safetensors"))
    with open(os.path.join(stage, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def bytes_to_unicode():
    """GPT-2's byte → printable character map, which CLIP's BPE vocabulary is spelled in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def stage_clip(config, pre, model, clip):
    """A CLIP model directory as the LLaVA-1.5 recipe's clip-vit-large-patch14-336: config.json with
    the checkpoint's vision_config, the tower's weights (llava_surgery_v2.py's llava.clip), a CLIP
    image processor with the checkpoint's sizes and mean/std, and a byte-level CLIP tokenizer. The
    text tower is a small one from_pretrained initialises and the converter never writes (an mmproj
    has no text encoder)."""
    os.makedirs(clip)
    shutil.copy(os.path.join(model, "llava.clip"), os.path.join(clip, "pytorch_model.bin"))
    shutil.copy(os.path.join(model, "llava.projector"), clip)
    vision = dict(config["vision_config"])
    vision.setdefault("model_type", "clip_vision_model")
    if config["model_type"] == "llava_next":
        # Read from the tower's config by the converter (the recipe's config_vit.json carries them).
        vision["image_grid_pinpoints"] = config["image_grid_pinpoints"]
        vision["image_aspect_ratio"] = "anyres"
        vision["mm_patch_merge_type"] = "spatial_unpad"
    characters = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(characters)}
    for c in characters:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    text = {"model_type": "clip_text_model", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "vocab_size": len(vocab), "max_position_embeddings": 16, "projection_dim": 8,
            "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": 1}
    clip_config = {"architectures": ["CLIPModel"], "model_type": "clip", "dtype": "float32",
                   "projection_dim": vision.get("projection_dim", 512), "text_config": text, "vision_config": vision}
    # The converter reads vision_feature_layer from the top level; absent, it drops the last layer
    # (LLaVA's −2). LLaVA-NeXT-tiny reads −1.
    if config.get("vision_feature_layer", -2) != -2:
        clip_config["vision_feature_layer"] = config["vision_feature_layer"]
    side = vision["image_size"]
    processor = {"image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
                 "do_resize": True, "size": {"shortest_edge": side}, "do_center_crop": True,
                 "crop_size": {"height": side, "width": side}, "do_rescale": True, "rescale_factor": 1 / 255,
                 "do_normalize": True, "image_mean": pre["image_mean"], "image_std": pre["image_std"], "resample": 3,
                 "do_convert_rgb": True}
    for name, value in [("config.json", clip_config), ("preprocessor_config.json", processor), ("vocab.json", vocab),
                        ("tokenizer_config.json", {"tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>",
                                                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                                                   "pad_token": "<|endoftext|>", "model_max_length": 16})]:
        with open(os.path.join(clip, name), "w") as f:
            json.dump(value, f, indent=2, ensure_ascii=False)
    with open(os.path.join(clip, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")


def stage_text(source, config, tensors, stage):
    """The language model alone, as a causal LM directory."""
    os.makedirs(stage)
    text = dict(config["text_config"])
    text["architectures"] = ["MistralForCausalLM" if text.get("model_type") == "mistral" else "LlamaForCausalLM"]
    text.setdefault("tie_word_embeddings", config.get("tie_word_embeddings", False))
    staged = {}
    for name, t in tensors.items():
        if (rest := strip(name, TEXT)) is not None:
            staged["model." + rest] = t.contiguous()
        elif name in HEAD:
            staged["lm_head.weight"] = t.contiguous()
    save_file(staged, os.path.join(stage, "model.safetensors"))
    with open(os.path.join(stage, "config.json"), "w") as f:
        json.dump(text, f, indent=2)
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "generation_config.json"]:
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), stage)


def make_pair(llama_cpp, name, source_name):
    source = os.path.join(FIXTURES, source_name)
    out = os.path.join(FIXTURES, name)
    os.makedirs(out, exist_ok=True)
    legacy = os.path.join(llama_cpp, "tools", "mtmd", "legacy-models")
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(source, "preprocessor_config.json")) as f:
        pre = json.load(f)
    tensors = load_file(os.path.join(source, "model.safetensors"))
    # llama.cpp's gguf-py first; an existing PYTHONPATH (e.g. a --target directory with Pillow) after it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.join(llama_cpp, "gguf-py"),
                                                                   os.environ.get("PYTHONPATH")] if p))
    with tempfile.TemporaryDirectory() as work:
        model = os.path.join(work, "llava")
        stage_llava(source, config, tensors, model)
        run([sys.executable, os.path.join(legacy, "llava_surgery_v2.py"), "-C", "-m", model], work, env)
        clip = os.path.join(work, "clip")
        stage_clip(config, pre, model, clip)
        for kind, flags in [("f32", ["--use-f32"]), ("f16", [])]:
            converted = os.path.join(work, f"out-{kind}")
            run([sys.executable, os.path.join(legacy, "convert_image_encoder_to_gguf.py"), "-m", clip,
                 "--llava-projector", os.path.join(clip, "llava.projector"), "--output-dir", converted] + flags, work, env)
            shutil.copy(os.path.join(converted, f"mmproj-model-{kind}.gguf"), os.path.join(out, f"mmproj-{kind}.gguf"))
        text = os.path.join(work, "text")
        stage_text(source, config, tensors, text)
        arguments = [sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), text, "--outtype", "f32",
                     "--model-name", source_name, "--outfile", os.path.join(out, "text-f32.gguf")]
        run(arguments, work, env)
    for f in sorted(os.listdir(out)):
        path = os.path.join(out, f)
        print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP_DIR"))
    p.add_argument("--pair", choices=sorted(PAIRS))
    a = p.parse_args()
    if not a.llama_cpp or not os.path.isfile(os.path.join(a.llama_cpp, "convert_hf_to_gguf.py")):
        sys.exit("make_llava_mmproj_fixtures.py: give a llama.cpp source tree with --llama-cpp DIR or LLAMA_CPP_DIR")
    if not os.path.isdir(os.path.join(a.llama_cpp, "tools", "mtmd", "legacy-models")):
        sys.exit(f"make_llava_mmproj_fixtures.py: no tools/mtmd/legacy-models in {a.llama_cpp}")
    for name in [a.pair] if a.pair else sorted(PAIRS):
        make_pair(os.path.abspath(a.llama_cpp), name, PAIRS[name])


if __name__ == "__main__":
    main()
