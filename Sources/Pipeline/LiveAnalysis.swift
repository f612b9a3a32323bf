import Console
import Foundation
import Prune
import Stream
import Vision
import VLM

// LiveAnalysis — standing questions and statistics over a rolling window of a live stream.
//
// Buffering: the live source keeps at most `capacity` decoded frames (newest win, drops counted);
//   the window keeps at most `window` pruned frames — their kept features, never pixels.
// Back-pressure: none reaches the stream. While a frame is encoded or a question answered, new
//   frames wait in the source's ring and the oldest are dropped, so the answer's latency is
//   bounded by one encode plus one answer, never by a queue.
// Work: each frame is encoded and pruned once; every answer reuses the window's pruned frames.
// Ending: a file or stdin ends the run at its end (no replay). When a network stream ends, fails
//   or stalls (nothing received — no frame and no byte — for `stallTimeout`), the source is
//   closed and reopened (a new connection gets `openTimeout` for its first frame) after a backoff that doubles from `backoffInitial` up to `backoffMax`;
//   `maxReconnects` bounds the attempts in a row (nil: no bound). `stop()` (SIGINT/SIGTERM)
//   closes the source at once; `run` then returns with the summary event.

/// How much of the recent past the questions see.
public enum LiveWindow: Sendable, Equatable, CustomStringConvertible {
    case frames(Int)
    case seconds(Double)

    /// `8` (frames) or `10s` (seconds of stream time).
    public init?(parsing text: String) {
        if text.hasSuffix("s"), let seconds = LiveSettings.seconds(parsing: text), seconds > 0 {
            self = .seconds(seconds)
        } else if let count = Int(text), count > 0 {
            self = .frames(count)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .frames(let n): return "\(n) frames"
        case .seconds(let s): return "\(s) s"
        }
    }
}

public struct LiveSettings: Sendable {
    public var questions: [String]
    public var every: Double
    public var window: LiveWindow
    /// Most frames a seconds-window may hold, whatever the stream's rate.
    public var windowLimit = 256
    public var capacity: Int
    public var stallTimeout: Double
    /// Seconds a new connection may take to deliver its first frame.
    public var openTimeout: Double
    public var backoffInitial: Double
    public var backoffMax: Double
    public var maxReconnects: Int?
    public var generation: GenerationOptions
    /// Extra time spent on every frame: slows the consumer on purpose (tests of drop handling).
    public var throttleMilliseconds: Int

    public init(questions: [String], every: Double, window: LiveWindow, capacity: Int = 4, stallTimeout: Double = 5,
                backoffInitial: Double = 0.5, backoffMax: Double = 8, maxReconnects: Int? = nil,
                generation: GenerationOptions, throttleMilliseconds: Int = 0) {
        self.throttleMilliseconds = throttleMilliseconds
        self.openTimeout = max(10, stallTimeout)
        self.questions = questions
        self.every = every
        self.window = window
        self.capacity = capacity
        self.stallTimeout = stallTimeout
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
        self.maxReconnects = maxReconnects
        self.generation = generation
    }

    /// `5`, `5s`, `250ms`, `1.5s` → seconds.
    public static func seconds(parsing text: String) -> Double? {
        if text.hasSuffix("ms") { return Double(text.dropLast(2)).map { $0 / 1000 } }
        if text.hasSuffix("s") { return Double(text.dropLast()) }
        return Double(text)
    }

    /// Delay before reconnect attempt `attempt` (1-based).
    public func backoff(attempt: Int) -> Double {
        min(backoffMax, backoffInitial * pow(2, Double(max(0, attempt - 1))))
    }
}

public enum LiveEvent: Sendable {
    case frame(FrameStatistics)
    case answer(windowStart: Double, windowEnd: Double, frames: Int, question: String, answer: String,
                latencyMilliseconds: Double, promptTokens: Int)
    case drops(total: Int, new: Int)
    case reconnect(attempt: Int, delaySeconds: Double, cause: String)
    case gaveUp(attempts: Int, cause: String)
    case summary(LiveSummary)
}

public struct LiveSummary: Sendable {
    public var statistics = StatisticsSummary()
    public var answers = 0
    public var droppedFrames = 0
    public var reconnects = 0
    public var maxLatencyMilliseconds = 0.0
    public var wallSeconds = 0.0
    public var stoppedBySignal = false
    /// Why the run gave up on its input (the caller exits non-zero with it), nil otherwise.
    public var gaveUp: String?
}

