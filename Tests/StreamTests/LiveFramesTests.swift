import Foundation
import XCTest
@testable import Stream

#if canImport(Glibc)
import Glibc
#endif

/// LiveFrames against a real-time mpegts stream the ffmpeg CLI sends over loopback UDP.
final class LiveFramesTests: XCTestCase {
    static let ffmpeg = ["/usr/bin/ffmpeg", "/usr/local/bin/ffmpeg"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// A UDP port nobody is bound to right now (the kernel picks it).
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw XCTSkip("no UDP socket") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(socket, raw, length) == 0 && getsockname(socket, raw, &length) == 0
            }
        }
        guard bound else { throw XCTSkip("cannot bind a loopback UDP port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Sends `seconds` of a 25 fps testsrc clip to `port` in real time.
    static func startSender(port: Int, seconds: Int) throws -> Process {
        guard let ffmpeg else { throw XCTSkip("ffmpeg CLI not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                             "-i", "testsrc=size=320x240:rate=25", "-t", "\(seconds)",
                             "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                             "-f", "mpegts", "udp://127.0.0.1:\(port)?pkt_size=1316"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits (bounded) until every Decoder of the process is gone and the reader has ended.
    static func waitForRelease(_ frames: LiveFrames, within seconds: Double = 2) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if StreamDiagnostics.openDecoders == 0 && !frames.isReading { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return false
    }

    /// Counts the frames of `frames` until it ends (cancellation ends it).
    static func consume(_ frames: LiveFrames, seen: StreamCounters) async throws -> Int {
        var count = 0
        for try await _ in frames {
            count += 1
            seen.recordSample()
        }
        return count
    }

    /// Stops `frames` after `seconds` whatever happens, so no test can hang on a silent socket.
    static func watchdog(_ frames: LiveFrames, seconds: Double) -> Task<Void, Never> {
        Task.detached {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            if !Task.isCancelled { frames.stop() }
        }
    }

    func testSlowConsumerDropsFramesAndRingStaysWithinCapacity() async throws {
        let port = try Self.freePort()
        let options = DecodeOptions(size: FrameSize(width: 64, height: 48))
        let frames = LiveFrames(input: "udp://127.0.0.1:\(port)", options: options, capacity: 3)
        let watchdog = Self.watchdog(frames, seconds: 8)
        defer { watchdog.cancel() }
        var iterator = frames.makeAsyncIterator()
        let sender = try Self.startSender(port: port, seconds: 4)
        defer { sender.terminate() }

        var received: [VideoFrame] = []
        while received.count < 8, let frame = try await iterator.next() {
            received.append(frame)
            // 25 fps arrive, about 5 fps are consumed.
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        XCTAssertEqual(received.count, 8, "the live sequence ended early")
        for frame in received {
            XCTAssertEqual(frame.width, 64)
            XCTAssertEqual(frame.height, 48)
            XCTAssertEqual(frame.rgb.count, 64 * 48 * 3)
        }
        // The index counts sampled frames, dropped ones included: gaps prove frames were dropped.
        XCTAssertTrue(zip(received, received.dropFirst()).allSatisfy { $0.index < $1.index && $0.time < $1.time })
        XCTAssertGreaterThan(received.last.map { $0.index + 1 } ?? 0, received.count)
        XCTAssertGreaterThan(frames.counters.droppedFrames, 0)
        XCTAssertLessThanOrEqual(frames.counters.bufferHighWater, frames.capacity)
        XCTAssertGreaterThan(frames.counters.bufferHighWater, 0)
        XCTAssertGreaterThan(frames.counters.decodedFrames, received.count)

        frames.stop()
        let end = try await iterator.next()
        XCTAssertNil(end, "a stopped source yields nothing more")
        let released = await Self.waitForRelease(frames)
        XCTAssertTrue(released, "decoders still open: \(StreamDiagnostics.openDecoders)")
    }

    func testCancellingTheConsumerReturnsPromptlyAndFreesTheDecoder() async throws {
        let port = try Self.freePort()
        let frames = LiveFrames(input: "udp://127.0.0.1:\(port)",
                                options: DecodeOptions(size: FrameSize(width: 32, height: 32)), capacity: 2)
        let watchdog = Self.watchdog(frames, seconds: 8)
        defer { watchdog.cancel() }
        let seen = StreamCounters()
        let consumer = Task { try await LiveFramesTests.consume(frames, seen: seen) }
        let sender = try Self.startSender(port: port, seconds: 5)
        defer { sender.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while seen.sampledFrames < 3 && Date() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertGreaterThanOrEqual(seen.sampledFrames, 3, "no live frames arrived")
        XCTAssertEqual(StreamDiagnostics.openDecoders, 1)

        let cancelled = Date()
        consumer.cancel()
        let count = try await consumer.value
        XCTAssertLessThan(Date().timeIntervalSince(cancelled), 1, "cancellation did not return promptly")
        XCTAssertGreaterThanOrEqual(count, 3)
        let released = await Self.waitForRelease(frames, within: 1)
        XCTAssertTrue(released, "decoders still open after cancel: \(StreamDiagnostics.openDecoders)")
    }

    /// Nothing is sent: the reader is blocked inside FFmpeg's network read, which only the
    /// interrupt callback can end.
    func testCancellingWhileTheNetworkReadBlocksEndsTheReader() async throws {
        let port = try Self.freePort()
        let frames = LiveFrames(input: "udp://127.0.0.1:\(port)", capacity: 2)
        let watchdog = Self.watchdog(frames, seconds: 8)
        defer { watchdog.cancel() }
        let consumer = Task { try await LiveFramesTests.consume(frames, seen: StreamCounters()) }
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertTrue(frames.isReading, "the reader should still be waiting for data")

        let cancelled = Date()
        consumer.cancel()
        let count = try await consumer.value
        XCTAssertLessThan(Date().timeIntervalSince(cancelled), 1, "cancellation did not return promptly")
        XCTAssertEqual(count, 0)
        let released = await Self.waitForRelease(frames, within: 1)
        XCTAssertTrue(released, "the blocked reader did not end: reading \(frames.isReading), decoders \(StreamDiagnostics.openDecoders)")
    }
}
