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

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var pruning: PruneOptions

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
        let family = try ModelFamily.detect(directory: model)
        let encoder = try family.loadEncoder(directory: model)
        if pruning.method == .hiprunePlusPlus {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question; use it with ask or live")
        }
        for (_, input) in selected {
            try await run(input: input, family: family, encoder: encoder, named: shards.inputs != nil)
        }
    }

    func run(input: String, family: ModelFamily, encoder: any FrameEncoder, named: Bool) async throws {
        var stage = try PruningStage(settings: pruning.settings, encoder: encoder)
        let analysis = FrameAnalysis(encoder: encoder)
        let options = analysis.decodeOptions(sampling.decodeOptions(defaultSampling: .fps(1)), input: input)
        let writer = StatisticsWriter(format: format, languageModel: try? family.languageModelShape(directory: model),
                                      input: named ? input : nil)
        var total: Int?
        if case .uniform(let count) = options.sampling { total = count }
        let progress = ProgressLine(total: total)
        var summary = StatisticsSummary()
        // Rows are printed as they come; the header waits for the first row so that an input
        // that fails at once leaves nothing on stdout.
        var printedHeader = false
        func emit(_ statistics: FrameStatistics) {
            if !printedHeader, let header = writer.header { print(header) }
            printedHeader = true
            print(writer.row(statistics))
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
        print(writer.summary(summary))
    }
}
