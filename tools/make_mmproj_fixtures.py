"""llama.cpp GGUF pairs (text model + vision projector) of the tiny random test fixtures, made by
llama.cpp's own converter, committed under Tests/Fixtures/mmproj-*/ for the `--mmproj` tests.

Usage: python3 tools/make_mmproj_fixtures.py --llama-cpp DIR
  --llama-cpp: a llama.cpp source tree (e.g. the llama-cpp-python sdist's vendor/llama.cpp)

For each fixture directory it writes text-f32.gguf (convert_hf_to_gguf.py), mmproj-f32.gguf and
mmproj-f16.gguf (convert_hf_to_gguf.py --mmproj --outtype f32 / f16):
- Tests/Fixtures/smolvlm-vqa → Tests/Fixtures/mmproj-smolvlm (projector type idefics3, text llama)
- Tests/Fixtures/qwen25vl-tiny → Tests/Fixtures/mmproj-qwen25vl (projector type qwen2.5vl_merger,
  text qwen2vl)
LLaVA is not converted here: convert_hf_to_gguf.py takes LlavaForConditionalGeneration only for
pixtral vision towers ("Unsupported model type: clip_vision_model"), and llama.cpp converts LLaVA-1.5
and LLaVA-NeXT with its legacy scripts (tools/mtmd/legacy-models), which
tools/make_llava_mmproj_fixtures.py runs.

The converter is run unchanged except where a tiny random-weight directory differs from a released
checkpoint (tools/make_mmproj.py's `convert` does both):
- it names the BPE pre-tokenizer by hashing the token ids of a test string, and the fixture
  tokenizers (a few hundred merges) hash to no known model: each is declared the pre-tokenizer it
  was built with ("smollm" for the SmolVLM2 fixture, "qwen2" for the Qwen2.5-VL one);
- the SmolVLM2 text side needs text_config.architectures ("VLlama3ForCausalLM"), which released
  SmolVLM2 checkpoints carry and transformers' save_pretrained omits;
- the Qwen2.5-VL projector gets three keys clip.cpp reads (for other projectors) that the converter
  does not write for Qwen2.5-VL: clip.vision.window_size (the fixture's 56 px; released checkpoints
  have 112, clip.cpp's default when the key is absent) and clip.vision.image_min_pixels /
  image_max_pixels (the fixture's preprocessor_config.json), so that the pair describes the same
  model and preprocessing as the directory it was converted from.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_mmproj  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")

PAIRS = {
    "mmproj-smolvlm": {"source": "smolvlm-vqa", "pre": "smollm", "text_architectures": ["VLlama3ForCausalLM"]},
    "mmproj-qwen25vl": {"source": "qwen25vl-tiny", "pre": "qwen2", "text_architectures": None},
}


def add_qwen_keys(llama_cpp, source):
    """Makes the converter's Qwen2.5-VL projector also write window_size and min/max pixels."""
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    from conversion import qwenvl

    with open(os.path.join(source, "config.json")) as f:
        window = json.load(f)["vision_config"]["window_size"]
    with open(os.path.join(source, "preprocessor_config.json")) as f:
        pre = json.load(f)
    original = qwenvl.Qwen2VLVisionModel.set_gguf_parameters

    def set_gguf_parameters(self):
        original(self)
        self.gguf_writer.add_uint32("clip.vision.window_size", window)
        self.gguf_writer.add_uint32("clip.vision.image_min_pixels", pre["min_pixels"])
        self.gguf_writer.add_uint32("clip.vision.image_max_pixels", pre["max_pixels"])

    qwenvl.Qwen2VLVisionModel.set_gguf_parameters = set_gguf_parameters


def convert_part(llama_cpp, name, part):
    """One converter run (a child process each: the converter keeps global state)."""
    spec = PAIRS[name]
    source = os.path.join(FIXTURES, spec["source"])
    out = os.path.join(FIXTURES, name)
    os.makedirs(out, exist_ok=True)
    if part.startswith("mmproj"):
        kind = part.split("-")[1]
        if name == "mmproj-qwen25vl":
            add_qwen_keys(llama_cpp, source)
        make_mmproj.convert(llama_cpp, [source, "--outtype", kind, "--mmproj", "--outfile",
                                        os.path.join(out, f"mmproj-{kind}.gguf")], patch_vocab=False)
        return
    make_mmproj.convert_text(llama_cpp, source, os.path.join(out, "text-f32.gguf"), spec["source"],
                             spec["text_architectures"], spec["pre"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--llama-cpp", required=True)
    p.add_argument("--pair", choices=sorted(PAIRS))
    p.add_argument("--part", choices=["text", "mmproj-f32", "mmproj-f16"])
    a = p.parse_args()
    if not os.path.isfile(os.path.join(a.llama_cpp, "convert_hf_to_gguf.py")):
        sys.exit(f"make_mmproj_fixtures.py: no convert_hf_to_gguf.py in {a.llama_cpp}")
    if a.pair and a.part:
        convert_part(a.llama_cpp, a.pair, a.part)
        return
    for name in [a.pair] if a.pair else sorted(PAIRS):
        for part in ["text", "mmproj-f32", "mmproj-f16"]:
            code = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, __file__, "--llama-cpp", a.llama_cpp,
                                                          "--pair", name, "--part", part])
            if code != 0:
                sys.exit(f"make_mmproj_fixtures.py: converting {name} {part} failed ({code})")
        for f in sorted(os.listdir(os.path.join(FIXTURES, name))):
            path = os.path.join(FIXTURES, name, f)
            print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
