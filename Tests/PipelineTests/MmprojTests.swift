import Foundation
@testable import Pipeline
import Prune
import Tensor
import Vision
import VLM
import TestSupport
import XCTest

/// llama.cpp's GGUF pairs (tools/make_mmproj_fixtures.py: convert_hf_to_gguf.py, and --mmproj, on
/// the tiny SmolVLM2 and Qwen2.5-VL fixtures): our encoders on the mmproj give the features and
/// scores of the safetensors directory they were converted from, and the text GGUF answers alike.
final class MmprojTests: XCTestCase {
    struct Pair {
        var directory: String
        var folder: String
        var text: String { Fixtures.path(folder, "text-f32.gguf") }
        var f32: String { Fixtures.path(folder, "mmproj-f32.gguf") }
        var f16: String { Fixtures.path(folder, "mmproj-f16.gguf") }
    }

    static let smolVLM = Pair(directory: Fixtures.path("smolvlm-vqa"), folder: "mmproj-smolvlm")
    static let qwen = Pair(directory: Fixtures.path("qwen25vl-tiny"), folder: "mmproj-qwen25vl")
    /// llama.cpp's legacy LLaVA scripts (tools/make_llava_mmproj_fixtures.py).
    static let llava = Pair(directory: Fixtures.path("llava-tiny"), folder: "mmproj-llava")
    static let llavaNext = Pair(directory: Fixtures.path("llava-next-tiny"), folder: "mmproj-llava-next")

    /// F16's unit roundoff: rounding a weight to F16 moves it by at most u·|w|.
    static let f16Roundoff: Float = 1.0 / 2048

    /// Two frames of different sizes (the encoders resize them), the second a temporal patch's partner.
    func frames(width: Int = 96, height: Int = 72) -> [RGBImage] {
        (0..<2).map { RGBImage(width: width, height: height, rgb: syntheticFrame(width: width, height: height, index: $0)) }
    }

    /// Features and every layer's scores of `frames` (one step: a frame, or a temporal patch).
    func encode(_ encoder: any FrameEncoder, _ frames: [RGBImage]) throws -> EncodedView {
        let step = Array(frames.prefix(encoder.framesPerStep))
        let views = try encoder.encode(step, scoreLayers: Set(1...encoder.layerCount)).views
        XCTAssertEqual(views.count, 1)
        return try XCTUnwrap(views.first)
    }

    /// Worst relative error of features and of every layer's scores.
    func compare(_ a: EncodedView, _ b: EncodedView, file: StaticString = #filePath, line: UInt = #line) -> (features: Float, scores: Float) {
        XCTAssertEqual(a.grid, b.grid, file: file, line: line)
        XCTAssertEqual(a.features.shape, b.features.shape, file: file, line: line)
        XCTAssertEqual(Set(a.scores.keys), Set(b.scores.keys), file: file, line: line)
        let scores = b.scores.keys.map { relativeError(a.scores[$0] ?? [], b.scores[$0]!) }.max() ?? .infinity
        return (relativeError(a.features.storage, b.features.storage), scores)
    }

    // MARK: - Encoders

    func testSmolVLMEncoderOnTheF32MmprojEqualsTheSafetensorsEncoder() throws {
        let pair = Self.smolVLM
        let reference = try encode(try SmolVLMVisionModel.load(directory: pair.directory), frames())
        let files = try ModelFiles(model: pair.text, mmproj: pair.f32)
        XCTAssertEqual(files.family.name, ModelFamily.smolVLM.name)
        let encoder = try files.loadEncoder()
        XCTAssertEqual(encoder.layerCount, 2)
        let error = compare(try encode(encoder, frames()), reference)
        XCTAssertLessThanOrEqual(error.features, 1e-5)
        XCTAssertLessThanOrEqual(error.scores, 1e-5)
    }