/// A flag and the source to close, shared with signal handlers and the stall watchdog.
final class LiveControl: @unchecked Sendable {  // the lock guards every field
    private let lock = NSLock()
    private var stopped = false
    private var stalled = false
    private var source: LiveFrames?
    private var lastFrame = DispatchTime.now()
    private var sawFrame = false
    /// Bytes read when the watchdog last looked, and when that count last grew.
    private var lastBytes: Int64 = 0
    private var lastActivity = DispatchTime.now()
    private var attached = DispatchTime.now()
    private var reportedWaiting = false

    var isStopped: Bool { lock.withLock { stopped } }

    func stop() {
        let source = lock.withLock { () -> LiveFrames? in
            stopped = true
            return self.source
        }
        source?.stop()
    }

    func attach(_ source: LiveFrames) {
        lock.withLock {
            self.source = source
            stalled = false
            sawFrame = false
            lastFrame = DispatchTime.now()
            lastBytes = 0
            lastActivity = lastFrame
            attached = lastFrame
            reportedWaiting = false
        }
        if isStopped { source.stop() }
    }

    func frameArrived() {
        lock.withLock {
            lastFrame = DispatchTime.now()
            sawFrame = true
        }
    }

    /// Closes the source when it was silent for `timeout` seconds (`openTimeout` before the first
    /// frame of a connection: opening probes the stream); true if it did. Silent means no frame
    /// and no byte: packets that do not decode yet (a stream joined between keyframes, 10 s apart
    /// at libx264's default -g 250) keep the connection alive, and say so once on stderr.
    func checkStall(timeout: Double, openTimeout: Double, input: String) -> Bool {
        let current = lock.withLock { self.source }
        let bytes = current?.bytesRead ?? 0
        // Decoded, not yet delivered: the first frame is on its way through the encoder (slow on a
        // busy machine), not waiting for a keyframe.
        let decoded = current?.counters.decodedFrames ?? 0
        var waiting = false
        let source = lock.withLock { () -> LiveFrames? in
            let now = DispatchTime.now()
            if bytes > lastBytes {
                lastBytes = bytes
                lastActivity = now
                let since = Double(now.uptimeNanoseconds - attached.uptimeNanoseconds) / 1e9
                if !sawFrame && decoded == 0 && !reportedWaiting && since > 3 {
                    reportedWaiting = true
                    waiting = true
                }
            }
            let recent = max(lastFrame.uptimeNanoseconds, lastActivity.uptimeNanoseconds)
            let idle = Double(now.uptimeNanoseconds - recent) / 1e9
            guard idle > (sawFrame ? timeout : openTimeout), !stalled else { return nil }
            stalled = true
            return self.source
        }
        if waiting { Console.err("\(Console.programName): \(input): packets arrive but none decodes yet: waiting for a keyframe") }
        source?.stop()
        return source != nil
    }

    var didStall: Bool { lock.withLock { stalled } }
    var connected: Bool { lock.withLock { sawFrame } }
}

public final class LiveAnalysis: Sendable {
    public let input: String
    public let options: DecodeOptions
    public let settings: LiveSettings
    public let analysis: FrameAnalysis
    public let answering: (any VideoAnswerer)?
    let control = LiveControl()

    public init(input: String, options: DecodeOptions, settings: LiveSettings, analysis: FrameAnalysis,
                answering: (any VideoAnswerer)?) {
        self.input = input
        self.options = options
        self.settings = settings
        self.analysis = analysis
        self.answering = answering
    }

    /// Ends the run (from a signal handler, say): the source closes now, the summary follows.
    public func stop() { control.stop() }

