"""Reference fixtures for the language side (Tests/VLMTests), made with transformers + gguf.

Tests/Fixtures/lm-tied, lm-untied, lm-linear: tiny random LlamaForCausalLM dirs (safetensors,
  F32) using the toy tokenizer of tools/make_tokenizer.py, and expected.json with the logits
  of every prompt position and 20 greedy tokens (generate, do_sample=False, no eos stop).
Tests/Fixtures/lm-gguf/model.gguf: lm-tied written as llama.cpp does (Q/K rows permuted,
  GGUF names, tokenizer metadata), F32; its expected logits are lm-tied's.
Tests/Fixtures/lm-gguf/quants.gguf + quants-expected.json: Q8_0/Q4_0/Q4_1/F16/BF16/F32
  tensors and their dequantized values (gguf's numpy reference), metadata of every type.
Tests/Fixtures/lm-gguf/unsupported.gguf: one Q2_K tensor (must be rejected by name).
models/demo-smolvlm2: tiny random SmolVLMForConditionalGeneration + processor files;
  Tests/Fixtures/lm-smolvlm-text/expected.json: its text-only logits and greedy tokens.

Run after tools/make_tokenizer.py: python3 tools/make_lm_fixtures.py
"""
import json
import os
import shutil

import numpy as np
import torch
import gguf
from transformers import LlamaConfig, LlamaForCausalLM
from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "Tests", "Fixtures")
TOK_DIR = os.path.join(FIX, "tokenizer")
PROMPT = "<|im_start|>user\nWhat is the capital of Germany? 12 frames.<|im_end|>\n<|im_start|>assistant\n"
NEW_TOKENS = 20


def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))


def random_init(model: torch.nn.Module, seed: int) -> None:
    # Wider than the default init: greedy text varies (0.08 repeats one token) and argmax gaps are clear.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def expectations(model, ids: list) -> dict:
    model.eval()
    inp = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=inp).logits[0]
    # logits.f32 beside expected.json: row-major little-endian float32, [prompt tokens, vocab].
    logits_bytes = logits.float().numpy().astype("<f4").tobytes()
    with torch.no_grad():
        out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=NEW_TOKENS,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
    return logits_bytes, {
        "prompt": PROMPT,
        "prompt_ids": ids,
        "logits_shape": list(logits.shape),
        "greedy": [int(t) for t in out[0, len(ids):]],
    }


def save_llama(name: str, seed: int, **cfg) -> LlamaForCausalLM:
    tok = tokenizer()
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), bos_token_id=1, eos_token_id=2, **cfg)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    random_init(model, seed)
    if config.tie_word_embeddings:
        model.tie_weights()
    out = os.path.join(FIX, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK_DIR, f), out)
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    logits, expected = expectations(model, ids)
    with open(os.path.join(out, "logits.f32"), "wb") as f:
        f.write(logits)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(name, sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out)), "bytes")
    return model


