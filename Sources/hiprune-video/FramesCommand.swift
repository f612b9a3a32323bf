import Console
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

    /// A file has an end, so its output is held until the whole input decoded cleanly: a corrupt
    /// or truncated file leaves one error line and nothing half-written. Live inputs and stdin
    /// may never end, so they stream (and their output is bounded by what has been seen).
    func run() async throws {
        let streams = InputKind.isLive(input) || InputKind(input) == .stdin
        let staging = try dump.map { try Staging(target: $0, direct: streams) }
        var lines: [String] = []
        var count = 0
        func report(_ frame: VideoFrame) throws {
            count += 1
            let time = String(format: "%.6f", frame.time)
            let line = json
                ? "{\"index\":\(frame.index),\"source_frame\":\(frame.sourceFrameNumber),\"time\":\(time),\"width\":\(frame.width),\"height\":\(frame.height)}"
                : "frame \(frame.index) source \(frame.sourceFrameNumber) time \(time) size \(frame.width)x\(frame.height)"
            if streams { Console.line(line) } else { lines.append(line) }
            if let staging {
                let path = (staging.folder as NSString).appendingPathComponent(String(format: "frame-%06d.png", frame.index))
                try PartialOutputs.writing { try PNGWriter.write(frame, to: path) }
            }
        }
        do {
            if InputKind.isLive(input) {
                let frames = LiveFrames(input: input, options: options, capacity: capacity)
                for try await frame in frames { try report(frame) }
                if frames.counters.droppedFrames > 0 {
                    Console.err("\(input): dropped \(frames.counters.droppedFrames) frames (consumer behind)")
                }
            } else {
                for try await frame in VideoFrames(input: input, options: options) { try report(frame) }
            }
            // As ffmpeg: no frame at all is a failure (exit 1), not an empty success.
            guard count > 0 else {
                if sampling.start != nil || sampling.end != nil {
                    throw StreamError.invalidRequest(input: input, reason: "no frame between --start and --end")
                }
                throw StreamError.noFrames(input: input)
            }
        } catch {
            staging?.discard()
            throw error
        }
        try staging?.commit()
        sampling.warnIfShort(input: input, sampled: count)
        for line in lines { Console.line(line) }
    }

    /// PNGs of a file go to a hidden folder inside the target (the same name on every run, removed
    /// on SIGINT/SIGTERM) and move in only when all decoded.
    struct Staging {
        let target: String
        let folder: String
        let direct: Bool
        let token: PartialOutputs.Token?
        /// The target did not exist before this run: a failure removes it again (if still empty).
        let createdTarget: Bool

        init(target: String, direct: Bool) throws {
            self.target = target
            self.direct = direct
            let manager = FileManager.default
            createdTarget = !manager.fileExists(atPath: target)
            do {
                try manager.createDirectory(atPath: target, withIntermediateDirectories: true)
            } catch {
                throw StreamError.writeFailed(path: target, reason: "cannot create the directory")
            }
            folder = direct ? target : (target as NSString).appendingPathComponent(".partial")
            do {
                // An interrupted run leaves no trace: the folder goes, and the target too if this
                // run made it.
                token = direct ? nil : try PartialOutputs.claim(folder, of: target, directory: true,
                                                                emptyParent: createdTarget ? target : nil)
            } catch {
                if createdTarget { rmdir(target) }
                throw StreamError.writeFailed(path: target, reason: error.cause)
            }
        }

        func discard() {
            if let token { PartialOutputs.discard(token) }
            if createdTarget { rmdir(target) }  // only if empty: frames of a stream stay
        }

        func commit() throws {
            guard !direct else { return }
            let manager = FileManager.default
            do {
                for name in try manager.contentsOfDirectory(atPath: folder) {
                    let destination = (target as NSString).appendingPathComponent(name)
                    try? manager.removeItem(atPath: destination)
                    try manager.moveItem(atPath: (folder as NSString).appendingPathComponent(name), toPath: destination)
                }
                try manager.removeItem(atPath: folder)
                if let token { PartialOutputs.done(token) }
            } catch {
                discard()
                throw StreamError.writeFailed(path: target, reason: "cannot move the frames into place")
            }
        }
    }
}
