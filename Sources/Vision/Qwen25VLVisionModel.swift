// The Qwen2.5-VL vision encoder, in the order data flows: patch embedding (the Conv3d as one GEMM
// over flattened [3 × 2 × 14 × 14] patches), window reordering, 2-D rotary embedding, blocks
// (RMSNorm → attention inside windows, or over the whole temporal patch in fullatt_block_indexes →
// RMSNorm → SiLU-gated MLP), then the 2×2 merger (ln_q + MLP) and the reordering undone.
// One temporal patch (two frames) is encoded at a time: the reference attends per temporal patch
// and tiles windows per temporal patch, so encoding them separately gives the same numbers.
// Weight names follow the checkpoint (`visual.…` on the hub, `model.visual.…` in some exports).
import Foundation
import Prune
import Tensor

public struct Qwen25VLVisionModel: Sendable {
    struct Block: Sendable {
        var norm1, norm2: [Float]
        var qkv: WeightMatrix      // [3·hidden, hidden]: q, k, v stacked
        var qkvBias: [Float]
        var proj: WeightMatrix
        var projBias: [Float]
        var gate, up, down: WeightMatrix
        var gateBias, upBias, downBias: [Float]
    }

    public let vision: Qwen25VLVisionConfiguration
    public let preprocessor: Qwen25VLPreprocessor
    let patchWeight: WeightMatrix  // [hidden, channels · temporal · patch²]
    let blocks: [Block]
    let mergerNorm: [Float]
    let mergerFC1: WeightMatrix, mergerFC2: WeightMatrix
    let mergerBias1: [Float], mergerBias2: [Float]

    public var layerCount: Int { vision.depth }

    /// The prefix in front of "blocks." in this checkpoint.
    public static func prefix(of weights: WeightStore) -> String {
        for candidate in ["visual.", "model.visual.", "vision_tower."] where weights.contains("\(candidate)patch_embed.proj.weight") {
            return candidate
        }
        return "visual."
    }

    /// The names of every tensor the encoder reads (prefix included), with their shapes; the loader
    /// reads exactly these.
    public static func expectedTensors(_ v: Qwen25VLVisionConfiguration, prefix e: String = "visual.") -> [(name: String, shape: [Int])] {
        let d = v.hiddenSize, i = v.intermediateSize, merged = d * v.spatialMergeSize * v.spatialMergeSize
        var list: [(name: String, shape: [Int])] = [("\(e)patch_embed.proj.weight", [d, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize])]
        for l in 0..<v.depth {
            let n = "\(e)blocks.\(l)."
            list += [("\(n)norm1.weight", [d]), ("\(n)norm2.weight", [d]), ("\(n)attn.qkv.weight", [3 * d, d]), ("\(n)attn.qkv.bias", [3 * d]),
                     ("\(n)attn.proj.weight", [d, d]), ("\(n)attn.proj.bias", [d]), ("\(n)mlp.gate_proj.weight", [i, d]),
                     ("\(n)mlp.gate_proj.bias", [i]), ("\(n)mlp.up_proj.weight", [i, d]), ("\(n)mlp.up_proj.bias", [i]),
                     ("\(n)mlp.down_proj.weight", [d, i]), ("\(n)mlp.down_proj.bias", [d])]
        }
        list += [("\(e)merger.ln_q.weight", [d]), ("\(e)merger.mlp.0.weight", [merged, merged]), ("\(e)merger.mlp.0.bias", [merged]),
                 ("\(e)merger.mlp.2.weight", [v.outHiddenSize, merged]), ("\(e)merger.mlp.2.bias", [v.outHiddenSize])]
        return list
    }

    /// Loads config.json, the video preprocessor settings and the weights of a model directory.
    public static func load(directory: String, precision: EncoderPrecision = .f32) throws(VisionError) -> Qwen25VLVisionModel {
        let config = try Qwen25VLConfiguration.load(directory: directory)
        let preprocessing = try Qwen25VLPreprocessorConfiguration.load(directory: directory)
        let weights: WeightStore
        do { weights = try WeightStore(directory: directory) } catch { throw .weights(error) }
        return try Qwen25VLVisionModel(vision: config.visionConfig, preprocessing: preprocessing, weights: weights,
                                       precision: precision)
    }

