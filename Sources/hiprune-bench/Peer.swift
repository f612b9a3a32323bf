import ArgumentParser
import Foundation

/// Peer programs (PyTorch scripts, llama.cpp tools, numpy) run beside our own measurements.
enum Peer {
    enum Capture { case standardOutput, standardError }

    /// Runs `executable` to completion and returns what it wrote to `capture` (the other stream is
    /// discarded), or nil when it cannot start or exits non-zero: a missing peer skips its column.
    static func run(_ executable: String, _ arguments: [String], capture: Capture = .standardOutput,
                    environment: [String: String]? = nil) -> Data? {
        guard let executable = resolve(executable) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = capture == .standardOutput ? pipe : FileHandle.nullDevice
        process.standardError = capture == .standardError ? pipe : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? data : nil
    }

    /// The last line of a peer's output as a JSON object (the scripts print their result last).
    static func lastJSONObject(_ data: Data) -> [String: Any]? {
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    /// llama.cpp's llama-bench on `gguf` (2 threads, `runs` repetitions, JSON): seconds per prompt of
    /// each length in `prompts` (timed on an empty context), and decode tokens/s after `depth` tokens,
    /// as ours decodes after its prompt. No prompt lengths: decode only. Nil when it cannot run.
    static func llamaBench(_ executable: String, gguf: String, prompts: [Int], depth: Int, runs: Int,
                           decodeTokens: Int, threads: Int = 2) -> (prefill: [Int: Double], decode: Double?)? {
        guard FileManager.default.fileExists(atPath: gguf),
              let data = run(executable, ["-m", gguf, "-t", String(threads), "-r", String(runs), "-o", "json",
                                          "-p", prompts.isEmpty ? "0" : prompts.map(String.init).joined(separator: ","),
                                          "-n", String(decodeTokens), "-d", prompts.isEmpty ? String(depth) : "0,\(depth)"]),
              let rows = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return nil }
        var prefill: [Int: Double] = [:]
        var decode: Double?
        for row in rows {
            let prompt = row["n_prompt"] as? Int ?? 0, generated = row["n_gen"] as? Int ?? 0, at = row["n_depth"] as? Int ?? 0
            guard let rate = row["avg_ts"] as? Double, rate > 0 else { continue }
            if prompt > 0 && generated == 0 && at == 0 { prefill[prompt] = Double(prompt) / rate }
            if generated > 0 && prompt == 0 && at == depth { decode = rate }
        }
        return (prefill, decode)
    }
}

extension Peer {
    /// The Python that runs the peers: $HIPRUNE_PYTHON, else `python3` on PATH (the README says so).
    static var defaultPython: String { ProcessInfo.processInfo.environment["HIPRUNE_PYTHON"] ?? "python3" }

    /// `name` as an executable path: itself when it has a slash, else the first match on PATH.
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// The timing options of the decoder benchmarks (prefill, quant, llava), defined once; each bench
/// keeps its own defaults (its cases differ in length), which the help names.
struct DecoderTimingOptions: ParsableArguments {
    @Option(help: "Timed runs per case, median reported (default: prefill 5, quant 3, llava 1 with no warm-up: its cases are long).")
    var runs: Int?

    @Option(help: "Tokens generated per decode run, after the prompt (default: prefill 64, quant 32, llava 8).")
    var decodeTokens: Int?
}
