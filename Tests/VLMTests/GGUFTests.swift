import Foundation
import XCTest
@testable import Tensor
@testable import VLM
import TestSupport

final class GGUFTests: XCTestCase {
    func testMetadataOfEveryType() throws {
        let file = try GGUFFile(path: Fixtures.path("lm-gguf", "quants.gguf"))
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.metadata["test.u8"], .uint(200))
        XCTAssertEqual(file.metadata["test.i8"], .int(-100))
        XCTAssertEqual(file.metadata["test.u16"], .uint(60000))
        XCTAssertEqual(file.metadata["test.i16"], .int(-30000))
        XCTAssertEqual(file.metadata["test.u32"], .uint(4_000_000_000))
        XCTAssertEqual(file.metadata["test.i32"], .int(-2_000_000_000))
        XCTAssertEqual(file.metadata["test.f32"], .float(1.5))
        XCTAssertEqual(file.metadata["test.bool"], .bool(true))
        XCTAssertEqual(file.metadata["test.string"], .string("grüße 東京"))
        XCTAssertEqual(file.metadata["test.u64"], .uint(1 << 40))
        XCTAssertEqual(file.metadata["test.i64"], .int(-(1 << 40)))
        XCTAssertEqual(file.metadata["test.f64"], .float(2.25))
        XCTAssertEqual(file.metadata["test.array_i32"], .array([.int(1), .int(-2), .int(3)]))
        XCTAssertEqual(file.metadata["test.array_str"], .array([.string("a"), .string("bc"), .string("")]))
        for info in file.tensors.values { XCTAssertEqual((info.range.lowerBound) % 64, 0, info.name) }
    }

    func testDequantizationMatchesGGUFReference() throws {
        let file = try GGUFFile(path: Fixtures.path("lm-gguf", "quants.gguf"))
        let expected = try XCTUnwrap(try Fixtures.json("lm-gguf", "quants-expected.json")["tensors"] as? [String: [String: Any]])
        XCTAssertEqual(Set(expected.keys), ["q8_0", "q4_0", "q4_1", "f16", "bf16", "f32"])
        for (name, e) in expected {
            let values = try XCTUnwrap(e["values"] as? [Double]).map(Float.init)
            let shape = try XCTUnwrap(e["shape"] as? [Int])
            let got = try file.floats(name)
            XCTAssertEqual(got.count, values.count, name)
            for (a, b) in zipSameLength(got, values) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b)), name) }
            let m = try file.matrix(name)
            XCTAssertEqual(m.cols, shape.last)
            XCTAssertEqual(m.count, values.count)
        }
    }

    func testUnsupportedTensorTypeNamesTensorAndType() throws {
        let file = try GGUFFile(path: Fixtures.path("lm-gguf", "unsupported.gguf"))
        XCTAssertThrowsError(try file.floats("blk.0.attn_q.weight")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("Q2_K") && text.contains("blk.0.attn_q.weight"), text)
        }
    }

    func testTruncatedAndForeignFilesAreTypedErrors() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("lm-gguf", "quants.gguf")))
        let dir = FileManager.default.temporaryDirectory
        let truncated = dir.appendingPathComponent("truncated-\(UUID().uuidString).gguf")
        try data.prefix(200).write(to: truncated)
        defer { try? FileManager.default.removeItem(at: truncated) }
        XCTAssertThrowsError(try GGUFFile(path: truncated.path)) { error in
            XCTAssertTrue("\(error)".contains(truncated.path), "\(error)")
        }
        XCTAssertThrowsError(try GGUFFile(path: Fixtures.path("tokenizer", "tokenizer.json"))) { error in
            XCTAssertTrue("\(error)".contains("not a GGUF file"), "\(error)")
        }
    }

    /// A NaN or an infinity in a tensor's values (float types) or its blocks' F16 scales (block
    /// types) is refused when the tensor is read, naming it, whichever way it is read.
    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        let original = try GGUFFile(path: Fixtures.path("lm-gguf", "quants.gguf"))
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("lm-gguf", "quants.gguf")))
        // (tensor, byte offset into its data, little-endian poison bytes)
        let poisons: [(String, Int, [UInt8])] = [
            ("f32", 4, [0x00, 0x00, 0xC0, 0x7F]),  // NaN, second value
            ("f16", 2, [0x00, 0x7C]),              // +inf
            ("bf16", 0, [0x80, 0xFF]),             // -inf
            ("q8_0", 0, [0x00, 0x7E]),             // NaN scale d
            ("q4_0", 0, [0x00, 0x7C]),
            ("q4_1", 2, [0x00, 0xFC]),             // -inf minimum m
        ]
        for (name, offset, bytes) in poisons {
            let info = try XCTUnwrap(original.tensors[name], name)
            var poisoned = data
            poisoned.replaceSubrange((info.range.lowerBound + offset)..<(info.range.lowerBound + offset + bytes.count), with: bytes)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("nonfinite-\(name)-\(UUID().uuidString).gguf")
            try poisoned.write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let file = try GGUFFile(path: url.path)
            let reads: [(String, () throws -> Void)] = [
                ("floats", { _ = try file.floats(name) }), ("weightMatrix", { _ = try file.weightMatrix(name) }),
            ]
            for (read, body) in reads {
                XCTAssertThrowsError(try body(), "\(name) \(read)") { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains(url.path) && text.contains("'\(name)'") && text.contains("NaN or an infinity"), text)
                }
            }
            // The other tensors of the same file still load.
            for other in original.tensors.keys where other != name { XCTAssertNoThrow(try file.floats(other), other) }
        }
    }

    /// An embedding beside its own output matrix is only read a row per token, so the loader keeps
    /// it in the file's rows; a tied one (it is the output head too) and the output matrix are
    /// repacked into tiles of 8 rows, where the tile kernels run. All three hold the file's values.
    /// (quant/embedding-*.gguf: Q4_K, 9 × 256, from tools/make_quant_fixtures.py.)
    func testOnlyAnEmbeddingThatIsNotTheOutputHeadStaysInRows() throws {
        let previous = WeightMatrix.tilesBlockFormats
        defer { WeightMatrix.tilesBlockFormats = previous }
        WeightMatrix.tilesBlockFormats = true
        let cases = [("embedding-untied.gguf", "embed_tokens.weight", 0), ("embedding-untied.gguf", "lm_head.weight", 8),
                     ("embedding-tied.gguf", "embed_tokens.weight", 8)]
        for (file, name, tiledRows) in cases {
            let gguf = try GGUFFile(path: Fixtures.path("quant", file))
            guard case .stored(let held) = try LlamaModel.ggufTensor(gguf, name: name, shape: [9, 256], rotaryHeads: nil) else {
                XCTFail("\(file): \(name) is not held in its block format")
                continue
            }
            XCTAssertEqual(held.tiledRows, tiledRows, "\(file): \(name)")
            XCTAssertEqual(held.formats, [.q4_K], "\(file): \(name)")
            XCTAssertEqual(held.matrix().storage, try gguf.matrix(LlamaModel.ggufName(name)).storage, "\(file): \(name)")
        }
    }
}
