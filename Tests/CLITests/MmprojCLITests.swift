import Foundation
import Tensor
import TestSupport
import XCTest

/// `--model TEXT.gguf --mmproj MMPROJ.gguf` as llama-mtmd-cli takes them, on the GGUF pairs
/// llama.cpp's converter made of the tiny fixtures (tools/make_mmproj_fixtures.py): the commands
/// give what they give on the safetensors directory the pair was converted from.
final class MmprojCLITests: XCTestCase {
    struct Pair {
        var name: String
        var directory: String
        var folder: String
        var clip: String
        var frames: String
        var pair: [String] {
            ["--model", CLI.path("Tests/Fixtures/\(folder)/text-f32.gguf"), "--mmproj", CLI.path("Tests/Fixtures/\(folder)/mmproj-f32.gguf")]
        }
        var model: [String] { ["--model", CLI.path("Tests/Fixtures/\(directory)")] }
    }

    static let pairs = [
        Pair(name: "SmolVLM2", directory: "smolvlm-vqa", folder: "mmproj-smolvlm", clip: "media/bigbuckbunny.mp4", frames: "3"),
        Pair(name: "Qwen2.5-VL", directory: "qwen25vl-tiny", folder: "mmproj-qwen25vl", clip: "media/aspect-16x9.mp4", frames: "4"),
        // llama.cpp's legacy LLaVA scripts (tools/make_llava_mmproj_fixtures.py).
        Pair(name: "LLaVA-1.5", directory: "llava-tiny", folder: "mmproj-llava", clip: "media/bigbuckbunny.mp4", frames: "2"),
    ]

    /// The JSON lines without the fields that time the run.
    func withoutTimings(_ text: String) throws -> [[String: String]] {
        try text.split(separator: "\n").map { line in
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return object.filter { !$0.key.hasSuffix("_ms") && !$0.key.contains("per_second") }.mapValues { "\($0)" }
        }
    }

    func testAskOnThePairGivesTheDirectorysGreedyTokens() throws {
        for p in Self.pairs {
            let question = ["ask", CLI.path(p.clip), "What happens?", "--frames", p.frames, "--max-tokens", "8", "--json"]
            let gguf = try CLI.run(question + p.pair)
            XCTAssertEqual(gguf.status, 0, gguf.stderr)
            let directory = try CLI.run(question + p.model)
            XCTAssertEqual(directory.status, 0, directory.stderr)
            let a = try XCTUnwrap(CLI.events(gguf.stdout).first, gguf.stdout)
            let b = try XCTUnwrap(CLI.events(directory.stdout).first, directory.stdout)
            let ids = try XCTUnwrap(a["token_ids"] as? [Int])
            XCTAssertFalse(ids.isEmpty, p.name)
            XCTAssertEqual(ids, b["token_ids"] as? [Int], p.name)
            for key in ["answer", "prefill_tokens", "visual_tokens_before", "visual_tokens_after", "frames", "grids"] {
                XCTAssertEqual("\(a[key] ?? "none")", "\(b[key] ?? "none")", "\(p.name): \(key)")
            }
        }
    }

