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

    public init(encoder: any FrameEncoder, extraScoreLayers: Set<Int> = []) {
        self.encoder = encoder
        self.extraScoreLayers = extraScoreLayers
    }

    /// Decode options that let the decoder's scaler bring frames to the encoder's input size
    /// (one resize, in FFmpeg) when the source's size can be known up front.
    public func decodeOptions(_ options: DecodeOptions, input: String) -> DecodeOptions {
        guard options.size == nil else { return options }
        var sized = options
        // Only a regular file can be opened twice: probing a pipe would eat the bytes the decoder needs.
        let source = InputKind.canReopen(input) ? try? VideoSourceInfo.probe(input) : nil
        if let size = encoder.inputSize(sourceWidth: source?.width ?? 0, sourceHeight: source?.height ?? 0),
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
        public var time: Double { frames.first?.time ?? 0 }
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
        func flush() async throws {
            guard !pending.isEmpty else { return }
            let images = pending.map { RGBImage(width: $0.width, height: $0.height, rgb: $0.rgb) }
            let start = DispatchTime.now()
            let encoded = try encoder.encode(images, scoreLayers: layers)
            let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
            let step = Step(index: stepIndex, frames: pending, encoded: encoded, encodeMilliseconds: milliseconds)
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

extension PruningStage {
    /// Prunes one encoded step of `FrameAnalysis`.
    public mutating func prune(_ step: FrameAnalysis.Step, promptEmbedding: [Float]? = nil) throws -> (PrunedFrame, FrameStatistics) {
        try prune(step.encoded, index: step.index, time: step.time, encodeMilliseconds: step.encodeMilliseconds,
                  promptEmbedding: promptEmbedding)
    }
}
