import Foundation

/// Peer programs (PyTorch scripts, llama.cpp tools, numpy) run beside our own measurements.
enum Peer {
    enum Capture { case standardOutput, standardError }

    /// Runs `executable` to completion and returns what it wrote to `capture` (the other stream is
    /// discarded), or nil when it cannot start or exits non-zero: a missing peer skips its column.
    static func run(_ executable: String, _ arguments: [String], capture: Capture = .standardOutput,
                    environment: [String: String]? = nil) -> Data? {
        guard let executable = resolve(executable) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = capture == .standardOutput ? pipe : FileHandle.nullDevice
        process.standardError = capture == .standardError ? pipe : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? data : nil
    }

    /// The last line of a peer's output as a JSON object (the scripts print their result last).
    static func lastJSONObject(_ data: Data) -> [String: Any]? {
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }
}

extension Peer {
    /// The Python that runs the peers: $HIPRUNE_PYTHON, else `python3` on PATH (the README says so).
    static var defaultPython: String { ProcessInfo.processInfo.environment["HIPRUNE_PYTHON"] ?? "python3" }

    /// `name` as an executable path: itself when it has a slash, else the first match on PATH.
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
