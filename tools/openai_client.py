#!/usr/bin/env python3
"""Talks to `hiprune-video serve` through the official `openai` Python package, unchanged
(never run in CI; `pip install openai`). Lists the models, asks one question about a clip
without and with streaming, and checks that both give the same answer.

    hiprune-video serve --model models/demo-smolvlm2 --allow-path media --port 8080 &
    python tools/openai_client.py --base-url http://127.0.0.1:8080/v1 media/bigbuckbunny.mp4
"""
import argparse
import os
import sys

from openai import OpenAI


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default=os.environ.get("HIPRUNE_API_KEY", "none"))
    parser.add_argument("--question", default="What happens in this video?")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    models = client.models.list()
    model = models.data[0].id
    print("models:", [m.id for m in models.data])

    url = "file://" + os.path.abspath(args.video)
    messages = [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": url}},
        {"type": "text", "text": args.question},
    ]}]
    extra = {"hiprune": {"frames": args.frames, "budget": 0.33}}

    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens,
                                           temperature=0, seed=0, extra_body=extra)
    answer = reply.choices[0].message.content
    print("answer:", repr(answer))
    print("finish_reason:", reply.choices[0].finish_reason)
    print("usage:", reply.usage.model_dump())

    pieces = []
    usage = None
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=args.max_tokens,
                                                temperature=0, seed=0, extra_body=extra, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    streamed = "".join(pieces)
    print("streamed:", repr(streamed), f"({len(pieces)} chunks)")
    print("streamed usage:", usage.model_dump() if usage else None)
    if streamed != answer:
        print("MISMATCH between streamed and non-streamed answers", file=sys.stderr)
        return 1
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=4,
                                       extra_body={"hiprune": {"budgett": 0.5}})
        print("expected a 400 for an unknown hiprune field", file=sys.stderr)
        return 1
    except Exception as error:  # openai.BadRequestError
        print("bad field ->", type(error).__name__, getattr(error, "status_code", None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