    public init(vision v: Qwen25VLVisionConfiguration, preprocessing: Qwen25VLPreprocessorConfiguration,
                weights: WeightStore, precision: EncoderPrecision = .f32) throws(VisionError) {
        try self.init(vision: v, preprocessing: preprocessing, prefix: Self.prefix(of: weights), precision: precision) { (name, shape) throws(WeightsError) in
            (try weights.matrix(name, shape: shape), weights.entry(name)?.dtype == "BF16")
        }
    }

    /// Builds the encoder from any source of tensors (a checkpoint, an mmproj): `tensor(name, shape)`
    /// returns the values as [shape[0], product of the rest] (a vector as one row) and whether the
    /// file stored them as BF16.
    public init(vision v: Qwen25VLVisionConfiguration, preprocessing: Qwen25VLPreprocessorConfiguration,
                prefix e: String, precision: EncoderPrecision = .f32,
                tensor: (String, [Int]) throws(WeightsError) -> (values: Matrix, storedBF16: Bool)) throws(VisionError) {
        try v.validate(file: "config.json")
        guard preprocessing.patchSize == v.patchSize, preprocessing.temporalPatchSize == v.temporalPatchSize,
              preprocessing.mergeSize == v.spatialMergeSize else {
            throw .invalidConfiguration(file: "preprocessor_config.json", field: "patch_size/temporal_patch_size/merge_size",
                                        cause: "\(preprocessing.patchSize)/\(preprocessing.temporalPatchSize)/\(preprocessing.mergeSize) differ from the model's \(v.patchSize)/\(v.temporalPatchSize)/\(v.spatialMergeSize)")
        }
        vision = v
        preprocessor = Qwen25VLPreprocessor(configuration: preprocessing)
        let shapes = Dictionary(uniqueKeysWithValues: Self.expectedTensors(v, prefix: e))
        do {
            func m(_ name: String) throws(WeightsError) -> WeightMatrix {
                let loaded = try tensor(name, shapes[name] ?? [])
                return precision.hold(loaded.values, storedBF16: loaded.storedBF16)
            }
            func vec(_ name: String) throws(WeightsError) -> [Float] { try tensor(name, shapes[name] ?? []).values.storage }
            patchWeight = try m("\(e)patch_embed.proj.weight")
            var blocks: [Block] = []
            for l in 0..<v.depth {
                let n = "\(e)blocks.\(l)."
                blocks.append(Block(
                    norm1: try vec("\(n)norm1.weight"), norm2: try vec("\(n)norm2.weight"),
                    qkv: try m("\(n)attn.qkv.weight"), qkvBias: try vec("\(n)attn.qkv.bias"),
                    proj: try m("\(n)attn.proj.weight"), projBias: try vec("\(n)attn.proj.bias"),
                    gate: try m("\(n)mlp.gate_proj.weight"), up: try m("\(n)mlp.up_proj.weight"),
                    down: try m("\(n)mlp.down_proj.weight"),
                    gateBias: try vec("\(n)mlp.gate_proj.bias"), upBias: try vec("\(n)mlp.up_proj.bias"),
                    downBias: try vec("\(n)mlp.down_proj.bias")))
            }
            self.blocks = blocks
            mergerNorm = try vec("\(e)merger.ln_q.weight")
            mergerFC1 = try m("\(e)merger.mlp.0.weight")
            mergerBias1 = try vec("\(e)merger.mlp.0.bias")
            mergerFC2 = try m("\(e)merger.mlp.2.weight")
            mergerBias2 = try vec("\(e)merger.mlp.2.bias")
        } catch {
            throw .weights(error)
        }
    }

