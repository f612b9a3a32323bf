import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream
import Tensor
import Vision
import VLM

/// `hiprune-bench ask`: the whole question — decode, encode, prune, prefill, generation — on a clip
/// with a model directory (by default the random-weight SmolVLM2-256M-shaped one that
/// tools/make_bench_model.py writes), at several budgets. It drives the same Pipeline pieces `ask`
/// does (FrameAnalysis.prune, then the family's VideoAnswerer), so it times what a user waits for.
struct AskBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "One video question end to end at budgets 1.0 / 0.33 / 0.11: each stage's time and share, total vs unpruned.")

    @Option(help: "Model directory (tools/make_bench_model.py DIR writes a random-weight one at SmolVLM2-256M's shapes). Default: $HIPRUNE_BENCH_MODEL, else .cache/bench-models/smolvlm2-256m-random.")
    var model: String?

    @Option(help: "The clip.")
    var clip = "media/bigbuckbunny.mp4"

    @Option(help: "Frames sampled evenly over the clip.")
    var frames = 8

    @Option(parsing: .upToNextOption, help: "Budgets (share of each frame's tokens kept); the first is the reference for the ratio.")
    var budgets: [Double] = [1.0, 0.33, 0.11]

    @Option(help: "Generated tokens per answer (stop tokens are ignored so every run generates as many).")
    var maxTokens = 32

    @Option(help: "Runs per budget (median of each stage reported).")
    var runs = 1

    @Option(help: "The question.")
    var question = "What happens in this video?"

    @Option(help: "Reuse threshold (--reuse of ask) applied to the sampled frames; 0 encodes every frame.")
    var reuse = 0.0

    @Option(help: "--encoder-precision of ask: auto, f32 or bf16.")
    var encoderPrecision = "auto"

    struct Stages {
        var decode = 0.0, encode = 0.0, prune = 0.0, prefill = 0.0, generation = 0.0, total = 0.0
        var keptTokens = 0, allTokens = 0, promptTokens = 0, generated = 0, reused = 0
    }

    func run() async throws {
        guard runs >= 1, frames >= 1, !budgets.isEmpty else { throw ValidationError("--runs, --frames and --budgets must be positive") }
        for budget in budgets where !(budget > 0 && budget <= 1) { throw ValidationError("budget \(budget) is outside (0, 1]") }
        let directory = model ?? ProcessInfo.processInfo.environment["HIPRUNE_BENCH_MODEL"] ?? ".cache/bench-models/smolvlm2-256m-random"
        guard FileManager.default.fileExists(atPath: directory + "/config.json") else {
            throw ValidationError("\(directory): no model directory (make one: python tools/make_bench_model.py \(directory))")
        }
        let loadStart = DispatchTime.now()
        let family = try ModelFamily.detect(directory: directory)
        guard let precision = EncoderPrecision(rawValue: encoderPrecision) else {
            throw ValidationError("--encoder-precision \(encoderPrecision): expected auto, f32 or bf16")
        }
        let encoder = try family.loadEncoder(directory: directory, precision: precision)
        let answering = try family.loadAnswerer(directory: directory)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e9
        let generation = GenerationOptions(maxNewTokens: maxTokens, sampling: SamplingParameters(), stopTokens: [])

        print("\(directory): \(family.name) " + String(format: "loaded in %.1f s", loadSeconds)
              + ", encoder precision \(precision.resolved) (\(precision))")
        print("\(clip), \(frames) frames, \(maxTokens) generated tokens, median of \(runs) run\(runs == 1 ? "" : "s") per budget")

        var results: [(Double, Stages)] = []
        for budget in budgets {
            var samples: [Stages] = []
            for _ in 0..<runs { samples.append(try await once(budget: budget, encoder: encoder, answering: answering, generation: generation)) }
            func median(_ key: KeyPath<Stages, Double>) -> Double { samples.map { $0[keyPath: key] }.sorted()[samples.count / 2] }
            var s = samples[0]
            s.decode = median(\.decode); s.encode = median(\.encode); s.prune = median(\.prune)
            s.prefill = median(\.prefill); s.generation = median(\.generation); s.total = median(\.total)
            results.append((budget, s))
        }
        print("budget  tokens      decode s    encode s     prune s   prefill s  generate s     total s   vs \(budgets[0])")
        let reference = results[0].1.total
        for (budget, s) in results {
            func cell(_ v: Double) -> String { String(format: "%6.2f %3.0f%%", v, v / s.total * 100) }
            print(String(format: "%6.2f %7d  ", budget, s.keptTokens)
                  + [s.decode, s.encode, s.prune, s.prefill, s.generation].map(cell).joined(separator: "  ")
                  + String(format: "  %8.2f   %5.2f×", s.total, s.total / reference))
        }
        if let s = results.first?.1 {
            print("prompt \(s.promptTokens) tokens at budget \(budgets[0]) (visual \(s.allTokens)); \(s.reused) of \(frames) frames reused")
        }
    }

    /// One question, timed per stage, as `ask` runs it.
    func once(budget: Double, encoder: any FrameEncoder, answering: any VideoAnswerer,
              generation: GenerationOptions) async throws -> Stages {
        let start = DispatchTime.now()
        let analysis = FrameAnalysis(encoder: encoder, reuseThreshold: reuse)
        var stage = try PruningStage(settings: PruneSettings(budget: .ratio(budget)), encoder: encoder)
        let options = analysis.decodeOptions(DecodeOptions(sampling: .uniform(count: frames)), input: clip)
        var pruned: [PrunedFrame] = []
        var summary = StatisticsSummary()
        try await analysis.prune(VideoFrames(input: clip, options: options), stage: &stage) { _, frame, statistics in
            pruned.append(frame)
            summary.add(statistics)
        }
        let frameSeconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        guard let last = pruned.last else { throw ValidationError("\(clip): no frame was sampled") }
        let duration = (try? VideoSourceInfo.probe(clip).duration).flatMap { $0 } ?? last.time
        let result = try answering.answer(frames: pruned, duration: duration, questions: [question], generation: generation) { _, _ in }
        let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        guard let answer = result.answers.first else { throw ValidationError("no answer") }
        var s = Stages()
        s.encode = summary.encodeMilliseconds / 1000
        s.prune = summary.pruneMilliseconds / 1000
        s.decode = max(0, frameSeconds - s.encode - s.prune)
        s.prefill = (answer.prefillMilliseconds + result.sharedPrefixMilliseconds) / 1000
        s.generation = answer.decodeSeconds
        s.total = total
        s.keptTokens = summary.tokensAfter
        s.allTokens = summary.tokensBefore
        s.promptTokens = answer.promptTokens
        s.generated = answer.tokens.count
        s.reused = summary.reusedFrames
        return s
    }
}
