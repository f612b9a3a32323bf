import Foundation
import XCTest

/// `live` on a real-time stream over loopback UDP, bounded to a few seconds each.
final class LiveCLITests: XCTestCase {
    let model = CLI.path("Tests/Fixtures/smolvlm-vqa")

    func testFramesAnswersReconnectsAndSummary() throws {
        let port = CLI.freeUDPPort()
        let url = "udp://127.0.0.1:\(port)"
        let live = try CLI.start(["live", url, "--model", model, "--question", "What is shown?", "--every", "1s",
                                  "--window", "3", "--fps", "2", "--max-tokens", "4", "--stall-timeout", "2",
                                  "--open-timeout", "4", "--backoff", "0.2", "--max-reconnects", "2"])
        let streamer = try CLI.streamer(to: url, seconds: 6)
        streamer.waitUntilExit()
        // After the stream stops: a stall, two reconnects that find nothing, then the summary.
        let deadline = Date().addingTimeInterval(30)
        while live.process.isRunning && Date() < deadline { usleep(50_000) }
        if live.process.isRunning { live.process.terminate() }
        let result = live.finish()
        // Giving up is a failure: the gave_up event for a reader of the events, one line and a
        // non-zero exit for a shell.
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderrLines, ["hiprune-video: \(url): gave up: nothing received within 4.0 s of opening"])
        let events = CLI.events(result.stdout)
        let kinds = events.compactMap { $0["event"] as? String }
        let frames = events.filter { $0["event"] as? String == "frame" }
        XCTAssertGreaterThanOrEqual(frames.count, 4, result.stdout)
        for frame in frames {
            XCTAssertEqual(frame["tokens_before"] as? Int, 16)
            XCTAssertEqual(frame["tokens_after"] as? Int, 5)
        }
        let frameTimes = frames.compactMap { $0["time"] as? Double }
        XCTAssertEqual(frameTimes, frameTimes.sorted())
        let answers = events.filter { $0["event"] as? String == "answer" }
        XCTAssertGreaterThanOrEqual(answers.count, 1, result.stdout)
        for answer in answers {
            let start = try XCTUnwrap(answer["window_start"] as? Double), end = try XCTUnwrap(answer["window_end"] as? Double)
            XCTAssertLessThanOrEqual(start, end)
            XCTAssertTrue(frameTimes.contains(start) && frameTimes.contains(end), "window bounds are frame times")
            let count = try XCTUnwrap(answer["frames"] as? Int)
            XCTAssertTrue((1...3).contains(count), "the window holds at most 3 frames")
            XCTAssertEqual(answer["question"] as? String, "What is shown?")
            XCTAssertGreaterThan(try XCTUnwrap(answer["latency_ms"] as? Double), 0)
        }
        let reconnects = events.filter { $0["event"] as? String == "reconnect" }
        XCTAssertEqual(reconnects.compactMap { $0["attempt"] as? Int }, [1, 2], result.stdout)
        XCTAssertEqual(reconnects.compactMap { $0["delay_s"] as? Double }, [0.2, 0.4], "backoff doubles")
        XCTAssertEqual(kinds.suffix(2), ["gave_up", "summary"])
        let summary = try XCTUnwrap(events.last)
        XCTAssertEqual(summary["frames"] as? Int, frames.count)
        XCTAssertEqual(summary["answers"] as? Int, answers.count)
        XCTAssertEqual(summary["reconnects"] as? Int, 2)
    }

    func testSlowConsumerDropsFramesAndSIGINTEndsWithSummary() throws {
        let port = CLI.freeUDPPort()
        let url = "udp://127.0.0.1:\(port)"
        let live = try CLI.start(["live", url, "--model", model, "--fps", "10", "--capacity", "1",
                                  "--throttle-milliseconds", "400", "--stall-timeout", "10"])
        let streamer = try CLI.streamer(to: url, seconds: 8)
        defer { if streamer.isRunning { streamer.terminate() } }
        // Wait for a few frames, then interrupt as a user would.
        let deadline = Date().addingTimeInterval(20)
        while CLI.events(live.stdoutSoFar).filter({ $0["event"] as? String == "frame" }).count < 5 && Date() < deadline {
            usleep(100_000)
        }
        kill(live.process.processIdentifier, SIGINT)
        let result = live.finish()
        XCTAssertEqual(result.status, 0, "SIGINT ends cleanly: \(result.stderr)")
        let events = CLI.events(result.stdout)
        let summary = try XCTUnwrap(events.last)
        XCTAssertEqual(summary["event"] as? String, "summary")
        XCTAssertEqual(summary["stopped_by_signal"] as? Bool, true)
        let dropped = try XCTUnwrap(summary["dropped"] as? Int)
        XCTAssertGreaterThan(dropped, 0, "10 frames/s into a consumer taking 400 ms each must drop")
        let dropEvents = events.filter { $0["event"] as? String == "drops" }
        XCTAssertEqual(dropEvents.last?["total"] as? Int, dropped)
        XCTAssertEqual(dropEvents.compactMap { $0["dropped"] as? Int }.reduce(0, +), dropped)
        let frames = events.filter { $0["event"] as? String == "frame" }.count
        XCTAssertGreaterThanOrEqual(frames, 5)
    }

    /// A stream with a keyframe every 10 s (libx264's -g 250 at 25 fps; here -g 100 at 10 fps),
    /// joined just after a keyframe: packets arrive for ~9 s before anything decodes. That is not a
    /// stall (the timeouts here are 3 and 4 s): the first frame comes without a reconnect, and the
    /// wait is said once on stderr.
    func testSlowKeyframesAreWaitedForWithoutReconnecting() throws {
        let port = CLI.freeUDPPort()
        let url = "udp://127.0.0.1:\(port)"
        let streamer = try CLI.streamer(to: url, seconds: 16, codec: ["-c:v", "libx264", "-preset", "ultrafast", "-g", "100",
                                                                      "-keyint_min", "100", "-sc_threshold", "0"])
        defer { if streamer.isRunning { streamer.terminate() } }
        usleep(1_500_000)  // past the first keyframe
        let live = try CLI.start(["live", url, "--model", model, "--fps", "2", "--stall-timeout", "3", "--open-timeout", "4",
                                  "--max-reconnects", "0"])
        let deadline = Date().addingTimeInterval(25)
        while live.process.isRunning && Date() < deadline
            && !CLI.events(live.stdoutSoFar).contains(where: { $0["event"] as? String == "frame" }) {
            usleep(100_000)
        }
        kill(live.process.processIdentifier, SIGINT)
        let result = live.finish()
        let kinds = CLI.events(result.stdout).compactMap { $0["event"] as? String }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(kinds.first, "frame", "the first event is a frame, not a reconnect: \(result.stdout)")
        XCTAssertFalse(kinds.contains("reconnect") || kinds.contains("gave_up"), result.stdout)
        XCTAssertEqual(result.stderrLines, ["hiprune-video: \(url): packets arrive but none decodes yet: waiting for a keyframe"])
    }
}
