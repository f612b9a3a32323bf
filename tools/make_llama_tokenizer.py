"""Builds the Llama SentencePiece-BPE tokenizer fixtures (the tokenizer.json llava-hf ships for
llava-1.5-7b-hf and llava-v1.6-vicuna/mistral-7b-hf), for Tests/VLMTests/LlamaTokenizerTests and
the LLaVA fixtures (tools/make_llava_fixtures.py copies them).

The `tokenizers` pipeline of those files:
  model          BPE with byte_fallback (<0x00>…<0xFF> at ids 3…258), unk_token <unk>, fuse_unk
  normalizer     Sequence[Prepend("▁"), Replace(" " → "▁")]       (legacy files, llava-1.5)
   or pre_tokenizer Metaspace("▁", prepend_scheme "first", split false)  (files converted since tokenizers 0.14)
  decoder        Sequence[Replace("▁" → " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  post_processor TemplateProcessing: "<s> $A" (BOS first)
  added tokens   <unk> <s> </s> (special, not normalized), then LLaVA's <image>, <video>, <pad>.

Writes Tests/Fixtures/llama-tokenizer/:
  legacy/tokenizer.json, metaspace/tokenizer.json (+ tokenizer_config.json: bos/eos names)
  expected.json: for each variant and every string of CORPUS, the ids `tokenizers` gives without
  and with special tokens (the post-processor's BOS), and decode with and without special tokens;
  plus `transformers`: the ids transformers' AutoTokenizer gives for the same directory (it may
  rebuild the pipeline from the class; recorded so a difference is visible, not asserted).

Run: python3 tools/make_llama_tokenizer.py   (needs `tokenizers`; `transformers` for the last part)
"""
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "llama-tokenizer")

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. A video is a sequence of frames; each frame is a grid of pixels.",
    "What is happening in this video? Describe the picture. What moves? The person walks to the left.",
    "USER: What is shown in the image? ASSISTANT: A cat is sitting on a table next to a red ball.",
    "[INST] Describe the picture. [/INST] The picture shows a bright yellow square on a gradient.",
    "Vision language models answer questions about images and videos using visual tokens.",
    "HiPrune keeps anchor tokens, their buffer neighbours and register tokens within a budget.",
    "Numbers like 12345, 3.14159 and 2026 appear in text; so do dates such as 2025-11-21.",
    "Café, naïve, résumé, façade, jalapeño, Straße, crème brûlée.",
    "I'm sure you'll see they've said it's what we'd do, and I'll re-check.",
]

# Strings for the parity cases: spaces (leading, trailing, runs), newlines and tabs (bytes in this
# vocabulary, as in Llama's), unicode the vocabulary lacks (falls back to <0x..> bytes), added
# tokens with text on either side (where Prepend and Metaspace differ), and the LLaVA prompts.
CORPUS = [
    "Hello world",
    "What is happening here?",
    " leading space",
    "trailing space ",
    "  two leading and   three inner spaces  ",
    "line one\nline two\n\nline four\n",
    "tabs\tand\r\nCRLF",
    "Café naïve résumé",
    "東京は日本の首都です。",
    "emoji 😀🎉 👍🏽 end",
    "Ωμέγα и кириллица",
    "digits 1234567890 and 3.14",
    "I'm, you'll, they've",
    "unseen words: zxqv quuxly",
    "",
    " ",
    "\n",
    "a",
    "<image>",
    "<image>\nWhat is this?",
    "USER: <image>\n<image>\nWhat is happening here? ASSISTANT:",
    "[INST] <image>\nDescribe the picture. [/INST]",
    "USER: <video>\nWhat moves? ASSISTANT:",
    "<s>text after bos</s>",
    "x<image>y<video> z",
    "<image><image><image>",
    "tail <image> ",
]

SPECIAL = ["<unk>", "<s>", "</s>"]
LLAVA_ADDED = ["<image>", "<video>", "<pad>"]


def train():
    """Merges from a SentencePiece-style training (words split at ▁), then the vocabulary laid out as
    Llama's: <unk> <s> </s>, the 256 byte tokens, the pieces; no piece holds a newline or a tab (Llama
    spells them with byte tokens) and rare characters are left out so they fall back to bytes."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=2, special_tokens=SPECIAL, limit_alphabet=70,
                                  show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT * 20, trainer=trainer)
    trained = json.loads(tok.to_str())["model"]
    bad = lambda s: "\n" in s or "\t" in s or "\r" in s
    pieces = sorted(((t, i) for t, i in trained["vocab"].items() if t not in SPECIAL and not bad(t)), key=lambda p: p[1])
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in pieces:
        vocab.setdefault(t, len(vocab))
    merges = []
    for m in trained["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append((a, b))
    return vocab, merges


def build(vocab, merges, variant):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if variant == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
    else:
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAVA_ADDED])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def main():
    vocab, merges = train()
    expected = {}
    for variant in ("legacy", "metaspace"):
        out = os.path.join(OUT, variant)
        os.makedirs(out, exist_ok=True)
        tok = build(vocab, merges, variant)
        path = os.path.join(out, "tokenizer.json")
        tok.save(path)
        tok = Tokenizer.from_file(path)
        config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                  "pad_token": "<pad>", "unk_token": "<unk>", "legacy": variant == "legacy",
                  "clean_up_tokenization_spaces": False, "tokenizer_class": "LlamaTokenizer",
                  "model_max_length": 4096}
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        cases = []
        for text in CORPUS:
            plain = tok.encode(text, add_special_tokens=False).ids
            cases.append({"text": text, "ids": plain, "ids_with_special": tok.encode(text).ids,
                          "decoded": tok.decode(plain, skip_special_tokens=False),
                          "decoded_skip_special": tok.decode(plain, skip_special_tokens=True)})
        expected[variant] = {"vocab_size": tok.get_vocab_size(), "cases": cases}
        print(variant, tok.get_vocab_size(), "tokens,", os.path.getsize(path), "bytes")
        try:
            from transformers import AutoTokenizer
            hf = AutoTokenizer.from_pretrained(out)
            expected[variant]["transformers"] = [hf(text)["input_ids"] for text in CORPUS]
            differ = [t for t, c, h in zip(CORPUS, cases, expected[variant]["transformers"]) if c["ids_with_special"] != h]
            print(f"  transformers ({type(hf).__name__}) differs from tokenizers on {len(differ)} strings: {differ[:4]}")
        except ImportError:
            pass
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
