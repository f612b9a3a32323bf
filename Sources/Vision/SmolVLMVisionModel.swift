// The SmolVLM / SmolVLM2 vision side, in the order data flows: patch embedding + position
// embedding, SigLIP encoder layers (pre-norm attention and MLP), post_layernorm, connector
// (pixel shuffle, then modality_projection.proj without bias). Weight names follow the checkpoint
// (model.vision_model.…, model.connector.…), so a missing or misshapen tensor is reported by name.
import Foundation
import Prune
import Tensor

public struct SmolVLMVisionModel: Sendable {
    public let configuration: SmolVLMConfiguration
    public let preprocessor: SmolVLMPreprocessor
    let patchWeight: DenseWeights  // [hidden, channels · patch²]
    let patchBias: [Float]
    let positionEmbedding: Matrix  // [positions, hidden]
    let encoder: ViTEncoder
    let postLayerNormWeight, postLayerNormBias: [Float]
    let projection: DenseWeights  // [text hidden, hidden · scale²]

    public var vision: SmolVLMVisionConfiguration { configuration.visionConfig }
    public var layerCount: Int { vision.numHiddenLayers }
    /// The pixel shuffle for a full frame.
    public var shuffle: PixelShuffle { PixelShuffle(side: preprocessor.side / vision.patchSize, scale: configuration.scaleFactor) }

    /// The names of every tensor the vision side reads (prefix included), with expected shapes.
    public static func expectedTensors(_ config: SmolVLMConfiguration, prefix: String = "model.") -> [(name: String, shape: [Int])] {
        let v = config.visionConfig, d = v.hiddenSize, p = v.patchSize
        let positions = (v.imageSize / p) * (v.imageSize / p)
        let e = "\(prefix)vision_model."
        var list: [(String, [Int])] = [
            ("\(e)embeddings.patch_embedding.weight", [d, v.numChannels, p, p]),
            ("\(e)embeddings.patch_embedding.bias", [d]),
            ("\(e)embeddings.position_embedding.weight", [positions, d]),
        ]
        list += ViTEncoder.expectedTensors(prefix: "\(e)encoder.", shape: config.encoderShape)
        list += [("\(e)post_layernorm.weight", [d]), ("\(e)post_layernorm.bias", [d]),
                 ("\(prefix)connector.modality_projection.proj.weight",
                  [config.textConfig.hiddenSize, d * config.scaleFactor * config.scaleFactor])]
        return list
    }

    /// The prefix in front of "vision_model." in this checkpoint ("model." in SmolVLM2, "" in some exports).
    public static func prefix(of weights: WeightStore) -> String {
        for candidate in ["model.", ""] where weights.contains("\(candidate)vision_model.embeddings.patch_embedding.weight") {
            return candidate
        }
        return "model."
    }

    /// Loads config.json, preprocessor_config.json (optional) and the weights of a model directory.
    public static func load(directory: String, precision: EncoderPrecision = .f32) throws(VisionError) -> SmolVLMVisionModel {
        let config = try SmolVLMConfiguration.load(directory: directory)
        let preprocessing = try SmolVLMPreprocessorConfiguration.load(directory: directory)
        let weights: WeightStore
        do { weights = try WeightStore(directory: directory) } catch { throw .weights(error) }
        return try SmolVLMVisionModel(configuration: config, preprocessing: preprocessing, weights: weights, precision: precision)
    }

    public init(configuration config: SmolVLMConfiguration, preprocessing: SmolVLMPreprocessorConfiguration?,
                weights: WeightStore, precision: EncoderPrecision = .f32) throws(VisionError) {
        let prefix = Self.prefix(of: weights)
        try self.init(configuration: config, preprocessing: preprocessing, prefix: prefix, precision: precision) { (name, shape) throws(WeightsError) in
            try weights.matrix(name, shape: shape)
        }
    }

