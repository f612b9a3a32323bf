import CFFmpeg
import Foundation

/// Counters of one frame source, readable from any task while it runs.
public final class StreamCounters: @unchecked Sendable {
    private let lock = NSLock()
    private var decoded = 0
    private var sampled = 0
    private var errors = 0
    private var dropped = 0
    private var buffered = 0
    private var highWater = 0
    private var open = 0

    public init() {}

    /// Frames that came out of the decoder.
    public var decodedFrames: Int { lock.withLock { decoded } }
    /// Frames the sampling kept (before any live drops).
    public var sampledFrames: Int { lock.withLock { sampled } }
    /// Damaged packets or frames the decoder skipped and resynchronised after.
    public var recoverableErrors: Int { lock.withLock { errors } }
    /// Live sources only: sampled frames thrown away because the consumer was behind.
    public var droppedFrames: Int { lock.withLock { dropped } }
    /// Live sources only: frames waiting for the consumer now, and the most ever waiting.
    public var bufferedFrames: Int { lock.withLock { buffered } }
    public var bufferHighWater: Int { lock.withLock { highWater } }
    /// Decoders (each owning its FFmpeg contexts) of this source alive right now: 0 once it ended
    /// or was cancelled. Per source, so a leak check sees only its own source's decoders.
    public var openDecoders: Int { lock.withLock { open } }

    func decoderOpened() { lock.withLock { open += 1 } }
    func decoderClosed() { lock.withLock { open -= 1 } }

    func recordDecode(decoded: Int, errors: Int) {
        lock.withLock {
            self.decoded = decoded
            self.errors = errors
        }
    }

    func recordSample() { lock.withLock { sampled += 1 } }

    func recordBuffer(count: Int, droppedOne: Bool) {
        lock.withLock {
            buffered = count
            highWater = max(highWater, count)
            if droppedOne { dropped += 1 }
        }
    }
}

/// Decoder + sampling + scaling: yields sampled `VideoFrame`s one by one. Runs wherever its
/// owner runs (a file iterator's task, or a live source's reader thread); not Sendable.
final class FrameProducer {
    private let decoder: Decoder
    private let options: DecodeOptions
    private let counters: StreamCounters
    private var selector: FrameSelector
    private var held: DecodedFrame?
    private var queued: VideoFrame?
    private var nextIndex = 0
    private var done = false

    var info: VideoSourceInfo { decoder.info }

    init(input: String, options: DecodeOptions, counters: StreamCounters,
         interrupt: UnsafeMutablePointer<hv_interrupt>? = nil) throws(StreamError) {
        if let start = options.start, let end = options.end, end <= start {
            throw .invalidRequest(input: input, reason: "end time \(end) is not after start time \(start)")
        }
        if case .fps(let rate) = options.sampling, !(rate > 0 && rate.isFinite) {
            throw .invalidRequest(input: input, reason: "fps must be a positive number, not \(rate)")
        }
        var candidates: Int?
        if case .uniform(let count) = options.sampling {
            guard count > 0 else { throw .invalidRequest(input: input, reason: "frame count must be positive, not \(count)") }
            candidates = try FrameProducer.countCandidates(input: input, options: options, counters: counters)
        }
        decoder = try Decoder(input: input, threads: options.threads, interrupt: interrupt, census: counters)
        self.options = options
        self.counters = counters
        selector = FrameSelector(sampling: options.sampling, start: options.start, end: options.end, candidates: candidates)
    }

    /// Uniform sampling needs the number of frames in range before the first one is chosen:
    /// files are counted by a demux-only pass; other inputs must state it in their header.
    private static func countCandidates(input: String, options: DecodeOptions, counters: StreamCounters) throws(StreamError) -> Int {
        let kind = InputKind(input)
        // A pipe cannot be opened once to count and again to decode: its bytes are read once. (A
        // path that is missing or a directory goes on to the decoder's own message.)
        var status = stat()
        let pipeLike = kind == .file && stat(input, &status) == 0 && [S_IFIFO, S_IFCHR, S_IFSOCK].contains(status.st_mode & S_IFMT)
        if kind == .file && !pipeLike || kind == .stdin && InputKind.canReopen(input) {
            let counter = try Decoder(input: input, decode: false, census: counters)
            return try counter.countPackets(keyframesOnly: options.keyframesOnly, start: options.start, end: options.end)
        }
        if kind == .network, !InputKind.isLive(input), !options.keyframesOnly, options.start == nil, options.end == nil,
           let total = try Decoder(input: input, decode: false, census: counters).info.frameCount {
            return total
        }
        throw .invalidRequest(input: input, reason: "uniform sampling (--frames) needs the frame count, which a pipe or a stream cannot give before it is read; use --fps or --every-frame")
    }

    /// The next sampled frame; nil at the end of the input, on cancellation or once the range is over.
    func next() throws(StreamError) -> VideoFrame? {
        if let queued {
            self.queued = nil
            return queued
        }
        while !done {
            if Task.isCancelled { done = true; break }
            let decoded: DecodedFrame?
            do {
                decoded = try decoder.decodeNext(keyframesOnly: options.keyframesOnly)
            } catch {
                counters.recordDecode(decoded: decoder.decodedFrames, errors: decoder.recoverableErrors)
                done = true
                throw error
            }
            counters.recordDecode(decoded: decoder.decodedFrames, errors: decoder.recoverableErrors)
            guard let decoded else { done = true; break }
            let decision = selector.offer(time: decoded.time)
            var out: VideoFrame?
            if decision.takeHeld, let held {
                out = try make(held: true, held)
            }
            held = nil
            switch decision.current {
            case .take:
                let frame = try make(held: false, decoded)
                if out == nil { out = frame } else { queued = frame }
            case .hold:
                decoder.holdCurrent()
                held = decoded
            case .skip:
                break
            }
            if decision.done { done = true }
            if let out { return out }
        }
        return nil
    }

    private func make(held: Bool, _ decoded: DecodedFrame) throws(StreamError) -> VideoFrame? {
        guard var frame = try decoder.rgb(held: held, target: options.size, policy: options.resize) else { return nil }
        frame.index = nextIndex
        frame.sourceFrameNumber = decoded.sourceFrameNumber
        frame.time = decoded.time
        nextIndex += 1
        counters.recordSample()
        return frame
    }
}
