// The pre-norm ViT encoder SigLIP (SmolVLM) and CLIP (LLaVA) share, written once as llama.cpp's
// build_vit is: per layer
//
//     h += out_proj(attention(layer_norm1(h)))        q/k/v/out_proj with biases, full attention
//     h += fc2(act(fc1(layer_norm2(h))))              act: gelu (tanh or erf) or quick_gelu
//
// Weights are named as transformers names them under `<prefix>layers.N.` (layer_norm1,
// self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2), so a family hands over its prefix
// and its checkpoint's tensors. What surrounds the layers (embeddings, CLS, pre/post norms,
// connectors) stays with the family.
import Foundation
import Tensor

public struct ViTEncoder: Sendable {
    /// The MLP's activation, from `hidden_act`.
    public enum Activation: String, Sendable, Equatable {
        /// gelu_pytorch_tanh, gelu_new, gelu_fast: the tanh approximation.
        case geluTanh
        /// gelu: the exact erf form.
        case geluErf
        /// quick_gelu: x · sigmoid(1.702 x) (CLIP).
        case quickGelu

        public init?(hiddenAct: String) {
            switch hiddenAct {
            case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": self = .geluTanh
            case "gelu": self = .geluErf
            case "quick_gelu": self = .quickGelu
            default: return nil
            }
        }
    }

    /// The sizes of the encoder's layers.
    public struct Shape: Sendable, Equatable {
        public var hidden: Int
        public var intermediate: Int
        public var heads: Int
        public var layers: Int
        public var layerNormEps: Float
        public var activation: Activation

        public init(hidden: Int, intermediate: Int, heads: Int, layers: Int, layerNormEps: Float, activation: Activation) {
            self.hidden = hidden
            self.intermediate = intermediate
            self.heads = heads
            self.layers = layers
            self.layerNormEps = layerNormEps
            self.activation = activation
        }
    }

    /// A projection's weights as the layers multiply them: packed once for enc_gemm_packed (F32 under
    /// EncoderPaths' packed kernel, read at load), or as `EncoderPrecision.hold` holds them.
    enum Projection: Sendable {
        case packed(PackedWeights)
        case held(WeightMatrix)

        init(_ matrix: Matrix, precision: EncoderPrecision) {
            if precision.resolved == .f32, EncoderPaths.current.gemmKernel == .packed {
                self = .packed(PackedWeights(matrix))
            } else {
                self = .held(precision.hold(matrix))
            }
        }

        var rows: Int {
            switch self {
            case .packed(let w): w.rows
            case .held(let w): w.rows
            }
        }

        var cols: Int {
            switch self {
            case .packed(let w): w.cols
            case .held(let w): w.cols
            }
        }

        var count: Int { rows * cols }
    }

    struct Layer: Sendable {
        var layerNorm1Weight, layerNorm1Bias, layerNorm2Weight, layerNorm2Bias: [Float]
        /// q_proj, k_proj and v_proj stacked into one [3 · hidden, hidden] matrix: one GEMM per layer.
        var qkvWeight, outWeight, fc1Weight, fc2Weight: Projection
        var qkvBias, outBias, fc1Bias, fc2Bias: [Float]
    }

    public let shape: Shape
    let layers: [Layer]

    /// Every tensor of the layers (prefix included, e.g. "model.vision_model.encoder."), with shapes.
    public static func expectedTensors(prefix: String, shape s: Shape) -> [(name: String, shape: [Int])] {
        let d = s.hidden, i = s.intermediate
        var list: [(name: String, shape: [Int])] = []
        for l in 0..<s.layers {
            let n = "\(prefix)layers.\(l)."
            for norm in ["layer_norm1", "layer_norm2"] {
                list += [("\(n)\(norm).weight", [d]), ("\(n)\(norm).bias", [d])]
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                list += [("\(n)self_attn.\(proj).weight", [d, d]), ("\(n)self_attn.\(proj).bias", [d])]
            }
            list += [("\(n)mlp.fc1.weight", [i, d]), ("\(n)mlp.fc1.bias", [i]),
                     ("\(n)mlp.fc2.weight", [d, i]), ("\(n)mlp.fc2.bias", [d])]
        }
        return list
    }

