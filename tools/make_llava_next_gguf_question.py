"""The LLaVA-NeXT GGUF pair's question as llama.cpp tokenizes it, and transformers' answer to it.

llama.cpp's SentencePiece tokenizer prefixes a space ("▁") to the text after every special token
(llama-vocab.cpp, tokenizer_add_space_prefix with is_prev_special), so the prompt of the pruned
question in Tests/Fixtures/llava-next-tiny/reference.json comes out of the pair's text GGUF with one
token more after each <image> run than transformers' Metaspace tokenizer gives the directory. A GGUF
pair is used the way llama.cpp uses it, so its reference is transformers' model fed llama.cpp's ids:
this script runs llama.cpp's own llama-tokenize on the text GGUF, rebuilds the question's packed
features exactly as tools/make_llava_fixtures.py does (checking that the directory's ids still give
reference.json's greedy tokens), and writes the greedy tokens and first logits for llama.cpp's ids.

Usage: python3 tools/make_llava_next_gguf_question.py --llama-tokenize BIN   (or LLAMA_TOKENIZE=BIN)
  BIN: llama.cpp's llama-tokenize (built from the llama-cpp-python sdist's vendor/llama.cpp with
  `cmake --build build --target llama-tokenize`); its libraries are found beside it.
Writes Tests/Fixtures/mmproj-llava-next/question-llama-cpp.json: text, ids (llama.cpp's), tokens
(20 greedy), first_logits.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
from transformers import LlavaNextForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llava_fixtures as base  # noqa: E402

FIXTURES = base.FIXTURES
DIRECTORY = os.path.join(FIXTURES, "llava-next-tiny")
PAIR = os.path.join(FIXTURES, "mmproj-llava-next")


def llama_cpp_ids(binary, gguf, text):
    """llama-tokenize's ids for `text` (BOS added, special tokens parsed, as llama-mtmd-cli does)."""
    folder = os.path.dirname(os.path.abspath(binary))
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(p for p in [folder, os.environ.get("LD_LIBRARY_PATH")] if p))
    out = subprocess.run([binary, "-m", gguf, "-p", text, "--ids", "--log-disable"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--llama-tokenize", default=os.environ.get("LLAMA_TOKENIZE"))
    args = p.parse_args()
    if not args.llama_tokenize:
        sys.exit("make_llava_next_gguf_question.py: give --llama-tokenize BIN (or LLAMA_TOKENIZE)")
    with open(os.path.join(DIRECTORY, "reference.json")) as f:
        reference = json.load(f)
    q = reference["question"]
    config = json.load(open(os.path.join(DIRECTORY, "config.json")))
    model = LlavaNextForConditionalGeneration.from_pretrained(DIRECTORY, dtype=torch.float32).eval()
    inner = model.model
    image_id = config["image_token_index"]
    side = config["vision_config"]["image_size"]
    grid = side // config["vision_config"]["patch_size"]
    pinpoints = config["image_grid_pinpoints"]

    # The question's frame (frame 0 of build_llava_next), its views' features and the kept rows packed.
    h, w = reference["frames"][q["frame"]]["height"], reference["frames"][q["frame"]]["width"]
    rgb = base.frame(h, w, t=q["frame"])
    pixels, size, views, grid_cols = base.anyres(rgb, pinpoints, side, grid)
    view_features = base.anyres_view_features(inner, pixels, views, grid, grid_cols)
    packed = base.pack(view_features, views, q["kept"], inner.image_newline.detach(), grid_cols)
    embed = inner.language_model.get_input_embeddings()

    def answer(ids):
        with torch.no_grad():
            embeddings = embed(torch.tensor([ids]))
            positions = [i for i, t in enumerate(ids) if t == image_id]
            assert len(positions) == packed.shape[0], f"{len(positions)} <image> ids for {packed.shape[0]} rows"
            embeddings[0, positions] = packed
        return base.greedy(inner.language_model, model.lm_head, embed, embeddings, len(q["tokens"]))

    # The directory's ids give reference.json's answer: the features above are the reference's.
    tokens, first = answer(q["ids"])
    assert tokens == q["tokens"], f"rebuilt question answers {tokens}, reference.json {q['tokens']}"
    assert np.allclose(first.numpy(), q["first_logits"], atol=1e-6), "rebuilt question's first logits differ"

    ids = llama_cpp_ids(args.llama_tokenize, os.path.join(PAIR, "text-f32.gguf"), q["text"])
    extra = len(ids) - len(q["ids"])
    print(f"llama.cpp: {len(ids)} ids, transformers: {len(q['ids'])} ({extra:+d})")
    tokens, first = answer(ids)
    out = {"text": q["text"], "ids": ids, "tokens": tokens, "first_logits": first.tolist()}
    with open(os.path.join(PAIR, "question-llama-cpp.json"), "w") as f:
        json.dump(out, f)
    print(f"question-llama-cpp.json: tokens {tokens} (directory's ids: {q['tokens']})")


if __name__ == "__main__":
    main()
