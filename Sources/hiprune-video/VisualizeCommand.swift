import Console
import ArgumentParser
import Foundation
import Pipeline
import Prune
import Stream

/// `hiprune-video visualize`: every sampled frame with the kept tokens tinted by role, as an MP4
/// or as PNGs in a directory.
///
/// Frames are decoded once, at the source size (or `--size`; with `--preprocess fast` and no
/// `--size`, at the encoder's input size), and drawn at that size; the encoder gets the same pixels
/// and its preprocessor resizes them to its input as the reference's processor does.
struct VisualizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visualize",
        abstract: "Draw which tokens HiPrune keeps on every sampled frame: an MP4, or PNGs in a directory.")

    @Argument(help: "A video file or '-' for stdin.")
    var input: String

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @Option(name: [.short, .customLong("output")],
            help: "OUT.mp4 (or .mov, .mkv), or a directory (ends with / or exists) for OUT/frame-NNNNNN.png.")
    var output: String

    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var pruning: PruneOptions
    @OptionGroup var preprocessing: PreprocessOptions

    @Option(help: "Draw at WxH (or N for NxN) instead of the source size.")
    var size: FrameSize?

    @Flag(help: "Draw the token grid's lines.")
    var grid = false

    static let videoExtensions: Set<String> = ["mp4", "m4v", "mov", "mkv"]

    /// Where the drawn frames go, checked before any work is done.
    enum Destination {
        case video(path: String)
        case directory(path: String, exists: Bool)
    }

    func destination() throws -> Destination {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory)
        let trimmed = output.count > 1 && output.hasSuffix("/") ? String(output.dropLast()) : output
        let parent = URL(fileURLWithPath: trimmed).deletingLastPathComponent().path
        var parentIsDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &parentIsDirectory), parentIsDirectory.boolValue else {
            throw PipelineError.output(path: output, cause: "directory \(parent) does not exist")
        }
        guard FileManager.default.isWritableFile(atPath: exists && isDirectory.boolValue ? trimmed : parent) else {
            throw PipelineError.output(path: output, cause: "not writable")
        }
        if output.hasSuffix("/") || (exists && isDirectory.boolValue) {
            if exists && !isDirectory.boolValue { throw PipelineError.output(path: output, cause: "is a file, not a directory") }
            return .directory(path: trimmed, exists: exists)
        }
        guard Self.videoExtensions.contains(URL(fileURLWithPath: output).pathExtension.lowercased()) else {
            throw PipelineError.output(path: output, cause: "use a .mp4, .mov or .mkv file, or a directory ending in /")
        }
        return .video(path: output)
    }

    /// Output frame rate: the sampling's (`--fps`), the source's for `--every-frame`, else 1.
    func framesPerSecond() -> Double {
        if let fps = sampling.fps { return fps }
        if sampling.everyFrame, InputKind.canReopen(input), let rate = try? VideoSourceInfo.probe(input).frameRate, rate > 0 { return rate }
        return 1
    }

    func run() async throws {
        if InputKind.isLive(input) {
            throw PipelineError.invalidOption(flag: input, cause: "visualize reads files and stdin; use live for streams")
        }
        if pruning.method == .hiprunePlusPlus {
            throw PipelineError.invalidOption(flag: "--method hiprune++", cause: "needs a question; use it with ask or live")
        }
        let destination = try destination()
        let files = try ModelFiles(model: model, mmproj: mmproj)
        let encoder = try files.loadEncoder()
        var stage = try PruningStage(settings: pruning.settings, encoder: encoder)
        let analysis = FrameAnalysis(encoder: encoder, preprocessing: preprocessing.preprocess)
        var options = sampling.decodeOptions(defaultSampling: .fps(1))
        if let size {
            options.size = size
            options.resize = .exact
        } else {
            // `--preprocess fast` decodes (and so draws) at the encoder's input size.
            options = analysis.decodeOptions(options, input: input)
        }
        let style = OverlayStyle(gridLines: grid)

        var sink = try FrameSink(destination, framesPerSecond: framesPerSecond())
        var total: Int?
        if case .uniform(let count) = options.sampling { total = count }
        let progress = ProgressLine(total: total)
        try await analysis.prune(VideoFrames(input: input, options: options), stage: &stage) {
            step, pruned, _ in
            for frame in step.frames {
                let drawn = try Overlay.draw(rgb: frame.rgb, width: frame.width, height: frame.height,
                                             views: pruned.views.map { ($0.place, $0.selection) }, style: style)
                try sink.add(rgb: drawn.rgb, width: drawn.width, height: frame.height)
                progress.update(done: sink.count)
            }
        }
        progress.finish()
        guard sink.count > 0 else { throw PipelineError.invalidOption(flag: input, cause: "no frame was sampled") }
        try sink.finish()
        Console.err(OverlayStyle.legend)  // after the work: a failure stays one line
        sampling.warnIfShort(input: input, sampled: sink.count)
        Console.line("\(output): \(sink.count) frames \(sink.summary)")
    }
}

