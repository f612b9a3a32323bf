"""Builds the Qwen2.5-VL tokenizer parity fixtures for Tests/VLMTests/QwenTokenizerTests.swift.

1. Tests/Fixtures/qwen-tokenizer/tokenizer.json: a small byte-level BPE trained with `tokenizers`
   with EXACTLY the structure of Qwen/Qwen2.5-VL-*-Instruct's tokenizer.json: NFC normalizer,
   Sequence[Split(Qwen2 regex, Isolated), ByteLevel(use_regex=False)] pre-tokenizer, ByteLevel
   decoder and post-processor, BPE with dropout/unk null, "" prefix/suffix, merges as "a b"
   strings, and the 22 added tokens after the vocabulary with the real flags (14 special, 8 not,
   all normalized=false). Plus tokenizer_config.json and chat_template.json as the hub ships them.
2. Tests/Fixtures/qwen-tokenizer/expected.json:
   - cases: ids (encode, add_special_tokens=False), decode and decode(skip_special_tokens=True);
   - normalized: NFC / NFD / NFKC / NFKD normalizer output per corpus line;
   - splits: pre_tokenize_str pieces of Split pre-tokenizers (Qwen2 / Llama 3 / GPT-2 regexes,
     String patterns, every behavior, invert) per corpus line;
   - variants: patches of tokenizer.json for options the real file leaves off (normalized and
     lstrip/rstrip added tokens, unk_token + fuse_unk, Llama 3 split + ignore_merges) with their ids;
   - prompt: a video chat prompt as Qwen2_5_VLProcessor builds it (apply_chat_template + the
     processor's <|video_pad|> expansion), with the video's grid and second_per_grid_t.

Run: python3 tools/make_qwen_tokenizer.py
(the processor part needs torchvision + pillow: PYTHONPATH=/tmp/qwen-pydeps)
"""
import json
import os
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "qwen-tokenizer")

QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Qwen2.5-VL's added tokens (ids 151643… in the real file, right after the vocabulary).
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
NOT_SPECIAL = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]

# Qwen2.5-VL-*-Instruct's chat_template.json.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. A video is a sequence of frames; each frame is a grid of pixels.",
    "What is happening in this video? A person walks into the kitchen and opens the fridge.",
    "Describe the scene. The camera pans left; a red car drives past the building.",
    "You are a helpful assistant. Answer the question about the video in one sentence.",
    "Vision language models answer questions about images and videos using visual tokens.",
    "HiPrune keeps anchor tokens, their buffer neighbours and register tokens within a budget.",
    "def forward(self, x):\n    return self.linear(x) + 1\n\nfor i in range(10):\n    print(i)\n",
    "Numbers like 12345, 3.14159 and 2026 appear in text; so do dates such as 2025-11-21.",
    "Café, naïve, résumé, façade, jalapeño, Straße, Ærø, smörgåsbord, crème brûlée.",
    "東京は日本の首都です。北京是中国的首都。视频里有一只猫。서울은 한국의 수도입니다。",
    "Emoji: 😀 🎉 👍🏽 🇩🇪 ❤️ 👨‍👩‍👧 — and symbols: € £ ¥ © ™ ∑ √ ∞.",
    "Tabs\tand   spaces    and\n\nnewlines\r\nmix here.  Trailing spaces   ",
    "I'm sure you'll see they've said it's what we'd do, and I'll re-check. THEY'RE HERE. She'S",
    "Wait... what?!\n\nReally?!?\r\n\r\nYes!!!\n",
] * 20


def stdlib_docs():
    """English prose for training: docstrings of a few standard-library modules (stable per Python)."""
    import argparse, collections, json as js, logging, pathlib, re, string, textwrap
    texts = []
    for module in (argparse, collections, js, logging, pathlib, re, string, textwrap):
        texts.append(module.__doc__ or "")
        for name in sorted(dir(module)):
            doc = getattr(getattr(module, name), "__doc__", None)
            if isinstance(doc, str):
                texts.append(doc)
    return texts


