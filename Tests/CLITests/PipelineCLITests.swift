import Foundation
import Tensor
import TestSupport
import XCTest

/// stats, calibrate and ask as a user runs them, on the bundled clip and the tiny fixture model.
final class PipelineCLITests: XCTestCase {
    let model = CLI.path("Tests/Fixtures/smolvlm-vqa")
    let clip = CLI.path("media/bigbuckbunny.mp4")

    func testStatsJSONLinesAddUpAndKeepTheBudget() throws {
        let result = try CLI.run(["stats", clip, "--model", model, "--frames", "4", "--budget", "0.33", "--format", "jsonl"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let events = CLI.events(result.stdout)
        XCTAssertEqual(events.count, 5, result.stdout)
        let frames = events.dropLast()
        var times: [Double] = []
        for frame in frames {
            XCTAssertEqual(frame["grid"] as? String, "4x4")
            XCTAssertEqual(frame["tokens_before"] as? Int, 16)
            // N' = round(0.33 · 16) = 5, half to even.
            XCTAssertEqual(frame["tokens_after"] as? Int, 5)
            let anchors = try XCTUnwrap(frame["anchors"] as? Int), buffers = try XCTUnwrap(frame["buffers"] as? Int)
            let registers = try XCTUnwrap(frame["registers"] as? Int)
            XCTAssertEqual(anchors, 1, "max(1, round(0.1 · 5 / 5)) anchors")
            XCTAssertEqual(anchors + buffers + registers, 5)
            XCTAssertLessThanOrEqual(buffers, 4, "an anchor has at most 4 grid neighbours")
            times.append(try XCTUnwrap(frame["time"] as? Double))
        }
        XCTAssertEqual(times, times.sorted())
        let summary = try XCTUnwrap(events.last)
        XCTAssertEqual(summary["summary"] as? Bool, true)
        XCTAssertEqual(summary["frames"] as? Int, 4)
        XCTAssertEqual(summary["tokens_before"] as? Int, 64)
        XCTAssertEqual(summary["tokens_after"] as? Int, 20)
        // The prefill FLOPs by hand (2 per multiply-add) for the fixture's Llama decoder: d = 64,
        // 4 query heads and 2 KV heads of 16, MLP 96, 2 layers, vocabulary 1240. Per token and layer:
        // q, o 64·64 + k, v 64·32 = 12 288 MACs; gate, up, down 3·64·96 = 18 432 MACs → 61 440 FLOPs.
        // Causal attention, query i reading i keys: (QKᵀ + AV) 2·64·i MACs → 128·n(n+1) FLOPs per layer.
        // The last token's logits: 64·1240 MACs = 158 720 FLOPs.
        func handCount(_ n: Double) -> Double { 2 * (n * 61_440 + 128 * n * (n + 1)) + 158_720 }
        XCTAssertEqual(handCount(64), 9_088_000)
        XCTAssertEqual(handCount(20), 2_723_840)
        XCTAssertEqual(summary["prefill_flops_full"] as? Double, 9_088_000, "64 visual tokens")
        XCTAssertEqual(summary["prefill_flops_pruned"] as? Double, 2_723_840, "20 visual tokens")
    }

    func testStatsTableAndCSVHaveOneRowPerFrame() throws {
        let csv = try CLI.run(["stats", clip, "--model", model, "--frames", "3", "--tokens", "6", "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let rows = csv.stdoutLines.filter { !$0.hasPrefix("#") }
        XCTAssertEqual(rows.first, "frame,time,grid,tokens_before,tokens_after,anchors,buffers,registers,prompt,temporal_drops,encode_ms,prune_ms")
        XCTAssertEqual(rows.count, 4)
        for row in rows.dropFirst() { XCTAssertEqual(row.split(separator: ",")[4], "6") }
        let table = try CLI.run(["stats", clip, "--model", model, "--frames", "2", "--method", "uniform"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("visual tokens 32 → 10"), table.stdout)
        XCTAssertTrue(table.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(table.stderr)")
    }

    func testDedupDropsRepeatedTokensButNeverOnTheFirstFrame() throws {
        // The opening shot of the clip barely moves between consecutive frames.
        let result = try CLI.run(["stats", clip, "--model", model, "--fps", "25", "--end", "0.09", "--dedup", "0.99",
                                  "--format", "jsonl"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let frames = CLI.events(result.stdout).filter { $0["summary"] == nil }
        XCTAssertGreaterThanOrEqual(frames.count, 2)
        XCTAssertEqual(frames[0]["temporal_drops"] as? Int, 0)
        XCTAssertGreaterThan(frames.dropFirst().map { $0["temporal_drops"] as? Int ?? 0 }.reduce(0, +), 0,
                             "consecutive frames of the opening shot are nearly identical")
    }

    /// media/still-motion.mp4 holds frames 0 and 10 for four more frames each (lossless): at T = 0.5
    /// exactly those eight rows are reused, each with its own time; `--reuse 0` reuses none.
    func testStatsReuseCountsTheRepeatedFrames() throws {
        let clip = CLI.path("media/still-motion.mp4")
        for (threshold, expected) in [("0.5", [1, 2, 3, 4, 11, 12, 13, 14]), ("0", [])] {
            let result = try CLI.run(["stats", clip, "--model", model, "--every-frame", "--reuse", threshold, "--format", "jsonl"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let events = CLI.events(result.stdout)
            let frames = events.filter { $0["summary"] == nil }
            XCTAssertEqual(frames.count, 15, result.stdout)
            let reused = frames.enumerated().filter { $0.element["reused"] as? Bool == true }.map(\.offset)
            XCTAssertEqual(reused, expected, "--reuse \(threshold)")
            for i in reused { XCTAssertEqual(frames[i]["encode_ms"] as? Double, 0) }
            let times = frames.compactMap { $0["time"] as? Double }
            XCTAssertEqual(times.count, 15)
            XCTAssertEqual(Set(times).count, 15, "every row keeps its own time")
            // Without --reuse the output is what it always was: no reuse fields at all.
            if threshold == "0" {
                XCTAssertTrue(frames.allSatisfy { $0["reused"] == nil }, result.stdout)
                XCTAssertNil(events.last?["reused_frames"])
            } else {
                XCTAssertEqual(events.last?["reused_frames"] as? Int, expected.count)
            }
        }
        let bad = try CLI.run(["stats", clip, "--model", model, "--reuse", "300"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--reuse 300.0 is outside [0, 255]"), bad.stderr)
    }

    /// HIPRUNE_ISA lowers the kernels' path; a value that names none is refused before anything runs.
    func testInstructionSetOverride() throws {
        let bad = try CLI.run(["stats", clip, "--model", model, "--frames", "1"], environment: ["HIPRUNE_ISA": "sse9"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderrLines, ["hiprune-video: HIPRUNE_ISA=sse9: expected portable, avx2 or avx512"])
        XCTAssertEqual(bad.stdout, "")
        for level in ["portable", "avx2", "avx512"] {
            let run = try CLI.run(["stats", clip, "--model", model, "--frames", "2", "--tokens", "5", "--format", "jsonl"],
                                  environment: ["HIPRUNE_ISA": level])
            XCTAssertEqual(run.status, 0, "\(level): \(run.stderr)")
            XCTAssertEqual(CLI.events(run.stdout).last?["tokens_after"] as? Int, 10, level)
        }
    }

    func testBadFlagsGiveOneClearLine() throws {
        let cases: [([String], String)] = [
            (["--budget", "1.5"], "outside (0, 1]"),
            (["--budget", "0"], "outside (0, 1]"),
            (["--tokens", "1000"], "exceeds the frame's 16 tokens"),
            (["--method", "bogus"], "bogus"),
            (["--object-layer", "9"], "object layer 9 is out of range"),
            (["--object-layer", "0"], "object layer 0 is out of range"),
        ]
        for (flags, expected) in cases {
            let result = try CLI.run(["stats", clip, "--model", model, "--frames", "1"] + flags)
            XCTAssertNotEqual(result.status, 0, "\(flags)")
            XCTAssertEqual(result.stderrLines.count, 1, "\(flags): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(flags): \(result.stderr)")
            XCTAssertEqual(result.stdout, "", "\(flags): nothing on stdout")
        }
    }

    func testBadModelDirectoriesNameTheirCause() throws {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("hv-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let malformed = temporary.appendingPathComponent("malformed")
        try FileManager.default.createDirectory(at: malformed, withIntermediateDirectories: true)
        try Data("{ not json".utf8).write(to: malformed.appendingPathComponent("config.json"))
        let unknown = temporary.appendingPathComponent("unknown")
        try FileManager.default.createDirectory(at: unknown, withIntermediateDirectories: true)
        try Data(#"{"model_type": "whisper"}"#.utf8).write(to: unknown.appendingPathComponent("config.json"))
        let cases: [(String, String)] = [
            (temporary.appendingPathComponent("missing").path, "not a model directory"),
            (malformed.path, "malformed JSON"),
            (unknown.path, "model_type 'whisper' is not supported"),
        ]
        for (directory, expected) in cases {
            for command in ["stats", "ask"] {
                var arguments = [command, clip, "--model", directory]
                if command == "ask" { arguments.insert("What?", at: 2) }
                let result = try CLI.run(arguments)
                XCTAssertEqual(result.status, 1, "\(command) \(directory)")
                XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains(expected) && result.stderr.contains(directory), result.stderr)
                XCTAssertEqual(result.stdout, "")
            }
        }
    }

    func testAskStreamsAnAnswerAndReportsItsFigures() throws {
        let result = try CLI.run(["ask", clip, "What happens?", "--model", model, "--frames", "3", "--max-tokens", "8", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(CLI.events(result.stdout).first)
        let ids = try XCTUnwrap(object["token_ids"] as? [Int])
        XCTAssertFalse(ids.isEmpty)
        XCTAssertLessThanOrEqual(ids.count, 8)
        XCTAssertEqual(object["frames"] as? Int, 3)
        XCTAssertEqual(object["visual_tokens_before"] as? Int, 48)
        XCTAssertEqual(object["visual_tokens_after"] as? Int, 15)
        // The prompt: 3 frames × (timestamp line + markers) + 15 image tokens + the chat text.
        let prompt = try XCTUnwrap(object["prefill_tokens"] as? Int)
        XCTAssertGreaterThan(prompt, 15)
        for key in ["load_ms", "decode_ms", "encode_ms", "prune_ms", "prefill_ms", "tokens_per_second"] {
            XCTAssertNotNil(object[key] as? Double ?? (object[key] as? Int).map(Double.init), key)
        }

        // Two questions share the video prefix; the first answer does not change for it.
        let two = try CLI.run(["ask", clip, "What happens?", "--question", "Who is there?", "--model", model,
                               "--frames", "3", "--max-tokens", "8", "--json"])
        XCTAssertEqual(two.status, 0, two.stderr)
        let both = try XCTUnwrap(CLI.events(two.stdout).first)
        let answers = try XCTUnwrap(both["answers"] as? [[String: Any]])
        XCTAssertEqual(answers.count, 2)
        XCTAssertEqual(answers[0]["token_ids"] as? [Int], ids)
        XCTAssertGreaterThan(try XCTUnwrap(both["shared_prefix_tokens"] as? Int), 15)

        // Plain output: the answer on stdout, the timing summary on stderr.
        let plain = try CLI.run(["ask", clip, "What happens?", "--model", model, "--frames", "3", "--max-tokens", "8"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("visual tokens 48 → 15"), plain.stderr)
        XCTAssertTrue(plain.stderr.contains("prefill"), plain.stderr)
    }

    /// `calibrate` on a 6-layer encoder (the suggestion is the minimum of the first 4 layers) over
    /// four lossless frames at the model's size: the dispersion curve equals the numpy recomputation
    /// from transformers' attentions (tools/make_calibration_fixtures.py) to 1e-5, and so does the
    /// suggested layer.
    func testCalibrateCurveEqualsTheReferenceOnASixLayerEncoder() throws {
        let reference = try Fixtures.json("smolvlm-deep", "calibration.json")
        let expected = try XCTUnwrap(reference["dispersion"] as? [Double])
        XCTAssertEqual(expected.count, 6)
        let result = try CLI.run(["calibrate", CLI.path("Tests/Fixtures/smolvlm-deep/frames.mkv"),
                                  "--model", CLI.path("Tests/Fixtures/smolvlm-deep"), "--frames", "4", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(CLI.events(result.stdout).first)
        XCTAssertEqual(object["frames"] as? Int, 4)
        let curve = try XCTUnwrap(object["dispersion"] as? [[Double]])
        XCTAssertEqual(curve.map { Int($0[0]) }, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(curve.count, expected.count)
        for (point, value) in zip(curve, expected) {
            XCTAssertEqual(point[1], value, accuracy: 1e-5, "layer \(Int(point[0]))")
        }
        let suggested = try XCTUnwrap(reference["suggested_object_layer"] as? Int)
        XCTAssertEqual(object["suggested_object_layer"] as? Int, suggested)
        // Not a choice the window makes by itself: some layer in the window disperses more.
        XCTAssertGreaterThan(expected.prefix(4).max()!, expected[suggested - 1] + 1e-3)
    }
}

/// `encode` output, read back with our own safetensors reader.
final class EncodeCLITests: XCTestCase {
    func testEncodeWritesTheSelectionWhenABudgetIsGiven() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("hv-encode-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try CLI.run(["encode", CLI.path("Tests/Fixtures/smolvlm-vqa"), CLI.path("media/bigbuckbunny.mp4"),
                                  "--frames", "2", "--out", out, "--tokens", "6", "--layers", "all"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let file = try SafeTensorsFile(path: out)
        XCTAssertEqual(file.metadata["layers"], "1,2")
        XCTAssertEqual(file.metadata["frames"], "2")
        for i in 0..<2 {
            XCTAssertEqual(file.metadata["frame.\(i).grid"], "4x4")
            let kept = try file.int32s("frame.\(i).kept")
            XCTAssertEqual(kept.count, 6)
            XCTAssertEqual(kept, kept.sorted())
            XCTAssertEqual(Set(kept).count, 6)
            let roles = try XCTUnwrap(file.metadata["frame.\(i).roles"]).split(separator: ",")
            XCTAssertEqual(roles.count, 6)
            XCTAssertEqual(roles.filter { $0 == "anchor" }.count, 1, "max(1, round(0.1 · 6 / 5)) anchors")
            // The anchor is the token with the highest object-layer (layer 1 of 2) score.
            let scores = try file.floats("frame.\(i).scores")
            XCTAssertEqual(scores.count, 2 * 16)
            let objectScores = Array(scores[0..<16])
            let best = objectScores.indices.max { objectScores[$0] < objectScores[$1] || (objectScores[$0] == objectScores[$1] && $0 > $1) }!
            let anchor = kept[roles.firstIndex(of: "anchor")!]
            XCTAssertEqual(Int(anchor), best)
        }
        // Without a budget there is no selection in the file.
        let plain = try CLI.run(["encode", CLI.path("Tests/Fixtures/smolvlm-vqa"), CLI.path("media/bigbuckbunny.mp4"),
                                 "--frames", "1", "--out", out])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertFalse(try SafeTensorsFile(path: out).metadata.keys.contains("frame.0.roles"))
    }
}

extension EncodeCLITests {
    /// The file as Python's `safetensors` reads it (tools/make_encode_listing.py ran the same command
    /// and wrote Tests/Fixtures/encode/listing.json): the same tensors with the same dtypes and
    /// shapes, and the same metadata keys.
    func testEncodeOutputListsAsPythonSafetensorsReadsIt() throws {
        let listing = try Fixtures.json("encode", "listing.json")
        let arguments = try XCTUnwrap(listing["arguments"] as? [String])
        let tensors = try XCTUnwrap(listing["tensors"] as? [[String: Any]])
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("hv-encode-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let paths: Set<String> = ["Tests/Fixtures/smolvlm-vqa", "media/bigbuckbunny.mp4"]
        let result = try CLI.run(arguments.map { paths.contains($0) ? CLI.path($0) : $0 } + ["--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        let file = try SafeTensorsFile(path: out)
        let numpy = ["F32": "float32", "F16": "float16", "I32": "int32", "I64": "int64", "U8": "uint8"]
        let ours = file.entries.keys.sorted().map { key -> String in
            let entry = file.entries[key]!
            return "\(key) \(numpy[entry.dtype] ?? entry.dtype) \(entry.shape)"
        }
        let python = try tensors.map { t -> String in
            "\(try XCTUnwrap(t["key"] as? String)) \(try XCTUnwrap(t["dtype"] as? String)) \(try XCTUnwrap(t["shape"] as? [Int]))"
        }
        XCTAssertGreaterThan(python.count, 4, "features, scores and the selection of two frames")
        XCTAssertEqual(ours, python)
        XCTAssertEqual(file.metadata.keys.sorted(), try XCTUnwrap(listing["metadata_keys"] as? [String]))
    }
}

/// Qwen2.5-VL's grid follows each clip's aspect ratio (smart_resize), and statistics show it.
final class QwenGridCLITests: XCTestCase {
    func testStatsShowEachAspectRatiosOwnGrid() throws {
        var grids: [String: String] = [:]
        for clip in ["aspect-16x9", "aspect-4x3", "aspect-9x16"] {
            let result = try CLI.run(["stats", CLI.path("media/\(clip).mp4"), "--model", CLI.path("Tests/Fixtures/qwen25vl-tiny"),
                                      "--frames", "2", "--format", "jsonl"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let frame = try XCTUnwrap(CLI.events(result.stdout).first)
            grids[clip] = frame["grid"] as? String
            let grid = try XCTUnwrap(grids[clip]).split(separator: "x").compactMap { Int($0) }
            XCTAssertEqual(frame["tokens_before"] as? Int, grid[0] * grid[1])
        }
        let size = grids.mapValues { $0.split(separator: "x").compactMap { Int($0) } }
        XCTAssertLessThan(size["aspect-16x9"]![0], size["aspect-16x9"]![1], "landscape: more columns than rows")
        XCTAssertGreaterThan(size["aspect-9x16"]![0], size["aspect-9x16"]![1], "portrait: more rows than columns")
        XCTAssertNotEqual(grids["aspect-16x9"], grids["aspect-4x3"])
        XCTAssertEqual(size["aspect-16x9"]!.reversed(), size["aspect-9x16"]!, "9:16 is 16:9 turned")
    }
}

final class InspectCLITests: XCTestCase {
    /// `inspect` on a GGUF: each tensor's type and stored bytes, and the bytes held in memory for
    /// the chosen --weights (Q8_0: 34 bytes per 32 values of every matrix; the F32 norms stay).
    func testInspectGGUFShowsTypesAndBytesHeld() throws {
        let blocks = try CLI.run(["inspect", CLI.path("Tests/Fixtures/quant/blocks.gguf")])
        XCTAssertEqual(blocks.status, 0, blocks.stderr)
        XCTAssertTrue(blocks.stdoutLines.contains { $0.hasPrefix("tensor") && $0.contains("Q4_K  512x4  1152 bytes") }, blocks.stdout)
        XCTAssertTrue(blocks.stdoutLines.contains { $0.hasPrefix("tensor") && $0.contains("Q6_K  512x4  1680 bytes") }, blocks.stdout)
        XCTAssertTrue(blocks.stdoutLines.contains { $0.hasPrefix("held") && $0.contains("not loadable") }, blocks.stdout)
        func held(_ weights: String) throws -> Int {
            let result = try CLI.run(["inspect", CLI.path("Tests/Fixtures/lm-gguf/model.gguf"), "--weights", weights])
            XCTAssertEqual(result.status, 0, result.stderr)
            let line = try XCTUnwrap(result.stdoutLines.first { $0.hasPrefix("held") }, result.stdout)
            let digits = line.split(separator: "(")[1].split(separator: " ")[0]
            return try XCTUnwrap(Int(digits), line)
        }
        let stored = try held("stored"), q8 = try held("q8_0")
        let file = try CLI.run(["inspect", CLI.path("Tests/Fixtures/lm-gguf/model.gguf")])
        let total = file.stdoutLines.filter { $0.hasPrefix("tensor") }.compactMap { Int($0.split(separator: " ").dropLast().last ?? "") }.reduce(0, +)
        XCTAssertEqual(stored, total, "F32 file held as stored: every tensor's bytes once")
        XCTAssertLessThan(q8, stored * 34 / 128 + 64 * 1024, "Q8_0: about 34/128 of F32")
        XCTAssertGreaterThan(q8, stored * 34 / 128 - 64 * 1024)
    }

    func testInspectDescribesBothFamilies() throws {
        let smol = try CLI.run(["inspect", CLI.path("Tests/Fixtures/smolvlm-b")])
        XCTAssertEqual(smol.status, 0, smol.stderr)
        XCTAssertTrue(smol.stdoutLines.contains { $0.hasPrefix("family") && $0.hasSuffix("SmolVLM2") }, smol.stdout)
        XCTAssertTrue(smol.stdoutLines.contains("tensors    all expected tensors present with their shapes"), smol.stdout)
        let qwen = try CLI.run(["inspect", CLI.path("Tests/Fixtures/qwen25vl-tiny")])
        XCTAssertEqual(qwen.status, 0, qwen.stderr)
        XCTAssertTrue(qwen.stdoutLines.contains { $0.hasPrefix("family") && $0.hasSuffix("Qwen2.5-VL") }, qwen.stdout)
        XCTAssertTrue(qwen.stdoutLines.contains { $0.hasPrefix("text") && $0.contains("qwen2:") && $0.contains("M-RoPE") }, qwen.stdout)
        XCTAssertTrue(qwen.stdoutLines.contains("tensors    all expected tensors present with their shapes"), qwen.stdout)
    }

    func testInspectOfAnUnknownFamilyIsOneLine() throws {
        let result = try CLI.run(["inspect", CLI.path("media")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("media"), result.stderr)
        XCTAssertEqual(result.stdout, "")
    }
}
