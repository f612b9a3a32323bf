import Foundation
import Tensor
import TestSupport
import XCTest

/// SIGINT / SIGTERM in the middle of writing: visualize (a video file, a directory of PNGs) and
/// frames --dump leave nothing behind, encode writes a valid file of what it has; partials of an
/// earlier run never pile up.
///
/// The input is an MPEG-TS clip fed through a fifo (a file path, so the commands stage their
/// output as for any file) or stdin: half of it is written, the command is interrupted once its
/// partial output exists, then the feeder stops.
final class InterruptTests: XCTestCase {
    static let model = CLI.path("models/demo-smolvlm2")
    var root: URL!
    var clip = Data()

    override func setUpWithError() throws {
        signal(SIGPIPE, SIG_IGN)  // the feeder may outlive its reader
        root = try temporaryDirectory("interrupt")
        clip = try HostileCorpus.transportStream(seconds: 30, in: root)
    }

    /// Writes the first half of the clip to `handle`, then waits for `release` and closes it.
    func feed(_ open: @escaping @Sendable () -> FileHandle?, release: DispatchSemaphore) {
        let half = clip.prefix(clip.count / 2)
        Thread {
            guard let handle = open() else { return }
            try? handle.write(contentsOf: half)
            release.wait()
            try? handle.close()
        }.start()
    }

    /// Waits until `ready()` (the backstop fails a test that would hang).
    func waitFor(_ what: String, _ ready: () -> Bool) {
        XCTAssertTrue(Wait.until(ready), "timed out waiting for \(what)")
    }