    func testQwenEncoderOnTheF32MmprojEqualsTheSafetensorsEncoder() throws {
        let pair = Self.qwen
        // 196x112 → 14x8 patches: windows of 56 px (2x2 merged tokens) split the grid, so both the
        // windowed and the full-attention blocks are compared.
        let frames = frames(width: 196, height: 112)
        let reference = try encode(try Qwen25VLVisionModel.load(directory: pair.directory), frames)
        let files = try ModelFiles(model: pair.text, mmproj: pair.f32)
        XCTAssertEqual(files.family.name, ModelFamily.qwen25VL.name)
        let encoder = try files.loadEncoder()
        XCTAssertEqual(encoder.layerCount, 4)
        let encoded = try encode(encoder, frames)
        XCTAssertGreaterThan(encoded.grid.count, 4, "the grid must span several windows")
        let error = compare(encoded, reference)
        XCTAssertLessThanOrEqual(error.features, 1e-5)
        XCTAssertLessThanOrEqual(error.scores, 1e-5)
    }

    /// The F16 mmproj holds the F32 weights rounded to F16 (the converter keeps norms, biases and
    /// SmolVLM2's embeddings in F32). Two checks:
    /// - exact reading: the safetensors encoder fed the directory's weights rounded to F16 where the
    ///   mmproj holds them in F16 gives the F16 mmproj's features and scores within 1e-5;
    /// - the stated bound against F32: a weight rounded to F16 moves by at most u·|w| (u = 2⁻¹¹), so a
    ///   product's output moves by at most u·(|W||x|)ᵢ, a relative u where |W||x| ≈ |Wx|; to first
    ///   order the n products in sequence on the path (SmolVLM2: 4 per layer + the connector; Qwen2.5-VL:
    ///   the patch embedding, 4 per block, 2 in the merger) add their errors: n·u, and 4·n·u allows
    ///   for the cancellation of random weights (|W||x| up to a few times |Wx|).
    func testF16MmprojsReadExactlyAndStayWithinTheDerivedBoundOfF32() throws {
        typealias Source = (String, [Int]) throws(WeightsError) -> Matrix
        struct Case {
            var pair: Pair
            var products: Int
            var frames: [RGBImage]
            /// The mmproj tensors a directory tensor is made of.
            var sources: (String) -> [String]?
            /// The directory's encoder with its tensors from `source`.
            var load: (String, @escaping Source) throws -> any FrameEncoder
        }
        let cases = [
            Case(pair: Self.smolVLM, products: 2 * 4 + 1, frames: frames(),
                 sources: { [SmolVLMVisionModel.mmprojName(String($0.dropFirst("model.".count)))] },
                 load: { d, tensor in
                     try SmolVLMVisionModel(configuration: try SmolVLMConfiguration.load(directory: d),
                                            preprocessing: try SmolVLMPreprocessorConfiguration.load(directory: d),
                                            prefix: "model.", tensor: tensor)
                 }),
            Case(pair: Self.qwen, products: 1 + 4 * 4 + 2, frames: frames(width: 196, height: 112),
                 sources: Qwen25VLVisionModel.mmprojSources,
                 load: { d, tensor in
                     try Qwen25VLVisionModel(vision: try Qwen25VLConfiguration.load(directory: d).visionConfig,
                                             preprocessing: try Qwen25VLPreprocessorConfiguration.load(directory: d),
                                             prefix: "visual.") { (name, shape) throws(WeightsError) in (try tensor(name, shape), false) }
                 }),
        ]
        for c in cases {
            let pair = c.pair
            let f32 = try encode(try ModelFiles(model: pair.text, mmproj: pair.f32).loadEncoder(), c.frames)
            let f16File = try ModelFiles(model: pair.text, mmproj: pair.f16)
            let f16 = try encode(try f16File.loadEncoder(), c.frames)
            guard case let .gguf(_, mmproj, _) = f16File.source else { return XCTFail("not a GGUF pair") }
            let store = try WeightStore(directory: pair.directory)
            var roundedCount = 0
            let rounded = try encode(try c.load(pair.directory) { (name, shape) throws(WeightsError) in
                var m = try store.matrix(name, shape: shape)
                let sources = c.sources(name) ?? []
                if !sources.isEmpty, sources.allSatisfy({ mmproj.gguf.tensors[$0]?.type == .f16 }) {
                    m.storage = m.storage.map { Float(Float16($0)) }
                    roundedCount += 1
                }
                return m
            }, c.frames)
            XCTAssertGreaterThan(roundedCount, 0, "\(pair.f16) holds no F16 tensor")
            let exact = compare(f16, rounded)
            XCTAssertLessThanOrEqual(exact.features, 1e-5, pair.f16)
            XCTAssertLessThanOrEqual(exact.scores, 1e-5, pair.f16)
            let bound = 4 * Float(c.products) * Self.f16Roundoff
            let drift = compare(f16, f32)
            print("\(pair.f16): F16 vs F32 features \(drift.features), scores \(drift.scores); bound \(bound)")
            XCTAssertGreaterThan(drift.features, 0, "\(pair.f16) reads as F32: the F16 rounding must show")
            XCTAssertLessThanOrEqual(drift.features, bound, "\(pair.f16): bound 4·\(c.products)·2⁻¹¹")
            XCTAssertLessThanOrEqual(drift.scores, bound, "\(pair.f16): bound 4·\(c.products)·2⁻¹¹")
        }
    }

