"""HiPrune++ end to end, by transformers + numpy: prompt embeddings, the tokens each question keeps,
and each question's answer from transformers fed that question's kept features.

Model: Tests/Fixtures/smolvlm-vqa (tools/make_vqa_fixtures.py); frames: the three 64x64 frames of
its reference.json, at 0, 1 and 2 s. For each question:
  - ids: the fixture tokenizer's ids of the question (no special tokens, as our Tokenizer.encode);
  - prompt embedding: the mean of those ids' rows of transformers' input embeddings;
  - every frame's selection by HIPRUNE.md's grid mode with the prompt step: anchors (top
    max(1, round(N' alpha / 5)) object-layer scores), buffers (4-neighbours; over budget cut by
    object score), then round(N' beta / 5) prompt tokens (highest cosine between the connector's
    feature and the prompt embedding, among the tokens still open), then registers (deep-layer
    scores); ties to the lower index; scores as tools/make_selection_fixtures.py computes them;
  - the answer: the SmolVLM2 video prompt (as tools/make_vqa_fixtures.py builds it) with that
    question's kept features at the <image> positions, 12 greedy tokens (no stop token), for the
    clip's duration (3 s: `ask`) and for the 2 s the three frames span (`live`'s window).
The two questions are chosen so their selections differ (re-pruning per question shows).

Writes Tests/Fixtures/hiprune-pp/reference.json and Tests/Fixtures/hiprune-pp/frames.mkv (the
three frames at 1 fps, FFV1 planar RGB: lossless, so `ask`/`live` see exactly these pixels).

Run after tools/make_vqa_fixtures.py: python3 tools/make_hiprune_pp_fixtures.py   (needs ffmpeg)
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, SmolVLMForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_selection_fixtures import hiprune_grid, scores  # noqa: E402
from make_calibration_fixtures import write_lossless_video  # noqa: E402
from prune_reference import topk  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "smolvlm-vqa")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "hiprune-pp")
QUESTIONS = ["What is happening here?", "Which colour is the sky?"]
BUDGET, ALPHA, BETA, OBJECT_LAYER, DEEP_LAYER = 8, 0.1, 2.0, 1, 2
TIMES, DURATION, NEW_TOKENS = [0.0, 1.0, 2.0], 3.0, 12


def select(s_obj, s_deep, features, prompt, rows, cols):
    """HIPRUNE.md grid mode with HiPrune++'s prompt step; returns {index: role}, and the cosine gap
    at the prompt cut (how far from a tie the choice is)."""
    gaps = [np.inf]

    def prompt_tokens(open_tokens, room):
        take = min(room, round(BUDGET * BETA / 5))
        if take <= 0:
            return []
        f, p = features[open_tokens].astype(np.float64), prompt.astype(np.float64)
        cosine = f @ p / (np.linalg.norm(f, axis=1) * np.linalg.norm(p))
        order = topk(cosine, len(open_tokens))
        if len(order) > take:
            gaps.append(float(cosine[order[take - 1]] - cosine[order[take]]))
        return open_tokens[order[:take]]

    return hiprune_grid(s_obj, s_deep, rows, cols, BUDGET, ALPHA, prompt=prompt_tokens), min(gaps)


def video_text(counts, duration):
    minutes = lambda s: f"{int(s // 60):02d}:{int(s % 60):02d}"
    text = (f"You are provided the following series of three frames from a 0:00:0{int(duration)} [H:MM:SS] video.\n")
    for t, count in zip(TIMES, counts):
        text += f"\nFrame from {minutes(t)}:<fake_token_around_image><global-img>" + "<image>" * count
        text += "<fake_token_around_image>"
    return text + "\n\n"


def answer(model, tokenizer, question, frames, kept, duration):
    """transformers' greedy tokens for the video prompt with the kept features at the <image> positions."""
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    embed = model.model.text_model.get_input_embeddings()
    text = "<|im_start|>User: " + video_text([len(f["indices"]) for f in frames], duration) + question
    prompt_ids = tokenizer(text + "<end_of_utterance>\nAssistant:")["input_ids"]
    with torch.no_grad():
        embeddings = embed(torch.tensor([prompt_ids]))
        positions = [i for i, t in enumerate(prompt_ids) if t == image_id]
        features = torch.cat(kept)
        assert len(positions) == features.shape[0]
        embeddings[0, positions] = features
        generated = []
        for _ in range(NEW_TOKENS):  # greedy, full recompute each step
            out = model.model.text_model(inputs_embeds=embeddings)
            token = int(torch.argmax(model.lm_head(out.last_hidden_state[0, -1])))
            generated.append(token)
            embeddings = torch.cat([embeddings, embed(torch.tensor([[token]]))], 1)
    return generated


