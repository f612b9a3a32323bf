"""SmolLM2-135M-Instruct's perplexity of a fixed paragraph, by transformers' GGUF loader.

Loads the GGUF that scripts/fetch-smollm2.sh fetches (Q4_1) with
AutoModelForCausalLM.from_pretrained(dir, gguf_file=…), which dequantizes every tensor to float32,
and its tokenizer the same way; tokenises the paragraph without special tokens (as our
`Tokenizer.encode` does: the test checks the ids are equal), computes the logits of every position
in one forward pass and the perplexity exp(mean NLL of tokens 2…n).

Writes Tests/Fixtures/smollm2/perplexity.json: {paragraph, ids, perplexity}; Tests/VLMTests/
SmolLM2Tests pins its perplexity to this number.

Run: bash scripts/fetch-smollm2.sh && python3 tools/make_smollm2_perplexity.py [GGUF path]
"""
import json
import math
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "smollm2", "perplexity.json")
PARAGRAPH = ("The city of Berlin is the capital of Germany and its largest city. It lies on the banks of the "
             "rivers Spree and Havel in the north-east of the country. Berlin has a long history as a centre of "
             "science, culture and politics, and today it is known for its museums, its parks and its music.")

directory, name = os.path.split(os.path.abspath(GGUF))
tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
ids = tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item()
perplexity = math.exp(nll / (len(ids) - 1))
with open(OUT, "w") as f:
    json.dump({"source": "tools/make_smollm2_perplexity.py (transformers GGUF loader, float32)",
               "gguf": name, "paragraph": PARAGRAPH, "ids": ids, "perplexity": perplexity}, f, indent=1)
print(f"{len(ids)} tokens, perplexity {perplexity:.6f}; wrote {OUT}")
