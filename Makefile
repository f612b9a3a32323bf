# The two commands the README promises work on a fresh Debian machine.
SWIFT ?= swift
TEST_FLAGS = -c release -Xswiftc -enable-testing

.PHONY: deps demo test build bench

deps:
	@bash scripts/install-deps

build: deps
	$(SWIFT) build -c release

# The main job on the embedded default: a bundled clip and the bundled demo model.
demo: build
	.build/release/hiprune-video frames media/bigbuckbunny.mp4 --frames 8 --size 384x384

test: deps
	$(SWIFT) test $(TEST_FLAGS)

bench: build
	$(SWIFT) build -c release --product hiprune-bench
	.build/release/hiprune-bench all
