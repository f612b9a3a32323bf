import Foundation
import Pipeline
import Prune
import Stream
import Tensor
import TestSupport
import Vision
import XCTest

/// Preprocessing on real clips against transformers' video processors (tools/make_preprocess_fixtures.py):
/// the first frame of bigbuckbunny.mp4 (1280×720), aspect-4x3.mp4 (320×240), aspect-9x16.mp4
/// (180×320) and odd-367x211.webm, decoded by the ffmpeg CLI, through SmolVLMVideoProcessor
/// (smolvlm-a: longest edge 256, then 64×64, Lanczos) and Qwen2VLVideoProcessor (qwen25vl-tiny:
/// smart_resize, bicubic), then the fixture models' encoders.
///
/// `--preprocess reference` must give the processor's pixels (the requirement is within 1 grey level;
/// it is bit-identical: max |Δ| = 0 on the 0–255 scale of the resized uint8 frame, before rescale and
/// normalisation), features within the project's 1e-4 (max |Δ| / max |ref|; the requirement is 5e-3)
/// and the reference's kept tokens. `--preprocess fast` (one FFmpeg bicubic scale) is measured and
/// bounded just above what it measures, so a change to either path shows here.
final class PreprocessingParityTests: XCTestCase {
    static let clips = ["bigbuckbunny", "aspect-4x3", "aspect-9x16", "odd-367x211"]

    struct Family {
        let key: String
        let model: String
        /// The family's reference resize of a source frame, as our preprocessor does it.
        let resize: @Sendable (any FrameEncoder, VideoFrame) throws -> [UInt8]
    }

    static let families = [
        Family(key: "smolvlm", model: Fixtures.path("smolvlm-a")) { encoder, frame in
            let smol = try XCTUnwrap(encoder as? SmolVLMVisionModel)
            return try smol.preprocessor.resize(width: frame.width, height: frame.height, rgb: frame.rgb)
        },
        Family(key: "qwen", model: Fixtures.path("qwen25vl-tiny")) { encoder, frame in
            let qwen = try XCTUnwrap(encoder as? Qwen25VLVisionModel)
            let target = try qwen.preprocessor.targetSize(height: frame.height, width: frame.width)
            return try Qwen25VLPreprocessor.resize(rgb: frame.rgb, width: frame.width, height: frame.height,
                                                   toWidth: target.width, toHeight: target.height)
        },
    ]

    /// What one path gives for one clip and family, against the fixture.
    struct Measure {
        var pixelMax = 0, pixelMean = 0.0, pixelCount = 0
        var features: Float = 0
        var keptShared = 0, keptTotal = 0
    }

    /// 64-bit FNV-1a, as the fixture script hashes the ffmpeg CLI's RGB24 bytes.
    static func fnv1a64(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(format: "%016llx", h)
    }

    func firstFrame(_ path: String, options: DecodeOptions) async throws -> VideoFrame {
        for try await frame in VideoFrames(input: path, options: options) { return frame }
        XCTFail("\(path) has no frame")  // the fixture's clips all have frames: a failure, never a skip
        throw CancellationError()
    }

    /// Encodes and prunes `frame` as the pipeline does, with the fixture's layers and budget.
    func run(_ frame: VideoFrame, encoder: any FrameEncoder, facts: [String: Any]) throws -> (EncodedFrame, [Int]) {
        let object = try XCTUnwrap(facts["object_layer"] as? Int), deep = try XCTUnwrap(facts["deep_layer"] as? Int)
        let encoded = try encoder.encode([RGBImage(width: frame.width, height: frame.height, rgb: frame.rgb)],
                                         scoreLayers: [object, deep])
        let settings = PruneSettings(method: .hiprune, budget: .ratio(0.33), alpha: 0.1, mode: .reference,
                                     objectLayer: object, deepLayer: deep)
        var stage = try PruningStage(settings: settings, encoder: encoder)
        let (pruned, _) = try stage.prune(encoded, index: 0, time: 0, encodeMilliseconds: 0)
        XCTAssertEqual(pruned.views.count, 1)
        return (encoded, pruned.views[0].selection.indices)
    }

