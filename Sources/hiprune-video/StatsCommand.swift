import Console
import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream
import Vision

/// `hiprune-video stats`: per-frame token statistics, then a summary with the prefill FLOPs saved.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per-frame token statistics: what HiPrune keeps of every sampled frame, and what it saves.")

    @Argument(help: "A video file, '-' for stdin, or a live URL (or --inputs).")
    var input: String?

    @OptionGroup var shards: ShardOptions

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var encoding: EncoderOptions
    @OptionGroup var preprocessing: PreprocessOptions

    @Option(help: "table, jsonl or csv.")
    var format: StatisticsFormat = .table

    @Option(help: "Live inputs only: most frames kept waiting (newest win).")
    var capacity = 4

    func validate() throws {
        if shards.inputs != nil && format != .jsonl {
            throw ValidationError("--inputs writes JSONL (each line names its input): add --format jsonl")
        }
    }

    func run() async throws {
        let selected = try shards.selected(argument: input)
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder(precision: encoding.encoderPrecision)
        if pruning.method == .hiprunePlusPlus {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question; use it with ask or live")
        }
        for (_, input) in selected {
            try await run(input: input, files: files, encoder: encoder, named: shards.inputs != nil)
        }
    }

    func run(input: String, files: ModelFiles, encoder: any FrameEncoder, named: Bool) async throws {
        var stage = try PruningStage(settings: pruning.settings, encoder: encoder)
        let analysis = FrameAnalysis(encoder: encoder, reuseThreshold: encoding.reuse,
                                     preprocessing: preprocessing.preprocess)
        let options = analysis.decodeOptions(sampling.decodeOptions(defaultSampling: .fps(1)), input: input)
        let writer = StatisticsWriter(format: format, languageModel: try? files.languageModelShape(),
                                      reuse: encoding.reuse > 0, input: named ? input : nil)
        var total: Int?
        if case .uniform(let count) = options.sampling { total = count }
        let progress = ProgressLine(total: total)
        var summary = StatisticsSummary()
        // A file has an end, so its rows wait for it: a truncated or corrupt file gives one error
        // line and nothing on stdout. Live inputs and stdin may never end: their rows stream (the
        // header with the first row).
        let streams = InputKind.isLive(input) || InputKind(input) == .stdin
        var held: [String] = []
        func put(_ line: String) { if streams { Console.line(line) } else { held.append(line) } }
        func emit(_ statistics: FrameStatistics) {
            if summary.frames == 0, let header = writer.header { put(header) }
            put(writer.row(statistics))
            summary.add(statistics)
            progress.update(done: summary.frames)
        }
        if InputKind.isLive(input) {
            let frames = LiveFrames(input: input, options: options, capacity: capacity)
            try await analysis.prune(frames, stage: &stage) { _, _, statistics in emit(statistics) }
        } else {
            try await analysis.prune(VideoFrames(input: input, options: options), stage: &stage) { _, _, statistics in
                emit(statistics)
            }
        }
        progress.finish()
        guard summary.frames > 0 else { throw PipelineError.invalidOption(flag: input, cause: "no frame was sampled") }
        for line in held { Console.line(line) }
        Console.line(writer.summary(summary))
        sampling.warnIfShort(input: input, sampled: summary.frames)
    }
}
