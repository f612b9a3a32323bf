import Console
import ArgumentParser
import Dispatch
import Foundation
import Pipeline
import Prune
import Stream
import Vision
import VLM

extension LiveWindow: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `hiprune-video live`: standing questions and statistics over a rolling window of a live stream.
struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Watch a live stream: per-frame statistics and answers to standing questions over a rolling window.",
        discussion: """
            Events go to stdout as they happen (one JSON object per line with --format jsonl): frames, \
            answers, drops, reconnects, and a summary at the end. SIGINT or SIGTERM ends the run with \
            the summary and exit status 0.
            """)

    @Argument(help: "A live URL FFmpeg reads (udp://, tcp://, rtsp://, srt://, http://) or '-' for stdin.")
    var url: String

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @Option(name: .customLong("question"), help: "A standing question (repeatable); none: statistics only.")
    var questions: [String] = []

    @Option(help: "Answer every this often (e.g. 5s, 500ms).")
    var every = "5s"

    @Option(help: "The window the questions see: N frames (8) or a span of stream time (10s).")
    var window: LiveWindow = .frames(8)

    @Option(help: "Frames per second sampled from the stream.")
    var fps = 1.0

    @OptionGroup var pruning: PruneOptions
    @OptionGroup var encoding: EncoderOptions
    @OptionGroup var preprocessing: PreprocessOptions

    @Option(help: "jsonl or text.")
    var format = "jsonl"

    @Option(help: "Most decoded frames waiting for the encoder (newest win).")
    var capacity = 2

    @Option(help: "Seconds without a frame before the stream counts as stalled and is reopened.")
    var stallTimeout = 5.0

    @Option(help: "Seconds a new connection may take to deliver its first frame.")
    var openTimeout = 10.0

    @Option(help: "First reconnect delay in seconds; it doubles on each failure in a row.")
    var backoff = 0.5

    @Option(help: "Longest reconnect delay in seconds.")
    var backoffMax = 8.0

    @Option(help: "Give up after this many failed reconnects in a row (default: never).")
    var maxReconnects: Int?

    @OptionGroup var generating: GenerationFlags

    @Option(help: .hidden)
    var throttleMilliseconds = 0

    func validate() throws {
        guard let seconds = LiveSettings.seconds(parsing: every), seconds > 0 else {
            throw ValidationError("--every '\(every)' is not a positive duration (5s, 500ms)")
        }
        _ = seconds
        if !(fps > 0 && fps.isFinite) { throw ValidationError("--fps must be a positive number") }
        if format != "jsonl" && format != "text" { throw ValidationError("--format must be jsonl or text") }
        if capacity < 1 { throw ValidationError("--capacity must be at least 1") }
        if let maxReconnects, maxReconnects < 0 { throw ValidationError("--max-reconnects must be 0 or more") }
        if !(stallTimeout > 0) || !(openTimeout > 0) || !(backoff > 0) || !(backoffMax >= backoff) {
            throw ValidationError("--stall-timeout and --backoff must be positive, --backoff-max at least --backoff")
        }
        if pruning.method == .hiprunePlusPlus && questions.count != 1 {
            throw ValidationError("--method hiprune++ prunes each frame once for one question: give exactly one --question")
        }
    }

    func run() async throws {
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder(precision: encoding.encoderPrecision)
        let stage = try PruningStage(settings: pruning.settings, encoder: encoder)
        let answering = questions.isEmpty ? nil : try files.loadAnswerer(precision: generating.weights)
        let generation = generating.options(seed: pruning.seed, stopTokens: answering?.stopTokens ?? [])
        var settings = LiveSettings(questions: questions, every: LiveSettings.seconds(parsing: every) ?? 5, window: window,
                                    capacity: capacity, stallTimeout: stallTimeout, backoffInitial: backoff,
                                    backoffMax: backoffMax, maxReconnects: maxReconnects, generation: generation,
                                    throttleMilliseconds: throttleMilliseconds)
        settings.openTimeout = openTimeout
        let analysis = FrameAnalysis(encoder: encoder, reuseThreshold: encoding.reuse,
                                     preprocessing: preprocessing.preprocess)
        let live = LiveAnalysis(input: url, options: analysis.decodeOptions(DecodeOptions(sampling: .fps(fps)), input: url),
                                settings: settings, analysis: analysis, answering: answering)
        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { live.stop() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let text = format == "text"
        let summary = try await live.run(stage: stage) { event in
            // Unbuffered: a reader of the pipe sees each event as it happens.
            Console.line(text ? Self.text(event) : event.jsonLine(reuse: encoding.reuse > 0))
        }
        // The gave_up event is on stdout for a reader of the events; the cause and the exit status
        // tell a shell too.
        if let cause = summary.gaveUp {
            let own = cause.hasPrefix(url + ": ") ? String(cause.dropFirst(url.count + 2)) : cause
            throw PipelineError.invalidOption(flag: url, cause: "gave up: \(own)")
        }
    }

    static func text(_ event: LiveEvent) -> String {
        switch event {
        case .frame(let s):
            return String(format: "frame %d at %.2f s: %d → %d tokens (%d anchors, %d buffers, %d registers), encode %.0f ms%@",
                          s.index, s.time, s.tokensBefore, s.tokensAfter, s.anchors, s.buffers, s.registers,
                          s.encodeMilliseconds, (s.reused ? " (reused)" : "") as NSString)
        case let .answer(start, end, frames, question, answer, latency, _):
            return String(format: "[%.2f–%.2f s, %d frames, %.0f ms] ", start, end, frames, latency) + "\(question) → \(answer)"
        case let .drops(total, new):
            return "dropped \(new) frames (\(total) in all): the model is slower than the stream"
        case let .reconnect(attempt, delay, cause):
            return String(format: "reconnect %d in %.1f s: ", attempt, delay) + cause
        case let .gaveUp(attempts, cause):
            return "gave up after \(attempts) reconnects: \(cause)"
        case .summary(let s):
            return String(format: "summary: %d frames, tokens %d → %d (%.1f %%), %d answers, %d dropped, %d reconnects, max latency %.0f ms, %.1f s",
                          s.statistics.frames, s.statistics.tokensBefore, s.statistics.tokensAfter,
                          s.statistics.keptFraction * 100, s.answers, s.droppedFrames, s.reconnects,
                          s.maxLatencyMilliseconds, s.wallSeconds)
        }
    }
}
