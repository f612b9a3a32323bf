import ArgumentParser
import Foundation
import Tensor
import VLM

/// `hiprune-bench prefill`: the SmolVLM2-256M text decoder (SmolLM2-135M shapes, random weights):
/// prefill seconds at 612, 268 and 142 tokens (64 frames' worth of visual tokens at 100 %, 33 % and
/// 11 % plus text) and decode tokens/s with weights held F32 and BF16, beside PyTorch transformers
/// and llama.cpp on the same shapes. Decode reads every weight once per token, so it is also shown
/// against its roofline: the machine's streaming-read bandwidth over the bytes of weights per token.
struct PrefillBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefill",
        abstract: "Decoder prefill time at 612/268/142 tokens, decode tokens/s in F32 and BF16 against the memory roofline (SmolLM2-135M shapes); PyTorch and llama.cpp peers.")

    @OptionGroup var timing: DecoderTimingOptions
    var runs: Int { timing.runs ?? 5 }
    var decodeTokens: Int { timing.decodeTokens ?? 64 }

    @Option(help: "Python for the PyTorch peer (tools/bench_torch_lm.py); skipped if it does not exist.")
    var python = Peer.defaultPython

    @Option(help: "The peer script.")
    var peerScript = "tools/bench_torch_lm.py"

    @Option(help: "llama.cpp's llama-bench, run beside ours on --gguf (skipped if either is missing).")
    var llamaBench: String?

    @Option(help: "A GGUF of the same shapes for llama-bench (e.g. SmolLM2-135M-Instruct requantized to F32).")
    var gguf: String?

    @Option(help: "The same model as a BF16 GGUF (llama-quantize IN.gguf OUT.gguf BF16): llama-bench decode beside our BF16 row.")
    var ggufBf16: String?

    @Option(help: "MB read by the memory-bandwidth probe (streaming sum over all cores).")
    var probeMegabytes = 512

    static let lengths = [612, 268, 142]
    static let targets: [Int: Double] = [612: 0.45, 268: 0.2, 142: 0.12]

    func run() async throws {
        guard runs >= 1, decodeTokens >= 1 else { throw ValidationError("--runs and --decode-tokens must be at least 1") }
        var c = LlamaConfiguration()
        c.vocabularySize = 49280
        c.hiddenSize = 576
        c.intermediateSize = 1536
        c.layers = 30
        c.heads = 9
        c.kvHeads = 3
        c.headDimension = 64
        c.maxPositions = 8192
        c.rmsNormEps = 1e-5
        c.ropeTheta = 100_000
        c.tieWordEmbeddings = true
        let model = try LlamaModel(randomWeights: c, seed: 1)
        let session = try DecoderSession(model: model, context: 1024)
        let modelBF16 = try LlamaModel(randomWeights: c, seed: 1, precision: .bfloat16)
        let sessionBF16 = try DecoderSession(model: modelBF16, context: 1024)
        var random = UInt64(12345)
        func token() -> Int {
            random = random &* 6364136223846793005 &+ 1442695040888963407
            return Int((random >> 33) % UInt64(c.vocabularySize))
        }
        var prefill: [Int: Double] = [:]
        for n in Self.lengths {
            let ids = (0..<n).map { _ in token() }
            prefill[n] = try median(runs) {
                session.cache.truncate(to: 0)
                try session.prefill(tokens: ids)
            }
        }
        let promptIDs = (0..<142).map { _ in token() }
        func measureDecode(_ session: DecoderSession) throws -> Double {
            session.cache.truncate(to: 0)
            try session.prefill(tokens: promptIDs)
            var next = argmax(session.logits)
            let start = DispatchTime.now()
            for _ in 0..<decodeTokens {
                try session.step(token: next)
                next = argmax(session.logits)
            }
            return Double(decodeTokens) / (Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
        }
        // Interleaved, so load from other work on the machine hits both precisions alike.
        var rates: [Double] = [], ratesBF16: [Double] = [], bandwidths: [Double] = []
        _ = try measureDecode(session)
        _ = try measureDecode(sessionBF16)
        for _ in 0..<runs {
            rates.append(try measureDecode(session))
            ratesBF16.append(try measureDecode(sessionBF16))
            bandwidths.append(DecodeTeam.streamingBandwidth(megabytes: probeMegabytes, passes: 2) ?? .nan)
        }
        let decodeRate = middle(rates), decodeRateBF16 = middle(ratesBF16), bandwidth = middle(bandwidths)
        let peer = torchPeer()
        print("decoder: hidden 576, 30 layers, 9 heads / 3 kv heads, intermediate 1536, vocab 49280, random weights")
        print("median of \(runs) runs; decode: \(decodeTokens) tokens after a 142-token prompt")
        print("case            swift      torch   torch/swift   target")
        for n in Self.lengths {
            let ours = prefill[n] ?? .nan
            let theirs = (peer?["prefill"] as? [String: Double])?[String(n)]
            print(String(format: "prefill %4d  %7.3f s  ", n, ours) + (theirs.map { String(format: "%7.3f s   %8.2fx", $0, $0 / ours) } ?? "      -            -")
                  + String(format: "   ≤ %.2f s", Self.targets[n] ?? 0))
        }
        let theirRate = peer?["decode_tokens_per_second"] as? Double
        print(String(format: "decode F32   %7.1f t/s ", decodeRate)
              + (theirRate.map { String(format: "%6.1f t/s  %8.2fx", $0, decodeRate / $0) } ?? "      -            -")
              + "   ≥ 52 t/s   (ratio: swift/torch for decode)")
        if peer == nil { print("torch peer skipped: \(python) not found or \(peerScript) failed") }

        // Roofline: every weight matrix is read once per token (the embedding row is noise), and the
        // F32 KV cache up to the step's position (its mean over the timed steps).
        let perLayer = (c.heads + 2 * c.kvHeads) * c.headDimension * c.hiddenSize + c.hiddenSize * c.heads * c.headDimension
            + 3 * c.intermediateSize * c.hiddenSize
        let weights = Double(c.layers * perLayer + c.vocabularySize * c.hiddenSize)
        let meanContext = Double(promptIDs.count) + Double(decodeTokens + 1) / 2
        let cacheBytes = Double(2 * c.layers * c.kvHeads * c.headDimension * 4) * meanContext
        print(String(format: "memory bandwidth: %.1f GB/s (streaming sum of %d MB of weight memory on %d threads, median of runs), kernels: ",
                     bandwidth / 1e9, probeMegabytes, DecodeTeam.size) + InstructionSet.active.description)
        print(String(format: "bytes per token: weights + %.1f MB of KV cache (mean context %.0f)", cacheBytes / 1e6, meanContext))
        print("decode        swift       MB/token   roofline   % of roofline   target")
        for (name, rate, bytes, target) in [("F32 ", decodeRate, 4.0, "≥ 52 t/s"),
                                            ("BF16", decodeRateBF16, 2.0, String(format: "≥ %.1f t/s (1.6x F32)", 1.6 * decodeRate))] {
            let perToken = weights * bytes + cacheBytes
            let roof = bandwidth / perToken
            print(name + String(format: "        %6.1f t/s  %7.1f    %6.1f t/s   %9.1f %%   ", rate, perToken / 1e6, roof,
                                100 * rate / roof) + target)
        }
        print(String(format: "BF16 / F32: %.2fx", decodeRateBF16 / decodeRate))

        if let llama = llamaCppPeer(gguf: gguf, prompts: Self.lengths, depth: promptIDs.count) {
            print("llama.cpp (llama-bench, 2 threads, \((gguf as NSString?)?.lastPathComponent ?? "")):")
            print("case            swift   llama.cpp   llama/swift")
            for n in Self.lengths {
                guard let theirs = llama.prefill[n], let ours = prefill[n] else { continue }
                print(String(format: "prefill %4d  %7.3f s  %7.3f s   %8.2fx", n, ours, theirs, theirs / ours))
            }
            if let rate = llama.decode {
                print(String(format: "decode F32   %7.1f t/s %6.1f t/s   %8.2fx (swift/llama)", decodeRate, rate, decodeRate / rate))
            }
        } else if llamaBench != nil {
            print("llama.cpp peer skipped: llama-bench or --gguf missing, or it failed")
        }
        if ggufBf16 != nil {
            if let rate = llamaCppPeer(gguf: ggufBf16, prompts: [], depth: promptIDs.count)?.decode {
                print("llama.cpp BF16 (\((ggufBf16! as NSString).lastPathComponent)):")
                print(String(format: "decode BF16  %7.1f t/s %6.1f t/s   %8.2fx (swift/llama)", decodeRateBF16, rate, decodeRateBF16 / rate))
            } else {
                print("llama.cpp BF16 peer skipped: llama-bench or --gguf-bf16 missing, or it failed")
            }
        }
    }

    private func middle(_ samples: [Double]) -> Double { samples.sorted()[samples.count / 2] }

    private func median(_ runs: Int, _ body: () throws -> Void) throws -> Double {
        try body()  // warm-up
        var samples: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now()
            try body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
        }
        return samples.sorted()[samples.count / 2]
    }

    private func llamaCppPeer(gguf: String?, prompts: [Int], depth: Int) -> (prefill: [Int: Double], decode: Double?)? {
        guard let llamaBench, let gguf else { return nil }
        return Peer.llamaBench(llamaBench, gguf: gguf, prompts: prompts, depth: depth, runs: runs, decodeTokens: decodeTokens)
    }

    private func torchPeer() -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: peerScript),
              let data = Peer.run(python, [peerScript, "--runs", String(runs), "--decode-tokens", String(decodeTokens)]) else { return nil }
        return Peer.lastJSONObject(data)
    }
}