    /// Random weights at the given shapes (benchmarks): every block shares one set of weights.
    public init(randomShapes v: Qwen25VLVisionConfiguration, seed: UInt64 = 1) {
        vision = v
        preprocessor = Qwen25VLPreprocessor(configuration: Qwen25VLPreprocessorConfiguration())
        var g = SplitMix64(seed: seed)
        let d = v.hiddenSize, i = v.intermediateSize, merged = d * 4
        func m(_ r: Int, _ c: Int) -> WeightMatrix { WeightMatrix(g.matrix(r, c, scale: 1 / Float(c).squareRoot())) }
        func ones(_ n: Int) -> [Float] { [Float](repeating: 1, count: n) }
        func small(_ n: Int) -> [Float] { (0..<n).map { _ in 0.02 * g.normalish() } }
        patchWeight = m(d, v.patchWidth)
        let block = Block(norm1: ones(d), norm2: ones(d), qkv: m(3 * d, d), qkvBias: small(3 * d), proj: m(d, d),
                          projBias: small(d), gate: m(i, d), up: m(i, d), down: m(d, i),
                          gateBias: small(i), upBias: small(i), downBias: small(d))
        blocks = Array(repeating: block, count: v.depth)
        mergerNorm = ones(d)
        mergerFC1 = m(merged, merged)
        mergerBias1 = small(merged)
        mergerFC2 = m(v.outHiddenSize, merged)
        mergerBias2 = small(v.outHiddenSize)
    }

    /// Everything the encoder computes for one temporal patch.
    public struct Output: Sendable {
        /// The merged grid (patch grid / 2).
        public var grid: TokenGrid
        /// hiddenStates[0] = patch embeddings, [l] = output of block l; window order (only when asked for).
        public var hiddenStates: [Matrix]
        /// After the merger: [grid.count, out hidden], raster order of the merged grid.
        public var features: Matrix
        /// 1-based block → per merged token score (mean over heads and queries, mean over the
        /// 2×2 group), raster order of the merged grid.
        public var scores: [Int: [Float]]
    }

