"""The whole pruned SmolVLM pipeline, by transformers: frames → vision encoder + connector → kept
tokens' features placed at the <image> positions of the SmolVLM2 video prompt → 20 greedy tokens.

Writes Tests/Fixtures/smolvlm-vqa/: a tiny random-weight SmolVLMForConditionalGeneration saved with
save_pretrained, the fixture tokenizer (Tests/Fixtures/tokenizer/tokenizer.json, whose vocabulary
the model's text side uses), preprocessor_config.json, and reference.json:
  frames: [{time, rgb (H·W·3 ints, already at the model's size), kept: [indices]}],
  duration, question, prompt ids, greedy tokens (no stop token: all 20).
The prompt text follows the reference processor's format (verified separately against the
processor by tools/make_prompt_fixtures.py), with each frame's image run as long as its kept list.

Run: python3 tools/make_vqa_fixtures.py
"""
import json
import os
import shutil

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "smolvlm-vqa")
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")

torch.manual_seed(7)
tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(TOKENIZER, "tokenizer.json"))
image_id = tokenizer.convert_tokens_to_ids("<image>")
vocab = len(tokenizer)

config = SmolVLMConfig(
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=64, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
    text_config=dict(model_type="llama", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=1024,
                     rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                     bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
                     eos_token_id=tokenizer.convert_tokens_to_ids("<end_of_utterance>")),
    scale_factor=2, image_token_id=image_id)
model = SmolVLMForConditionalGeneration(config).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape) / p.shape[-1] ** 0.5)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape))
        else:
            p.copy_(0.1 * torch.randn(p.shape))

shutil.rmtree(OUT, ignore_errors=True)
model.save_pretrained(OUT)
for name in ["tokenizer.json", "tokenizer_config.json"]:
    shutil.copy(os.path.join(TOKENIZER, name), os.path.join(OUT, name))
with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
    json.dump({"image_processor_type": "SmolVLMImageProcessor", "do_convert_rgb": True, "do_image_splitting": False,
               "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
               "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "resample": 1,
               "size": {"longest_edge": 64}, "max_image_size": {"longest_edge": 64},
               "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 64}}}, f, indent=2)

side = 64
rng = np.random.default_rng(3)
frames = []
for t, kept in [(0.0, [0, 3, 5, 6, 10, 15]), (1.5, [1, 2, 7, 8, 9]), (2.75, [4, 11])]:
    # A smooth picture with structure, so attention is not uniform.
    y, x = np.mgrid[0:side, 0:side]
    rgb = np.stack([(x * 4 + t * 40) % 256, (y * 3) % 256, ((x + y) * 2 + rng.integers(0, 30, (side, side))) % 256], -1)
    frames.append({"time": t, "rgb": rgb.astype(np.uint8), "kept": kept})
duration = 3.2
question = "What is happening here?"


def video_text(frames):
    minutes = lambda s: f"{int(s // 60):02d}:{int(s % 60):02d}"
    words = {3: "three"}[len(frames)]
    text = f"You are provided the following series of {words} frames from a 0:00:0{int(duration)} [H:MM:SS] video.\n"
    for f in frames:
        text += f"\nFrame from {minutes(f['time'])}:<fake_token_around_image><global-img>" + "<image>" * len(f["kept"])
        text += "<fake_token_around_image>"
    return text + "\n\n"


text = "<|im_start|>User: " + video_text(frames) + question + "<end_of_utterance>\nAssistant:"
ids = tokenizer(text)["input_ids"]

with torch.no_grad():
    kept_features = []
    for f in frames:
        pixels = torch.tensor(f["rgb"], dtype=torch.float32).permute(2, 0, 1)[None] / 255
        pixels = (pixels - 0.5) / 0.5
        hidden = model.model.vision_model(pixel_values=pixels).last_hidden_state
        features = model.model.connector(hidden)[0]
        kept_features.append(features[f["kept"]])
    kept_features = torch.cat(kept_features)
    embeddings = model.model.text_model.get_input_embeddings()(torch.tensor([ids]))
    positions = [i for i, t in enumerate(ids) if t == image_id]
    assert len(positions) == kept_features.shape[0]
    embeddings[0, positions] = kept_features
    generated = []
    for _ in range(20):  # greedy, full recompute each step: no cache involved in the reference
        out = model.model.text_model(inputs_embeds=embeddings)
        logits = model.lm_head(out.last_hidden_state[0, -1])
        token = int(torch.argmax(logits))
        generated.append(token)
        embeddings = torch.cat([embeddings, model.model.text_model.get_input_embeddings()(torch.tensor([[token]]))], 1)
    first_logits = model.lm_head(model.model.text_model(inputs_embeds=embeddings[:, :len(ids)]).last_hidden_state[0, -1])

reference = {
    "duration": duration, "question": question, "text": text, "ids": ids, "tokens": generated,
    "first_logits": first_logits.tolist(),
    "frames": [{"time": f["time"], "width": side, "height": side, "rgb": f["rgb"].reshape(-1).tolist(), "kept": f["kept"]}
               for f in frames],
}
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(reference, f)
print("wrote", OUT, sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT)), "bytes; tokens", generated)
