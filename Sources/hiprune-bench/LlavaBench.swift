import ArgumentParser
import COpenBLAS
import Foundation
import Tensor
import Vision
import VLM

/// `hiprune-bench llava`: LLaVA-1.5-7B shapes with random weights made here (no 7B checkpoint can be
/// downloaded). Vision: seconds per frame of CLIP ViT-L/14-336 (F32, run to the feature layer 23 of
/// 24, HiPrune's two layers' scores captured) and the projector. Language model: Llama-2-7B layers
/// with BF16 weights (7B in F32 does not fit in 24 GiB), cut to `--layers` of 32: prefill of a
/// 4-frame question at 576 / 192 / 128 / 64 kept tokens per frame plus the text, and decode tokens/s
/// after each prompt; per-layer figures and the ×32 estimate, and the whole question (4 encodes +
/// prefill + 32 generated tokens) at each budget. PyTorch (tools/bench_torch_llava.py) runs the
/// same shapes beside ours: F32 eager CLIP, BF16 Llama layers.
///
/// Memory: every CLIP layer shares one layer's F32 weights; the decoder's layers are generated
/// (≈ 0.4 GB each in BF16) with the embeddings and lm_head (0.26 GB each).
struct LlavaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llava",
        abstract: "LLaVA-1.5-7B shapes: CLIP ViT-L/14-336 s/frame (F32), 7B prefill of 4 frames at 576/192/128/64 tokens and decode t/s (BF16), ×32 estimates; PyTorch peer.")

    @Option(help: "Decoder layers built and timed (of 32); figures are also given per layer and scaled to 32.")
    var layers = 4
    @OptionGroup var timing: DecoderTimingOptions
    var runs: Int { timing.runs ?? 1 }
    var decodeTokens: Int { timing.decodeTokens ?? 8 }
    @Option(help: "Text tokens of the question around the frames (template, question, generation prompt).")
    var textTokens = 40
    @Option(help: "Python for the PyTorch peer (default: $HIPRUNE_PYTHON, else python3 on PATH); skipped if it does not exist.")
    var python = Peer.defaultPython
    @Option(help: "The peer script.")
    var peer = "tools/bench_torch_llava.py"
    @Option(help: "Threads for both sides.")
    var threads = 2
    @Flag(help: "Skip the PyTorch peer.")
    var noPeer = false

    static let frames = 4
    static let budgets = [576, 192, 128, 64]
    static let generated = 32
    static let totalLayers = 32

    func run() async throws {
        guard runs >= 1, decodeTokens >= 1, textTokens >= 1, (1...Self.totalLayers).contains(layers) else {
            throw ValidationError("--runs, --decode-tokens and --text-tokens must be at least 1, --layers in 1...32")
        }
        openblas_set_num_threads(Int32(threads))
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        print("LLaVA-1.5-7B shapes, random weights; \(InstructionSet.summary); OpenBLAS core \(core), \(threads) threads; median of \(runs)")
        print("load average at start: \(QuantBench.loadAverage())")

        // Vision: CLIP ViT-L/14-336, LLaVA's projector; one layer's weights shared by all 23 run.
        var c = LlavaConfiguration()
        c.visionConfig.hiddenSize = 1024
        c.visionConfig.intermediateSize = 4096
        c.visionConfig.numHiddenLayers = 24
        c.visionConfig.numAttentionHeads = 16
        c.visionConfig.imageSize = 336
        c.visionConfig.patchSize = 14
        c.textHiddenSize = 4096
        var random = BenchRandom(seed: 3)
        var shared: [String: Matrix] = [:]
        let vision = try LlavaVisionModel(configuration: c, preprocessing: nil) { (name, shape) throws(WeightsError) -> Matrix in
            let key = name.replacingOccurrences(of: #"layers\.[0-9]+\."#, with: "layers.*.", options: .regularExpression)
            if let hit = shared[key] { return hit }
            // 1-D tensors are one row; [out, channels, patch, patch] is out rows of the rest.
            var m = Matrix(rows: shape.count >= 2 ? shape[0] : 1, cols: shape.count >= 2 ? shape.dropFirst().reduce(1, *) : shape.first ?? 1)
            for i in 0..<m.storage.count { m.storage[i] = 0.02 * random.next() }
            shared[key] = m
            return m
        }
        let scoreLayers: Set<Int> = [vision.defaultObjectLayer, vision.defaultDeepLayer]
        let side = c.visionConfig.imageSize
        let rgb = (0..<(side * side * 3)).map { _ in UInt8(truncatingIfNeeded: Int(random.next() * 127) + 128) }
        let encode = try median {
            _ = try vision.encode(width: side, height: side, rgb: rgb, scoreLayers: scoreLayers)
        }
        print(String(format: "vision: CLIP ViT-L/14-336, 23 of 24 layers run (feature layer -2), scores of layers %@, projector 1024 → 4096 → 4096, F32",
                     scoreLayers.sorted().description))
        let torchVision = peerRun(["vision"])
        print(String(format: "  encode  swift %7.2f s/frame", encode)
              + (torchVision.map { String(format: "   pytorch eager %7.2f s/frame   pytorch / swift %.2f ×", $0.seconds, $0.seconds / encode) } ?? "   pytorch: skipped"))

        // Language model: Llama-2-7B layers (vicuna-7b), BF16 weights.
        var t = LlamaConfiguration()
        t.vocabularySize = 32064
        t.layers = layers
        t.maxPositions = 4096
        t.rmsNormEps = 1e-5
        let model = try LlamaModel(randomWeights: t, seed: 1, precision: .bfloat16)
        let scale = Double(Self.totalLayers) / Double(layers)
        print("language model: \(layers) of 32 Llama-2-7B layers (hidden 4096, 32 heads, intermediate 11008, vocabulary 32064), BF16 weights; "
              + "×32 estimates scale the measured time by \(String(format: "%.0f", scale)) (embedding and lm_head counted in it: an upper bound)")
        print("budget  rows   prefill swift   per layer   ×32 est.    torch BF16   torch/swift   decode swift   torch     whole question ×32 (4 encodes + prefill + \(Self.generated) tokens)")
        var wholeAt: [Int: Double] = [:]
        for budget in Self.budgets {
            let rows = Self.frames * budget + textTokens
            var embeddings = Matrix(rows: rows, cols: t.hiddenSize)
            for i in 0..<embeddings.storage.count { embeddings.storage[i] = random.next() }
            var rate = 0.0
            let prefill = try median {
                let session = try DecoderSession(model: model, context: rows + decodeTokens + 8)
                let start = DispatchTime.now().uptimeNanoseconds
                try session.prefill(embeddings: embeddings)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                var next = argmax(session.logits)
                let begin = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<decodeTokens {
                    try session.step(token: next)
                    next = argmax(session.logits)
                }
                rate = Double(decodeTokens) / (Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9)
                return seconds
            }
            let torch = peerRun(["prefill", "--tokens", "\(rows)", "--layers", "\(layers)", "--decode-tokens", "\(decodeTokens)"])
            let whole = Double(Self.frames) * encode + prefill * scale + Double(Self.generated) / rate * scale
            wholeAt[budget] = whole
            print(String(format: "%4d   %5d   %9.2f s   %7.3f s   %7.1f s", budget, rows, prefill, prefill / Double(layers), prefill * scale)
                  + (torch.map { String(format: "   %8.2f s   %8.2f ×", $0.seconds, $0.seconds / prefill) } ?? "          -            -")
                  + String(format: "   %6.2f t/s ×%d-layer", rate, layers)
                  + (torch?.decode.map { String(format: "   %6.2f t/s", $0) } ?? "        -")
                  + String(format: "   %8.1f s", whole))
        }
        if let full = wholeAt[576] {
            print("HiPrune's saving on the whole 4-frame question (×32 estimate): "
                  + Self.budgets.dropFirst().map { b in String(format: "%d tokens %.1f s (%.0f %% of 576's %.1f s)", b, wholeAt[b] ?? .nan, 100 * (wholeAt[b] ?? .nan) / full, full) }
                    .joined(separator: "; "))
        }
        print(String(format: "swift peak RSS %.0f MB; load average at end: %@", peakRSSMegabytes(), QuantBench.loadAverage()))
    }

    /// Median seconds of `runs` calls of `body`, or of what it returns when it times itself.
    func median(_ body: () throws -> Double?) rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            let own = try body()
            samples.append(own ?? Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return samples.sorted()[samples.count / 2]
    }

    func median(_ body: () throws -> Void) rethrows -> Double {
        try median { () throws -> Double? in try body(); return nil }
    }

    func peerRun(_ arguments: [String]) -> (seconds: Double, decode: Double?)? {
        guard !noPeer, FileManager.default.fileExists(atPath: peer),
              let data = Peer.run(python, [peer] + arguments + ["--runs", "\(runs)", "--threads", "\(threads)"]),
              let json = Peer.lastJSONObject(data), let median = json["median"] as? Double else { return nil }
        return (median, json["decode_tokens_per_second"] as? Double)
    }
}
