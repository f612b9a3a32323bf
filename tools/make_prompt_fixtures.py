"""Reference SmolVLM2 video prompts, built by transformers' own SmolVLMProcessor code.

Writes Tests/Fixtures/prompt/smolvlm-video.json: for several frame counts, frame times, durations
and image-token run lengths (the kept count per frame after pruning), the exact prompt text and
its token ids under Tests/Fixtures/tokenizer/tokenizer.json.

The processor's image and video processors need torchvision, which the CPU venv lacks, so the
two methods that build the text are called on a stand-in holding the attributes they read:
`replace_video_token` (intro, per-frame timestamps and image runs, outro) and the default video
chat template (rendered by the tokenizer's own Jinja engine).

Run: python3 tools/make_prompt_fixtures.py   (needs `pip install num2words`)
"""
import json
import pathlib
import types

import torch
from transformers import PreTrainedTokenizerFast
import transformers.models.smolvlm.processing_smolvlm as smolvlm
from transformers.video_utils import VideoMetadata

root = pathlib.Path(__file__).resolve().parent.parent
tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(root / "Tests/Fixtures/tokenizer/tokenizer.json"))

cases = [
    # (frame indices, fps, duration seconds, image tokens per frame, question)
    ([0, 30, 60, 90, 120, 150, 180, 210], 24.0, 10.4, 64, "What happens in this video?"),
    ([0, 30, 60, 90, 120, 150, 180, 210], 24.0, 10.4, 21, "Describe the video."),
    ([0, 1560, 3690], 25.0, 150.0, 5, "Who is there? Answer in one word."),
    ([12], 30.0, 0.9, 1, "Is it day or night?"),
    (list(range(0, 13 * 50, 50)), 25.0, 3725.0, 3, "Count the birds:  how many?\n"),
]

out = []
for indices, fps, duration, seq_len, question in cases:
    stand_in = types.SimpleNamespace(image_seq_len=seq_len, image_token="<image>",
                                     fake_image_token="<fake_token_around_image>",
                                     global_image_token="<global-img>")
    metadata = VideoMetadata(total_num_frames=max(indices) + 1, fps=fps, duration=duration, frames_indices=indices)
    video_inputs = {"pixel_values": torch.zeros(1, len(indices), 3, 2, 2), "video_metadata": [metadata]}
    video_text = smolvlm.SmolVLMProcessor.replace_video_token(stand_in, video_inputs, 0)
    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    chat = tokenizer.apply_chat_template(conversation, chat_template=smolvlm.DEFAULT_CHAT_TEMPLATE,
                                         add_generation_prompt=True, tokenize=False)
    assert chat.count("<video>") == 1
    text = chat.replace("<video>", video_text)
    ids = tokenizer(text)["input_ids"]
    out.append({"times": [i / fps for i in indices], "duration": duration, "image_tokens": seq_len,
                "question": question, "text": text, "ids": ids})

path = root / "Tests/Fixtures/prompt/smolvlm-video.json"
path.write_text(json.dumps(out, ensure_ascii=False, indent=0))
print(f"wrote {path} ({path.stat().st_size} bytes, {len(out)} cases)")