    /// Runs the encoder on one temporal patch's patches [rows·cols, patch width] in the
    /// preprocessor's order; rows × cols is the patch grid.
    public func forward(patches: Matrix, rows: Int, cols: Int, scoreLayers: Set<Int> = [],
                        keepHiddenStates: Bool = false) throws(VisionError) -> Output {
        let v = vision, s = v.spatialMergeSize, unit = s * s
        guard rows > 0, cols > 0, rows % s == 0, cols % s == 0, patches.rows == rows * cols, patches.cols == v.patchWidth else {
            throw .computation("\(patches.rows)x\(patches.cols) patches for a \(rows)x\(cols) grid of width \(v.patchWidth) (sides must be multiples of \(s))")
        }
        for layer in scoreLayers where !(1...layerCount).contains(layer) {
            throw .invalidConfiguration(file: "--layers", field: "\(layer)", cause: "the encoder has blocks 1...\(layerCount)")
        }
        let grid = TokenGrid(rows: rows / s, cols: cols / s)
        let map = Qwen25VLWindowMap(grid: grid, window: v.windowTokens)
        let n = rows * cols, d = v.hiddenSize, heads = v.numHeads
        var scratch: [Float] = []
        do {
            // Patch rows in window order: group k of the reordered input is group order[k] of the original.
            let embedded = try linear(patches, weight: patchWeight, scratch: &scratch)
            var h = Matrix(rows: n, cols: d)
            h.storage.withUnsafeMutableBufferPointer { dst in
                embedded.storage.withUnsafeBufferPointer { src in
                    for (k, group) in map.order.enumerated() {
                        (dst.baseAddress! + k * unit * d).update(from: src.baseAddress! + group * unit * d, count: unit * d)
                    }
                }
            }
            let (cosTable, sinTable) = rotaryTables(map: map)
            var hidden: [Matrix] = keepHiddenStates ? [h] : []
            var scores: [Int: [Float]] = [:]
            let full = Set(v.fullattBlockIndexes)
            let windows = map.windowLengths.map { $0 * unit }
            for (index, block) in blocks.enumerated() {
                let x = try rmsNorm(h, weight: block.norm1, eps: 1e-6)
                let qkv = try linear(x, weight: block.qkv, bias: block.qkvBias, scratch: &scratch)
                var q = Matrix(rows: n, cols: d), k = Matrix(rows: n, cols: d), value = Matrix(rows: n, cols: d)
                split(qkv, into: &q, &k, &value)
                try applyRotary(&q, cos: cosTable, sin: sinTable, heads: heads)
                try applyRotary(&k, cos: cosTable, sin: sinTable, heads: heads)
                let capture = scoreLayers.contains(index + 1)
                var attended: Matrix
                var patchScores: [Float]? = nil
                if full.contains(index) {
                    let result = try attention(query: q, key: k, value: value, heads: heads, captureScores: capture)
                    attended = result.output
                    patchScores = result.scores
                } else {
                    // Windows are independent attentions; a windowed block's scores are those of its
                    // block-diagonal attention: a window's queries give to its keys only, averaged
                    // over all n queries (HiPrune's defaults read full-attention blocks instead).
                    attended = Matrix(rows: n, cols: d)
                    var windowedScores = capture ? [Float](repeating: 0, count: n) : []
                    var start = 0
                    for length in windows {
                        let range = start..<(start + length)
                        let part = try attention(query: q.rows(range), key: k.rows(range), value: value.rows(range),
                                                 heads: heads, captureScores: capture)
                        attended.storage.withUnsafeMutableBufferPointer { dst in
                            part.output.storage.withUnsafeBufferPointer { src in
                                (dst.baseAddress! + start * d).update(from: src.baseAddress!, count: length * d)
                            }
                        }
                        if let s = part.scores {
                            let share = Float(length) / Float(n)
                            for j in 0..<length { windowedScores[start + j] = s[j] * share }
                        }
                        start += length
                    }
                    if capture { patchScores = windowedScores }
                }
                if capture, let patchScores {
                    // Mean over each merge group (contiguous rows), then back to raster order.
                    let grouped = (0..<grid.count).map { g in
                        (0..<unit).reduce(Float(0)) { $0 + patchScores[g * unit + $1] } / Float(unit)
                    }
                    scores[index + 1] = map.toRaster(grouped)
                }
                try add(&h, linear(attended, weight: block.proj, bias: block.projBias, scratch: &scratch))
                let y = try rmsNorm(h, weight: block.norm2, eps: 1e-6)
                var gate = try linear(y, weight: block.gate, bias: block.gateBias, scratch: &scratch)
                let up = try linear(y, weight: block.up, bias: block.upBias, scratch: &scratch)
                silu(&gate)
                try multiply(&gate, up)
                try add(&h, linear(gate, weight: block.down, bias: block.downBias, scratch: &scratch))
                if keepHiddenStates { hidden.append(h) }
            }
            // Merger: ln_q per patch, then each merge group's rows side by side (a free reshape).
            let normed = try rmsNorm(h, weight: mergerNorm, eps: 1e-6).reshaped(rows: grid.count, cols: unit * d)
            var m1 = try linear(normed, weight: mergerFC1, bias: mergerBias1, scratch: &scratch)
            geluErf(&m1)
            let windowed = try linear(m1, weight: mergerFC2, bias: mergerBias2, scratch: &scratch)
            var features = Matrix(rows: grid.count, cols: windowed.cols)
            let width = windowed.cols
            features.storage.withUnsafeMutableBufferPointer { dst in
                windowed.storage.withUnsafeBufferPointer { src in
                    for (k, r) in map.order.enumerated() {
                        (dst.baseAddress! + r * width).update(from: src.baseAddress! + k * width, count: width)
                    }
                }
            }
            return Output(grid: grid, hiddenStates: hidden, features: features, scores: scores)
        } catch {
            throw .computation("\(error)")
        }
    }

