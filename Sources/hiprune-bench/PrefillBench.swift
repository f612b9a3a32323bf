import ArgumentParser
import Foundation
import VLM

/// `hiprune-bench prefill`: the SmolVLM2-256M text decoder (SmolLM2-135M shapes, random Float32
/// weights): prefill seconds at 612, 268 and 142 tokens (64 frames' worth of visual tokens at
/// 100 %, 33 % and 11 % plus text) and decode tokens/s, beside PyTorch transformers on the same shapes.
struct PrefillBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefill",
        abstract: "Decoder prefill time at 612/268/142 tokens and decode tokens/s (SmolLM2-135M shapes); PyTorch peer.")

    @Option(help: "Timed runs per case (median reported).")
    var runs = 5

    @Option(help: "Tokens generated per decode run.")
    var decodeTokens = 64

    @Option(help: "Python for the PyTorch peer (tools/bench_torch_lm.py); skipped if it does not exist.")
    var python = "/work/venv/py/bin/python"

    @Option(help: "The peer script.")
    var peerScript = "tools/bench_torch_lm.py"

    @Option(help: "llama.cpp's llama-bench, run beside ours on --gguf (skipped if either is missing).")
    var llamaBench: String?

    @Option(help: "A GGUF of the same shapes for llama-bench (e.g. SmolLM2-135M-Instruct requantized to F32).")
    var gguf: String?

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
        var rates: [Double] = []
        for _ in 0..<runs {
            session.cache.truncate(to: 0)
            try session.prefill(tokens: promptIDs)
            var next = argmax(session.logits)
            let start = DispatchTime.now()
            for _ in 0..<decodeTokens {
                try session.step(token: next)
                next = argmax(session.logits)
            }
            rates.append(Double(decodeTokens) / (Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9))
        }
        let decodeRate = rates.sorted()[rates.count / 2]
        let peer = torchPeer()
        print("decoder: hidden 576, 30 layers, 9 heads / 3 kv heads, intermediate 1536, vocab 49280, Float32, random weights")
        print("median of \(runs) runs; decode: \(decodeTokens) tokens after a 142-token prompt")
        print("case            swift      torch   torch/swift   target")
        for n in Self.lengths {
            let ours = prefill[n] ?? .nan
            let theirs = (peer?["prefill"] as? [String: Double])?[String(n)]
            print(String(format: "prefill %4d  %7.3f s  ", n, ours) + (theirs.map { String(format: "%7.3f s   %8.2fx", $0, $0 / ours) } ?? "      -            -")
                  + String(format: "   ≤ %.2f s", Self.targets[n] ?? 0))
        }
        let theirRate = peer?["decode_tokens_per_second"] as? Double
        print(String(format: "decode       %7.1f t/s ", decodeRate)
              + (theirRate.map { String(format: "%6.1f t/s  %8.2fx", $0, decodeRate / $0) } ?? "      -            -")
              + "   ≥ 90 t/s   (ratio: swift/torch for decode)")
        if peer == nil { print("torch peer skipped: \(python) not found or \(peerScript) failed") }
        if let llama = llamaCppPeer() {
            print("llama.cpp (llama-bench, 2 threads, \((gguf as NSString?)?.lastPathComponent ?? "")):")
            print("case            swift   llama.cpp   llama/swift")
            for n in Self.lengths {
                guard let theirs = llama.prefill[n], let ours = prefill[n] else { continue }
                print(String(format: "prefill %4d  %7.3f s  %7.3f s   %8.2fx", n, ours, theirs, theirs / ours))
            }
            if let rate = llama.decode {
                print(String(format: "decode       %7.1f t/s %6.1f t/s   %8.2fx (swift/llama)", decodeRate, rate, decodeRate / rate))
            }
        } else if llamaBench != nil {
            print("llama.cpp peer skipped: llama-bench or --gguf missing, or it failed")
        }
    }

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

    /// llama-bench's JSON: prompt tests give tokens/s over n_prompt tokens, generation tests tokens/s.
    private func llamaCppPeer() -> (prefill: [Int: Double], decode: Double?)? {
        guard let llamaBench, let gguf, FileManager.default.isExecutableFile(atPath: llamaBench),
              FileManager.default.fileExists(atPath: gguf) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: llamaBench)
        process.arguments = ["-m", gguf, "-t", "2", "-r", String(runs), "-o", "json",
                             "-p", Self.lengths.map(String.init).joined(separator: ","), "-n", String(decodeTokens)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let rows = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return nil }
        var prefill: [Int: Double] = [:]
        var decode: Double?
        for row in rows {
            let prompt = row["n_prompt"] as? Int ?? 0, generated = row["n_gen"] as? Int ?? 0
            guard let rate = row["avg_ts"] as? Double, rate > 0 else { continue }
            if prompt > 0 && generated == 0 { prefill[prompt] = Double(prompt) / rate }
            if generated > 0 && prompt == 0 { decode = rate }
        }
        return (prefill, decode)
    }

    private func torchPeer() -> [String: Any]? {
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: peerScript) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peerScript, "--runs", String(runs), "--decode-tokens", String(decodeTokens)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        return object
    }
}