    func measure(_ clip: String, _ family: Family, preprocessing: Preprocessing) async throws -> Measure {
        let all = try Fixtures.json("preprocess", "frames.json")
        let facts = try XCTUnwrap(all[clip] as? [String: Any])
        let familyFacts = try XCTUnwrap(facts[family.key] as? [String: Any])
        let path = Fixtures.repositoryPath(try XCTUnwrap(facts["file"] as? String))
        let encoder = try ModelFamily.detect(directory: family.model).loadEncoder(directory: family.model)
        let analysis = FrameAnalysis(encoder: encoder, preprocessing: preprocessing)
        let options = analysis.decodeOptions(DecodeOptions(sampling: .everyFrame), input: path)
        let frame = try await firstFrame(path, options: options)

        let width = try XCTUnwrap(familyFacts["width"] as? Int), height = try XCTUnwrap(familyFacts["height"] as? Int)
        let expected = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: Fixtures.path("preprocess", "\(clip).\(family.key).rgb"))))
        XCTAssertEqual(expected.count, width * height * 3)
        let pixels: [UInt8]
        switch preprocessing {
        case .reference:
            // Our decoder's RGB is the ffmpeg CLI's, byte for byte: the comparison starts from the same frame.
            XCTAssertEqual(frame.width, facts["width"] as? Int, clip)
            XCTAssertEqual(frame.height, facts["height"] as? Int, clip)
            XCTAssertEqual(Self.fnv1a64(frame.rgb), facts["fnv1a64"] as? String, "\(clip): decoded RGB differs from the ffmpeg CLI's")
            pixels = try family.resize(encoder, frame)
        case .fast:
            // The decoder already scaled the frame to the encoder's input size.
            pixels = frame.rgb
        }
        var m = Measure()
        XCTAssertEqual(pixels.count, expected.count, "\(clip) \(family.key) \(preprocessing): resized size")
        guard pixels.count == expected.count else { return m }
        var total = 0
        for (a, b) in zip(pixels, expected) {
            let d = abs(Int(a) - Int(b))
            total += d
            m.pixelMax = max(m.pixelMax, d)
        }
        m.pixelCount = pixels.count
        m.pixelMean = Double(total) / Double(pixels.count)

        let reference = try SafeTensorsFile(path: Fixtures.path("preprocess", "\(clip).safetensors"))
        let (encoded, kept) = try run(frame, encoder: encoder, facts: familyFacts)
        let view = try XCTUnwrap(encoded.views.first)
        let grid = try XCTUnwrap(familyFacts["grid"] as? [Int])
        XCTAssertEqual([view.grid.rows, view.grid.cols], grid, "\(clip) \(family.key) grid")
        m.features = relativeError(view.features.storage, try reference.floats("\(family.key).features"))
        let expectedKept = Set(try XCTUnwrap(familyFacts["kept"] as? [Int]))
        XCTAssertEqual(kept.count, expectedKept.count, "\(clip) \(family.key): budget")
        m.keptShared = Set(kept).intersection(expectedKept).count
        m.keptTotal = expectedKept.count
        if preprocessing == .reference {
            for layer in [familyFacts["object_layer"], familyFacts["deep_layer"]].compactMap({ $0 as? Int }) {
                XCTAssertLessThanOrEqual(maxAbsDiff(try XCTUnwrap(view.scores[layer]), try reference.floats("\(family.key).scores.\(layer)")),
                                         1e-5, "\(clip) \(family.key) scores.\(layer)")
            }
        }
        print(String(format: "preprocess %@ %@ %@: pixels max %d mean %.3f (0–255), features %.2e, kept %d/%d",
                     preprocessing.rawValue, clip, family.key, m.pixelMax, m.pixelMean, Double(m.features), m.keptShared, m.keptTotal))
        return m
    }

    func testReferencePreprocessingMatchesTheProcessors() async throws {
        for clip in Self.clips {
            for family in Self.families {
                let m = try await measure(clip, family, preprocessing: .reference)
                XCTAssertEqual(m.pixelMax, 0, "\(clip) \(family.key): pixels")
                XCTAssertLessThanOrEqual(m.features, 1e-4, "\(clip) \(family.key): features")
                XCTAssertEqual(m.keptShared, m.keptTotal, "\(clip) \(family.key): kept tokens")
            }
        }
    }

    /// Measured on this fixture (ffmpeg 5.1, swscale bicubic), pixels on the 0–255 scale of the
    /// resized frame, features max |Δ| / max |ref| on the tiny random models (which amplify small
    /// input changes far more than trained ones), kept = tokens shared with the reference's:
    ///                    SmolVLM2 (→ 64×64)                    Qwen2.5-VL (smart resize)
    ///   bigbuckbunny     max 40,  mean 2.91, 0.24, kept 4/5     max 50,  mean 1.67, 0.43, kept 16/20
    ///   aspect-4x3       max 136, mean 7.24, 0.19, kept 3/5     max 162, mean 2.77, 0.47, kept 16/18
    ///   aspect-9x16      max 129, mean 7.87, 0.23, kept 4/5     max 190, mean 1.75, 0.68, kept 18/20
    ///   odd-367x211      max 61,  mean 8.03, 0.19, kept 5/5     max 41,  mean 6.66, 0.55, kept 16/20
    /// (the synthetic clips' one-pixel edges alias most). The bounds sit just above these figures: a
    /// fast path that drifts further, or one that suddenly matches (the reference resize run twice),
    /// fails here.
    static let fastBounds: [String: (pixelMean: Double, features: Float, keptAtLeast: Double)] = [
        "smolvlm": (pixelMean: 8.5, features: 0.3, keptAtLeast: 0.6),
        "qwen": (pixelMean: 7.0, features: 0.75, keptAtLeast: 0.8),
    ]

    func testFastPreprocessingDifferenceIsBounded() async throws {
        var pixelMeans: [Double] = []
        for clip in Self.clips {
            for family in Self.families {
                let m = try await measure(clip, family, preprocessing: .fast)
                let bound = try XCTUnwrap(Self.fastBounds[family.key])
                XCTAssertGreaterThan(m.pixelCount, 0)
                XCTAssertLessThanOrEqual(m.pixelMax, 200, "\(clip) \(family.key): fast pixels, max")
                XCTAssertLessThanOrEqual(m.pixelMean, bound.pixelMean, "\(clip) \(family.key): fast pixels, mean")
                XCTAssertLessThanOrEqual(m.features, bound.features, "\(clip) \(family.key): fast features")
                XCTAssertGreaterThanOrEqual(Double(m.keptShared), bound.keptAtLeast * Double(m.keptTotal),
                                            "\(clip) \(family.key): fast kept tokens")
                pixelMeans.append(m.pixelMean)
            }
        }
        // The fast path is a different resize, not the reference's: every frame differs.
        XCTAssertGreaterThan(pixelMeans.min() ?? 0, 1, "fast pixels equal the reference's: is --preprocess fast still one FFmpeg scale?")
    }
}
