import Foundation
import TestSupport
import XCTest

/// Runs the built `hiprune-video` (next to the test bundle) as a user would.
enum CLI {
    static let repository = URL(fileURLWithPath: Fixtures.repository)

    static func path(_ relative: String) -> String { repository.appendingPathComponent(relative).path }

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
        let deadline = Date().addingTimeInterval(timeout)
        while process.process.isRunning && Date() < deadline { usleep(20_000) }
        if process.process.isRunning { process.process.terminate() }
        return process.finish()
    }

    final class Running: @unchecked Sendable {  // read from one test thread only
        let process: Process
        let out: Pipe, err: Pipe
        private var outData = Data(), errData = Data()
        private let lock = NSLock()

        init(process: Process, out: Pipe, err: Pipe) {
            self.process = process
            self.out = out
            self.err = err
            out.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.lock.withLock { self?.outData.append(d) }
            }
            err.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.lock.withLock { self?.errData.append(d) }
            }
        }

        var stdoutSoFar: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
        var stderrSoFar: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }

        func finish() -> Result {
            process.waitUntilExit()
            out.fileHandleForReading.readabilityHandler = nil
            err.fileHandleForReading.readabilityHandler = nil
            let restOut = out.fileHandleForReading.readDataToEndOfFile()
            let restErr = err.fileHandleForReading.readDataToEndOfFile()
            return lock.withLock {
                outData.append(restOut)
                errData.append(restErr)
                return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
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

    /// A UDP port nobody listens on now.
    static func freeUDPPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The ffmpeg CLI streaming a synthetic clip in real time to `url` (loopback only).
    static func streamer(to url: String, seconds: Double, size: String = "160x120", rate: Int = 10,
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
