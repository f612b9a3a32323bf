#!/usr/bin/env bash
# Fuzzes the parsers of downloaded files with libFuzzer (the Swift toolchain's own):
#   scripts/fuzz-parsers.sh [SECONDS] [safetensors|gguf|tokenizer ...]
# Default: 60 s for each of the three. `make test` runs it for 30 s each with a fixed seed (CI's
# bounded run: FUZZ_SEED=1); before a release run it by hand for 10 minutes per parser
# (`scripts/fuzz-parsers.sh 600`). Each parser's corpus is Tests/Fixtures/hostile/fuzz/NAME
# (seeds, committed) plus .build/fuzz/corpus/NAME (what the fuzzer grew, not committed). A crash
# leaves .build/fuzz/crash-* and fails the run; copy it into the seed directory and fix the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
parsers=("$@")
[ ${#parsers[@]} -gt 0 ] || parsers=(safetensors gguf tokenizer)

build=.build/fuzz
flags=(-Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address)
swift build -c release --build-path "$build" --target VLM "${flags[@]}" >&2
release="$build/release"
objects=()
for target in Tensor CKernels Prune Vision VLM; do
    objects+=("$release/$target.build"/*.o)
done
for parser in "${parsers[@]}"; do
    case "$parser" in safetensors|gguf|tokenizer) ;; *) echo "unknown parser $parser" >&2; exit 64 ;; esac
    binary="$build/fuzz-$parser"
    swiftc -O -sanitize=fuzzer,address -parse-as-library -D "FUZZ_$(echo "$parser" | tr a-z A-Z)" \
        Tests/Fuzz/FuzzParsers.swift -module-name FuzzParsers \
        -I "$release/Modules" -I "$release" -I Sources/CKernels/include \
        -Xcc -fmodule-map-file=Sources/COpenBLAS/module.modulemap \
        -Xcc -fmodule-map-file="$release/CKernels.build/module.modulemap" \
        "${objects[@]}" -lopenblas -o "$binary"
    grown="$build/corpus/$parser"
    mkdir -p "$grown"
    echo "fuzzing $parser for $seconds s" >&2
    ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$build/" -print_final_stats=1 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
        "$grown" "Tests/Fixtures/hostile/fuzz/$parser"
done