/// Drawn frames on their way to a video file or a directory of PNGs; nothing appears at the
/// destination until `finish()`, and an unfinished sink leaves nothing behind.
private struct FrameSink {
    private let destination: VisualizeCommand.Destination
    private let framesPerSecond: Double
    private var video: VideoWriter?
    /// PNGs are written here, then moved into place.
    private var staging: Staging?
    private(set) var count = 0
    private(set) var summary = ""

    /// Removes the staging directory unless it was moved into place; SIGINT/SIGTERM remove it too.
    private final class Staging {
        let path: String
        let token: PartialOutputs.Token
        var kept = false
        init(path: String, of destination: String) throws {
            self.path = path
            do {
                token = try PartialOutputs.claim(path, of: destination, directory: true)
            } catch {
                throw PipelineError.output(path: destination, cause: error.cause)
            }
        }
        deinit { if kept { PartialOutputs.done(token) } else { PartialOutputs.discard(token) } }
    }

    init(_ destination: VisualizeCommand.Destination, framesPerSecond: Double) throws {
        self.destination = destination
        self.framesPerSecond = framesPerSecond
        if case .directory(let path, let exists) = destination {
            // Inside an existing directory (its other files stay), else beside the new one.
            let partial = PartialOutputs.partialPath(for: path)
            let staging = exists ? (path as NSString).appendingPathComponent((partial as NSString).lastPathComponent) : partial
            self.staging = try Staging(path: staging, of: path)
        }
    }

    mutating func add(rgb: [UInt8], width: Int, height: Int) throws {
        switch destination {
        case .video(let path):
            if video == nil {
                video = try VideoWriter(path: path, width: width, height: height, framesPerSecond: framesPerSecond)
            }
            guard let video, video.width == width, video.height == height else {
                throw PipelineError.output(path: path, cause: "frame \(count) is \(width)x\(height), the video is not")
            }
            try video.append(rgb: rgb)
            summary = "\(video.encodedWidth)x\(video.encodedHeight) \(video.codecName) at \(framesPerSecond) fps"
        case .directory(let path, _):
            guard let staging else { return }
            let name = String(format: "frame-%06d.png", count)
            let bytes = try PNGWriter.encode(rgb: rgb, width: width, height: height, name: name)
            do {
                try PartialOutputs.writing { try Data(bytes).write(to: URL(fileURLWithPath: staging.path).appendingPathComponent(name)) }
            } catch {
                throw PipelineError.output(path: path, cause: "cannot write \(name) (\(error.localizedDescription))")
            }
            summary = "\(width)x\(height) PNG"
        }
        count += 1
    }

    func finish() throws {
        switch destination {
        case .video:
            try video?.finish()
        case .directory(let path, let exists):
            guard let staging else { return }
            let manager = FileManager.default
            do {
                if exists {
                    for name in try manager.contentsOfDirectory(atPath: staging.path).sorted() {
                        let target = (path as NSString).appendingPathComponent(name)
                        guard rename((staging.path as NSString).appendingPathComponent(name), target) == 0 else {
                            throw PipelineError.output(path: target, cause: String(cString: strerror(errno)))
                        }
                    }
                } else {
                    try manager.moveItem(atPath: staging.path, toPath: path)
                    staging.kept = true
                }
            } catch let error as PipelineError {
                throw error
            } catch {
                throw PipelineError.output(path: path, cause: error.localizedDescription)
            }
        }
    }
}
