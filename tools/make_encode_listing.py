"""`hiprune-video encode`'s output as Python's `safetensors` reads it: the README says the file can be
checked in Python; this is that check, committed.

Runs the encode command below (the binary of a release build, or the one given), opens the file
with safetensors.safe_open(framework="numpy"), reads every tensor (so a bad offset or length fails
here), and writes Tests/Fixtures/encode/listing.json: the command's arguments, every tensor's key,
dtype and shape, and the metadata keys. Tests/CLITests (EncodeCLITests) runs the same arguments and
compares our file's listing with this one.

Run after a release build: python3 tools/make_encode_listing.py [path/to/hiprune-video]
"""
import json
import os
import subprocess
import sys
import tempfile

from safetensors import safe_open

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BINARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "release", "hiprune-video")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "encode", "listing.json")
# Relative to the repository; the output path is appended as --out.
ARGUMENTS = ["encode", "Tests/Fixtures/smolvlm-vqa", "media/bigbuckbunny.mp4", "--frames", "2", "--tokens", "6",
             "--layers", "all"]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "encoded.safetensors")
        subprocess.run([BINARY] + ARGUMENTS + ["--out", path], cwd=ROOT, check=True, capture_output=True)
        tensors = []
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            for key in sorted(f.keys()):
                value = f.get_tensor(key)
                tensors.append({"key": key, "dtype": str(value.dtype), "shape": list(value.shape)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"source": "tools/make_encode_listing.py (safetensors.safe_open, numpy)", "arguments": ARGUMENTS,
                   "tensors": tensors, "metadata_keys": sorted(metadata)}, f, indent=1)
    for t in tensors:
        print(t["key"], t["dtype"], t["shape"])
    print(f"{len(metadata)} metadata keys; wrote {OUT}")


if __name__ == "__main__":
    main()