def permute_for_gguf(w: np.ndarray, heads: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf: rotate_half halves → interleaved pairs, per head.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_model_gguf(model: LlamaForCausalLM, path: str) -> None:
    c = model.config
    tok = tokenizer()
    tj = json.loads(tok.to_str())
    vocab = [None] * tok.get_vocab_size()
    for t, i in tok.get_vocab(with_added_tokens=True).items():
        vocab[i] = t
    special = {a["id"] for a in tj["added_tokens"] if a["special"]}
    added = {a["id"] for a in tj["added_tokens"]}
    types = [3 if i in special else (4 if i in added else 1) for i in range(len(vocab))]
    merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("hiprune tiny llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(len(vocab))
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_file_type(0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(vocab)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    with open(os.path.join(TOK_DIR, "tokenizer_config.json")) as f:
        w.add_chat_template(json.load(f)["chat_template"])
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", permute_for_gguf(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute_for_gguf(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not c.tie_word_embeddings:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_quant_ggufs(out: str) -> None:
    rng = np.random.default_rng(7)
    Q = gguf.GGMLQuantizationType
    tensors = {
        "q8_0": (Q.Q8_0, rng.standard_normal((3, 64)).astype(np.float32)),
        "q4_0": (Q.Q4_0, rng.standard_normal((2, 64)).astype(np.float32)),
        "q4_1": (Q.Q4_1, (rng.standard_normal((2, 96)) + 0.5).astype(np.float32)),
        "f16": (Q.F16, rng.standard_normal((3, 5)).astype(np.float32)),
        "bf16": (Q.BF16, rng.standard_normal((2, 4)).astype(np.float32)),
        "f32": (Q.F32, rng.standard_normal((7,)).astype(np.float32)),
    }
    w = gguf.GGUFWriter(os.path.join(out, "quants.gguf"), "llama")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "grüße 東京")
    w.add_uint64("test.u64", 1 << 40)
    w.add_int64("test.i64", -(1 << 40))
    w.add_float64("test.f64", 2.25)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "bc", ""])
    w.add_custom_alignment(64)
    expected = {}
    for name, (qt, data) in tensors.items():
        if qt == Q.F32:
            w.add_tensor(name, data)
            deq = data
        elif qt == Q.F16:
            w.add_tensor(name, data.astype(np.float16))
            deq = data.astype(np.float16).astype(np.float32)
        else:
            raw = gguf.quants.quantize(data, qt)
            w.add_tensor(name, raw, raw_dtype=qt)
            deq = gguf.quants.dequantize(raw, qt)
        expected[name] = {"shape": list(data.shape), "type": qt.name, "values": [float(x) for x in deq.reshape(-1)]}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out, "quants-expected.json"), "w") as f:
        json.dump({"alignment": 64, "tensors": expected}, f)

    # A one-layer llama whose Q projection is Q2_K (a type we do not read): loading must stop there, naming tensor and type.
    w = gguf.GGUFWriter(os.path.join(out, "unsupported.gguf"), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(256)
    w.add_feed_forward_length(256)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_vocab_size(8)
    w.add_tensor("token_embd.weight", rng.standard_normal((8, 256)).astype(np.float32))
    # gguf has no Q2_K quantizer; the bytes only need the right size (one 256-value block per row).
    block, size = gguf.GGML_QUANT_SIZES[Q.Q2_K]
    raw = rng.integers(0, 256, (256, size * (256 // block)), dtype=np.uint8)
    w.add_tensor("blk.0.attn_q.weight", raw, raw_dtype=Q.Q2_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

DEMO_README = """# demo-smolvlm2: demo weights, not a model

These are **random weights** in the exact file layout of
HuggingFaceTB/SmolVLM2-256M-Video-Instruct (config.json with text_config and vision_config,
model.safetensors, tokenizer.json, tokenizer_config.json, chat_template.json,
preprocessor_config.json, processor_config.json, generation_config.json), shrunk to about a
megabyte so that hiprune-video runs end to end anywhere, with no download.

**Its answers mean nothing.** It exists to exercise loading, the video prompt, pruning and
generation. For real answers point `--model` at a downloaded SmolVLM2-256M-Video-Instruct.

Shapes: SigLIP vision encoder 128x128 px, patch 8 (16x16 patches), 2 layers, width 32; pixel
shuffle scale 4 (16 tokens per frame); Llama text decoder width 64, 2 layers, 4 heads / 2 KV
heads, vocabulary of 1240 (a small byte-level BPE with SmolVLM2's special tokens).
Made by tools/make_lm_fixtures.py (transformers SmolVLMForConditionalGeneration.save_pretrained).
"""


def make_demo_smolvlm2() -> None:
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, PreTrainedTokenizerFast
    tok = tokenizer()
    out = os.path.join(ROOT, "models", "demo-smolvlm2")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    image_token = tok.token_to_id("<image>")
    eou = tok.token_to_id("<end_of_utterance>")
    config = SmolVLMConfig(
        image_token_id=image_token,
        scale_factor=4,
        pad_token_id=tok.token_to_id("<|im_end|>"),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=128, patch_size=8),
        text_config=dict(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         rope_theta=100000.0, max_position_embeddings=2048, rms_norm_eps=1e-5,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False),
        tie_word_embeddings=False,
    )
    torch.manual_seed(4)
    model = SmolVLMForConditionalGeneration(config)
    random_init(model, 4)
    model.generation_config.bos_token_id = 1
    model.generation_config.eos_token_id = eou
    model.generation_config.pad_token_id = 2
    model.save_pretrained(out)
    # The processor files are written directly (transformers' image processor needs torchvision),
    # with SmolVLM2-256M-Video-Instruct's fields at this model's sizes.
    fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(TOK_DIR, "tokenizer.json"),
                                   bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>",
                                   additional_special_tokens=["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    fast.model_max_length = 8192
    fast.save_pretrained(out)
    for name in ("chat_template.jinja", "chat_template.json"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    files = {
        "preprocessor_config.json": {
            "do_convert_rgb": True, "do_image_splitting": False, "do_normalize": True, "do_pad": True,
            "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SmolVLMImageProcessor", "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": 128}, "processor_class": "SmolVLMProcessor", "resample": 1,
            "rescale_factor": 1 / 255, "size": {"longest_edge": 512},
            "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 128}},
        },
        "processor_config.json": {"image_seq_len": 16, "processor_class": "SmolVLMProcessor"},
        "chat_template.json": {"chat_template": SMOLVLM_CHAT_TEMPLATE},
    }
    for name, content in files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(content, f, indent=2)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(DEMO_README)
    # Text-only expectations for the decoder inside the demo (its own chat format).
    text_prompt = "<|im_start|>User: What happens in this video?<end_of_utterance>\nAssistant:"
    ids = tok.encode(text_prompt, add_special_tokens=False).ids
    model.eval()
    inp = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=inp).logits[0]
        gen = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=NEW_TOKENS,
                             do_sample=False, eos_token_id=None, pad_token_id=2)
    fix = os.path.join(FIX, "lm-smolvlm-text")
    os.makedirs(fix, exist_ok=True)
    with open(os.path.join(fix, "logits.f32"), "wb") as f:
        f.write(logits.float().numpy().astype("<f4").tobytes())
    with open(os.path.join(fix, "expected.json"), "w") as f:
        json.dump({"prompt": text_prompt, "prompt_ids": ids, "logits_shape": list(logits.shape),
                   "greedy": [int(t) for t in gen[0, len(ids):]]}, f, indent=1)
    print("demo-smolvlm2", {x: os.path.getsize(os.path.join(out, x)) for x in sorted(os.listdir(out))})


def main() -> None:
    torch.set_num_threads(2)
    tied = save_llama("lm-tied", 1, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      rope_theta=100000.0, max_position_embeddings=128, rms_norm_eps=1e-5)
    save_llama("lm-untied", 2, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
               num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=False,
               rope_theta=500000.0, max_position_embeddings=256, rms_norm_eps=1e-6,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    save_llama("lm-linear", 3, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
               num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
               rope_theta=10000.0, max_position_embeddings=64, rms_norm_eps=1e-5,
               rope_scaling={"rope_type": "linear", "factor": 4.0})
    out = os.path.join(FIX, "lm-gguf")
    os.makedirs(out, exist_ok=True)
    write_model_gguf(tied, os.path.join(out, "model.gguf"))
    write_quant_ggufs(out)
    print("lm-gguf", {f: os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)})
    make_demo_smolvlm2()


if __name__ == "__main__":
    main()
