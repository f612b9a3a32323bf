#!/usr/bin/env python3
"""HiPrune's published selection arithmetic in numpy: the parity reference for Prune's `reference` mode.

Follows the authors' LLaVA code (llava_arch.py, encode_images): anchors are the top
round(N' * alpha / 5) object-layer scores; buffers are anchor ±1 and ±width in flat index,
clamped to [0, N-1] and de-duplicated; the deep layer's scores of chosen tokens are lowered by
1 (scores lie in [0, 1), so they lose to every open token) and the top N' - |object set| are
taken; the union is sorted. torch.topk's tie order is unspecified; here ties go to the lower
index (stable sort), as in the Swift code; the random float32 scores have no ties anyway.

    python tools/prune_reference.py            # writes Tests/Fixtures/prune/reference.json
    python tools/prune_reference.py --bench    # prints per-frame medians (microseconds) as JSON
"""
import argparse
import json
import os
import time

import numpy as np


def topk(scores, k):
    """Indices of the k highest scores, ties to the lower index."""
    return np.argsort(-scores, kind="stable")[:k]


def hiprune_reference(s_obj, s_deep, width, keep, alpha):
    n = s_obj.shape[0]
    anchor_count = round(keep * alpha / 5)
    anchors = topk(s_obj, anchor_count)
    neighbours = np.concatenate([anchors, anchors - 1, anchors + 1, anchors - width, anchors + width])
    object_set = np.unique(np.clip(neighbours, 0, n - 1))
    mask = np.zeros(n, dtype=bool)
    mask[object_set] = True
    # The published code has no rule for an object set over budget (topk of a negative k).
    assert object_set.shape[0] <= keep, f"object set {object_set.shape[0]} over budget {keep}"
    deep = s_deep - mask.astype(np.float32)
    registers = topk(deep, keep - object_set.shape[0])
    return np.sort(np.concatenate([object_set, registers])), np.sort(anchors)


def hiprune_plus_plus(s_obj, s_deep, width, keep, alpha, beta, features, prompt):
    """Bench peer only: HiPrune's object set, then the most prompt-similar tokens, then registers."""
    n = s_obj.shape[0]
    anchors = topk(s_obj, max(1, round(keep * alpha / 5)))
    neighbours = np.concatenate([anchors, anchors - 1, anchors + 1, anchors - width, anchors + width])
    object_set = np.unique(np.clip(neighbours, 0, n - 1))
    chosen = np.zeros(n, dtype=bool)
    chosen[object_set] = True
    take = min(round(keep * beta / 5), keep - int(chosen.sum()))
    if take > 0:  # like the Swift code, similarity only when a prompt token is wanted, only for open tokens
        open_tokens = np.flatnonzero(~chosen)
        rows = features[open_tokens]
        similarity = (rows @ prompt) / np.maximum(np.linalg.norm(rows, axis=1) * np.linalg.norm(prompt), 1e-30)
        chosen[open_tokens[topk(similarity, take)]] = True
    deep = np.where(chosen, -np.inf, s_deep)
    registers = topk(deep, keep - int(chosen.sum()))
    chosen[registers] = True
    return np.flatnonzero(chosen)


def dedup_mask(features, previous, threshold):
    dot = np.einsum("nd,nd->n", features, previous)
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(previous, axis=1)
    return dot / np.maximum(norms, 1e-30) < threshold


CASES = [
    # rows, cols, budget, alpha
    (24, 24, 192, 0.1), (24, 24, 128, 0.1), (24, 24, 64, 0.1),
    (24, 24, 192, 1.0), (24, 24, 64, 1.0),
    (8, 8, 21, 0.1), (8, 8, 21, 1.0), (8, 8, 25, 0.5), (8, 8, 35, 0.5),
    (6, 10, 20, 1.0), (10, 6, 30, 1.0), (1, 16, 10, 1.0), (16, 1, 10, 1.0),
    (12, 20, 80, 0.7), (3, 5, 15, 1.0), (1, 1, 1, 5.0), (1, 1, 0, 0.1),
]


def fixture(path):
    rng = np.random.default_rng(20260508)
    cases = []
    for rows, cols, budget, alpha in CASES:
        n = rows * cols
        # Six decimals keep the JSON small; float32 of them is what both sides compare.
        s_obj = np.round(rng.random(n), 6).astype(np.float32)
        s_deep = np.round(rng.random(n), 6).astype(np.float32)
        kept, anchors = hiprune_reference(s_obj, s_deep, cols, budget, alpha)
        rows_of, cols_of = anchors // cols, anchors % cols
        edge = bool(np.any((cols_of == 0) | (cols_of == cols - 1) | (rows_of == 0) | (rows_of == rows - 1)))
        print(f"{rows}x{cols} budget {budget} alpha {alpha}: {anchors.shape[0]} anchors, edge anchor: {edge}")
        cases.append({
            "rows": rows, "cols": cols, "budget": budget, "alpha": alpha,
            "object_scores": [float(f"{x:.6f}") for x in s_obj],
            "deep_scores": [float(f"{x:.6f}") for x in s_deep],
            "anchors": anchors.tolist(),
            "kept": kept.tolist(),
        })
    with open(path, "w") as f:
        json.dump({"source": "tools/prune_reference.py (HiPrune published index arithmetic, numpy)",
                   "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {path} ({os.path.getsize(path)} bytes)")


def median_us(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def bench(runs, width):
    rng = np.random.default_rng(7)
    out = {}
    for side in (8, 32, 64):
        n = side * side
        keep = round(n / 3)
        s_obj = rng.random(n).astype(np.float32)
        s_deep = rng.random(n).astype(np.float32)
        features = rng.standard_normal((n, width)).astype(np.float32)
        previous = features + 0.1 * rng.standard_normal((n, width)).astype(np.float32)
        prompt = rng.standard_normal(width).astype(np.float32)
        out[str(n)] = {
            "hiprune": median_us(lambda: hiprune_reference(s_obj, s_deep, side, keep, 0.1), runs),
            "hiprune++": median_us(lambda: hiprune_plus_plus(s_obj, s_deep, side, keep, 0.1, 0.1, features, prompt), runs),
            "dedup": median_us(lambda: dedup_mask(features, previous, 0.95), runs),
        }
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--width", type=int, default=960, help="feature width for hiprune++ and dedup")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "prune", "reference.json"))
    args = parser.parse_args()
    if args.bench:
        bench(args.runs, args.width)
    else:
        fixture(os.path.normpath(args.out))


if __name__ == "__main__":
    main()
