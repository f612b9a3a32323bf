import Console
import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream
import Vision
import VLM

/// `hiprune-video ask`: answer questions about a video from its pruned frames.
struct AskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer questions about a video with a fraction of its visual tokens.",
        discussion: """
            All sampled frames go through one prefill; further questions (--question, --questions) \
            reuse the encoded and pruned frames and the cache of the prompt they share. The answer \
            streams to stdout; a timing summary goes to stderr.
            """)

    @Argument(help: "A video file, an image, or '-' for stdin.")
    var input: String

    @Argument(help: "The question.")
    var question: String?

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @Option(name: .customLong("question"), help: "Another question about the same video (repeatable).")
    var moreQuestions: [String] = []

    @Option(help: "A file with one question per line.")
    var questions: String?

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var encoding: EncoderOptions
    @OptionGroup var preprocessing: PreprocessOptions

    @OptionGroup var generating: GenerationFlags

    @Flag(help: "Print one JSON object with the answers, their token ids and the timings.")
    var json = false

    func allQuestions() throws -> [String] {
        var all = (question.map { [$0] } ?? []) + moreQuestions
        if let questions {
            guard let text = try? String(contentsOfFile: questions, encoding: .utf8) else {
                throw PipelineError.unreadableConfiguration(file: questions, cause: "cannot read the questions file")
            }
            all += text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        }
        guard !all.isEmpty else { throw ValidationError("ask needs a question (an argument, --question or --questions)") }
        return all
    }

    func run() async throws {
        let questions = try allQuestions()
        let clock = ContinuousClock()
        let loadStart = clock.now
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder(precision: encoding.encoderPrecision)
        let answering = try files.loadAnswerer(precision: generating.weights)
        var flow = try VideoQuestionFlow(answerer: answering, stage: try PruningStage(settings: pruning.settings, encoder: encoder),
                                         questions: questions)
        let generation = generating.options(seed: pruning.seed, stopTokens: answering.stopTokens)
        try generation.sampling.validate()
        let loadSeconds = (clock.now - loadStart).seconds

        let analysis = FrameAnalysis(encoder: encoder, reuseThreshold: encoding.reuse,
                                     preprocessing: preprocessing.preprocess)
        let options = analysis.decodeOptions(sampling.decodeOptions(defaultSampling: files.family.defaultSampling), input: input)
        let frameStart = clock.now
        var encodedSteps: [FrameAnalysis.Step] = []
        var pruned: [PrunedFrame] = []
        var summary = StatisticsSummary()
        let progress = ProgressLine(total: { if case .uniform(let n) = options.sampling { return n } else { return nil } }())
        // The prompt must fit the context: fail at the first frame that shows it cannot, not after encoding them all.
        var budget = ContextBudget(context: try files.languageModelShape().maxPositions,
                                   expectedSteps: ContextBudget.expectedSteps(input: input, options: options,
                                                                              framesPerStep: encoder.framesPerStep))
        try await analysis.encode(VideoFrames(input: input, options: options), scoreLayers: flow.stage.scoreLayers) { step in
            if flow.keepsEncodedFrames {
                encodedSteps.append(step)
            } else {
                let (frame, statistics) = try flow.prune(step)
                try budget.add(tokens: statistics.tokensAfter)
                pruned.append(frame)
                summary.add(statistics)
            }
            progress.update(done: encodedSteps.count + pruned.count)
        }
        progress.finish()
        let frameSeconds = (clock.now - frameStart).seconds
        let clip: VideoQuestionFlow.Clip = flow.keepsEncodedFrames ? .encoded(encodedSteps) : .pruned(pruned)
        guard let lastTime = encodedSteps.last?.time ?? pruned.last?.time else {
            throw PipelineError.invalidOption(flag: input, cause: "no frame was sampled")
        }
        sampling.warnIfShort(input: input, sampled: (encodedSteps.count + pruned.count) * encoder.framesPerStep)
        let duration = InputKind.canReopen(input) ? (try? VideoSourceInfo.probe(input).duration).flatMap { $0 } ?? lastTime : lastTime

        var current = 0
        let result = try flow.answer(clip, duration: duration, generation: generation) { q, piece in
            guard !json else { return }
            if q != current { Console.out("\n"); current = q }
            Console.out(piece)
        }
        if !json { Console.out("\n") }
        if !result.statistics.isEmpty {
            // HiPrune++ pruned anew for each question: report the frames the last answer saw.
            summary = StatisticsSummary()
            result.statistics.forEach { summary.add($0) }
            summary.encodeMilliseconds = encodedSteps.reduce(0) { $0 + $1.encodeMilliseconds }
        }
        var grids: [String] = []
        for frame in result.frames {
            let grid = FrameStatistics.describe(frame.views.map(\.grid))
            if !grids.contains(grid) { grids.append(grid) }
        }
        let report = AskReport(loadSeconds: loadSeconds, frameSeconds: frameSeconds, summary: summary, grids: grids,
                               answers: result.answers, sharedPrefixTokens: result.sharedPrefixTokens,
                               sharedPrefixMilliseconds: result.sharedPrefixMilliseconds)
        if json {
            Console.line(report.json())
        } else {
            Console.err(report.text())
        }
    }
}