    /// Worst relative error of features and every layer's scores over the views of two frames.
    func compareViews(_ a: EncodedFrame, _ b: EncodedFrame, file: StaticString = #filePath, line: UInt = #line) -> (features: Float, scores: Float) {
        XCTAssertEqual(a.views.count, b.views.count, file: file, line: line)
        guard a.views.count == b.views.count, !a.views.isEmpty else { return (.infinity, .infinity) }
        var worst: (features: Float, scores: Float) = (0, 0)
        for (x, y) in zip(a.views, b.views) {
            XCTAssertEqual("\(x.place)", "\(y.place)", file: file, line: line)
            let e = compare(x, y, file: file, line: line)
            worst = (max(worst.features, e.features), max(worst.scores, e.scores))
        }
        return worst
    }

    /// The safetensors directory's LLaVA encoder (LLaVA-NeXT's AnyRes one for llava_next), its
    /// weights rounded to F16 where `mmproj` holds them in F16 (nil: as stored), and how many
    /// tensors were rounded.
    func llavaDirectoryEncoder(_ pair: Pair, roundingAs mmproj: MmprojFile?) throws -> (encoder: any FrameEncoder, rounded: Int) {
        let d = pair.directory
        let c = try LlavaConfiguration.load(directory: d)
        let store = try WeightStore(directory: d)
        let (tower, projector) = LlavaVisionModel.prefixes(of: store)
        let swapped = try mmproj.map { try LlavaVisionModel.ffnSwapped($0, hidden: c.visionConfig.hiddenSize) } ?? false
        var rounded = 0
        let model = try LlavaVisionModel(configuration: c, preprocessing: try CLIPPreprocessorConfiguration.load(directory: d),
                                         towerPrefix: tower, projectorPrefix: projector) { (name, shape) throws(WeightsError) in
            var m = try store.matrix(name, shape: shape)
            let local = String(name.dropFirst(name.hasPrefix(tower) ? tower.count : projector.count))
            if let mmproj, let source = LlavaVisionModel.mmprojName(local, ffnSwapped: swapped), mmproj.gguf.tensors[source]?.type == .f16 {
                m.storage = m.storage.map { Float(Float16($0)) }
                rounded += 1
            }
            return m
        }
        if c.modelType == "llava_next" { return (try LlavaNextVisionModel(model), rounded) }
        return (model, rounded)
    }

