#!/usr/bin/env python3
"""Ground truth for the Stream tests, made ONCE from ffprobe (and numpy / transformers for
frame sampling) into Tests/Fixtures/stream/*.json. Run: python3 tools/make-stream-fixtures.py

Per clip: the stream facts, then the expected (sourceFrameNumber, time) of every sampled
frame in each sampling mode. Times are pts * time_base of ffprobe's frames (best-effort
timestamp where pts is missing); key frames are ffprobe's key packets in demux order.
"""
import json, os, subprocess, sys
from fractions import Fraction
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEDIA = os.path.join(ROOT, "media")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "stream")
CLIPS = ["bigbuckbunny.mp4", "carphone_distorted.mp4", "vfr.mp4", "odd-367x211.webm", "rotated-90.mp4",
         "vp9.webm", "aspect-16x9.mp4", "aspect-4x3.mp4", "aspect-9x16.mp4", "still.png", "still.jpg"]


def ffprobe(path, *args):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", *args, path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def seconds(value, base):
    return float(Fraction(int(value)) * base)


def fps_rule(times, rate, start):
    """The frame nearest each tick origin + k/rate (ties to the earlier frame), each at most once."""
    chosen, origin, tick, prev = [], None, 0, None
    for i, t in enumerate(times):
        origin = origin if origin is not None else (start if start is not None else t)
        while origin + tick / rate <= t:
            mark = origin + tick / rate
            pick = prev if prev is not None and mark - times[prev] <= t - mark else i
            if pick not in chosen:
                chosen.append(pick)
            tick += 1
        prev = i
    return sorted(chosen)


def main():
    os.makedirs(OUT, exist_ok=True)
    for clip in CLIPS:
        path = os.path.join(MEDIA, clip)
        streams = ffprobe(path, "-show_streams", "-show_format")
        s = streams["streams"][0]
        base = Fraction(s["time_base"])
        frames = ffprobe(path, "-show_frames", "-show_entries", "frame=pts,best_effort_timestamp,key_frame")["frames"]
        packets = ffprobe(path, "-show_packets", "-show_entries", "packet=pts,dts,flags")["packets"]
        times = []
        for f in frames:
            ts = f.get("pts", f.get("best_effort_timestamp"))
            times.append(seconds(ts, base) if ts is not None else 0.0)
        rotation = 0
        for side in s.get("side_data_list", []):
            if "rotation" in side:
                rotation = int(side["rotation"])
        duration = s.get("duration", streams["format"].get("duration"))
        rate = Fraction(s["avg_frame_rate"]) if s.get("avg_frame_rate", "0/0") != "0/0" else Fraction(s["r_frame_rate"])
        info = {"codec": s["codec_name"], "width": s["width"], "height": s["height"], "rotation": rotation,
                "duration": float(duration) if duration is not None else None, "frame_rate": float(rate),
                "frame_count": int(s["nb_frames"]) if int(s.get("nb_frames", 0) or 0) > 0 else None}

        span = times[-1] - times[0]
        start, end = times[0] + 0.25 * span, times[0] + 0.75 * span
        modes = []

        def add(name, sampling, value=None, start=None, end=None, keyframes=False):
            if keyframes:
                keys = []
                for n, p in enumerate(packets):
                    if "K" in p["flags"]:
                        ts = p.get("pts", p.get("dts"))
                        keys.append((n, seconds(ts, base)))
                pool = [(n, t) for n, t in sorted(keys, key=lambda k: k[1])]
            else:
                pool = list(enumerate(times))
            pool = [(n, t) for n, t in pool if (start is None or t >= start) and (end is None or t < end)]
            if sampling == "every":
                picked = pool
            elif sampling == "fps":
                picked = [pool[i] for i in fps_rule([t for _, t in pool], value, start)]
            else:  # uniform, as transformers: np.unique(np.linspace(0, total - 1, n, dtype=int))
                idx = np.unique(np.linspace(0, len(pool) - 1, value, dtype=int)) if pool else []
                picked = [pool[int(i)] for i in idx]
            modes.append({"name": name, "sampling": sampling, "value": value, "start": start, "end": end,
                          "keyframes": keyframes, "expected": [[n, t] for n, t in picked]})

        add("every", "every")
        for r in (1, 4, 10, 60):
            add(f"fps-{r}", "fps", r)
        for n in (1, 3, 8, 1000):
            add(f"uniform-{n}", "uniform", n)
        add("range-every", "every", start=start, end=end)
        add("range-fps-5", "fps", 5, start=start, end=end)
        add("range-uniform-4", "uniform", 4, start=start, end=end)
        add("keyframes", "every", keyframes=True)
        add("keyframes-range", "every", start=start, end=end, keyframes=True)
        with open(os.path.join(OUT, clip.replace(".", "_") + ".json"), "w") as f:
            json.dump({"clip": clip, "info": info, "modes": modes}, f, indent=None, separators=(",", ":"))
        print(clip, len(times), "frames", sum("K" in p["flags"] for p in packets), "key")

    # SmolVLM2's own frame picking, from transformers itself.
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
    from transformers.video_utils import VideoMetadata
    processor = SmolVLMVideoProcessor()
    cases = []
    for total, fps, max_frames, target in [(132, 25, 64, 1), (120, 29.97, 64, 1), (7500, 25, 64, 1), (3000, 30, 8, 1),
                                           (250, 25, 64, 2), (40, 25, 3, 1), (1, 25, 64, 1), (9000, 30, 64, 0.5)]:
        duration = total / fps
        meta = VideoMetadata(total_num_frames=total, fps=fps, duration=duration)
        idx = processor.sample_frames(meta, num_frames=max_frames, fps=target)
        cases.append({"total": total, "fps": fps, "duration": duration, "max_frames": max_frames,
                      "target_fps": target, "indices": [int(i) for i in idx]})
    with open(os.path.join(OUT, "smolvlm-sampling.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))
    print("smolvlm cases", len(cases))


if __name__ == "__main__":
    sys.exit(main())