/// The figures of one `ask` run, as text for stderr or one JSON object.
struct AskReport {
    var loadSeconds: Double
    var frameSeconds: Double
    var summary: StatisticsSummary
    /// Each distinct token grid, in order (one for SmolVLM; per aspect ratio for Qwen2.5-VL).
    var grids: [String]
    var answers: [VideoAnswer]
    var sharedPrefixTokens: Int
    var sharedPrefixMilliseconds: Double

    var decodeMilliseconds: Double {
        max(0, frameSeconds * 1000 - summary.encodeMilliseconds - summary.pruneMilliseconds)
    }

    func text() -> String {
        var lines = [
            String(format: "load %.0f ms | %d encoder steps (grid %@): decode %.0f ms, encode %.0f ms, prune %.2f ms",
                   loadSeconds * 1000, summary.frames, grids.joined(separator: ", ") as NSString, decodeMilliseconds,
                   summary.encodeMilliseconds, summary.pruneMilliseconds),
            String(format: "visual tokens %d → %d (kept %.1f %%)", summary.tokensBefore, summary.tokensAfter,
                   summary.keptFraction * 100),
        ]
        if answers.count > 1 {
            lines.append(String(format: "shared prompt prefix %d tokens prefilled once in %.0f ms",
                                sharedPrefixTokens, sharedPrefixMilliseconds))
        }
        for (i, a) in answers.enumerated() {
            let label = answers.count > 1 ? "question \(i + 1): " : ""
            let own = a.promptTokens - a.reusedPrefixTokens
            let prefillTokens = answers.count > 1 ? own : a.promptTokens
            let prefillMilliseconds = answers.count > 1 ? a.prefillMilliseconds : a.prefillMilliseconds + sharedPrefixMilliseconds
            let unpruned = a.unprunedPromptTokens.map { " (\($0) unpruned)" } ?? ""
            lines.append(label + String(format: "prefill %d tokens%@ in %.0f ms | generated %d tokens, %.1f tokens/s",
                                        prefillTokens, unpruned as NSString, prefillMilliseconds, a.tokens.count,
                                        a.tokensPerSecond))
        }
        return lines.joined(separator: "\n")
    }

    func json() -> String {
        var fields: [(String, JSONLine.Value)] = []
        if answers.count == 1, let a = answers.first {
            fields += [("question", .string(a.question)), ("answer", .string(a.text)),
                       ("token_ids", .array(a.tokens.map { .int($0) }))]
        }
        let list: [JSONLine.Value] = answers.map { a in
            .object([
                ("question", .string(a.question)), ("answer", .string(a.text)),
                ("token_ids", .array(a.tokens.map { .int($0) })), ("prompt_tokens", .int(a.promptTokens)),
                ("reused_prefix_tokens", .int(a.reusedPrefixTokens)), ("prefill_ms", .double(a.prefillMilliseconds)),
                ("generated_tokens", .int(a.tokens.count)), ("tokens_per_second", .double(a.tokensPerSecond)),
                ("unpruned_prompt_tokens", a.unprunedPromptTokens.map { .int($0) } ?? .null),
            ])
        }
        fields += [
            ("answers", .array(list)),
            ("frames", .int(summary.frames)), ("grids", .array(grids.map { .string($0) })), ("visual_tokens_before", .int(summary.tokensBefore)),
            ("visual_tokens_after", .int(summary.tokensAfter)), ("load_ms", .double(loadSeconds * 1000)),
            ("decode_ms", .double(decodeMilliseconds)), ("encode_ms", .double(summary.encodeMilliseconds)),
            ("prune_ms", .double(summary.pruneMilliseconds)), ("shared_prefix_tokens", .int(sharedPrefixTokens)),
            ("shared_prefix_ms", .double(sharedPrefixMilliseconds)),
        ]
        if let a = answers.first {
            fields += [("prefill_tokens", .int(a.promptTokens)),
                       ("prefill_ms", .double(a.prefillMilliseconds + sharedPrefixMilliseconds)),
                       ("tokens_per_second", .double(a.tokensPerSecond))]
        }
        return JSONLine.object(fields)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
