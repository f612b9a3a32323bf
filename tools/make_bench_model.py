"""A random-weight model directory at SmolVLM2-256M-Video-Instruct's exact shapes, for timing the
whole `ask` pipeline where no real weights can be downloaded.

Vision: SigLIP 768 wide, 12 layers, 12 heads, MLP 3072, 512 px, patch 16; pixel shuffle 4
(64 tokens per frame). Text: SmolLM2-135M (576 wide, 30 layers, 9 heads, 3 KV heads, MLP 1536,
vocabulary 49280, rope_theta 100000). Weights in BF16 (as the real checkpoint ships), with the
repository's fixture tokenizer (its <image> id set as image_token_id).

Run: python3 tools/make_bench_model.py /tmp/smolvlm2-256m-random
"""
import json
import os
import shutil
import sys

import torch
from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMForConditionalGeneration

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/smolvlm2-256m-random"
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
tokenizer_dir = os.path.join(root, "Tests", "Fixtures", "tokenizer")
tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tokenizer_dir, "tokenizer.json"))
image_id = tokenizer.convert_tokens_to_ids("<image>")

config = SmolVLMConfig(
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=512, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
    text_config=dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, vocab_size=49280, max_position_embeddings=8192,
                     rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=False,
                     eos_token_id=tokenizer.convert_tokens_to_ids("<end_of_utterance>")),
    scale_factor=4, image_token_id=image_id)
torch.manual_seed(0)
model = SmolVLMForConditionalGeneration(config).to(torch.bfloat16).eval()
shutil.rmtree(out, ignore_errors=True)
model.save_pretrained(out)
for name in ["tokenizer.json", "tokenizer_config.json"]:
    shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(out, name))
with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
    json.dump({"image_processor_type": "SmolVLMImageProcessor", "do_convert_rgb": True, "do_image_splitting": False,
               "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
               "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255, "resample": 1,
               "size": {"longest_edge": 512}, "max_image_size": {"longest_edge": 512},
               "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 512}}}, f, indent=2)
print("wrote", out)
