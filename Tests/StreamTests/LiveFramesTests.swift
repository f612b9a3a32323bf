import Foundation
import TestSupport
import XCTest
@testable import Stream

/// LiveFrames against a real-time mpegts stream the ffmpeg CLI sends over loopback UDP. Every wait
/// is for an event (the port bound, a frame, a drop, the reader gone); a watchdog only ends a test
/// that would hang, and a test fails if the watchdog was what ended it.
final class LiveFramesTests: XCTestCase {
    /// A source listening on a fresh loopback port: its reader started (by the iterator) and bound.
    struct Listening {
        var frames: LiveFrames
        var iterator: LiveFrames.AsyncIterator
        var url: String
    }

    static func listening(options: DecodeOptions = DecodeOptions(), capacity: Int) throws -> Listening {
        let (source, _) = try LoopbackUDP.listen(
            start: { port -> Listening in
                let url = "udp://127.0.0.1:\(port)"
                let frames = LiveFrames(input: url, options: options, capacity: capacity)
                return Listening(frames: frames, iterator: frames.makeAsyncIterator(), url: url)
            },
            pid: { _ in getpid() }, failed: { !$0.frames.isReading }, discard: { $0.frames.stop() })
        return source
    }

    /// The ffmpeg CLI sending a 25 fps testsrc clip to `url` in real time until terminated.
    static func startSender(to url: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                             "-i", "testsrc=size=320x240:rate=25", "-t", "300",
                             "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
                             "-f", "mpegts", "\(url)?pkt_size=1316"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits until every decoder of `frames` is gone and its reader has ended.
    static func waitForRelease(_ frames: LiveFrames) async -> Bool {
        await Wait.suspendingUntil { frames.counters.openDecoders == 0 && !frames.isReading }
    }

    /// Stops `frames` after `seconds` whatever happens, so no test can hang on a silent socket;
    /// its value says whether it had to.
    static func watchdog(_ frames: LiveFrames, seconds: Double = Wait.backstop) -> Task<Bool, Never> {
        Task.detached {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            if Task.isCancelled { return false }
            frames.stop()
            return true
        }
    }

    /// Counts the frames `iterator` yields until it ends (cancellation ends it).
    static func consume(_ iterator: LiveFrames.AsyncIterator, seen: StreamCounters) -> Task<Int, any Error> {
        Task {
            var iterator = iterator
            var count = 0
            while try await iterator.next() != nil {
                count += 1
                seen.recordSample()
            }
            return count
        }
    }

    func testSlowConsumerDropsFramesAndRingStaysWithinCapacity() async throws {
        var source = try Self.listening(options: DecodeOptions(size: FrameSize(width: 64, height: 48)), capacity: 3)
        let frames = source.frames
        let watchdog = Self.watchdog(frames)
        let sender = try Self.startSender(to: source.url)
        defer { sender.terminate() }

        var received: [VideoFrame] = []
        if let first = try await source.iterator.next() { received.append(first) }
        XCTAssertEqual(received.count, 1, "no live frame arrived")
        // The consumer is behind: while it does not take frames the ring fills and the oldest go.
        let dropping = await Wait.suspendingUntil { frames.counters.droppedFrames >= 3 }
        XCTAssertTrue(dropping, "no frame dropped: \(frames.counters.droppedFrames)")
        while received.count < 8, let frame = try await source.iterator.next() {
            received.append(frame)
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
        XCTAssertGreaterThanOrEqual(frames.counters.droppedFrames, 3)
        XCTAssertEqual(frames.counters.bufferHighWater, frames.capacity, "drops happen only when the ring is full")
        XCTAssertGreaterThan(frames.counters.decodedFrames, received.count)

        frames.stop()
        let end = try await source.iterator.next()
        XCTAssertNil(end, "a stopped source yields nothing more")
        let released = await Self.waitForRelease(frames)
        XCTAssertTrue(released, "decoders still open: \(frames.counters.openDecoders)")
        watchdog.cancel()
        let fired = await watchdog.value
        XCTAssertFalse(fired, "the watchdog, not the test, ended the source")
    }

    func testCancellingTheConsumerReturnsPromptlyAndFreesTheDecoder() async throws {
        let source = try Self.listening(options: DecodeOptions(size: FrameSize(width: 32, height: 32)), capacity: 2)
        let frames = source.frames
        let watchdog = Self.watchdog(frames)
        let seen = StreamCounters()
        let consumer = Self.consume(source.iterator, seen: seen)
        let sender = try Self.startSender(to: source.url)
        defer { sender.terminate() }
        let arrived = await Wait.suspendingUntil { seen.sampledFrames >= 3 }
        XCTAssertTrue(arrived, "no live frames arrived")
        XCTAssertEqual(frames.counters.openDecoders, 1, "the reader owns one decoder while it runs")

        consumer.cancel()
        let count = try await consumer.value
        // Cancellation, not the watchdog, ended the sequence (the stream goes on for minutes).
        watchdog.cancel()
        let fired = await watchdog.value
        XCTAssertFalse(fired, "cancelling the consumer did not end the sequence")
        XCTAssertGreaterThanOrEqual(count, 3)
        let released = await Self.waitForRelease(frames)
        XCTAssertTrue(released, "decoders still open after cancel: \(frames.counters.openDecoders)")
    }

    /// Nothing is sent: the reader is blocked inside FFmpeg's network read (its socket is bound and
    /// waiting), which only the interrupt callback can end.
    func testCancellingWhileTheNetworkReadBlocksEndsTheReader() async throws {
        let source = try Self.listening(capacity: 2)
        let frames = source.frames
        let watchdog = Self.watchdog(frames)
        XCTAssertTrue(frames.isReading, "the reader should be waiting for data")
        let consumer = Self.consume(source.iterator, seen: StreamCounters())

        consumer.cancel()
        let count = try await consumer.value
        watchdog.cancel()
        let fired = await watchdog.value
        XCTAssertFalse(fired, "cancelling the consumer did not end the blocked read")
        XCTAssertEqual(count, 0)
        let released = await Self.waitForRelease(frames)
        XCTAssertTrue(released, "the blocked reader did not end: reading \(frames.isReading), decoders \(frames.counters.openDecoders)")
    }
}
