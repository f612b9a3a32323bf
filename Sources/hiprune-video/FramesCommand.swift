import ArgumentParser
import Foundation
import Stream

extension ResizePolicy: ExpressibleByArgument {}

extension FrameSize: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `hiprune-video frames`: decodes and samples an input, one line per sampled frame.
struct FramesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frames",
        abstract: "Decode and sample the frames of a video, a still image, stdin (-) or a live URL.")

    @Argument(help: "A file, '-' for stdin, or a URL FFmpeg can read (udp://, rtsp://, http://, …).")
    var input: String

    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Output size WxH (or N for NxN); default: the source size.")
    var size: FrameSize?

    @Option(help: "How to reach --size: exact, fit (keep aspect, pad black) or longest (longest edge, no pad).")
    var resize: ResizePolicy = .exact

    @Flag(help: "One JSON object per line.")
    var json = false

    @Option(help: "Write each sampled frame as DIR/frame-NNNNNN.png.")
    var dump: String?

    @Option(help: "Live inputs only: most frames kept waiting (newest win).")
    var capacity = 8

    func validate() throws {
        if capacity < 1 { throw ValidationError("--capacity must be at least 1") }
    }

    /// Every frame unless a sampling flag says otherwise.
    var options: DecodeOptions {
        var options = sampling.decodeOptions(defaultSampling: .everyFrame)
        options.size = size
        options.resize = resize
        return options
    }

    func run() async throws {
        if let dump {
            do {
                try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            } catch {
                throw StreamError.writeFailed(path: dump, reason: "cannot create the directory")
            }
        }
        if InputKind.isLive(input) {
            let frames = LiveFrames(input: input, options: options, capacity: capacity)
            for try await frame in frames { try report(frame) }
            if frames.counters.droppedFrames > 0 {
                FileHandle.standardError.write(Data("\(input): dropped \(frames.counters.droppedFrames) frames (consumer behind)\n".utf8))
            }
        } else {
            for try await frame in VideoFrames(input: input, options: options) { try report(frame) }
        }
    }

    private func report(_ frame: VideoFrame) throws {
        let time = String(format: "%.6f", frame.time)
        if json {
            print("{\"index\":\(frame.index),\"source_frame\":\(frame.sourceFrameNumber),\"time\":\(time),\"width\":\(frame.width),\"height\":\(frame.height)}")
        } else {
            print("frame \(frame.index) source \(frame.sourceFrameNumber) time \(time) size \(frame.width)x\(frame.height)")
        }
        if let dump {
            let name = String(format: "frame-%06d.png", frame.index)
            try PNGWriter.write(frame, to: (dump as NSString).appendingPathComponent(name))
        }
    }
}