CORPUS = [
    "Hello world",
    "What is happening in this video?",
    "I'm sure you'll see they've said it's what we'd do.",
    "THEY'RE HERE, WE'LL GO, IT'S FINE, I'M OK, YOU'VE WON, HE'D SAY, DON'T",
    "She'S mixed 'Ll case 'rE and 'x 'sure ''s",
    "digits 1234567890 and 3.14 and 2025-11-21 and ½ Ⅻ ٣٤٥ ０１２",
    "Café naïve résumé jalapeño Straße",
    "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 jalapen\u0303o A\u030angstro\u0308m",
    "q\u0301 x\u0308\u0301 \u0301lead combining",
    "東京は日本の首都です。视频里有一只猫。",
    "emoji 😀🎉 👍🏽 🇩🇪 👨‍👩‍👧 ❤️ end",
    "line one\r\nline two\r\n\r\nline three\n\n\nfour",
    "tabs\tand\t\ttabs \t mixed",
    "trailing spaces   ",
    "   leading spaces",
    "Wait... what?!\n\nReally?!?\r\n\r\nYes!!!\n",
    "a  b   c    d\n  e",
    "x \n y \r\n\tz",
    "\u00a0nbsp\u00a0\u00a0and\u2003em\u3000ideographic\u0085nel\u2028ls",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
    + "<|video_pad|>" * 5 + "<|vision_end|>What happens in the video?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after eos<|endoftext|>",
    "<tool_call>{\"name\": \"f\"}</tool_call> <|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    "e<|im_end|>\u0301 combining after a special token",
    "<|im_start <|im_end|x <|vision_start|><|vision_end|>",
    "unseen words: zxqv quuxly flibbertigibbet",
    "ſ long s, it'ſx, it'Ｓx, it'Sx, it'Llx, it'ʟʟx, it'ﬅx",
    "   ",
    "\n",
    "a",
    "",
    "mixed😀text東京123abc",
    "Ωμέγα и кириллица, עברית, العربية",
    "$100.00 (approx.) -- #hash @user foo_bar foo-bar",
]

SPLIT_CASES = [
    ({"Regex": QWEN2_REGEX}, "Isolated", False),
    ({"Regex": LLAMA3_REGEX}, "Isolated", False),
    ({"Regex": GPT2_REGEX}, "Isolated", False),
    ({"Regex": QWEN2_REGEX}, "Contiguous", False),
    ({"Regex": QWEN2_REGEX}, "Removed", True),
    ({"String": " "}, "Removed", False),
    ({"String": " "}, "Isolated", False),
    ({"String": " "}, "MergedWithPrevious", False),
    ({"String": " "}, "MergedWithNext", False),
    ({"String": " "}, "Contiguous", False),
    ({"String": " "}, "MergedWithNext", True),
    ({"String": "-"}, "MergedWithPrevious", True),
    ({"String": "!?"}, "Isolated", False),
]


