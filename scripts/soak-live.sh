#!/usr/bin/env bash
# Soak test of `live` (not part of CI): the ffmpeg CLI streams a synthetic clip in real time to
# loopback UDP for MINUTES minutes; `live` watches it with the demo model, answering a standing
# question every 5 s over an 8-frame window. Every 10 s the RSS and the open file descriptors of
# `live` are sampled; at the end it is stopped with SIGINT and the spread (max - min) is printed.
# Usage: scripts/soak-live.sh [MINUTES] [BINARY] [MODEL]   (defaults: 30, the release build, the demo model)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
binary="${2:-.build/release/hiprune-video}"
model="${3:-models/demo-smolvlm2}"
port=$((20000 + RANDOM % 20000))
out="$(mktemp -d)"
seconds=$((minutes * 60))

ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=640x360:rate=25" -t "$((seconds + 30))" \
  -c:v libx264 -preset ultrafast -g 50 -f mpegts "udp://127.0.0.1:$port" </dev/null &
streamer=$!
"$binary" live "udp://127.0.0.1:$port" --model "$model" --question "What is shown?" --every 5s --window 8 \
  --fps 2 --max-tokens 16 > "$out/events.jsonl" 2> "$out/stderr.txt" &
live=$!
trap 'kill $streamer $live 2>/dev/null || true' EXIT

echo "time_s,rss_kb,fds" > "$out/samples.csv"
for ((t = 0; t <= seconds; t += 10)); do
  sleep 10
  kill -0 "$live" 2>/dev/null || { echo "live exited early" >&2; break; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$live/status")
  fds=$(ls "/proc/$live/fd" | wc -l)
  echo "$((t + 10)),$rss,$fds" >> "$out/samples.csv"
done
kill -INT "$live"; wait "$live" || true
kill "$streamer" 2>/dev/null || true

# The first minute warms up (model load, first allocations); the spread is measured after it.
awk -F, 'NR > 7 { if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2;
                  if (fmin == "" || $3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3; n++ }
         END { printf "samples %d (after the first minute): RSS min %d kB, max %d kB, max-min %d kB; fds min %d, max %d\n", n, min, max, max - min, fmin, fmax }' "$out/samples.csv"
grep -c '"event":"frame"' "$out/events.jsonl" | sed 's/^/frame events: /'
grep -c '"event":"answer"' "$out/events.jsonl" | sed 's/^/answer events: /'
tail -n 1 "$out/events.jsonl"
echo "samples and events in $out"