    /// cos/sin [patches, head dim] in window order. A patch's row: [h·f, w·f, h·f, w·f] with the
    /// frequencies f of head dim / 2 (theta^(−2i / (head dim / 2))), h and w its patch coordinates.
    func rotaryTables(map: Qwen25VLWindowMap) -> (Matrix, Matrix) {
        let hd = vision.headDimension, quarter = hd / 4, s = vision.spatialMergeSize, unit = s * s
        let spatial = hd / 2
        let inverse: [Float] = (0..<quarter).map { i in 1 / Foundation.pow(vision.ropeTheta, Float(2 * i) / Float(spatial)) }
        let n = map.order.count * unit
        var c = Matrix(rows: n, cols: hd), sn = Matrix(rows: n, cols: hd)
        for (k, group) in map.order.enumerated() {
            let gr = group / map.grid.cols, gc = group % map.grid.cols
            for m in 0..<unit {
                let row = k * unit + m
                let y = Float(gr * s + m / s), x = Float(gc * s + m % s)
                for i in 0..<quarter {
                    let ah = y * inverse[i], aw = x * inverse[i]
                    for (offset, angle) in [(i, ah), (quarter + i, aw), (2 * quarter + i, ah), (3 * quarter + i, aw)] {
                        c[row, offset] = Foundation.cos(angle)
                        sn[row, offset] = Foundation.sin(angle)
                    }
                }
            }
        }
        return (c, sn)
    }

    /// [n, 3·d] → q, k, v [n, d] (the qkv columns are q | k | v, heads side by side inside each).
    func split(_ qkv: Matrix, into q: inout Matrix, _ k: inout Matrix, _ v: inout Matrix) {
        let d = q.cols
        qkv.storage.withUnsafeBufferPointer { src in
            q.storage.withUnsafeMutableBufferPointer { pq in
                k.storage.withUnsafeMutableBufferPointer { pk in
                    v.storage.withUnsafeMutableBufferPointer { pv in
                        for r in 0..<q.rows {
                            let row = src.baseAddress! + r * 3 * d
                            (pq.baseAddress! + r * d).update(from: row, count: d)
                            (pk.baseAddress! + r * d).update(from: row + d, count: d)
                            (pv.baseAddress! + r * d).update(from: row + 2 * d, count: d)
                        }
                    }
                }
            }
        }
    }


    /// Encodes one temporal patch of packed RGB24 frames (1...2; a single frame is repeated):
    /// preprocess, encoder, merger, scores pooled onto the merged grid.
    public func encode(frames: [(width: Int, height: Int, rgb: [UInt8])], scoreLayers: Set<Int>) throws(VisionError) -> EncodedView {
        let (patches, rows, cols) = try preprocessor.temporalPatch(frames: frames)
        let output = try forward(patches: patches, rows: rows, cols: cols, scoreLayers: scoreLayers)
        return EncodedView(grid: output.grid, features: output.features, scores: output.scores)
    }

    /// Encodes a clip: frames paired two by two into temporal patches (an odd count repeats the last).
    public func encode(clip frames: [(width: Int, height: Int, rgb: [UInt8])], scoreLayers: Set<Int>) throws(VisionError) -> [EncodedView] {
        let t = vision.temporalPatchSize
        return try stride(from: 0, to: frames.count, by: t).map { (start: Int) throws(VisionError) -> EncodedView in
            try encode(frames: Array(frames[start..<min(start + t, frames.count)]), scoreLayers: scoreLayers)
        }
    }

    /// Multiply-adds × 2 of one temporal patch on a rows × cols patch grid.
    public func flops(rows: Int, cols: Int) -> Double {
        let v = vision
        let n = Double(rows * cols), d = Double(v.hiddenSize), i = Double(v.intermediateSize)
        let map = Qwen25VLWindowMap(grid: TokenGrid(rows: rows / 2, cols: cols / 2), window: v.windowTokens)
        let windowed = map.windowLengths.reduce(0.0) { $0 + Double($1 * 4) * Double($1 * 4) }
        var total = 2 * n * d * Double(v.patchWidth)
        for b in 0..<v.depth {
            let pairs = v.fullattBlockIndexes.contains(b) ? n * n : windowed
            total += 2 * n * d * d * 4 + 2 * n * d * i * 3 + 2 * pairs * d * 2
        }
        total += 2 * (n / 4) * (4 * d) * (4 * d) + 2 * (n / 4) * (4 * d) * Double(v.outHiddenSize)
        return total
    }
}

extension SplitMix64 {
    /// A random matrix for benchmark weights: entries of roughly unit variance times `scale`.
    mutating func matrix(_ rows: Int, _ cols: Int, scale: Float) -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        for i in 0..<m.storage.count { m.storage[i] = normalish() * scale }
        return m
    }
}