    func testStatsAndEncodeOnThePairEqualTheDirectorys() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mmproj-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for p in Self.pairs {
            let stats = ["stats", CLI.path(p.clip), "--frames", p.frames, "--budget", "0.33", "--format", "jsonl"]
            let gguf = try CLI.run(stats + p.pair), directory = try CLI.run(stats + p.model)
            XCTAssertEqual(gguf.status, 0, gguf.stderr)
            XCTAssertEqual(directory.status, 0, directory.stderr)
            let lines = try withoutTimings(gguf.stdout)
            XCTAssertEqual(lines.count, Int(p.frames)! / (p.name == "Qwen2.5-VL" ? 2 : 1) + 1, gguf.stdout)
            XCTAssertEqual(lines, try withoutTimings(directory.stdout), p.name)

            // encode: the same selection and features within F32 rounding (the files differ only in how
            // the weights were stored).
            let outputs = ["gguf", "directory"].map { folder.appendingPathComponent("\(p.folder)-\($0).safetensors").path }
            for (out, model) in zip(outputs, [p.pair, p.model]) {
                let result = try CLI.run(["encode"] + [model[1]] + Array(model.dropFirst(2)) + [CLI.path(p.clip), "--frames", p.frames,
                                          "--budget", "0.33", "--out", out])
                XCTAssertEqual(result.status, 0, "\(p.name): \(result.stderr)")
            }
            let a = try SafeTensorsFile(path: outputs[0]), b = try SafeTensorsFile(path: outputs[1])
            XCTAssertEqual(Set(a.entries.keys), Set(b.entries.keys), p.name)
            XCTAssertTrue(a.entries.keys.contains { $0.hasSuffix(".kept") }, "\(p.name): \(a.entries.keys.sorted())")
            for name in a.entries.keys.sorted() {
                XCTAssertEqual(a.entries[name]?.shape, b.entries[name]?.shape, "\(p.name): \(name)")
                if a.entries[name]?.dtype == "I32" {
                    XCTAssertEqual(try a.int32s(name), try b.int32s(name), "\(p.name): \(name)")
                } else {
                    XCTAssertLessThanOrEqual(relativeError(try a.floats(name), try b.floats(name)), 1e-5, "\(p.name): \(name)")
                }
            }
        }
    }

    func testInspectOnAPairShowsTypesAndBytesHeld() throws {
        let result = try CLI.run(["inspect", CLI.path("Tests/Fixtures/mmproj-smolvlm/text-f32.gguf"),
                                  "--mmproj", CLI.path("Tests/Fixtures/mmproj-smolvlm/mmproj-f16.gguf")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdoutLines
        XCTAssertTrue(lines.contains { $0.hasPrefix("family") && $0.contains("SmolVLM2") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("mmproj") && $0.hasSuffix("mmproj-f16.gguf") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("arch") && $0.hasSuffix("clip") }, result.stdout)
        // attn_q of a 32-wide tower in F16: 32·32·2 bytes; its bias stays F32.
        XCTAssertTrue(lines.contains { $0.hasPrefix("tensor") && $0.contains("v.blk.0.attn_q.weight  F16  32x32  2048 bytes") }, result.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("tensor") && $0.contains("v.blk.0.attn_q.bias  F32  32  128 bytes") }, result.stdout)
        let held = lines.filter { $0.hasPrefix("held") }
        XCTAssertEqual(held.count, 2, result.stdout)
        func bytes(_ line: String) -> Int? { Int(line.split(separator: "(")[1].split(separator: " ")[0]) }
        // The encoder widens every value to F32: 4 bytes each, more than the F16 file stores.
        let tensors = lines.drop { !$0.hasPrefix("mmproj") }.filter { $0.hasPrefix("tensor") }
        let values = tensors.map { line -> Int in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields[fields.count - 3].split(separator: "x").compactMap { Int($0) }.reduce(1, *)
        }.reduce(0, +)
        XCTAssertEqual(bytes(held[1]), 4 * values, held[1])
        XCTAssertTrue(held[0].contains("language-model"), held[0])

        // Qwen2.5-VL's text model (qwen2vl) loads too: an F32 file is held as stored, every tensor's bytes once.
        let qwen = try CLI.run(["inspect", CLI.path("Tests/Fixtures/mmproj-qwen25vl/text-f32.gguf"),
                                "--mmproj", CLI.path("Tests/Fixtures/mmproj-qwen25vl/mmproj-f32.gguf")])
        XCTAssertEqual(qwen.status, 0, qwen.stderr)
        XCTAssertTrue(qwen.stdoutLines.contains { $0.hasPrefix("family") && $0.contains("Qwen2.5-VL") }, qwen.stdout)
        let text = qwen.stdoutLines.prefix { !$0.hasPrefix("mmproj") }
        let stored = text.filter { $0.hasPrefix("tensor") }.compactMap { Int($0.split(separator: " ").dropLast().last ?? "") }.reduce(0, +)
        let textHeld = try XCTUnwrap(text.first { $0.hasPrefix("held") }, qwen.stdout)
        XCTAssertEqual(bytes(textHeld), stored, textHeld)
    }

    func testInspectOnALlavaPairShowsTheLegacyConvertersTypes() throws {
        for (folder, family) in [("mmproj-llava", "LLaVA-1.5"), ("mmproj-llava-next", "LLaVA-NeXT")] {
            let result = try CLI.run(["inspect", CLI.path("Tests/Fixtures/\(folder)/text-f32.gguf"),
                                      "--mmproj", CLI.path("Tests/Fixtures/\(folder)/mmproj-f32.gguf")])
            XCTAssertEqual(result.status, 0, result.stderr)
            let lines = result.stdoutLines
            XCTAssertTrue(lines.contains { $0.hasPrefix("family") && $0.contains(family) }, result.stdout)
            XCTAssertTrue(lines.contains { $0.hasPrefix("arch") && $0.hasSuffix("clip") }, result.stdout)
            // --use-f32 keeps the layers in F32 but the projector's matrices (and the patch embedding) in F16.
            XCTAssertTrue(lines.contains { $0.hasPrefix("tensor") && $0.contains("v.blk.0.attn_q.weight  F32  32x32  4096 bytes") }, result.stdout)
            XCTAssertTrue(lines.contains { $0.hasPrefix("tensor") && $0.contains("mm.0.weight  F16  32x32  2048 bytes") }, result.stdout)
            XCTAssertTrue(lines.contains { $0.hasPrefix("tensor") && $0.contains("v.class_embd  F32  32  128 bytes") }, result.stdout)
            XCTAssertEqual(lines.contains { $0.contains("model.image_newline") }, family == "LLaVA-NeXT", result.stdout)
            XCTAssertEqual(lines.filter { $0.hasPrefix("held") }.count, 2, result.stdout)
        }
    }

    func testMismatchedPairsAreOneLine() throws {
        let smol = "Tests/Fixtures/mmproj-smolvlm", qwen = "Tests/Fixtures/mmproj-qwen25vl"
        let cases: [([String], [String])] = [
            (["--model", CLI.path("\(smol)/text-f32.gguf"), "--mmproj", CLI.path("\(qwen)/mmproj-f32.gguf")],
             ["text-f32.gguf", "general.architecture 'llama'"]),
            (["--model", CLI.path("\(smol)/text-f32.gguf")], ["--mmproj"]),
            (["--model", CLI.path("\(smol)/mmproj-f32.gguf"), "--mmproj", CLI.path("\(smol)/text-f32.gguf")],
             ["text-f32.gguf", "general.architecture 'llama'"]),
            (["--model", CLI.path("\(smol)/text-f32.gguf"), "--mmproj", CLI.path("Tests/Fixtures/mmproj-llava/mmproj-f16.gguf")],
             ["mmproj-llava/mmproj-f16.gguf", "mm.0.weight's output width 32", "llama.embedding_length 64"]),
        ]
        for (model, expected) in cases {
            let result = try CLI.run(["stats", CLI.path("media/bigbuckbunny.mp4"), "--frames", "1"] + model)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stdout, "")
            XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
            for text in expected { XCTAssertTrue(result.stderr.contains(text), result.stderr) }
        }
    }
}
