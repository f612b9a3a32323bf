import Foundation
import TestSupport
import XCTest

/// `live` on a real-time stream over loopback UDP. Every wait is for an event in live's output (a
/// frame, an answer, a reconnect) or for live itself to bind its port; the streamers run until the
/// test stops them, so no test depends on how fast the machine is.
final class LiveCLITests: XCTestCase {
    let model = CLI.path("Tests/Fixtures/smolvlm-vqa")

    /// `--reuse` in live: on media/still-motion.mp4 (frames 1–4 repeat 0, 11–14 repeat 10; a ring of 64
    /// so nothing is dropped) the frame events mark exactly the repeated frames and the summary counts them.
    func testReuseMarksRepeatedFramesAndSummaryCountsThem() throws {
        let clip = CLI.path("media/still-motion.mp4")
        for (threshold, expected) in [("0.5", [1, 2, 3, 4, 11, 12, 13, 14]), ("0", [])] {
            let result = try CLI.run(["live", clip, "--model", model, "--fps", "5", "--reuse", threshold,
                                      "--max-reconnects", "0", "--capacity", "64"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let events = CLI.events(result.stdout)
            let frames = events.filter { $0["event"] as? String == "frame" }
            XCTAssertEqual(frames.count, 15, result.stdout)
            XCTAssertEqual(frames.filter { $0["reused"] as? Bool == true }.compactMap { $0["frame"] as? Int }, expected)
            let summary = try XCTUnwrap(events.last)
            XCTAssertEqual(summary["event"] as? String, "summary")
            // Without --reuse the events are what they always were: no reuse fields at all.
            if threshold == "0" {
                XCTAssertTrue(frames.allSatisfy { $0["reused"] == nil }, result.stdout)
                XCTAssertNil(summary["reused_frames"])
            } else {
                XCTAssertEqual(summary["reused_frames"] as? Int, expected.count)
            }
        }
    }

    /// The events `live` printed so far of one kind.
    static func events(_ live: CLI.Running, _ kind: String) -> [[String: Any]] {
        CLI.events(live.stdoutSoFar).filter { $0["event"] as? String == kind }
    }

    func testFramesAnswersReconnectsAndSummary() throws {
        let (live, url) = try CLI.startListening { url in
            ["live", url, "--model", model, "--question", "What is shown?", "--every", "1s",
             "--window", "3", "--fps", "2", "--max-tokens", "4", "--stall-timeout", "2",
             "--open-timeout", "4", "--backoff", "0.2", "--max-reconnects", "2"]
        }
        defer { if live.process.isRunning { live.process.terminate() } }
        let streamer = try CLI.streamer(to: url)
        defer { if streamer.isRunning { streamer.terminate() } }
        let answered = Wait.until { Self.events(live, "frame").count >= 4 && !Self.events(live, "answer").isEmpty }
        XCTAssertTrue(answered, "no frames and answer: \(live.stdoutSoFar)")
        streamer.terminate()
        streamer.waitUntilExit()
        // After the stream stops: a stall, two reconnects that find nothing, then the summary.
        XCTAssertTrue(Wait.until { !live.process.isRunning }, "live did not give up: \(live.stdoutSoFar)")
        if live.process.isRunning { live.process.terminate() }
        let result = live.finish()
        // Giving up is a failure: the gave_up event for a reader of the events, one line and a
        // non-zero exit for a shell.
        XCTAssertEqual(result.status, 1, result.stderr)
        // Besides: "waiting for a keyframe" when packets came for 3 s before the first frame decoded,
        // which on a busy machine (probing, decoding) can happen with a keyframe every 1.2 s.
        let notice = "hiprune-video: \(url): packets arrive but none decodes yet: waiting for a keyframe"
        XCTAssertEqual(result.stderrLines.filter { $0 != notice }, ["hiprune-video: \(url): gave up: nothing received within 4.0 s of opening"])
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

    /// A source that stops and comes back: live reconnects with a backoff that doubles up to
    /// --backoff-max and stays there, resumes frames once the source is back, and the next outage
    /// starts counting attempts (and the backoff) from the beginning again.
    func testASourceThatComesBackResumesFramesResetsAttemptsAndCapsBackoff() throws {
        let (live, url) = try CLI.startListening { url in
            ["live", url, "--model", model, "--fps", "2", "--stall-timeout", "2", "--open-timeout", "2",
             "--backoff", "0.2", "--backoff-max", "0.3", "--max-reconnects", "20"]
        }
        defer { if live.process.isRunning { live.process.terminate() } }
        func kinds() -> [String] { CLI.events(live.stdoutSoFar).compactMap { $0["event"] as? String } }

        var streamer = try CLI.streamer(to: url)
        defer { if streamer.isRunning { streamer.terminate() } }
        XCTAssertTrue(Wait.until { kinds().filter { $0 == "frame" }.count >= 2 }, "no frames: \(live.stdoutSoFar)")
        streamer.terminate()
        streamer.waitUntilExit()
        // Gone: attempts 1, 2, 3 at 0.2 s, then 0.4 s capped to 0.3 s, and 0.3 s again.
        XCTAssertTrue(Wait.until { kinds().filter { $0 == "reconnect" }.count >= 3 }, "no reconnects: \(live.stdoutSoFar)")

        streamer = try CLI.streamer(to: url)
        let outage = kinds().filter { $0 == "reconnect" }.count
        // Back: frames come again after the last reconnect.
        let resumed = Wait.until {
            let k = kinds()
            guard let last = k.lastIndex(of: "reconnect") else { return false }
            return k[last...].filter { $0 == "frame" }.count >= 2
        }
        XCTAssertTrue(resumed, "frames did not resume: \(live.stdoutSoFar)")
        streamer.terminate()
        streamer.waitUntilExit()
        // Gone again: the next reconnect is attempt 1 with the first delay.
        let again = Wait.until {
            let k = kinds()
            guard let frame = k.lastIndex(of: "frame") else { return false }
            return k[frame...].contains("reconnect")
        }
        XCTAssertTrue(again, "no reconnect after the second outage: \(live.stdoutSoFar)")
        kill(live.process.processIdentifier, SIGINT)
        let result = live.finish()
        XCTAssertEqual(result.status, 0, "SIGINT ends cleanly: \(result.stderr)")

        let events = CLI.events(result.stdout)
        let kinds = events.compactMap { $0["event"] as? String }
        guard let firstResumed = kinds.indices.first(where: { i in
            kinds[i] == "frame" && kinds[..<i].contains("reconnect")
        }) else { return XCTFail("no frame after a reconnect: \(result.stdout)") }
        let before = events[..<firstResumed].filter { $0["event"] as? String == "reconnect" }
        let after = events[firstResumed...].filter { $0["event"] as? String == "reconnect" }
        XCTAssertGreaterThanOrEqual(before.count, max(3, outage), result.stdout)
        XCTAssertEqual(before.compactMap { $0["attempt"] as? Int }, Array(1...before.count), "attempts count up while it is gone")
        XCTAssertEqual(before.compactMap { $0["delay_s"] as? Double }, [0.2] + Array(repeating: 0.3, count: before.count - 1),
                       "the backoff doubles up to --backoff-max and stays there")
        XCTAssertEqual(after.first?["attempt"] as? Int, 1, "a connection that delivered frames resets the attempts: \(result.stdout)")
        XCTAssertEqual(after.first?["delay_s"] as? Double, 0.2, "and the backoff")
        XCTAssertFalse(kinds.contains("gave_up"), result.stdout)
        let summary = try XCTUnwrap(events.last)
        XCTAssertEqual(summary["event"] as? String, "summary")
        XCTAssertEqual(summary["reconnects"] as? Int, before.count + after.count)
        XCTAssertEqual(summary["frames"] as? Int, kinds.filter { $0 == "frame" }.count)
    }

    func testSlowConsumerDropsFramesAndSIGINTEndsWithSummary() throws {
        let (live, url) = try CLI.startListening { url in
            ["live", url, "--model", model, "--fps", "10", "--capacity", "1",
             "--throttle-milliseconds", "400", "--stall-timeout", "10"]
        }
        defer { if live.process.isRunning { live.process.terminate() } }
        let streamer = try CLI.streamer(to: url)
        defer { if streamer.isRunning { streamer.terminate() } }
        // Wait for a few frames and a drop, then interrupt as a user would.
        let dropped = Wait.until { Self.events(live, "frame").count >= 5 && !Self.events(live, "drops").isEmpty }
        XCTAssertTrue(dropped, "no frames and drops: \(live.stdoutSoFar)")
        kill(live.process.processIdentifier, SIGINT)
        let result = live.finish()
        XCTAssertEqual(result.status, 0, "SIGINT ends cleanly: \(result.stderr)")
        let events = CLI.events(result.stdout)
        let summary = try XCTUnwrap(events.last)
        XCTAssertEqual(summary["event"] as? String, "summary")
        XCTAssertEqual(summary["stopped_by_signal"] as? Bool, true)
        let total = try XCTUnwrap(summary["dropped"] as? Int)
        XCTAssertGreaterThan(total, 0, "10 frames/s into a consumer taking 400 ms each must drop")
        let dropEvents = events.filter { $0["event"] as? String == "drops" }
        XCTAssertEqual(dropEvents.last?["total"] as? Int, total)
        XCTAssertEqual(dropEvents.compactMap { $0["dropped"] as? Int }.reduce(0, +), total)
        let frames = events.filter { $0["event"] as? String == "frame" }.count
        XCTAssertGreaterThanOrEqual(frames, 5)
    }

    /// A stream whose first keyframe never arrives (the streamer drops its first packet, headers and
    /// all) and whose next comes 10 s later (-g 100 at 10 fps): packets arrive for ~10 s before
    /// anything decodes. That is not a stall (the timeouts here are 3 and 4 s): the first frame comes
    /// without a reconnect, and the wait is said once on stderr.
    func testSlowKeyframesAreWaitedForWithoutReconnecting() throws {
        let (live, url) = try CLI.startListening { url in
            ["live", url, "--model", model, "--fps", "2", "--stall-timeout", "3", "--open-timeout", "4",
             "--max-reconnects", "0"]
        }
        defer { if live.process.isRunning { live.process.terminate() } }
        let streamer = try CLI.streamer(to: url, codec: ["-c:v", "libx264", "-preset", "ultrafast", "-g", "100",
                                                         "-keyint_min", "100", "-sc_threshold", "0",
                                                         "-bsf:v", "noise=drop=eq(n\\,0)"])
        defer { if streamer.isRunning { streamer.terminate() } }
        let framed = Wait.until { !live.process.isRunning || !Self.events(live, "frame").isEmpty }
        XCTAssertTrue(framed, "no frame: \(live.stdoutSoFar)")
        kill(live.process.processIdentifier, SIGINT)
        let result = live.finish()
        let kinds = CLI.events(result.stdout).compactMap { $0["event"] as? String }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(kinds.first, "frame", "the first event is a frame, not a reconnect: \(result.stdout)")
        XCTAssertFalse(kinds.contains("reconnect") || kinds.contains("gave_up"), result.stdout)
        XCTAssertEqual(result.stderrLines, ["hiprune-video: \(url): packets arrive but none decodes yet: waiting for a keyframe"])
    }
}