# Variants of the fixture's tokenizer.json for options the real Qwen2.5-VL file leaves off; each is a
# patch the Swift test applies the same way: top-level keys replaced, model keys replaced, vocabulary
# entries removed, added tokens appended.
VARIANTS = [
    {"name": "added tokens matched after NFC, lstrip/rstrip",
     "added_tokens": [
         {"id": 1278, "content": "<|cafe\u0301|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
         {"id": 1279, "content": "[MASK]", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
         {"id": 1280, "content": "<|im", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
     ],
     "texts": ["a <|caf\u00e9|> b <|cafe\u0301|> c", "x \u3000\t[MASK]\u00a0 y [MASK][MASK]  z", "<|im_start|>user <|im x",
               "[MASK]", " [MASK] "]},
    {"name": "unk_token with fuse_unk for bytes outside the vocabulary",
     "model": {"unk_token": "\u0100", "fuse_unk": True},
     "remove_vocab": ["\u0101", "\u0102"],
     "texts": ["a\u0001\u0001b", "\u0002\u0001 c", "\u0000\u0001 d", "plain text"]},
    {"name": "Llama 3 split with ignore_merges",
     "root": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
         {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
         {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
     "model": {"ignore_merges": True},
     "texts": ["digits 1234567890 and 3.14", "The quick brown fox jumps over the lazy dog.", "I'M sure they'RE here"]},
]


def apply_variant(text, variant):
    root = json.loads(text)
    root.update(variant.get("root", {}))
    root["model"].update(variant.get("model", {}))
    for token in variant.get("remove_vocab", []):
        del root["model"]["vocab"][token]
    root["added_tokens"] += variant.get("added_tokens", [])
    return Tokenizer.from_str(json.dumps(root))


def build_tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False, dropout=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=1256, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAIN_TEXT + stdlib_docs(), trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in NOT_SPECIAL])

    # Shape the file like the hub's: model options spelled out, merges as "a b" strings.
    root = json.loads(tok.to_str())
    model = root["model"]
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in model["merges"]]
    root["model"] = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": model["vocab"], "merges": merges}
    # The Python binding saves ByteLevel decoder options as their defaults; the hub file has these.
    root["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    for t in root["added_tokens"]:
        assert t["normalized"] is False and t["lstrip"] is False and t["rstrip"] is False and t["single_word"] is False
    text = json.dumps(root, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_str(text)  # the file as written is what the references come from
    return tok, text


def main():
    os.makedirs(OUT, exist_ok=True)
    tok, text = build_tokenizer()
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    config = {"add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "unk_token": None, "errors": "replace", "split_special_tokens": False,
              "tokenizer_class": "Qwen2Tokenizer", "clean_up_tokenization_spaces": False,
              "model_max_length": 131072}
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(OUT, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f, indent=2)

    cases = []
    for line in CORPUS:
        ids = tok.encode(line, add_special_tokens=False).ids
        assert tok.encode(line, add_special_tokens=True).ids == ids
        cases.append({"text": line, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    forms = {"NFC": normalizers.NFC(), "NFD": normalizers.NFD(), "NFKC": normalizers.NFKC(), "NFKD": normalizers.NFKD()}
    nfc_cases = [{"text": line, **{name: n.normalize_str(line) for name, n in forms.items()}} for line in CORPUS]
    for c in nfc_cases:
        assert c["NFC"] == unicodedata.normalize("NFC", c["text"])

    splits = []
    for pattern, behavior, invert in SPLIT_CASES:
        p = Regex(pattern["Regex"]) if "Regex" in pattern else pattern["String"]
        split = pre_tokenizers.Split(p, behavior=behavior.lower().replace("mergedwith", "merged_with_"), invert=invert)
        config = {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}
        # The JSON form must load back to the same pre-tokenizer.
        assert json.loads(json.dumps(json.loads(split.__getstate__())))["behavior"] == behavior, split.__getstate__()
        pieces = [[piece for piece, _ in split.pre_tokenize_str(line)] for line in CORPUS]
        splits.append({"pre_tokenizer": config, "pieces": pieces})

    variants = []
    for variant in VARIANTS:
        vt = apply_variant(text, variant)
        vcases = []
        for line in variant["texts"]:
            ids = vt.encode(line, add_special_tokens=False).ids
            vcases.append({"text": line, "ids": ids, "decoded": vt.decode(ids, skip_special_tokens=False)})
        variants.append({**{k: v for k, v in variant.items() if k != "texts"}, "cases": vcases})
        print(variant["name"], [c["ids"] for c in vcases])

    expected = {"variants": variants, "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases, "normalized": nfc_cases,
                "corpus": CORPUS, "splits": splits, "prompt": make_prompt()}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print("vocab", expected["vocab_size"], "cases", len(cases), "prompt", "ok" if expected["prompt"] else "skipped")


def make_prompt():
    """A video chat prompt through Qwen2_5_VLProcessor, offline, from this tokenizer."""
    try:
        import numpy as np
        import torch
        # The PyPI torchvision wheel is a CUDA build whose C ops cannot load next to CPU torch; the
        # video processor needs only its Python transforms, but importing torchvision registers fake
        # kernels for these two ops, which must exist first.
        shim = torch.library.Library("torchvision", "DEF")
        shim.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        shim.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        from transformers import Qwen2_5_VLProcessor, Qwen2TokenizerFast, Qwen2VLImageProcessor
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    except Exception as error:  # noqa: BLE001
        print("processor unavailable:", error)
        return None
    tokenizer = Qwen2TokenizerFast(tokenizer_file=os.path.join(OUT, "tokenizer.json"),
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    sizes = dict(min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes),
        video_processor=Qwen2VLVideoProcessor(**sizes),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    question = "What does the cat do after it jumps? Answer in one sentence, please."
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 112, 168, 3), dtype=np.uint8)  # 4 frames, 112x168
    out = processor(text=[text], videos=[frames], return_tensors="np")
    ids = out["input_ids"][0].tolist()
    grid = out["video_grid_thw"][0].tolist()
    second = float(out["second_per_grid_ts"][0]) if "second_per_grid_ts" in out else None
    vid = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert ids.count(vid) == grid[0] * grid[1] * grid[2] // 4, (ids.count(vid), grid)
    return {"text": text, "question": question, "ids": ids, "video_grid_thw": grid,
            "second_per_grid_t": second, "video_token_id": vid,
            "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
            "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>")}


if __name__ == "__main__":
    main()