    /// Reads the first `shape.layers` layers under `prefix` from `tensor(name, shape)`, which returns
    /// [shape[0], product of the rest], or a vector as one row.
    /// - Parameter precision: how the four weight matrices of every layer are held (`EncoderPrecision.hold`).
    public init(prefix: String, shape s: Shape, precision: EncoderPrecision = .f32,
                tensor: (String, [Int]) throws(WeightsError) -> Matrix) throws(WeightsError) {
        shape = s
        let d = s.hidden
        func m(_ name: String, _ shape: [Int]) throws(WeightsError) -> Matrix { try tensor(name, shape) }
        func vec(_ name: String, _ count: Int) throws(WeightsError) -> [Float] { try tensor(name, [count]).storage }
        var layers: [Layer] = []
        for l in 0..<s.layers {
            let n = "\(prefix)layers.\(l)."
            let a = "\(n)self_attn."
            var qkv = Matrix(rows: 3 * d, cols: d)
            qkv.storage = []
            for proj in ["q_proj", "k_proj", "v_proj"] {
                let part = try m("\(a)\(proj).weight", [d, d])
                guard part.rows == d, part.cols == d else {
                    throw WeightsError.wrongShape(name: "\(a)\(proj).weight", expected: [d, d], found: part.shape)
                }
                qkv.storage += part.storage
            }
            let qkvBias = try vec("\(a)q_proj.bias", d) + vec("\(a)k_proj.bias", d) + vec("\(a)v_proj.bias", d)
            layers.append(Layer(
                layerNorm1Weight: try vec("\(n)layer_norm1.weight", d), layerNorm1Bias: try vec("\(n)layer_norm1.bias", d),
                layerNorm2Weight: try vec("\(n)layer_norm2.weight", d), layerNorm2Bias: try vec("\(n)layer_norm2.bias", d),
                qkvWeight: Projection(qkv, precision: precision),
                outWeight: Projection(try m("\(a)out_proj.weight", [d, d]), precision: precision),
                fc1Weight: Projection(try m("\(n)mlp.fc1.weight", [s.intermediate, d]), precision: precision),
                fc2Weight: Projection(try m("\(n)mlp.fc2.weight", [d, s.intermediate]), precision: precision),
                qkvBias: qkvBias, outBias: try vec("\(a)out_proj.bias", d),
                fc1Bias: try vec("\(n)mlp.fc1.bias", s.intermediate), fc2Bias: try vec("\(n)mlp.fc2.bias", d)))
        }
        self.layers = layers
    }

    /// What a run leaves besides the residual stream.
    public struct Run: Sendable {
        /// 1-based layer → per-token score (mean over heads and queries of the softmax); only the
        /// layers asked for. Every row is a query and a key (a CLS row included).
        public var scores: [Int: [Float]]
        /// Outputs of layers 1...count, when asked for (each with its fc2 bias added).
        public var hiddenStates: [Matrix]
        /// fc2's bias of the last layer run, not yet added to the stream: the caller adds it, or
        /// folds it into its next layer norm (`layerNorm(_:addingBias:…)`), which reads h anyway.
        public var pendingBias: [Float]?
    }