    /// llama.cpp's legacy converter stores the patch embedding and the projector's matrices in F16
    /// even with --use-f32 (every 2-D weight without it). Two checks on each file:
    /// - exact reading: the safetensors encoder fed the directory's weights rounded to F16 where the
    ///   file holds them in F16 gives the mmproj's features and every layer's scores within 1e-5
    ///   (every view of LLaVA-NeXT's AnyRes frame);
    /// - the bound against the directory's own weights, derived as for the F16 test below: the
    ///   products on the path (the patch embedding, 4 per layer, the projector's 2) add u = 2⁻¹¹
    ///   each, 4·n·u with cancellation. The fixtures' weights are BF16, which F16 holds exactly
    ///   unless tiny (subnormal in F16), so the drift is far below the bound and may be 0.
    func testLlavaEncodersOnTheLegacyMmprojsReadTheSafetensorsWeights() throws {
        for (pair, family) in [(Self.llava, ModelFamily.llava), (Self.llavaNext, ModelFamily.llavaNext)] {
            let frame = frames()[0]
            let plain = try llavaDirectoryEncoder(pair, roundingAs: nil).encoder
            let layers = Set(1...plain.layerCount)
            let reference = try plain.encode([frame], scoreLayers: layers)
            for file in [pair.f32, pair.f16] {
                let files = try ModelFiles(model: pair.text, mmproj: file)
                XCTAssertEqual(files.family.name, family.name, file)
                guard case let .gguf(_, mmproj, _) = files.source else { return XCTFail("\(file): not a GGUF pair") }
                let encoder = try files.loadEncoder()
                XCTAssertEqual(encoder.layerCount, plain.layerCount, file)
                XCTAssertEqual(encoder.defaultObjectLayer, plain.defaultObjectLayer, file)
                XCTAssertEqual(encoder.defaultDeepLayer, plain.defaultDeepLayer, file)
                let encoded = try encoder.encode([frame], scoreLayers: layers)
                if family.name == ModelFamily.llavaNext.name {
                    XCTAssertGreaterThan(encoded.views.count, 2, "\(file): the 96x72 frame must give a base view and crops")
                }
                let (rounding, count) = try llavaDirectoryEncoder(pair, roundingAs: mmproj)
                XCTAssertGreaterThan(count, 0, "\(file) holds no F16 tensor")
                let exact = compareViews(encoded, try rounding.encode([frame], scoreLayers: layers))
                XCTAssertLessThanOrEqual(exact.features, 1e-5, file)
                XCTAssertLessThanOrEqual(exact.scores, 1e-5, file)
                let products = 1 + 4 * encoder.layerCount + 2
                let bound = 4 * Float(products) * Self.f16Roundoff
                let drift = compareViews(encoded, reference)
                print("\(file): against the directory's weights features \(drift.features), scores \(drift.scores); bound \(bound)")
                XCTAssertLessThanOrEqual(drift.features, bound, "\(file): bound 4·\(products)·2⁻¹¹")
                XCTAssertLessThanOrEqual(drift.scores, bound, "\(file): bound 4·\(products)·2⁻¹¹")
            }
        }
        // LLaVA-1.5's file has no clip.vision.feature_layer: the converter dropped the last of the 3
        // layers (vision_feature_layer −2) and both layers held are run. LLaVA-NeXT-tiny reads −1:
        // its file records feature_layer [2] and holds both layers.
        let legacy = try MmprojFile(path: Self.llava.f32), next = try MmprojFile(path: Self.llavaNext.f32)
        XCTAssertNil(legacy.gguf.metadata["clip.vision.feature_layer"])
        XCTAssertEqual(legacy.gguf.int("clip.vision.block_count"), 2)
        XCTAssertEqual(next.gguf.metadata["clip.vision.feature_layer"]?.arrayValue?.compactMap(\.intValue), [2])
        XCTAssertEqual(try LlavaVisionModel.load(mmproj: legacy, precision: .f32).tower.layers, 2)
    }

