import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `hiprune-video` (next to the test bundle) as a user would.
enum CLI {
    static let repository = URL(fileURLWithPath: Fixtures.repository)

    static func path(_ relative: String) -> String { repository.appendingPathComponent(relative).path }

    /// A test's precondition that did not hold (the server never started, no HTTP reply): a failure.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    struct NotBuilt: Error, CustomStringConvertible {
        var places: [String]
        var description: String { "hiprune-video is not built next to the tests (looked in \(places.joined(separator: ", ")))" }
    }

    /// `swift test` builds the package's executables beside the test bundle.
    static func binary() throws -> URL {
        let bundle = Bundle.main.bundleURL
        let places = [bundle, bundle.deletingLastPathComponent(), Bundle.main.executableURL?.deletingLastPathComponent()]
            .compactMap { $0 }
        for place in places {
            let url = place.appendingPathComponent("hiprune-video")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw NotBuilt(places: places.map(\.path))
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
        var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
    }

    /// Runs to completion (killed after `timeout` seconds), output captured; `environment` adds to ours.
    static func run(_ arguments: [String], timeout: Double = 120, environment: [String: String] = [:]) throws -> Result {
        let process = try start(arguments, environment: environment)
        Wait.until(backstop: timeout) { !process.process.isRunning }
        if process.process.isRunning { process.process.terminate() }
        return process.finish()
    }

    /// A started process whose stdout and stderr are read to their ends by one thread each, so every
    /// byte is in the result once `finish` returns: FileHandle's readabilityHandler could hand a last
    /// chunk to a callback still in flight after the handler was cleared and the rest read — a whole
    /// one-line stderr lost on a busy machine.
    final class Running: @unchecked Sendable {  // the lock guards outData and errData
        let process: Process
        let out: Pipe, err: Pipe
        private var outData = Data(), errData = Data()
        private let lock = NSLock()
        private let outEnded = DispatchSemaphore(value: 0), errEnded = DispatchSemaphore(value: 0)

        init(process: Process, out: Pipe, err: Pipe) {
            self.process = process
            self.out = out
            self.err = err
            Self.drain(out.fileHandleForReading, ended: outEnded) { [weak self] d in self?.lock.withLock { self?.outData.append(d) } }
            Self.drain(err.fileHandleForReading, ended: errEnded) { [weak self] d in self?.lock.withLock { self?.errData.append(d) } }
        }

        /// Reads `handle` until end of file (every writer closed it) on a thread of its own (blocking
        /// reads would starve Dispatch's pool when many processes run at once), then signals `ended`.
        private static func drain(_ handle: FileHandle, ended: DispatchSemaphore, append: @escaping @Sendable (Data) -> Void) {
            let fd = handle.fileDescriptor
            Thread {
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 { append(Data(buffer[..<n])) } else if n < 0 && errno == EINTR { continue } else { break }
                }
                withExtendedLifetime(handle) {}  // the descriptor stays open while it is read
                ended.signal()
            }.start()
        }

        var stdoutSoFar: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
        var stderrSoFar: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }

        /// Waits for the exit and for both streams' ends (a descendant still holding a pipe after the
        /// exit gets 30 s, then what was read is the output). Callable again: an end seen stays seen.
        func finish() -> Result {
            process.waitUntilExit()
            for ended in [outEnded, errEnded] where ended.wait(timeout: .now() + 30) == .success { ended.signal() }
            return lock.withLock {
                Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                       stderr: String(decoding: errData, as: UTF8.self))
            }
        }
    }

    static func start(_ arguments: [String], stdin: FileHandle? = nil, environment: [String: String] = [:]) throws -> Running {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin ?? FileHandle.nullDevice
        let running = Running(process: process, out: out, err: err)
        try process.run()
        return running
    }

    /// A command that listens on a loopback UDP URL (`live`), started with that URL and returned
    /// once its process has bound the port (so a streamer started next loses nothing to the start-up);
    /// a port taken in between is given up for another.
    static func startListening(_ arguments: (String) -> [String]) throws -> (Running, String) {
        let (running, port) = try LoopbackUDP.listen(
            start: { port in try start(arguments("udp://127.0.0.1:\(port)")) },
            pid: { $0.process.processIdentifier },
            failed: { !$0.process.isRunning || $0.stdoutSoFar.contains("Address already in use") },
            discard: { running in
                if running.process.isRunning { running.process.terminate() }
                _ = running.finish()
            })
        return (running, "udp://127.0.0.1:\(port)")
    }

    /// The ffmpeg CLI streaming a synthetic clip in real time to `url` (loopback only); tests that
    /// wait for events stop it themselves, `seconds` only bounds it.
    static func streamer(to url: String, seconds: Double = 300, size: String = "160x120", rate: Int = 10,
                         codec: [String] = ["-c:v", "mpeg2video"]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                             "-i", "testsrc=size=\(size):rate=\(rate)", "-t", String(seconds)]
            + codec + ["-f", "mpegts", url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// JSON objects of a JSONL output.
    static func events(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}