    /// Runs until stopped or given up. With an answerer, questions go through the same
    /// `VideoQuestionFlow` as `ask` (HiPrune++ prunes each frame once for the one question).
    public func run(stage initial: PruningStage, emit: (LiveEvent) -> Void) async throws -> LiveSummary {
        var stage = initial
        var flow = try answering.map { try VideoQuestionFlow(answerer: $0, stage: initial, questions: settings.questions) }
        var summary = LiveSummary()
        let started = DispatchTime.now()
        var window: [(frame: PrunedFrame, arrived: DispatchTime)] = []
        var lastAnswer = DispatchTime.now()
        var framesSinceAnswer = 0
        var attempt = 0
        var droppedBefore = 0

        while !control.isStopped {
            let frames = LiveFrames(input: input, options: options, capacity: settings.capacity)
            control.attach(frames)
            let control = self.control, timeout = settings.stallTimeout, openTimeout = settings.openTimeout, input = self.input
            let watchdog = Task.detached {
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 100_000_000)
                    if control.checkStall(timeout: timeout, openTimeout: openTimeout, input: input) { return }
                }
            }
            var cause = "the stream ended"
            do {
                try await analysis.encode(frames, scoreLayers: stage.scoreLayers) { step in
                    let (pruned, statistics) = try flow != nil ? flow!.prune(step) : stage.prune(step)
                    control.frameArrived()
                    attempt = 0
                    summary.statistics.add(statistics)
                    emit(.frame(statistics))
                    let dropped = droppedBefore + frames.counters.droppedFrames
                    if dropped > summary.droppedFrames {
                        emit(.drops(total: dropped, new: dropped - summary.droppedFrames))
                        summary.droppedFrames = dropped
                    }
                    window.append((pruned, DispatchTime.now()))
                    trim(&window)
                    framesSinceAnswer += 1
                    if settings.throttleMilliseconds > 0 { usleep(UInt32(settings.throttleMilliseconds) * 1000) }
                    let due = Double(DispatchTime.now().uptimeNanoseconds - lastAnswer.uptimeNanoseconds) / 1e9 >= settings.every
                    if due, framesSinceAnswer > 0, flow != nil, !settings.questions.isEmpty {
                        try answer(window: window, with: &flow!, summary: &summary, emit: emit)
                        lastAnswer = DispatchTime.now()
                        framesSinceAnswer = 0
                    }
                }
            } catch is CancellationError {
                break
            } catch {
                cause = "\(error)"
                // An unknown protocol or a malformed URL fails the same way on every attempt.
                if case StreamError.invalidRequest = error {
                    watchdog.cancel()
                    emit(.gaveUp(attempts: attempt, cause: cause))
                    summary.gaveUp = cause
                    break
                }
            }
            watchdog.cancel()
            // The next connection listens on the same address (a UDP port): this one's socket must
            // be closed first, or the reopen fails with EADDRINUSE.
            await frames.close()
            droppedBefore += frames.counters.droppedFrames
            if control.isStopped { break }
            if control.didStall {
                cause = control.connected ? "nothing received for \(settings.stallTimeout) s"
                    : "nothing received within \(settings.openTimeout) s of opening"
            }
            // A file or stdin has an end: reopening it would replay it forever. Its end ends the
            // run; a failure on it gives up at once.
            if InputKind(input) != .network {
                if cause != "the stream ended" {
                    emit(.gaveUp(attempts: 0, cause: cause))
                    summary.gaveUp = cause
                }
                break
            }
            attempt += 1
            if let limit = settings.maxReconnects, attempt > limit {
                emit(.gaveUp(attempts: attempt - 1, cause: cause))
                summary.gaveUp = cause
                break
            }
            let delay = settings.backoff(attempt: attempt)
            summary.reconnects += 1
            emit(.reconnect(attempt: attempt, delaySeconds: delay, cause: cause))
            // A new connection is a new clip: its clock and its frames start afresh.
            window.removeAll()
            stage.reset()
            flow?.reset()
            let until = DispatchTime.now().uptimeNanoseconds + UInt64(delay * 1e9)
            while !control.isStopped && DispatchTime.now().uptimeNanoseconds < until {
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        summary.wallSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        summary.stoppedBySignal = control.isStopped
        emit(.summary(summary))
        return summary
    }

    private func trim(_ window: inout [(frame: PrunedFrame, arrived: DispatchTime)]) {
        switch settings.window {
        case .frames(let n):
            if window.count > n { window.removeFirst(window.count - n) }
        case .seconds(let span):
            guard let newest = window.last?.frame.time else { return }
            window.removeAll { newest - $0.frame.time >= span }
        }
        if window.count > settings.windowLimit { window.removeFirst(window.count - settings.windowLimit) }
    }

    private func answer(window: [(frame: PrunedFrame, arrived: DispatchTime)], with flow: inout VideoQuestionFlow,
                        summary: inout LiveSummary, emit: (LiveEvent) -> Void) throws {
        guard let first = window.first, let last = window.last else { return }
        let frames = window.map(\.frame)
        let duration = max(0, last.frame.time - first.frame.time)
        let result = try flow.answer(.pruned(frames), duration: duration, generation: settings.generation) { _, _ in }
        let latency = Double(DispatchTime.now().uptimeNanoseconds - last.arrived.uptimeNanoseconds) / 1e6
        for a in result.answers {
            emit(.answer(windowStart: first.frame.time, windowEnd: last.frame.time, frames: frames.count,
                         question: a.question, answer: a.text, latencyMilliseconds: latency, promptTokens: a.promptTokens))
            summary.answers += 1
        }
        summary.maxLatencyMilliseconds = max(summary.maxLatencyMilliseconds, latency)
    }
}