    func testLlavaTextGGUFsLoadTheDirectorysDecoderAndTokenizer() throws {
        for (pair, family) in [(Self.llava, ModelFamily.llava), (Self.llavaNext, ModelFamily.llavaNext)] {
            let files = try ModelFiles(model: pair.text, mmproj: pair.f32)
            XCTAssertEqual(try files.languageModelShape(), try family.languageModelShape(directory: pair.directory), pair.text)
            let gguf = try GGUFFile(path: pair.text)
            XCTAssertEqual(gguf.string("tokenizer.ggml.model"), "llama", pair.text)
            let fromGGUF = try Tokenizer(gguf: gguf), fromJSON = try Tokenizer(directory: pair.directory)
            XCTAssertEqual(fromGGUF.chatTemplate, fromJSON.chatTemplate, pair.text)
            XCTAssertEqual(fromGGUF.id(of: "<image>"), fromJSON.id(of: "<image>"), pair.text)
            XCTAssertEqual(fromGGUF.eosID, fromJSON.eosID, pair.text)
            // Plain text: llama.cpp's SentencePiece (scores, space prefix, byte fallback) splits as the
            // directory's tokenizer.json does, BOS first, and decodes back alike. (Text that starts
            // with a space is left out: Metaspace does not prefix a second "▁", llama.cpp does.)
            let plain = ["Hello world", "What is happening here?", "two inner   spaces and a trailing one ",
                         "line one\nline two\n\nline four\n", "tabs\tand\r\nCRLF", "Café naïve résumé", "東京は日本の首都です。",
                         "emoji 😀🎉 👍🏽 end", "digits 1234567890 and 3.14", "I'm, you'll, they've", "unseen words: zxqv quuxly",
                         "The quick brown fox jumps over the lazy dog. What moves?"]
            for text in plain {
                let ids = fromGGUF.encode(text, addSpecialTokens: true)
                XCTAssertEqual(ids, fromJSON.encode(text, addSpecialTokens: true), "\(pair.text): \(text)")
                XCTAssertEqual(fromGGUF.decode(ids), fromJSON.decode(ids), "\(pair.text): \(text)")
            }
        }
        // llama.cpp prefixes a space to the text, and to the text after each added token, whatever is
        // there, as the legacy Llama normalizer (LLaVA-1.5's file) does; Metaspace's "first" scheme
        // (llava-next-tiny's) prefixes only the first segment and not before a space, so leading spaces
        // and prompts are compared on LLaVA-1.5's only.
        let fromGGUF = try Tokenizer(gguf: try GGUFFile(path: Self.llava.text)), fromJSON = try Tokenizer(directory: Self.llava.directory)
        for text in [" leading space", "  two leading and   three inner spaces  ", "USER: <image>\n<image>\nWhat is happening here? ASSISTANT:", "x<image>y<video> z", "<s>text after bos</s>",
                     "<image><image><image>", "tail <image> "] {
            XCTAssertEqual(fromGGUF.encode(text, addSpecialTokens: true), fromJSON.encode(text, addSpecialTokens: true), text)
        }
    }

    // MARK: - Language side

    func testTextGGUFsLoadTheDirectorysDecoderAndTokenizer() throws {
        for pair in [Self.smolVLM, Self.qwen] {
            let files = try ModelFiles(model: pair.text, mmproj: pair.f32)
            let directory = try ModelFamily.detect(directory: pair.directory)
            XCTAssertEqual(try files.languageModelShape(), try directory.languageModelShape(directory: pair.directory), pair.text)
        }
        // The GGUF tokenizers split as the directories' tokenizer.json do (SmolLM2's and Qwen2's pre-tokenizers).
        let text = "<|im_start|>user\nHello, world! 12345 <fake_token_around_image><global-img><image> ümlaut\n\n  tabs\tand ÅÉ<|vision_start|><|video_pad|><end_of_utterance>"
        for (pair, gguf) in [(Self.smolVLM, Self.smolVLM.text), (Self.qwen, Self.qwen.text)] {
            let fromJSON = try Tokenizer(directory: pair.directory)
            let fromGGUF = try Tokenizer(gguf: try GGUFFile(path: gguf))
            XCTAssertEqual(fromGGUF.encode(text), fromJSON.encode(text), gguf)
        }
    }

    // MARK: - Refused pairs

