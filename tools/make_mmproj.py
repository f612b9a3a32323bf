"""GGUFs of a SmolVLM / SmolVLM2 model directory for llama.cpp, the peer of `hiprune-bench encode`:
the text model and the vision projector (mmproj), both F32 so that llama.cpp's encoder does the same
arithmetic as ours. They go outside the repository (hundreds of MB; never committed).

Usage: python3 tools/make_mmproj.py --model DIR --out DIR --llama-cpp DIR [--mmproj-type f32|f16]
  --model: a directory made by tools/make_bench_model.py; --out: where the GGUFs go (outside the
  checkout); --llama-cpp: a llama.cpp source tree (e.g. the llama-cpp-python sdist's vendor/llama.cpp)
Writes OUT/<name>-f32.gguf and OUT/<name>-mmproj-f32.gguf (<name> = the model directory's basename);
--mmproj-type f16 writes OUT/<name>-mmproj-f16.gguf instead (the F16 projector llama.cpp usually runs).

llama.cpp's convert_hf_to_gguf.py does the conversion; two things about a random-weight directory made by
tools/make_bench_model.py need help, and nothing else is changed:
- the converter picks the text model's class from text_config.architectures, which real SmolVLM2
  checkpoints carry ("VLlama3ForCausalLM") and transformers' save_pretrained omits: the text side is
  converted from a staging directory of links whose config.json has that field added;
- the converter names the BPE pre-tokenizer by hashing the token ids of a test string, and the
  repository's fixture tokenizer (1,257 tokens, SmolLM2's pre-tokenizer) hashes to no known model:
  it is declared "smollm", the pre-tokenizer it was built with.
"""
import argparse
import json
import os
import runpy
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(llama_cpp, arguments, patch_vocab, pre="smollm"):
    """Runs convert_hf_to_gguf.py in this process with `arguments`; with `patch_vocab` the
    tokenizer's pre-tokenizer is declared `pre` and no SentencePiece model is looked for."""
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    if patch_vocab:
        from conversion import base

        def fixture_pre_tokenizer(self, tokenizer):
            return pre

        def no_sentencepiece(self):
            raise FileNotFoundError("no tokenizer.model (BPE tokenizer.json only)")

        base.TextModel.get_vocab_base_pre = fixture_pre_tokenizer
        base.TextModel._set_vocab_sentencepiece = no_sentencepiece
        base.TextModel._set_vocab_llama_hf = no_sentencepiece
    saved = sys.argv
    sys.argv = [os.path.join(llama_cpp, "convert_hf_to_gguf.py")] + arguments
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = saved


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--llama-cpp", required=True)
    p.add_argument("--part", choices=["text", "mmproj", "both"], default="both")
    p.add_argument("--mmproj-type", choices=["f32", "f16"], default="f32",
                   help="the projector's weights: f32 (our arithmetic) or f16 (llama.cpp's usual mmproj)")
    a = p.parse_args()
    out = os.path.abspath(a.out)
    if out == ROOT or out.startswith(ROOT + os.sep):
        sys.exit(f"make_mmproj.py: {out} is inside the repository; GGUFs are never committed")
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        sys.exit(f"make_mmproj.py: {a.model} has no config.json")
    if not os.path.isfile(os.path.join(a.llama_cpp, "convert_hf_to_gguf.py")):
        sys.exit(f"make_mmproj.py: no convert_hf_to_gguf.py in {a.llama_cpp}")
    os.makedirs(out, exist_ok=True)
    model = os.path.abspath(a.model)
    name = os.path.basename(model.rstrip("/"))
    # The converter is a script with global state: each part runs in a child process of its own.
    if a.part == "both":
        for part in ["mmproj", "text"]:
            code = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, __file__, "--model", model, "--out", out,
                                                          "--llama-cpp", a.llama_cpp, "--part", part,
                                                          "--mmproj-type", a.mmproj_type])
            if code != 0:
                sys.exit(f"make_mmproj.py: converting the {part} part failed ({code})")
        for suffix in ["f32", f"mmproj-{a.mmproj_type}"]:
            path = os.path.join(out, f"{name}-{suffix}.gguf")
            print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")
        return
    if a.part == "mmproj":
        convert(a.llama_cpp, [model, "--outtype", a.mmproj_type, "--mmproj", "--outfile",
                              os.path.join(out, f"{name}-mmproj-{a.mmproj_type}.gguf")], patch_vocab=False)
        return
    convert_text(a.llama_cpp, model, os.path.join(out, f"{name}-f32.gguf"), name, ["VLlama3ForCausalLM"], "smollm")


def convert_text(llama_cpp, model, outfile, name, text_architectures, pre):
    """The text model of `model` as an F32 GGUF, converted from a staging directory of links whose
    config.json has text_config.architectures set (when given and absent), the tokenizer's
    pre-tokenizer declared `pre`."""
    with tempfile.TemporaryDirectory() as stage:
        for entry in os.listdir(model):
            if entry != "config.json":
                os.symlink(os.path.join(model, entry), os.path.join(stage, entry))
        with open(os.path.join(model, "config.json")) as f:
            config = json.load(f)
        if text_architectures:
            config.setdefault("text_config", {}).setdefault("architectures", text_architectures)
        with open(os.path.join(stage, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        convert(llama_cpp, [stage, "--outtype", "f32", "--model-name", name, "--outfile", outfile],
                patch_vocab=True, pre=pre)


if __name__ == "__main__":
    main()
