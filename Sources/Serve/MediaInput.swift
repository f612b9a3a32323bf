import Foundation
import Stream

/// Where `serve` may read media from: local files under the allowed directories, network URLs
/// of the allowed schemes, and `data:` URLs up to a size.
public struct MediaPolicy: Sendable {
    /// Directories (symbolic links resolved) whose files `file://` URLs may name.
    public var allowedDirectories: [String]
    /// Network schemes a `video_url` / `image_url` may use (`http`, `https`, …), lower case.
    public var allowedSchemes: Set<String>
    /// Schemes a live session may use: the live ones plus the allowed ones.
    public var liveSchemes: Set<String>
    /// Most decoded bytes of one `data:` URL.
    public var maxDataBytes: Int

    public static let defaultLiveSchemes: Set<String> = ["udp", "rtp", "rtsp", "srt", "tcp", "rtmp", "rtmps"]

    public init(allowedDirectories: [String], allowedSchemes: Set<String>, maxDataBytes: Int) {
        self.allowedDirectories = allowedDirectories.map { Self.canonical($0) }
        self.allowedSchemes = Set(allowedSchemes.map { $0.lowercased() })
        self.liveSchemes = Self.defaultLiveSchemes.union(self.allowedSchemes)
        self.maxDataBytes = maxDataBytes
    }

    static func canonical(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// True when `path` (resolved) lies inside an allowed directory.
    func allows(path: String) -> Bool {
        let resolved = Self.canonical(path)
        return allowedDirectories.contains { dir in resolved == dir || resolved.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/") }
    }

    static func scheme(of url: String) -> String? {
        guard let colon = url.firstIndex(of: ":"), colon > url.startIndex,
              url[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else { return nil }
        return url[..<colon].lowercased()
    }

    /// The media a request names, made readable by FFmpeg; `field` names the request field in errors.
    func resolve(_ url: String, field: String, temporaryDirectory: TemporaryDirectory) throws(APIError) -> MediaInput {
        guard let scheme = Self.scheme(of: url) else {
            throw .badField(field, "'\(url.prefix(80))' is not a URL (file://, data: or an allowed network scheme)")
        }
        switch scheme {
        case "file":
            guard let parsed = URL(string: url), parsed.isFileURL, !parsed.path.isEmpty else {
                throw .badField(field, "'\(url.prefix(200))' is not a valid file:// URL")
            }
            let path = parsed.path
            guard allows(path: path) else {
                throw .forbidden(field, "\(path) is outside every --allow-path directory")
            }
            var status = stat()
            guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
                throw .badField(field, "\(path) is not a readable file")
            }
            let resolved = MediaPolicy.canonical(path)
            let identity = "file:\(resolved)|\(status.st_dev)|\(status.st_ino)|\(status.st_size)|\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
            return MediaInput(location: resolved, cacheIdentity: identity, temporary: nil)
        case "data":
            return try decodeData(url, field: field, temporaryDirectory: temporaryDirectory)
        default:
            if Self.defaultLiveSchemes.contains(scheme) {
                throw .badField(field, "\(scheme):// is a live stream: POST /v1/live watches live streams")
            }
            guard allowedSchemes.contains(scheme) else {
                throw .forbidden(field, "\(scheme):// URLs are not allowed (the operator allows them with --allow-url-scheme)")
            }
            // A network resource may change between requests: never cached.
            return MediaInput(location: url, cacheIdentity: nil, temporary: nil)
        }
    }

    /// `data:[<type>][;base64],<payload>`: the payload goes to a private temporary file that the
    /// returned input removes.
    func decodeData(_ url: String, field: String, temporaryDirectory: TemporaryDirectory) throws(APIError) -> MediaInput {
        guard let comma = url.firstIndex(of: ",") else { throw .badField(field, "a data: URL needs a ',' before its payload") }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma].lowercased()
        let parts = header.split(separator: ";").map(String.init)
        guard parts.contains("base64") else { throw .badField(field, "only base64 data: URLs are accepted") }
        let type = parts.first ?? ""
        guard let suffix = Self.suffixes[type] else {
            throw .badField(field, "data: type '\(type)' is not one of \(Self.suffixes.keys.sorted().joined(separator: ", "))")
        }
        let payload = url[url.index(after: comma)...]
        // base64 holds 3 bytes per 4 characters: refuse before decoding anything too big.
        guard payload.utf8.count / 4 * 3 <= maxDataBytes else {
            throw APIError(status: 413, "\(field): the data: URL holds more than \(maxDataBytes) bytes", param: field)
        }
        guard let data = Data(base64Encoded: String(payload)), !data.isEmpty else {
            throw .badField(field, "the data: URL's payload is not valid base64")
        }
        let file: String
        do { file = try temporaryDirectory.write(data, suffix: suffix) } catch {
            throw APIError(status: 500, "\(field): cannot write the data: URL to a temporary file", param: field, type: "server_error")
        }
        return MediaInput(location: file, cacheIdentity: nil, temporary: file)
    }

    static let suffixes: [String: String] = [
        "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov", "video/x-matroska": "mkv",
        "video/mp2t": "ts", "video/mpeg": "mpg", "image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg",
        "image/webp": "webp", "image/bmp": "bmp",
    ]
}

/// Media of one request: what FFmpeg opens, how the frame cache knows it, and the temporary file
/// to remove when the request ends.
public struct MediaInput: Sendable {
    public var location: String
    /// Device, inode, size and modification time of a local file; nil: never cached.
    public var cacheIdentity: String?
    public var temporary: String?

    /// Removes the temporary file, if any.
    func discard() {
        if let temporary { unlink(temporary) }
    }
}

/// A directory only this process reads (mode 0700), removed with its files at exit.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init() throws {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("hiprune-serve-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw APIError(status: 500, "cannot create a temporary directory", type: "server_error")
        }
        path = String(cString: made)
    }

    /// Writes `data` to a new file of mode 0600 inside the directory.
    func write(_ data: Data, suffix: String) throws -> String {
        var template = Array((path as NSString).appendingPathComponent("media-XXXXXX.\(suffix)").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, Int32(suffix.utf8.count + 1)) }
        guard fd >= 0 else { throw APIError(status: 500, "mkstemps failed", type: "server_error") }
        let file = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let written = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        close(fd)
        guard written else {
            unlink(file)
            throw APIError(status: 500, "cannot write a temporary file", type: "server_error")
        }
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
