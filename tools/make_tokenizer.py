"""Builds the tokenizer parity fixtures for Tests/VLMTests.

1. Tests/Fixtures/tokenizer/tokenizer.json: a small byte-level BPE trained with `tokenizers`,
   shaped like SmolLM2/SmolVLM2's (Sequence[Digits(individual), ByteLevel] pre-tokenizer,
   ByteLevel decoder, the SmolLM2 special tokens first and SmolVLM2's image/utterance tokens
   as added tokens at the end), plus tokenizer_config.json with SmolLM2's chat template.
2. Tests/Fixtures/tokenizer/expected.json: ids and decoded text for a corpus with CJK, emoji,
   accents, whitespace runs, digits, newlines and special tokens.
3. Tests/Fixtures/tokenizer/smollm2-expected.json: the same corpus through the REAL SmolLM2
   tokenizer that transformers builds from the GGUF (scripts/fetch-smollm2.sh), when present.

Run: python3 tools/make_tokenizer.py
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, processors, AddedToken

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
GGUF = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

SMOLLM2_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>",
    "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>",
    "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>",
    "<empty_output>",
]
# SmolVLM2 appends these after the text vocabulary.
GRID_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
VLM_SPECIAL = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. A video is a sequence of frames; each frame is a grid of pixels.",
    "What is the capital of Germany? Berlin is the capital of Germany. What is 2 + 2? It is 4.",
    "The sky on a clear day is blue. The grass is green, and the sun is bright.",
    "Vision language models answer questions about images and videos using visual tokens.",
    "HiPrune keeps anchor tokens, their buffer neighbours and register tokens within a budget.",
    "def forward(self, x):\n    return self.linear(x) + 1\n\nfor i in range(10):\n    print(i)\n",
    "Numbers like 12345, 3.14159 and 2026 appear in text; so do dates such as 2025-11-21.",
    "Café, naïve, résumé, façade, jalapeño, Straße, Ærø, smörgåsbord, crème brûlée.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다。",
    "Emoji: 😀 🎉 👍🏽 🇩🇪 ❤️ 👨‍👩‍👧 — and symbols: € £ ¥ © ™ ∑ √ ∞.",
    "Tabs\tand   spaces    and\n\nnewlines\r\nmix here.  Trailing spaces   ",
    "I'm sure you'll see they've said it's what we'd do, and I'll re-check.",
]

CORPUS = [
    "Hello world",
    "What is the capital of Germany?",
    " leading space and trailing space ",
    "multiple   spaces\tand\ttabs\n\nand newlines\r\n",
    "digits 1234567890 and 3.14 and 2025-11-21",
    "Café naïve résumé jalapeño Straße",
    "東京は日本の首都です。",
    "emoji 😀🎉 👍🏽 🇩🇪 👨‍👩‍👧 end",
    "I'm, you'll, they've, it's, we'd, she's",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after eos<|endoftext|>",
    "<fake_token_around_image><global-img><image><image><fake_token_around_image>\nDescribe.",
    "<row_1_col_1><image><row_1_col_2><image>\n<end_of_utterance>",
    "unseen words: zxqv quuxly flibbertigibbet",
    "   ",
    "\n",
    "a",
    "",
    "mixed😀text東京123abc",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "Ωμέγα и кириллица, עברית, العربية",
    "x<image>y<|im_end|>z",
]


def stdlib_text() -> list:
    """More English for the merges: docstrings of a fixed list of standard-library modules."""
    import argparse, collections, json as js, re as rx, string, textwrap, unittest, zipfile
    return [m.__doc__ or "" for m in (argparse, collections, js, rx, string, textwrap, unittest, zipfile)]


def train() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        min_frequency=1,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SMOLLM2_SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repetition makes frequent pairs frequent enough to merge; the text itself is fixed.
    tok.train_from_iterator(TRAIN_TEXT * 20 + stdlib_text(), trainer=trainer)
    tok.add_special_tokens([AddedToken("<global-img>", special=True, normalized=False)])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in GRID_TOKENS])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in VLM_SPECIAL])
    return tok


def expectations(encode, decode) -> list:
    cases = []
    for text in CORPUS:
        ids = encode(text)
        cases.append({
            "text": text,
            "ids": ids,
            "decoded": decode(ids, False),
            "decoded_skip_special": decode(ids, True),
        })
    return cases


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    tok = train()
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path)
    tok = Tokenizer.from_file(path)
    ids_of = {t: tok.token_to_id(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>",
                                            "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]}
    config = {
        "add_prefix_space": False,
        "bos_token": "<|im_start|>",
        "eos_token": "<end_of_utterance>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    cases = expectations(
        lambda s: tok.encode(s, add_special_tokens=False).ids,
        lambda ids, skip: tok.decode(ids, skip_special_tokens=skip),
    )
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"vocab_size": tok.get_vocab_size(), "special_ids": ids_of, "cases": cases}, f,
                  indent=1, ensure_ascii=False)
    print("toy tokenizer vocab", tok.get_vocab_size(), ids_of, os.path.getsize(path), "bytes")

    if not os.path.exists(GGUF):
        print("no GGUF at", GGUF, "- skipping the SmolLM2 expectations", file=sys.stderr)
        return
    # transformers' GGUF converter drops SmolLM2's Digits pre-tokenizer, so the reference is built
    # here from the GGUF vocabulary and merges with the structure of SmolLM2's own tokenizer.json
    # (llama.cpp's "smollm" pre-tokenizer is the same: single digits, then the GPT-2 regex).
    import gguf
    reader = gguf.GGUFReader(GGUF)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    real = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                unk_token=None, fuse_unk=False, byte_fallback=False))
    real.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    real.decoder = decoders.ByteLevel()
    # token_type 3 = control: SmolLM2's special tokens.
    real.add_special_tokens([AddedToken(t, special=True, normalized=False)
                             for t, ty in zip(tokens, types) if ty == 3])
    cases = expectations(
        lambda s: real.encode(s, add_special_tokens=False).ids,
        lambda ids, skip: real.decode(ids, skip_special_tokens=skip),
    )
    with open(os.path.join(OUT, "smollm2-expected.json"), "w") as f:
        json.dump({"vocab_size": real.get_vocab_size(), "cases": cases}, f, indent=1, ensure_ascii=False)
    real.save("/tmp/smollm2-tokenizer.json")
    print("SmolLM2 tokenizer from GGUF:", real.get_vocab_size(), "tokens;",
          os.path.getsize("/tmp/smollm2-tokenizer.json"), "bytes as tokenizer.json (not committed)")

if __name__ == "__main__":
    main()
