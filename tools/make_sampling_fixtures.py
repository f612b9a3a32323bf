"""Sampling distributions by transformers' own logits processors, on fixed logits.

For each case (vocabulary of 7, 64 or 500 logits, many of them tied: the values are quarters),
asks a tiny LlamaForCausalLM for the processors `generate(do_sample=True, …)` builds
(GenerationMixin._get_logits_processor: repetition penalty first, then temperature, top-k, top-p),
checks their order, applies them to the logits with the case's prompt ids, and writes the softmax
(the distribution `_sample` draws from with torch.multinomial) as float64 numbers.

Ties: TopKLogitsWarper keeps every token equal to the k-th largest logit, so a tie at the k-th
place keeps more than k tokens (cases marked "tie at k" have one). TopPLogitsWarper sorts with
torch.sort, whose order among equal logits is unspecified, so a cut inside a group of tied tokens
would keep an arbitrary member: the script refuses such cases, and cases whose cut lies within
1e-4 of a cumulative probability (float32 rounding could move it).

Writes Tests/Fixtures/sampling/transformers.json:
  cases: [{name, logits, prompt_ids, temperature, top_k, top_p, repetition_penalty,
           processors: [class names in order], probabilities}]

Run: python3 tools/make_sampling_fixtures.py
"""
import json
import os

import numpy as np
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "sampling", "transformers.json")


def logits_for(vocab, seed):
    rng = np.random.default_rng(seed)
    # Quarters: many exact ties, at the top and at the k-th place.
    return (np.round(rng.standard_normal(vocab) * 6) / 4).astype(np.float32)


def processors_for(model, temperature, top_k, top_p, penalty, prompt_length):
    config = GenerationConfig(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                              repetition_penalty=penalty)
    return model._get_logits_processor(generation_config=config, input_ids_seq_length=prompt_length,
                                       encoder_input_ids=None, prefix_allowed_tokens_fn=None,
                                       logits_processor=None, device="cpu", model_kwargs={})


def top_p_cut_is_clear(scores, top_p):
    """Whether the cut falls neither inside a tie group nor within 1e-4 of a cumulative mass."""
    finite = scores[np.isfinite(scores)].astype(np.float64)
    p = np.exp(finite - finite.max())
    p /= p.sum()
    order = np.argsort(-finite, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
    kept = before < top_p
    if not np.all(np.abs(before - top_p) > 1e-4):
        return False
    values = finite[order]
    return all(kept[values == v].all() or not kept[values == v].any() for v in np.unique(values))


def main():
    config = LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    model = LlamaForCausalLM(config).eval()
    cases = []
    # name, vocab, seed, temperature, top_k, top_p, penalty, prompt ids (for the penalty)
    specs = [
        ("temperature 0.7", 64, 1, 0.7, 0, 1.0, 1.0, []),
        ("temperature 1.6", 500, 2, 1.6, 0, 1.0, 1.0, []),
        ("top-k 5", 64, 3, 1.0, 5, 1.0, 1.0, []),
        ("top-k 1", 7, 4, 1.0, 1, 1.0, 1.0, []),
        ("top-k 40", 500, 5, 1.0, 40, 1.0, 1.0, []),
        ("top-p 0.6", 64, 6, 1.0, 0, 0.6, 1.0, []),
        ("top-p 0.93", 500, 7, 1.0, 0, 0.93, 1.0, []),
        ("top-p 0.05 (keeps one)", 7, 8, 1.0, 0, 0.05, 1.0, []),
        ("repetition penalty 1.3", 64, 9, 1.0, 0, 1.0, 1.3, [3, 3, 10, 17, 40, 63, 0]),
        ("repetition penalty 0.8", 7, 10, 1.0, 0, 1.0, 0.8, [1, 4, 6]),
        ("all four", 500, 11, 0.9, 50, 0.9, 1.1, [5, 7, 11, 13, 200, 499, 250, 7]),
        ("all four, small", 7, 12, 0.6, 4, 0.8, 1.5, [0, 2, 2, 5]),
        ("all four, defaults of the CLI", 64, 13, 0.7, 50, 0.95, 1.1, [1, 2, 3, 60]),
    ]
    for name, vocab, seed, temperature, top_k, top_p, penalty, prompt in specs:
        logits = logits_for(vocab, seed)
        if top_p < 1.0:
            # The nearest top-p (steps of 0.005) whose cut is clear of ties and rounding.
            before_p = torch.from_numpy(logits.copy())[None]
            for p in processors_for(model, temperature, top_k, 1.0, penalty, len(prompt)):
                before_p = p(torch.tensor([prompt or [0]]), before_p)
            requested = top_p
            top_p = next(c for c in sorted({round(requested + d * 0.005, 3) for d in range(-20, 21)},
                                           key=lambda c: abs(c - requested))
                         if 0 < c < 1 and top_p_cut_is_clear(before_p[0].numpy(), c))
            if top_p != requested:
                name = name.replace(f"top-p {requested}", f"top-p {top_p}") + f" ({requested} cuts a tie)"
        processors = processors_for(model, temperature, top_k, top_p, penalty, len(prompt))
        names = [type(p).__name__ for p in processors]
        expected = [n for n, on in [("RepetitionPenaltyLogitsProcessor", penalty != 1.0),
                                    ("TemperatureLogitsWarper", temperature != 1.0),
                                    ("TopKLogitsWarper", top_k != 0),
                                    ("TopPLogitsWarper", top_p < 1.0)] if on]
        assert names == expected, f"{name}: generate builds {names}, expected {expected}"
        ids = torch.tensor([prompt if prompt else [0]], dtype=torch.long)
        if not prompt:
            assert penalty == 1.0
        scores = torch.from_numpy(logits.copy())[None]
        for p in processors:
            if type(p).__name__ == "TopPLogitsWarper":
                assert top_p_cut_is_clear(scores[0].numpy(), top_p)
            scores = p(ids, scores)
        probabilities = torch.softmax(scores, dim=-1)[0].double().numpy()
        kept = int((probabilities > 0).sum())
        note = ""
        if top_k:
            processed_before_k = torch.from_numpy(logits.copy())[None]
            for p in processors:
                if type(p).__name__ == "TopKLogitsWarper":
                    break
                processed_before_k = p(ids, processed_before_k)
            kth = torch.topk(processed_before_k[0], top_k).values[-1]
            if int((processed_before_k[0] >= kth).sum()) > top_k:
                note = " (tie at k)"
        print(f"{name}: {names}, {kept} of {vocab} tokens kept{note}")
        cases.append({"name": name + note, "logits": [float(x) for x in logits], "prompt_ids": prompt,
                      "temperature": temperature, "top_k": top_k, "top_p": top_p, "repetition_penalty": penalty,
                      "processors": names, "probabilities": [float(f"{x:.9g}") for x in probabilities]})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"source": "tools/make_sampling_fixtures.py (transformers GenerationMixin._get_logits_processor)",
                   "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
