// The values the Stream stage hands to the rest of the pipeline. All are Sendable;
// FFmpeg pointers never leave `Decoder`.
import Foundation

/// One sampled frame, packed RGB24 (row stride `width * 3`, no padding).
public struct VideoFrame: Sendable, Equatable {
    /// 0-based among the frames the sampling kept.
    public var index: Int
    /// 0-based among the decoded frames of the stream (presentation order).
    /// With `keyframesOnly`, non-key packets are never decoded, so it counts the stream's
    /// packets instead; for closed GOPs (x264's default) the two agree.
    public var sourceFrameNumber: Int
    /// Seconds on the stream's own clock (pts, else best-effort timestamp), as ffprobe's `pts_time`.
    public var time: Double
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]

    public init(index: Int, sourceFrameNumber: Int, time: Double, width: Int, height: Int, rgb: [UInt8]) {
        self.index = index
        self.sourceFrameNumber = sourceFrameNumber
        self.time = time
        self.width = width
        self.height = height
        self.rgb = rgb
    }
}

/// A width × height in pixels, written `WxH` (or `N` for a square) on the command line.
public struct FrameSize: Sendable, Equatable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `384x384` or `384`; nil unless both sides are positive integers.
    public init?(parsing text: String) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let w = Int(parts[0]), let h = Int(parts[parts.count - 1]), w > 0, h > 0,
              w <= 16384, h <= 16384 else { return nil }
        self.init(width: w, height: h)
    }

    public var description: String { "\(width)x\(height)" }
}

/// How a source frame is brought to a requested size.
public enum ResizePolicy: String, Sendable, CaseIterable {
    /// Stretch to exactly the requested width × height.
    case exact
    /// Keep the aspect ratio inside the requested box; pad the rest with black (centered).
    case fit
    /// Keep the aspect ratio; the longest edge becomes max(requested width, height); no padding.
    case longest
}

/// Where a scaled picture goes inside the output canvas.
public struct ScaleLayout: Sendable, Equatable {
    public var canvas: FrameSize
    public var picture: FrameSize
    public var originX: Int
    public var originY: Int

    /// Output layout for a `source` frame; `target == nil` keeps the source size.
    public init(source: FrameSize, target: FrameSize?, policy: ResizePolicy) {
        guard let target else {
            self.init(canvas: source, picture: source, originX: 0, originY: 0)
            return
        }
        switch policy {
        case .exact:
            self.init(canvas: target, picture: target, originX: 0, originY: 0)
        case .fit:
            let scale = min(Double(target.width) / Double(source.width), Double(target.height) / Double(source.height))
            let w = min(target.width, max(1, Int((Double(source.width) * scale).rounded())))
            let h = min(target.height, max(1, Int((Double(source.height) * scale).rounded())))
            self.init(canvas: target, picture: FrameSize(width: w, height: h),
                      originX: (target.width - w) / 2, originY: (target.height - h) / 2)
        case .longest:
            let edge = max(target.width, target.height)
            let scale = Double(edge) / Double(max(source.width, source.height))
            let size = FrameSize(width: max(1, Int((Double(source.width) * scale).rounded())),
                                 height: max(1, Int((Double(source.height) * scale).rounded())))
            self.init(canvas: size, picture: size, originX: 0, originY: 0)
        }
    }

    init(canvas: FrameSize, picture: FrameSize, originX: Int, originY: Int) {
        self.canvas = canvas
        self.picture = picture
        self.originX = originX
        self.originY = originY
    }

    /// True when the picture does not cover the canvas, so the canvas must start black.
    var isPadded: Bool { picture != canvas }
}

/// Which decoded frames become `VideoFrame`s.
public enum FrameSampling: Sendable, Equatable {
    /// Every decoded frame (in the time range).
    case everyFrame
    /// The frame nearest each tick `t0 + k / fps` by timestamp; each frame at most once.
    case fps(Double)
    /// `count` frames evenly spaced over the clip (or time range), as transformers samples video.
    case uniform(count: Int)
}

/// Everything that shapes a decode: sampling, range, keyframes, output size, threads.
public struct DecodeOptions: Sendable, Equatable {
    public var sampling: FrameSampling
    /// Decode only key packets; the others are skipped without being decoded.
    public var keyframesOnly: Bool
    /// Keep frames with `start <= time < end`, times as in `VideoFrame.time`.
    public var start: Double?
    public var end: Double?
    /// nil keeps the source size.
    public var size: FrameSize?
    public var resize: ResizePolicy
    /// Decoder and scaler threads; 0 lets FFmpeg pick (one per core).
    public var threads: Int

    public init(sampling: FrameSampling = .everyFrame, keyframesOnly: Bool = false, start: Double? = nil,
                end: Double? = nil, size: FrameSize? = nil, resize: ResizePolicy = .exact, threads: Int = 0) {
        self.sampling = sampling
        self.keyframesOnly = keyframesOnly
        self.start = start
        self.end = end
        self.size = size
        self.resize = resize
        self.threads = threads
    }
}

/// The facts of an input's best video stream.
public struct VideoSourceInfo: Sendable, Equatable, Codable {
    public var input: String
    /// Container, as FFmpeg names its demuxer (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, …).
    public var format: String
    public var codec: String
    public var width: Int
    public var height: Int
    /// Degrees from the display matrix, as ffprobe prints it (counter-clockwise); 0 without one.
    public var rotation: Int
    /// Seconds; nil when neither the stream nor the container knows it (live input).
    public var duration: Double?
    /// Average frames per second (else the stream's base rate); nil when unknown.
    public var frameRate: Double?
    /// From the container header; nil when it does not say.
    public var frameCount: Int?
    /// Seconds of the stream's first timestamp; nil when unknown.
    public var startTime: Double?
}

/// Where an input comes from, which decides how its frames are delivered.
public enum InputKind: Sendable, Equatable {
    case file
    case stdin
    case network

    public init(_ input: String) {
        if input == "-" || input.hasPrefix("pipe:") {
            self = .stdin
        } else if let colon = input.firstIndex(of: ":"), input[..<colon].count > 1,
                  input[..<colon].allSatisfy({ $0.isLetter || $0 == "+" }) {
            self = .network
        } else {
            self = .file
        }
    }

    /// Live sources produce frames at their own pace whether or not anyone reads them.
    public static func isLive(_ input: String) -> Bool {
        guard case .network = InputKind(input), let colon = input.firstIndex(of: ":") else { return false }
        return ["udp", "rtp", "rtsp", "srt", "tcp", "rtmp", "rtmps"].contains(input[..<colon].lowercased())
    }

    /// Whether the input can be opened twice, reading the same bytes each time: a regular file
    /// (or stdin redirected from one). A pipe, a fifo or a device must be read once: probing it
    /// first would eat the bytes the decoder needs.
    public static func canReopen(_ input: String) -> Bool {
        var status = stat()
        switch InputKind(input) {
        case .file: return stat(input, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
        case .stdin: return input == "-" && fstat(0, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
        case .network: return false
        }
    }

    /// The name FFmpeg opens: `-` means stdin.
    /// When stdin is a regular file (`< clip.mp4`), FFmpeg opens it as a file so it can seek (an
    /// MP4 whose index follows its data needs that); a pipe stays `pipe:0`.
    static func url(for input: String) -> String {
        guard input == "-" else { return input }
        var status = stat()
        if fstat(0, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG { return "/dev/stdin" }
        return "pipe:0"
    }
}
