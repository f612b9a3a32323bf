import Console
import Foundation
import Prune
import Stream
import Vision

/// Drives frames through the encoder and the pruning stage, one step at a time.
///
/// Pull-based: the next frame is decoded only after the previous step was encoded, pruned and
/// handed to `body`, so a file is never read ahead and memory holds one step's frames. A live
/// source keeps its own bounded ring (newest frames win), so a slow encoder skips frames there
/// instead of queueing them. Cancellation is checked between steps.
public struct FrameAnalysis: Sendable {
    public let encoder: any FrameEncoder
    /// Extra encoder layers to score beyond what pruning needs (e.g. all, for calibration).
    public var extraScoreLayers: Set<Int>
    /// `--reuse T`: a step whose decoded frames differ from the last encoded step's by less than T
    /// (mean absolute difference of the RGB bytes, 0–255) reuses that step's encoding and selection
    /// instead of being encoded. 0 never reuses.
    public var reuseThreshold: Double
    /// `--preprocess`: the family's reference resize from the source size, or one FFmpeg scale.
    public var preprocessing: Preprocessing

    public init(encoder: any FrameEncoder, extraScoreLayers: Set<Int> = [], reuseThreshold: Double = 0,
                preprocessing: Preprocessing = .reference) {
        self.encoder = encoder
        self.extraScoreLayers = extraScoreLayers
        self.reuseThreshold = reuseThreshold
        self.preprocessing = preprocessing
    }

    /// Decode options for `preprocessing`: with `.fast`, the decoder's scaler brings frames to the
    /// encoder's input size (one resize, in FFmpeg) when the source's size can be known up front;
    /// with `.reference`, frames keep the size the family's preprocessor wants (usually the source's).
    public func decodeOptions(_ options: DecodeOptions, input: String) -> DecodeOptions {
        guard options.size == nil else { return options }
        var sized = options
        // Only a regular file can be opened twice: probing a pipe would eat the bytes the decoder needs.
        let source = InputKind.canReopen(input) ? try? VideoSourceInfo.probe(input) : nil
        if let size = encoder.inputSize(sourceWidth: source?.width ?? 0, sourceHeight: source?.height ?? 0,
                                        preprocessing: preprocessing),
           size.width > 0, size.height > 0 {
            sized.size = FrameSize(width: size.width, height: size.height)
            sized.resize = .exact
        }
        return sized
    }

    /// One encoded step: the frames it was made from (their times and pixels) and the encoder's output.
    public struct Step: Sendable {
        public var index: Int
        public var frames: [VideoFrame]
        public var encoded: EncodedFrame
        public var encodeMilliseconds: Double
        /// The index of the encoded step whose encoding this one reuses (`reuseThreshold`); nil when
        /// this step was encoded itself.
        public var reusedFrom: Int?
        public var time: Double { frames.first?.time ?? 0 }
    }

    /// Mean absolute difference of two steps' RGB bytes (0–255), or nil when they cannot be compared
    /// (different frame counts or sizes). Stops early once the mean is bound to reach `limit`.
    public static func meanAbsoluteDifference(_ a: [VideoFrame], _ b: [VideoFrame], limit: Double = .infinity) -> Double? {
        guard a.count == b.count, !a.isEmpty else { return nil }
        var total = 0, count = 0
        for (x, y) in zip(a, b) {
            guard x.width == y.width, x.height == y.height, x.rgb.count == y.rgb.count else { return nil }
            count += x.rgb.count
        }
        guard count > 0 else { return nil }
        let stop = limit.isFinite ? Int((limit * Double(count)).rounded(.up)) : Int.max
        for (x, y) in zip(a, b) {
            x.rgb.withUnsafeBufferPointer { p in
                y.rgb.withUnsafeBufferPointer { q in
                    // Rows of 4 KiB between checks: the early stop costs nothing measurable.
                    var i = 0
                    while i < p.count && total < stop {
                        let end = min(p.count, i + 4096)
                        var part = 0
                        while i < end {
                            part &+= abs(Int(p[i]) - Int(q[i]))
                            i += 1
                        }
                        total += part
                    }
                }
            }
            if total >= stop { break }
        }
        return Double(total) / Double(count)
    }

    /// Encodes every step of `frames`, scoring `scoreLayers`, and hands each to `body`.
    public func encode<Frames: AsyncSequence>(
        _ frames: Frames, scoreLayers: Set<Int>, body: (Step) async throws -> Void
    ) async throws where Frames.Element == VideoFrame {
        let layers = scoreLayers.union(extraScoreLayers)
        try encoder.validate(layers: layers)
        var pending: [VideoFrame] = []
        pending.reserveCapacity(encoder.framesPerStep)
        var stepIndex = 0
        var lastEncoded: Step?
        func flush() async throws {
            guard !pending.isEmpty else { return }
            let step: Step
            // The decoded frames: at the encoder's input size (`.fast`) or the source's (`.reference`).
            if reuseThreshold > 0, let last = lastEncoded,
               let difference = Self.meanAbsoluteDifference(pending, last.frames, limit: reuseThreshold),
               difference < reuseThreshold {
                step = Step(index: stepIndex, frames: pending, encoded: last.encoded, encodeMilliseconds: 0,
                            reusedFrom: last.index)
            } else {
                let images = pending.map { RGBImage(width: $0.width, height: $0.height, rgb: $0.rgb) }
                let start = DispatchTime.now()
                let encoded = try encoder.encode(images, scoreLayers: layers)
                let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                step = Step(index: stepIndex, frames: pending, encoded: encoded, encodeMilliseconds: milliseconds)
                if reuseThreshold > 0 { lastEncoded = step }
            }
            pending.removeAll(keepingCapacity: true)
            stepIndex += 1
            try await body(step)
        }
        for try await frame in frames {
            try Task.checkCancellation()
            pending.append(frame)
            if pending.count == encoder.framesPerStep { try await flush() }
        }
        try await flush()
    }

    /// Encodes and prunes every step of `frames`.
    public func prune<Frames: AsyncSequence>(
        _ frames: Frames, stage: inout PruningStage, promptEmbedding: [Float]? = nil,
        body: (Step, PrunedFrame, FrameStatistics) async throws -> Void
    ) async throws where Frames.Element == VideoFrame {
        var local = stage
        defer { stage = local }
        try await encode(frames, scoreLayers: local.scoreLayers) { step in
            let (pruned, statistics) = try local.prune(step, promptEmbedding: promptEmbedding)
            try await body(step, pruned, statistics)
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
public struct ProgressLine: Sendable {
    public let total: Int?
    public let enabled: Bool

    public init(total: Int?, enabled: Bool = isatty(2) != 0) {
        self.total = total
        self.enabled = enabled
    }

    public func update(done: Int, label: String = "frames") {
        guard enabled else { return }
        var line: String
        if let total, total > 0 {
            let width = 30, filled = min(width, done * width / total)
            line = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total) \(label)"
        } else {
            line = "\(done) \(label)"
        }
        line = "\r" + line + "\u{1B}[K"
        Console.err(line, newline: false)
    }

    public func finish() {
        guard enabled else { return }
        Console.err("\r\u{1B}[K", newline: false)
    }
}
