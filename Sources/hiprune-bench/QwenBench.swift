import ArgumentParser
import CKernels
import COpenBLAS
import Foundation
import Pipeline
import Tensor
import Vision
import VLM

/// `hiprune-bench qwen`: Qwen2.5-VL-3B shapes with random weights. Vision: seconds per temporal
/// patch (two frames, HiPrune's two blocks' scores captured) at 448×252 and 448×448. Language
/// model: prefill of a two-temporal-patch 448×252 video prompt with 100 %, 33 % and 11 % of its
/// visual tokens. PyTorch (tools/bench_torch_qwen.py) runs the same shapes in the same invocation.
///
/// Memory: every vision block shares one block's F32 weights, every decoder layer one layer's
/// weights kept in BF16 (expanded per product, as real BF16 checkpoints run); the embeddings
/// (tied lm_head) are BF16 too. Timings are of the real depth (32 blocks, 36 layers).
struct QwenBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qwen",
        abstract: "Qwen2.5-VL-3B shapes: vision seconds per temporal patch, prefill at 100/33/11 % of visual tokens; PyTorch peer; peak RSS.")

    @Option(help: "Timed runs per case (median reported); no warm-up run, the cases are long.")
    var runs = 1
    @Option(help: "Decoder layers (36 in the 3B model).")
    var layers = 36
    @Option(help: "Vision blocks (32 in the 3B model).")
    var depth = 32
    @Option(help: "Temporal patches of the prefill's video (448×252 each: 144 tokens).")
    var temporalPatches = 2
    @Option(help: "Python for the PyTorch peer; skipped if it does not exist.")
    var python = Peer.defaultPython
    @Option(help: "The peer script.")
    var peer = "tools/bench_torch_qwen.py"
    @Option(help: "Threads for both sides.")
    var threads = 2
    @Flag(help: "Skip the PyTorch peer.")
    var noPeer = false
    @Flag(help: "Skip the vision tower (prefill only).")
    var noVision = false
    @Flag(help: "Also time BF16 prefill with the weights widened into F32 tiles for sgemm (the earlier path), alternating run by run with the default, and the BF16 products alone.")
    var compareTiles = false

    func run() async throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        openblas_set_num_threads(Int32(threads))
        var v = Qwen25VLVisionConfiguration()
        v.depth = depth
        v.hiddenSize = 1280
        v.numHeads = 16
        v.intermediateSize = 3420
        v.fullattBlockIndexes = [7, 15, 23, 31].filter { $0 < depth }
        v.outHiddenSize = 2048
        v.windowSize = 112
        v.tokensPerSecond = 2
        let vision = Qwen25VLVisionModel(randomShapes: v)
        let layers = Set([vision.defaultObjectLayer, vision.defaultDeepLayer])
        print("Qwen2.5-VL-3B shapes, random weights; \(threads) threads, OpenBLAS core \(openblas_get_corename().map { String(cString: $0) } ?? "?"), median of \(runs)")
        print("vision: \(depth) blocks, hidden 1280, 16 heads, intermediate 3420, full attention at \(v.fullattBlockIndexes.map { $0 + 1 }), scores of blocks \(layers.sorted())")

        func median(_ body: () throws -> Void) rethrows -> Double {
            var samples: [Double] = []
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return samples.sorted()[samples.count / 2]
        }
        var random = BenchRandom(seed: 7)
        print("BF16 many-row products: \(bf16w_gemm_supported() != 0 ? "bf16w_gemm on the \(InstructionSet.active) path" : "F32 tiles and sgemm"); load average \(QuantBench.loadAverage())")
        for (width, height) in noVision ? [] : [(448, 252), (448, 448)] {
            let frames = (0..<2).map { _ in
                RGBImage(width: width, height: height, rgb: (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: Int(random.next() * 127) + 128) })
            }
            var grid = "?"
            let seconds = try median {
                let encoded = try vision.encode(frames, scoreLayers: layers)
                grid = FrameStatistics.describe(encoded.views.map(\.grid))
            }
            let flops = vision.flops(rows: height / 14, cols: width / 14)
            print(String(format: "  %dx%d (merged grid %@): swift %7.2f s/temporal patch  %6.1f GFLOP/s", width, height, grid, seconds, flops / seconds / 1e9))
            // The peer builds the 3B vision tower (32 blocks, HiPrune's blocks 16 and 32): no ratio for other depths.
            if depth == 32, let torch = peerRun(["vision", "--width", "\(width)", "--height", "\(height)"]) {
                print(String(format: "  %dx%d: pytorch %7.2f s/temporal patch  (pytorch / swift %.2f ×, peer peak RSS %.0f MB)",
                             width, height, torch.seconds, torch.seconds / seconds, torch.peakMB))
            }
        }

        var c = Qwen2Configuration()
        c.vocabularySize = 151936
        c.hiddenSize = 2048
        c.intermediateSize = 11008
        c.layers = self.layers
        c.heads = 16
        c.kvHeads = 2
        c.mropeSection = [16, 24, 24]
        c.ropeTheta = 1_000_000
        c.tieWordEmbeddings = true
        c.maxPositions = 32768
        let model = Qwen2Model(randomShapes: c)
        // The same values held as F32, as the PyTorch peer holds them.
        let model32 = Qwen2Model(randomShapes: c, precision: .float32)
        print("language model: \(c.layers) layers, hidden 2048, 16 heads, 2 KV heads, intermediate 11008, vocabulary 151936, BF16 weights (\(String(format: "%.2f", Double(model.decoder.weightBytes) / 1e9)) GB if unshared; F32 rows: \(String(format: "%.2f", Double(model32.decoder.weightBytes) / 1e9)) GB)")
        let perPatch = 9 * 16, visual = perPatch * temporalPatches, prefix = 15, suffix = 14
        var prefillDecode: Double?
        for ratio in [1.0, 1.0 / 3.0, 1.0 / 9.0] {
            let keep = max(1, Int((ratio * Double(perPatch)).rounded()))
            var positions: [MRoPEPosition] = (0..<prefix).map { MRoPEPosition(text: $0) }
            for tp in 0..<temporalPatches {
                for k in 0..<keep {
                    let index = k * perPatch / keep  // spread over the grid
                    positions.append(MRoPEPosition(t: prefix + 2 * tp, h: prefix + index / 16, w: prefix + index % 16))
                }
            }
            let after = prefix + 16
            positions += (0..<suffix).map { MRoPEPosition(text: after + $0) }
            var embeddings = Matrix(rows: positions.count, cols: c.hiddenSize)
            for i in 0..<embeddings.storage.count { embeddings.storage[i] = random.next() }
            var samples: [Double] = [], samples32: [Double] = [], samplesTiles: [Double] = [], samplesProducts: [Double] = []
            for _ in 0..<runs {
                if compareTiles {
                    WeightMatrix.prefillConversion = .tiles
                    defer { WeightMatrix.prefillConversion = .automatic }
                    let session = try DecoderSession(model: model, context: positions.count + 8)
                    let start = DispatchTime.now().uptimeNanoseconds
                    try session.prefill(embeddings: embeddings, positions: positions)
                    samplesTiles.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                if compareTiles { samplesProducts.append(try productsAlone(c, rows: positions.count)) }
                let session32 = try DecoderSession(model: model32, context: positions.count + 8)
                let start32 = DispatchTime.now().uptimeNanoseconds
                try session32.prefill(embeddings: embeddings, positions: positions)
                samples32.append(Double(DispatchTime.now().uptimeNanoseconds - start32) / 1e9)
                let session = try DecoderSession(model: model, context: positions.count + 8)
                let start = DispatchTime.now().uptimeNanoseconds
                try session.prefill(embeddings: embeddings, positions: positions)
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                if ratio == 1 && prefillDecode == nil {
                    // Not part of the prefill's time: three decode steps after the full prompt.
                    let begin = DispatchTime.now().uptimeNanoseconds
                    for token in [11, 12, 13] { try session.step(token: token) }
                    prefillDecode = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9 / 3
                }
            }
            let seconds = samples.sorted()[samples.count / 2]
            let label = String(format: "%3.0f %%", ratio * 100)
            let seconds32 = samples32.sorted()[samples32.count / 2]
            print(String(format: "  prefill %@ of %d visual tokens (%d rows): swift BF16 %7.2f s, F32 %7.2f s", label, visual, positions.count, seconds, seconds32))
            if compareTiles {
                let tiles = samplesTiles.sorted()[samplesTiles.count / 2], products = samplesProducts.sorted()[samplesProducts.count / 2]
                print(String(format: "  prefill %@: swift BF16 via F32 tiles %7.2f s (tiles / default %.2f ×); the default's BF16 products alone %7.2f s (%.0f GFLOP/s), the rest %.2f s; load %@",
                             label, tiles, tiles / seconds, products, productFLOPs(c, rows: positions.count) / products / 1e9, seconds - products, QuantBench.loadAverage()))
            }
            if let torch = peerRun(["prefill", "--tokens", "\(positions.count)", "--layers", "\(c.layers)"]) {
                print(String(format: "  prefill %@: pytorch F32 %7.2f s  (pytorch / swift BF16 %.2f ×, pytorch / swift F32 %.2f ×, peer peak RSS %.0f MB)",
                             label, torch.seconds, torch.seconds / seconds, torch.seconds / seconds32, torch.peakMB))
            }
        }
        if let prefillDecode {
            print(String(format: "  decode after the full prompt: swift %.2f s/token (BF16 weights read as they are)", prefillDecode))
        }
        print(String(format: "swift peak RSS %.0f MB", peakRSSMegabytes()))
    }

    /// The four products of each layer (q/k/v, o, gate/up, down) over `rows` rows, `c.layers` times,
    /// on BF16 weights of one layer's shapes: the prefill's matrix work without attention, norms, RoPE.
    func productsAlone(_ c: Qwen2Configuration, rows: Int) throws -> Double {
        let h = c.hiddenSize, d = h / c.heads, inter = c.intermediateSize
        var random = BenchRandom(seed: 3)
        let shapes = [((c.heads + 2 * c.kvHeads) * d, h), (h, h), (2 * inter, h), (h, inter)]
        let weights = try shapes.map { n, k in
            WeightMatrix(try Matrix(rows: n, cols: k, storage: (0..<(n * k)).map { _ in random.next() }), bf16: true)
        }
        let inputs = try shapes.map { _, k in try Matrix(rows: rows, cols: k, storage: (0..<(rows * k)).map { _ in random.next() }) }
        var outputs = shapes.map { n, _ in [Float](repeating: 0, count: rows * n) }
        var scratch: [Float] = []
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<c.layers {
            for i in 0..<shapes.count {
                inputs[i].storage.withUnsafeBufferPointer { px in
                    outputs[i].withUnsafeMutableBufferPointer { py in
                        linear(px.baseAddress!, rows: rows, inputStride: shapes[i].1, weight: weights[i], into: py.baseAddress!,
                               outputStride: shapes[i].0, scratch: &scratch)
                    }
                }
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func productFLOPs(_ c: Qwen2Configuration, rows: Int) -> Double {
        let h = Double(c.hiddenSize), d = h / Double(c.heads), inter = Double(c.intermediateSize)
        let weights = (Double(c.heads + 2 * c.kvHeads) * d + h + 3 * inter) * h
        return 2 * weights * Double(rows) * Double(c.layers)
    }

    func peerRun(_ arguments: [String]) -> (seconds: Double, peakMB: Double)? {
        guard !noPeer, FileManager.default.fileExists(atPath: peer),
              let data = Peer.run(python, [peer] + arguments + ["--runs", "\(runs)", "--threads", "\(threads)"]),
              let json = Peer.lastJSONObject(data), let median = json["median"] as? Double else { return nil }
        return (median, json["peak_rss_mb"] as? Double ?? 0)
    }
}

/// VmHWM of this process, in MB.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}