def main():
    model = SmolVLMForConditionalGeneration.from_pretrained(MODEL, dtype=torch.float32).eval()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(MODEL, "tokenizer.json"))
    config = model.config
    patch, scale, size = config.vision_config.patch_size, config.scale_factor, config.vision_config.image_size
    with open(os.path.join(MODEL, "reference.json")) as f:
        images = [np.array(fr["rgb"], dtype=np.uint8).reshape(fr["height"], fr["width"], 3) for fr in json.load(f)["frames"]]
    assert all(i.shape == (size, size, 3) for i in images)

    per_frame = []
    with torch.no_grad():
        for rgb in images:
            layers, side = scores(model, rgb, scale, patch)
            pixels = (torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)[None] - 127.5) / 127.5
            features = model.model.connector(model.model.vision_model(pixel_values=pixels).last_hidden_state)[0]
            per_frame.append((layers, features))
    embed = model.model.text_model.get_input_embeddings()

    questions = []
    for question in QUESTIONS:
        ids = tokenizer(question, add_special_tokens=False)["input_ids"]
        assert ids == tokenizer(question)["input_ids"], "the fixture tokenizer adds no special tokens"
        with torch.no_grad():
            prompt = embed(torch.tensor(ids)).mean(0)
        frames, kept, gaps = [], [], []
        for layers, features in per_frame:
            roles, gap = select(layers[OBJECT_LAYER], layers[DEEP_LAYER], features.numpy(), prompt.numpy(), side, side)
            indices = sorted(roles)
            frames.append({"indices": indices, "roles": [roles[i] for i in indices]})
            kept.append(features[indices])
            gaps.append(gap)
        generated = answer(model, tokenizer, question, frames, kept, DURATION)
        # `live` answers over its window: the three frames span 2 s of stream time.
        live = answer(model, tokenizer, question, frames, kept, TIMES[-1] - TIMES[0])
        print(question, ids, [f["indices"] for f in frames], "prompt-cut cosine gap", min(gaps), "tokens", generated)
        assert min(gaps) > 1e-4, "a prompt-token choice is a near tie"
        stops = {tokenizer.convert_tokens_to_ids(t) for t in ["<end_of_utterance>", "<|im_end|>"]}
        assert not stops & set(generated + live), "a stop token among the answer: `ask` would stop before 12 tokens"
        questions.append({"question": question, "ids": ids, "prompt_embedding": [float(x) for x in prompt],
                          "frames": frames, "tokens": generated,
                          "answer": tokenizer.decode(generated, skip_special_tokens=True),
                          "live_tokens": live, "live_answer": tokenizer.decode(live, skip_special_tokens=True)})
    assert questions[0]["frames"] != questions[1]["frames"], "the two questions keep the same tokens"

    os.makedirs(OUT, exist_ok=True)
    write_lossless_video(os.path.join(OUT, "frames.mkv"), images)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"source": "tools/make_hiprune_pp_fixtures.py (transformers + numpy HiPrune++)",
                   "model": "Tests/Fixtures/smolvlm-vqa", "budget": BUDGET, "alpha": ALPHA, "beta": BETA,
                   "object_layer": OBJECT_LAYER, "deep_layer": DEEP_LAYER, "times": TIMES, "duration": DURATION,
                   "grid": f"{side}x{side}", "questions": questions}, f)
    print("wrote", OUT, sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT)), "bytes")


if __name__ == "__main__":
    main()
