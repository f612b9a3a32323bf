/// Every failure of the Stream stage, each naming the input and the cause in one line.
public enum StreamError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(input: String)
    case emptyFile(input: String)
    /// FFmpeg recognised no media format in the input (e.g. a text file named `.mp4`).
    case notAVideo(input: String, reason: String)
    case noVideoStream(input: String)
    case unsupportedCodec(input: String, codec: String)
    /// The data ends early or is damaged beyond what the decoder can skip.
    case corrupt(input: String, reason: String)
    /// Opening or reading failed for another reason (network, permissions, …).
    case openFailed(input: String, reason: String)
    /// The requested sampling cannot be done on this input.
    case invalidRequest(input: String, reason: String)
    /// The input was read to its end and no frame could be decoded from it.
    case noFrames(input: String)
    /// Writing an image failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let input): return "\(input): no such file"
        case .emptyFile(let input): return "\(input): file is empty (0 bytes)"
        case .notAVideo(let input, let reason): return "\(input): not a video (\(reason))"
        case .noVideoStream(let input): return "\(input): has no video stream"
        case .unsupportedCodec(let input, let codec): return "\(input): unsupported video codec '\(codec)'"
        case .corrupt(let input, let reason): return "\(input): corrupt or truncated data (\(reason))"
        case .openFailed(let input, let reason): return "\(input): cannot open (\(reason))"
        case .invalidRequest(let input, let reason): return "\(input): \(reason)"
        case .noFrames(let input): return "\(input): no frame could be decoded"
        case .writeFailed(let path, let reason): return "\(path): cannot write (\(reason))"
        }
    }
}