    /// Builds the model from any source of tensors (a checkpoint, or random weights in benchmarks):
    /// `tensor(name, shape)` returns [shape[0], product of the rest], or a vector as one row.
    public init(configuration config: SmolVLMConfiguration, preprocessing: SmolVLMPreprocessorConfiguration?,
                prefix: String = "model.", precision: EncoderPrecision = .f32,
                tensor: (String, [Int]) throws(WeightsError) -> Matrix) throws(VisionError) {
        try config.validate(file: "config.json")
        self.configuration = config
        let v = config.visionConfig
        let side = preprocessing?.frameSide ?? v.imageSize
        let patches = side / max(1, v.patchSize)
        guard side > 0, side % v.patchSize == 0, patches % config.scaleFactor == 0 else {
            throw .invalidConfiguration(file: "preprocessor_config.json", field: "max_image_size.longest_edge",
                                        cause: "\(side) is not a multiple of patch_size \(v.patchSize) · scale_factor \(config.scaleFactor)")
        }
        preprocessor = SmolVLMPreprocessor(configuration: preprocessing ?? SmolVLMPreprocessorConfiguration(), side: side)
        let e = "\(prefix)vision_model."
        let d = v.hiddenSize, p = v.patchSize
        do throws(WeightsError) {
            func m(_ name: String, _ shape: [Int]) throws(WeightsError) -> Matrix { try tensor(name, shape) }
            func vec(_ name: String, _ count: Int) throws(WeightsError) -> [Float] { try tensor(name, [count]).storage }
            patchWeight = DenseWeights(try m("\(e)embeddings.patch_embedding.weight", [d, v.numChannels, p, p]))
            patchBias = try vec("\(e)embeddings.patch_embedding.bias", d)
            let positions = (v.imageSize / p) * (v.imageSize / p)
            positionEmbedding = try m("\(e)embeddings.position_embedding.weight", [positions, d])
            encoder = try ViTEncoder(prefix: "\(e)encoder.", shape: config.encoderShape, precision: precision, tensor: tensor)
            postLayerNormWeight = try vec("\(e)post_layernorm.weight", d)
            postLayerNormBias = try vec("\(e)post_layernorm.bias", d)
            let s = config.scaleFactor
            projection = DenseWeights(try m("\(prefix)connector.modality_projection.proj.weight", [config.textConfig.hiddenSize, d * s * s]))
        } catch {
            throw .weights(error)
        }
    }

    /// Everything the encoder computes for one frame.
    public struct Output: Sendable {
        /// hiddenStates[0] = embeddings, [l] = output of layer l (only when asked for).
        public var hiddenStates: [Matrix]
        /// After post_layernorm: [patches, hidden].
        public var lastHiddenState: Matrix
        /// 1-based layer → per-patch score (mean over heads and queries of the softmax).
        public var patchScores: [Int: [Float]]
    }

    /// Position ids of a full (unpadded) patch grid of rows × cols, as transformers computes them:
    /// fractional coordinates i / n bucketised against the boundaries of the trained grid.
    public func positionIDs(rows: Int, cols: Int) -> [Int] {
        let trained = vision.imageSize / vision.patchSize
        // torch.arange(1/N, 1.0, 1/N): start + k·step in double, stored as Float32.
        let step = 1.0 / Double(trained)
        var boundaries: [Float] = []
        var k = 0
        while step + Double(k) * step < 1.0 {
            boundaries.append(Float(step + Double(k) * step))
            k += 1
        }
        func buckets(_ n: Int) -> [Int] {
            let s = Float(1.0) / Float(n)
            return (0..<n).map { i in
                let x = min(Float(i) * s, Float(1.0 - 1e-6))
                return boundaries.reduce(0) { $0 + ($1 <= x ? 1 : 0) }  // bucketize(right: true)
            }
        }
        let bh = buckets(rows), bw = buckets(cols)
        return bh.flatMap { h in bw.map { w in h * trained + w } }
    }