    func testMismatchedPairsAreRefusedNamingTheFileAndField() throws {
        func message(_ model: String, _ mmproj: String?) -> String {
            do { _ = try ModelFiles(model: model, mmproj: mmproj); return "" } catch { return "\(error)" }
        }
        // Text of one model, projector of another family.
        var m = message(Self.smolVLM.text, Self.qwen.f32)
        XCTAssertTrue(m.contains(Self.smolVLM.text) && m.contains("general.architecture 'llama'"), m)
        // The two files swapped.
        m = message(Self.smolVLM.f32, Self.smolVLM.text)
        XCTAssertTrue(m.contains(Self.smolVLM.text) && m.contains("general.architecture 'llama'") && m.contains("--mmproj"), m)
        // A text GGUF without its projector.
        m = message(Self.smolVLM.text, nil)
        XCTAssertTrue(m.contains("--mmproj") && m.contains(Self.smolVLM.text), m)
        // A projector type no family reads: the same file with "idefics3" renamed.
        let unknown = FileManager.default.temporaryDirectory.appendingPathComponent("mmproj-unknown-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: unknown) }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.smolVLM.f32))
        let range = try XCTUnwrap(bytes.range(of: Data("idefics3".utf8)))
        bytes.replaceSubrange(range, with: Data("idefics9".utf8))
        try bytes.write(to: URL(fileURLWithPath: unknown))
        m = message(Self.smolVLM.text, unknown)
        XCTAssertTrue(m.contains(unknown) && m.contains("clip.projector_type 'idefics9'") && m.contains("idefics3"), m)
        // Same family, another width: the projector's clip.vision.projection_dim (a u32 after its key
        // and its type) set to 96 beside a text model of 64.
        var wide = try Data(contentsOf: URL(fileURLWithPath: Self.smolVLM.f32))
        let key = try XCTUnwrap(wide.range(of: Data("clip.vision.projection_dim".utf8)))
        XCTAssertEqual(wide[key.upperBound + 4], 64)
        wide[key.upperBound + 4] = 96
        try wide.write(to: URL(fileURLWithPath: unknown))
        m = message(Self.smolVLM.text, unknown)
        XCTAssertTrue(m.contains(unknown) && m.contains("clip.vision.projection_dim 96") && m.contains("llama.embedding_length 64"), m)
        // LLaVA's projector records no width of the language model: mm.0.weight's output is checked.
        m = message(Self.smolVLM.text, Self.llava.f32)
        XCTAssertTrue(m.contains(Self.llava.f32) && m.contains("mm.0.weight's output width 32") && m.contains("llama.embedding_length 64"), m)
        m = message(Self.llava.text, Self.smolVLM.f32)
        XCTAssertTrue(m.contains(Self.smolVLM.f32) && m.contains("clip.vision.projection_dim 64") && m.contains("llama.embedding_length 32"), m)
        m = message(Self.qwen.text, Self.llava.f32)
        XCTAssertTrue(m.contains(Self.qwen.text) && m.contains("general.architecture 'qwen2vl'") && m.contains("LLaVA-1.5"), m)
    }

    /// A LLaVA mmproj without a key or a tensor the encoder needs: one line naming the file and it.
    func testLlavaMmprojWithoutAKeyOrATensorNamesIt() throws {
        let damaged = FileManager.default.temporaryDirectory.appendingPathComponent("mmproj-llava-damaged-\(getpid()).gguf").path
        defer { try? FileManager.default.removeItem(atPath: damaged) }
        func loading(renaming name: String, to other: String) throws -> String {
            var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.llava.f32))
            let range = try XCTUnwrap(bytes.range(of: Data(name.utf8)), name)
            bytes.replaceSubrange(range, with: Data(other.utf8))
            try bytes.write(to: URL(fileURLWithPath: damaged))
            do { _ = try ModelFiles(model: Self.llava.text, mmproj: damaged).loadEncoder(); return "" } catch { return "\(error)" }
        }
        var m = try loading(renaming: "clip.vision.block_count", to: "clip.vision.block_coun_")
        XCTAssertTrue(m.contains(damaged) && m.contains("clip.vision.block_count") && !m.contains("\n"), m)
        m = try loading(renaming: "clip.vision.image_mean", to: "clip.vision.image_mea_")
        XCTAssertTrue(m.contains(damaged) && m.contains("clip.vision.image_mean"), m)
        m = try loading(renaming: "v.blk.1.attn_q.weight", to: "v.blk.1.attn_X.weight")
        XCTAssertTrue(m.contains(damaged) && m.contains("v.blk.1.attn_q.weight") && !m.contains("\n"), m)
    }
}
