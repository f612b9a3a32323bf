import Foundation
import TestSupport
import XCTest
@testable import Stream

/// Pull-based files keep memory flat however slow the consumer, and free FFmpeg on cancel.
final class MemoryTests: XCTestCase {
    static let clip = Fixtures.repositoryPath("media/bigbuckbunny.mp4")

    /// Resident set size of this process in bytes (second field of /proc/self/statm, in pages).
    static func residentBytes() throws -> Int {
        let text = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let fields = text.split(separator: " ")
        let pages = try XCTUnwrap(fields.count > 1 ? Int(fields[1]) : nil, "unreadable /proc/self/statm: \(text)")
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Counts frames, 20 ms each, until the sequence ends (cancellation ends it).
    static func consumeSlowly(_ frames: VideoFrames, seen: StreamCounters) async throws -> Int {
        var count = 0
        for try await _ in frames {
            count += 1
            seen.recordSample()
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return count
    }

    func testSlowConsumerOnAFileKeepsMemoryFlat() async throws {
        // Full-size 1280x720 frames: every frame kept alive by mistake would add 2.7 MB.
        let frames = VideoFrames(input: Self.clip)
        var count = 0
        var warm = 0
        var peakGrowth = 0
        for try await frame in frames {
            count += 1
            XCTAssertEqual(frame.rgb.count, 1280 * 720 * 3)
            if count == 20 { warm = try Self.residentBytes() }
            if count > 20 { peakGrowth = max(peakGrowth, try Self.residentBytes() - warm) }
            // A slow consumer: decoding must wait for it rather than run ahead and pile up.
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        XCTAssertEqual(count, 132, "ffprobe counts 132 video packets in bigbuckbunny.mp4")
        XCTAssertEqual(frames.counters.decodedFrames, 132)
        // 112 frames after warm-up: a leak of one frame each would be 300 MB.
        XCTAssertLessThan(peakGrowth, 12 << 20, "RSS grew \(peakGrowth >> 10) KB after warm-up")
        XCTAssertEqual(frames.counters.openDecoders, 0)
    }

    func testCancellingAFileMidwayFreesTheDecoder() async throws {
        let seen = StreamCounters()
        let frames = VideoFrames(input: Self.clip, options: DecodeOptions(size: FrameSize(width: 64, height: 64)))
        let consumer = Task { try await MemoryTests.consumeSlowly(frames, seen: seen) }
        let running = await Wait.suspendingUntil { seen.sampledFrames >= 5 }
        XCTAssertTrue(running, "no frame came")
        XCTAssertEqual(frames.counters.openDecoders, 1, "the iterator owns one decoder while it runs")
        consumer.cancel()
        let count = try await consumer.value
        XCTAssertGreaterThanOrEqual(count, 5)
        XCTAssertLessThan(count, 132, "cancellation did not stop the sequence")
        XCTAssertEqual(frames.counters.openDecoders, 0, "the cancelled iterator still holds FFmpeg objects")
    }

    func testBrokenInputsLeaveNoDecoderBehind() async throws {
        let media = URL(fileURLWithPath: Self.clip).deletingLastPathComponent()
        for name in ["audio-only.m4a", "not-a-video.mp4", "empty.mp4", "missing.mp4", "truncated.mp4"] {
            let frames = VideoFrames(input: media.appendingPathComponent(name).path)
            do {
                for try await _ in frames {}
                if name != "truncated.mp4" { XCTFail("\(name) decoded without an error") }
            } catch {
                XCTAssertTrue(String(describing: error).contains(name), "\(error)")
            }
            XCTAssertEqual(frames.counters.openDecoders, 0, "\(name) left a decoder open")
        }
    }
}