    /// Runs the encoder on channel-first pixel values [channels, height, width].
    /// - scoreLayers: 1-based layers whose scores to capture (others cost nothing extra).
    /// - profile: receives each operation's time (benchmarks).
    public func forward(pixelValues: [Float], height: Int, width: Int, scoreLayers: Set<Int> = [],
                        keepHiddenStates: Bool = false, profile: OperationProfile? = nil) throws(VisionError) -> Output {
        let v = vision
        do {
            let patches = height / v.patchSize * (width / v.patchSize), d = v.hiddenSize
            var h = try profile.time("patch embedding (im2col + GEMM)", flops: 2 * Double(patches * patchWeight.count)) {
                () throws(TensorError) in
                var h = try patchEmbedding(pixels: pixelValues, channels: v.numChannels, height: height, width: width,
                                           patch: v.patchSize, weight: patchWeight, bias: patchBias)
                try addRows(of: positionEmbedding, at: positionIDs(rows: height / v.patchSize, cols: width / v.patchSize), to: &h)
                return h
            }
            let embeddings = keepHiddenStates ? h : Matrix(rows: 0, cols: 0)
            let run = try encoder.run(&h, layers: encoder.shape.layers, scoreLayers: scoreLayers, keepHiddenStates: keepHiddenStates,
                                      profile: profile)
            var last = Matrix(rows: h.rows, cols: d)
            try profile.time("layer norm") { () throws(TensorError) in
                try layerNorm(&h, addingBias: run.pendingBias, weight: postLayerNormWeight, bias: postLayerNormBias,
                              eps: v.layerNormEps, into: &last)
            }
            return Output(hiddenStates: keepHiddenStates ? [embeddings] + run.hiddenStates : [], lastHiddenState: last,
                          patchScores: run.scores)
        } catch {
            throw .computation("\(error)")
        }
    }

    /// The connector: pixel shuffle, then modality_projection.proj (no bias).
    public func connect(_ lastHiddenState: Matrix, side: Int) throws(VisionError) -> Matrix {
        let shuffled = try PixelShuffle(side: side, scale: configuration.scaleFactor).shuffle(lastHiddenState)
        do { return try linear(shuffled, weight: projection) } catch { throw .computation("\(error)") }
    }

    /// Encodes packed RGB24: preprocess, encoder, connector, scores pooled onto the token grid.
    public func encode(width: Int, height: Int, rgb: [UInt8], scoreLayers: Set<Int>) throws(VisionError) -> EncodedView {
        for layer in scoreLayers where !(1...layerCount).contains(layer) {
            throw .invalidConfiguration(file: "--layers", field: "\(layer)", cause: "the encoder has layers 1...\(layerCount)")
        }
        let side = preprocessor.side
        let pixels = try preprocessor.pixelValues(width: width, height: height, rgb: rgb)
        let output = try forward(pixelValues: pixels, height: side, width: side, scoreLayers: scoreLayers)
        let shuffle = self.shuffle
        let features = try connect(output.lastHiddenState, side: shuffle.side)
        var pooled: [Int: [Float]] = [:]
        for (layer, s) in output.patchScores { pooled[layer] = try shuffle.pool(s) }
        return EncodedView(grid: shuffle.grid, features: features, scores: pooled)
    }

    /// Parameters of the vision side (encoder + connector).
    public var parameterCount: Int {
        patchWeight.count + patchBias.count + positionEmbedding.count + 2 * postLayerNormWeight.count + projection.count
            + encoder.parameterCount
    }

    /// Multiply-adds × 2 of one frame through encoder and connector (attention included).
    public var flopsPerFrame: Double {
        let v = vision
        let n = Double((preprocessor.side / v.patchSize) * (preprocessor.side / v.patchSize))
        let d = Double(v.hiddenSize)
        let patch = 2 * n * d * Double(v.numChannels * v.patchSize * v.patchSize)
        let s = Double(configuration.scaleFactor)
        let connector = 2 * (n / (s * s)) * (d * s * s) * Double(configuration.textConfig.hiddenSize)
        return patch + encoder.flops(tokens: Int(n), layers: v.numHiddenLayers) + connector
    }
}