    /// Runs layers 1...count over the residual stream `h` ([tokens, hidden]) in place.
    /// - profile: when given, receives the wall and CPU time of every operation (a benchmark's view).
    public func run(_ h: inout Matrix, layers count: Int, scoreLayers: Set<Int> = [],
                    keepHiddenStates: Bool = false, profile: OperationProfile? = nil) throws(TensorError) -> Run {
        let s = shape, d = s.hidden, n = h.rows, heads = s.heads
        guard h.cols == d, count >= 0, count <= layers.count else {
            throw .invalidArgument(operation: "ViT encoder", detail: "\(count) of \(layers.count) layers over \(h.rows)x\(h.cols)")
        }
        guard heads > 0, d % heads == 0 else {
            throw .invalidArgument(operation: "attention", detail: "\(heads) heads, width \(d)")
        }
        var hidden: [Matrix] = []
        var scores: [Int: [Float]] = [:]
        // Buffers reused by every layer; projections with a residual add straight onto h (GEMM beta = 1,
        // or the packed kernel's accumulate epilogue).
        var x = Matrix(rows: n, cols: d), qkv = Matrix(rows: n, cols: 3 * d), attended = Matrix(rows: n, cols: d)
        var f = Matrix(rows: n, cols: s.intermediate)
        var layerScores = [Float](repeating: 0, count: n)
        var unused: [Float] = []  // F32 weights need no expansion scratch
        var packedRows: [Float] = []  // x packed for the packed GEMM, reused by every product
        // The bias of the projection that last added onto h (fc2 of the layer before) is left out of
        // that GEMM and added by the next layer norm.
        var pendingBias: [Float]? = nil
        // y (+)= input · Wᵀ (+ bias), GELU'd under `.geluTanh` (packed weights only), timed under a name
        // that gives the GEMM's shape.
        func project(_ name: String, _ input: Matrix, _ weight: Projection, bias: [Float]?, into out: inout Matrix,
                     epilogue: PackedEpilogue) {
            let label = "\(name) GEMM \(n)x\(weight.rows)x\(weight.cols)" + (bias == nil ? "" : " + bias")
                + (epilogue == .geluTanh ? " + GELU" : epilogue == .accumulate ? ", onto h" : "")
            profile.time(label, flops: 2 * Double(n * weight.rows * weight.cols)) {
                input.storage.withUnsafeBufferPointer { pi in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        switch weight {
                        case .packed(let w):
                            packedLinear(pi.baseAddress!, rows: n, inputStride: input.cols, weight: w, bias: bias, epilogue: epilogue,
                                         into: po.baseAddress!, outputStride: out.cols, scratch: &packedRows)
                        case .held(let w):
                            precondition(epilogue != .geluTanh, "GELU in the epilogue needs packed weights")
                            linear(pi.baseAddress!, rows: n, inputStride: input.cols, weight: w, bias: bias,
                                   into: po.baseAddress!, outputStride: out.cols, accumulate: epilogue == .accumulate, scratch: &unused)
                        }
                    }
                }
            }
        }
        for (index, layer) in layers.prefix(count).enumerated() {
            let capture = scoreLayers.contains(index + 1)
            try profile.time("layer norm") { () throws(TensorError) in
                try layerNorm(&h, addingBias: pendingBias, weight: layer.layerNorm1Weight, bias: layer.layerNorm1Bias,
                              eps: s.layerNormEps, into: &x)
            }
            project("qkv", x, layer.qkvWeight, bias: layer.qkvBias, into: &qkv, epilogue: .store)
            profile.time(capture ? "attention + scores" : "attention", flops: 4 * Double(n * n * d)) {
                qkv.storage.withUnsafeBufferPointer { pqkv in
                    attended.storage.withUnsafeMutableBufferPointer { po in
                        layerScores.withUnsafeMutableBufferPointer { ps in
                            let q = pqkv.baseAddress!
                            attention(query: q, queryStride: 3 * d, key: q + d, value: q + 2 * d, keyValueStride: 3 * d,
                                      queries: n, keys: n, heads: heads, kvHeads: heads, headDimension: d / heads,
                                      output: po.baseAddress!, scores: capture ? ps.baseAddress : nil)
                        }
                    }
                }
            }
            if capture { scores[index + 1] = layerScores }
            project("out", attended, layer.outWeight, bias: nil, into: &h, epilogue: .accumulate)
            try profile.time("layer norm") { () throws(TensorError) in
                try layerNorm(&h, addingBias: layer.outBias, weight: layer.layerNorm2Weight, bias: layer.layerNorm2Bias,
                              eps: s.layerNormEps, into: &x)
            }
            if s.activation == .geluTanh, case .packed = layer.fc1Weight {
                // Bias and GELU in the GEMM's epilogue: no pass of their own over f.
                project("fc1", x, layer.fc1Weight, bias: layer.fc1Bias, into: &f, epilogue: .geluTanh)
            } else {
                // The tanh form takes fc1's bias in its own pass; the others in the GEMM.
                let biasInActivation = s.activation == .geluTanh
                project("fc1", x, layer.fc1Weight, bias: biasInActivation ? nil : layer.fc1Bias, into: &f, epilogue: .store)
                try profile.time(biasInActivation ? "bias + activation" : "activation") { () throws(TensorError) in
                    switch s.activation {
                    case .geluTanh: try geluTanh(&f, bias: layer.fc1Bias)
                    case .geluErf: geluErf(&f)
                    case .quickGelu: quickGelu(&f)
                    }
                }
            }
            project("fc2", f, layer.fc2Weight, bias: nil, into: &h, epilogue: .accumulate)
            pendingBias = layer.fc2Bias
            if keepHiddenStates {
                try addRow(&h, layer.fc2Bias)
                pendingBias = nil
                hidden.append(h)
            }
        }
        return Run(scores: scores, hiddenStates: hidden, pendingBias: pendingBias)
    }

    /// Parameters of the layers.
    public var parameterCount: Int {
        layers.reduce(0) { n, l in
            n + 4 * l.layerNorm1Weight.count + l.qkvWeight.count + l.qkvBias.count + l.outWeight.count + l.outBias.count
                + l.fc1Weight.count + l.fc2Weight.count + l.fc1Bias.count + l.fc2Bias.count
        }
    }

    /// Multiply-adds × 2 of `count` layers over `tokens` tokens (attention included).
    public func flops(tokens: Int, layers count: Int) -> Double {
        let n = Double(tokens), d = Double(shape.hidden), i = Double(shape.intermediate)
        return Double(count) * (2 * n * d * d * 4 + 2 * n * d * i * 2 + 2 * n * n * d * 2)
    }
}