    func size(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

    /// Starts `arguments` reading a fifo fed with half the clip; interrupts it with `signal` once
    /// `started()`; returns its result after releasing the feeder.
    func interrupt(_ arguments: (String) -> [String], signal number: Int32, started: () -> Bool) throws -> CLI.Result {
        let fifo = root.appendingPathComponent("input.ts").path
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let release = DispatchSemaphore(value: 0)
        feed({ FileHandle(forWritingAtPath: fifo) }, release: release)
        let running = try CLI.start(arguments(fifo))
        waitFor("the partial output") { started() || !running.process.isRunning }
        kill(running.process.processIdentifier, number)
        let result = running.finish()
        release.signal()
        unlink(fifo)
        return result
    }

    func testVisualizeToAVideoLeavesNothingOnSIGINTAndReplacesAStalePartial() throws {
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let partial = out.appendingPathComponent(".v.mp4.partial").path
        try Data("stale".utf8).write(to: URL(fileURLWithPath: partial))  // an earlier run killed hard
        let result = try interrupt({ ["visualize", $0, "--model", Self.model, "-o", out.path + "/v.mp4", "--every-frame"] },
                                   signal: SIGINT) {
            // The new partial (FFmpeg's buffer may hold its first bytes), not the 5 stale bytes.
            FileManager.default.fileExists(atPath: partial) && size(partial) != 5
        }
        XCTAssertEqual(result.status, 130, result.stderr)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(HostileCorpus.contents(out), [], "no partial, no video")
    }

    func testVisualizeToADirectoryLeavesNothingOnSIGTERM() throws {
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let staging = out.appendingPathComponent(".pngs.partial").path
        let result = try interrupt({ ["visualize", $0, "--model", Self.model, "-o", out.path + "/pngs/", "--every-frame"] },
                                   signal: SIGTERM) { ((try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? []).count > 1 }
        XCTAssertEqual(result.status, 143, result.stderr)
        XCTAssertEqual(HostileCorpus.contents(out), [], "no staging directory, no PNGs")
    }

    func testFramesDumpLeavesNothingOnSIGINTAndAStalePartialIsReplaced() throws {
        let dump = root.appendingPathComponent("dump")
        let staging = dump.appendingPathComponent(".partial")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try Data("stale".utf8).write(to: staging.appendingPathComponent("frame-999999.png"))
        let result = try interrupt({ ["frames", $0, "--dump", dump.path] }, signal: SIGINT) {
            ((try? FileManager.default.contentsOfDirectory(atPath: staging.path)) ?? []).count > 3
        }
        XCTAssertEqual(result.status, 130, result.stderr)
        XCTAssertEqual(result.stdout, "", "a file's lines wait for its end")
        XCTAssertEqual(HostileCorpus.contents(dump), [], "no staged PNG, the stale one included")
    }

    /// `frames --dump NEW`: the directory this run made goes too, not only its staged PNGs.
    func testFramesDumpIntoANewDirectoryLeavesNoDirectoryOnSIGINT() throws {
        let dump = root.appendingPathComponent("fresh")
        let staging = dump.appendingPathComponent(".partial")
        let result = try interrupt({ ["frames", $0, "--dump", dump.path] }, signal: SIGINT) {
            ((try? FileManager.default.contentsOfDirectory(atPath: staging.path)) ?? []).count > 3
        }
        XCTAssertEqual(result.status, 130, result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dump.path), "the directory this run made is gone")
    }

    /// Two runs writing one destination at once: while a live run holds the partial (its lock,
    /// held here by the test), a second is refused with one line and leaves the partial alone;
    /// once released, the same partial is a leftover and is replaced.
    func testASecondRunToADestinationInUseIsRefused() throws {
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let clip = HostileCorpus.clip, model = Self.model
        // (arguments, destination, its partial, whether the partial is a directory)
        let cases: [([String], String, String, Bool)] = [
            (["visualize", clip, "--model", model, "--frames", "2", "-o", out.path + "/v.mp4"], "v.mp4", ".v.mp4.partial", false),
            (["visualize", clip, "--model", model, "--frames", "2", "-o", out.path + "/pngs/"], "pngs", ".pngs.partial", true),
            (["encode", model, clip, "--frames", "2", "--layers", "1", "--out", out.path + "/e.safetensors"], "e.safetensors", ".e.safetensors.partial", false),
            (["frames", clip, "--frames", "2", "--dump", out.path + "/dump"], "dump", "dump/.partial", true),
        ]
        for (arguments, destination, partialName, isDirectory) in cases {
            let partial = out.appendingPathComponent(partialName).path
            if isDirectory {
                try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
            } else {
                try Data("live".utf8).write(to: URL(fileURLWithPath: partial))
            }
            let holder = open(partial, O_RDONLY)
            XCTAssertGreaterThanOrEqual(holder, 0)
            XCTAssertEqual(flock(holder, LOCK_EX | LOCK_NB), 0)
            let refused = try CLI.run(arguments)
            XCTAssertEqual(refused.status, 1, "\(arguments)")
            XCTAssertEqual(refused.stdout, "", "\(arguments)")
            // (Progress lines such as "load …" may come first; the failure is one line.)
            let errors = refused.stderrLines.filter { $0.hasPrefix("hiprune-video:") }
            XCTAssertEqual(errors.count, 1, refused.stderr)
            XCTAssertTrue(errors.first.map { $0.contains("another run is writing it") && $0.contains(destination) } ?? false, refused.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: partial), "the live run's partial stays: \(arguments)")
            if !isDirectory { XCTAssertEqual(size(partial), 4, "untouched: \(arguments)") }
            close(holder)
            let replaced = try CLI.run(arguments)
            XCTAssertEqual(replaced.status, 0, "\(arguments): \(replaced.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: partial), "the leftover was replaced, then moved into place: \(arguments)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(destination).path), "\(arguments)")
        }
    }

    /// `encode -` on a stream: Ctrl-C writes a valid file of the frames encoded so far.
    func testEncodeFromAStreamWritesWhatItHasOnSIGINT() throws {
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let target = out.appendingPathComponent("e.safetensors").path
        let spool = out.appendingPathComponent(".e.safetensors.partial").path
        let pipe = Pipe()
        let release = DispatchSemaphore(value: 0)
        let writer = pipe.fileHandleForWriting
        feed({ writer }, release: release)
        let running = try CLI.start(["encode", Self.model, "-", "--out", target, "--fps", "5", "--layers", "1"], stdin: pipe.fileHandleForReading)
        waitFor("two frames in the spool") { size(spool) > 8192 }
        kill(running.process.processIdentifier, SIGINT)
        let result = running.finish()
        release.signal()
        XCTAssertEqual(result.status, 130, result.stderr)
        let line = try XCTUnwrap(result.stderrLines.last)
        XCTAssertTrue(line.hasPrefix("hiprune-video: interrupted: wrote the ") && line.hasSuffix("frames encoded so far to \(target)"), result.stderr)
        XCTAssertEqual(HostileCorpus.contents(out), ["e.safetensors"], "the file, no spool")
        let file = try SafeTensorsFile(path: target)
        let frames = try XCTUnwrap(Int(file.metadata["frames"] ?? ""))
        XCTAssertGreaterThanOrEqual(frames, 1)
        XCTAssertTrue(line.contains("the \(frames) frames"), line)
        for i in 0..<frames {
            XCTAssertNotNil(file.entries["frame.\(i).features"], "frame \(i)")
            XCTAssertNotNil(file.entries["frame.\(i).scores"], "frame \(i)")
            XCTAssertNotNil(file.metadata["frame.\(i).grid"], "frame \(i)")
        }
        XCTAssertNil(file.entries["frame.\(frames).features"], "no half frame")
    }
}
