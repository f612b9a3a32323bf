"""Reference answers of `hiprune-video chat` on SmolLM2-135M-Instruct (Tests/CLITests/ChatCLITests).

transformers loads the GGUF that `make models` fetches (dequantized to F32, as `chat --weights f32`
holds it) with its tokenizer and chat template, renders each case with apply_chat_template
(add_generation_prompt), and decodes greedily until <|im_end|> or max_new_tokens. Written to
Tests/Fixtures/chat-cli/smollm2.json: per case the rendered prompt, its token count, the generated
token ids (the stop token excluded) and their text (special tokens skipped), and whether the stop
token ended the answer.

Needs accelerate beside transformers (its GGUF loader asks for it).
Usage: python3 tools/make_chat_cli_fixtures.py [GGUF]   (default: .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf)
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "chat-cli", "smollm2.json")

# (name, system or None, user, max_new_tokens)
CASES = [
    ("template-default-system", None, "What is 2 + 2?", 64),
    ("system-flag", "You are a pirate. Answer in one short sentence.", "What is the capital of France?", 64),
    ("cut-by-max-tokens", None, "Write a long story about a dragon.", 12),
]


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    cases = []
    for case, system, user, max_new in CASES:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=stop, pad_token_id=stop)
        new = out[0, ids.shape[1]:].tolist()
        stopped = bool(new) and new[-1] == stop
        if stopped:
            new = new[:-1]
        cases.append({
            "name": case, "system": system, "user": user, "max_tokens": max_new,
            "prompt": prompt, "prompt_tokens": int(ids.shape[1]),
            "tokens": new, "text": tokenizer.decode(new, skip_special_tokens=True), "stopped": stopped,
        })
        print(case, ids.shape[1], len(new), stopped, repr(cases[-1]["text"]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"model": name, "stop_token": stop, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
