#!/usr/bin/env python3
"""Requests per minute and p50/p95 latency of `hiprune-video serve` for a fixed 8-frame question
at 1, 2 and 4 concurrent clients, beside `ask` run once per question (never run in CI).

    python tools/bench_serve.py --binary .build/release/hiprune-video --model DIR --video media/bigbuckbunny.mp4
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--requests", type=int, default=8, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--ask-runs", type=int, default=3)
    args = parser.parse_args()
    video = os.path.abspath(args.video)
    question = "What happens in this video?"

    # ask, once per question: model load, decode, encode, prune, prefill, generate.
    ask = []
    for _ in range(args.ask_runs):
        start = time.monotonic()
        subprocess.run([args.binary, "ask", video, question, "--model", args.model, "--frames", "8",
                        "--max-tokens", str(args.max_tokens), "--json"], check=True, capture_output=True)
        ask.append(time.monotonic() - start)
    print(f"ask per question: median {statistics.median(ask):.2f} s over {len(ask)} runs "
          f"({60 / statistics.median(ask):.1f} questions/min)")

    server = subprocess.Popen([args.binary, "serve", "--model", args.model, "--port", "0", "--allow-path",
                               os.path.dirname(video), "--max-queue", "64"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stderr:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        body = json.dumps({"max_tokens": args.max_tokens, "hiprune": {"frames": 8},
                           "messages": [{"role": "user", "content": [
                               {"type": "video_url", "video_url": {"url": "file://" + video}},
                               {"type": "text", "text": question}]}]}).encode()

        def once():
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.monotonic()
            with urllib.request.urlopen(request, timeout=600) as reply:
                json.load(reply)
            return time.monotonic() - start

        first = once()
        print(f"serve, first question (decode + encode, then cached): {first:.2f} s")
        for clients in (1, 2, 4):
            latencies = []
            lock = threading.Lock()
            todo = list(range(args.requests))

            def worker():
                while True:
                    with lock:
                        if not todo:
                            return
                        todo.pop()
                    t = once()
                    with lock:
                        latencies.append(t)

            start = time.monotonic()
            threads = [threading.Thread(target=worker) for _ in range(clients)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            wall = time.monotonic() - start
            print(f"serve, {clients} clients: {len(latencies) / wall * 60:.1f} requests/min, "
                  f"p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
