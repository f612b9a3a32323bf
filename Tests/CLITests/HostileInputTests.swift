import Foundation
import Tensor
import TestSupport
import XCTest

/// Hostile inputs, full disks, closed pipes and Ctrl-C: no crash, no silent success, nothing
/// half-written (issue 14).
final class HostileInputTests: XCTestCase {
    typealias Corpus = HostileCorpus

    /// Runs each command line, `parallel` at a time; each must exit 1...127 with exactly one stderr
    /// line naming `names`, nothing on stdout, and leave `outputs` empty.
    func assertRefused(_ cases: [(arguments: [String], names: String)], outputs: URL, status: ClosedRange<Int32> = 1...127,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        final class Results: @unchecked Sendable {  // the lock guards `all`
            let lock = NSLock()
            var all: [Int: CLI.Result] = [:]
        }
        let results = Results()
        let queue = DispatchQueue(label: "hostile", attributes: .concurrent)
        let group = DispatchGroup(), gate = DispatchSemaphore(value: 3)
        for (i, c) in cases.enumerated() {
            gate.wait()
            queue.async(group: group) {
                let result = try? CLI.run(c.arguments, timeout: 60)
                results.lock.withLock { results.all[i] = result }
                gate.signal()
            }
        }
        group.wait()
        for (i, c) in cases.enumerated() {
            let context = c.arguments.joined(separator: " ")
            guard let result = results.lock.withLock({ results.all[i] }) else { XCTFail("\(context): did not run", file: file, line: line); continue }
            XCTAssertTrue(status.contains(result.status), "\(context): exit \(result.status): \(result.stderr)", file: file, line: line)
            XCTAssertEqual(result.stdout, "", "\(context): nothing on stdout", file: file, line: line)
            XCTAssertEqual(result.stderrLines.count, 1, "\(context): exactly one stderr line: \(result.stderr)", file: file, line: line)
            XCTAssertTrue(result.stderr.contains(c.names), "\(context): names \(c.names): \(result.stderr)", file: file, line: line)
        }
        XCTAssertEqual(Corpus.contents(outputs), [], "nothing left behind", file: file, line: line)
    }

    /// Every command that reads a video, on each broken video input.
    func testEveryVideoCommandRefusesEachBrokenInputInOneLine() throws {
        let root = try temporaryDirectory("videos"), out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        func make(_ name: String, _ data: Data) throws -> String {
            let url = root.appendingPathComponent(name)
            try data.write(to: url)
            return url.path
        }
        var noise = Data(count: 65536)
        for i in noise.indices { noise[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
        let folder = root.appendingPathComponent("folder.mp4")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let inputs = [
            CLI.path("media/empty.mp4"), CLI.path("media/not-a-video.mp4"), CLI.path("media/truncated.mp4"),
            CLI.path("media/audio-only.m4a"), root.appendingPathComponent("no-such.mp4").path, folder.path,
            try make("noise.mp4", noise), try make("huge.png", Corpus.png(width: 65535, height: 65535)),
            try make("garbage-payload.mp4", Corpus.garbagePayload(CLI.path("media/aspect-4x3.mp4"))),
        ]
        let m = Corpus.model, o = out.path
        var cases: [([String], String)] = []
        for input in inputs {
            cases += [
                ["probe", input], ["frames", input], ["frames", input, "--json", "--frames", "2"],
                ["frames", input, "--dump", o + "/dump"], ["stats", input, "--model", m, "--frames", "2"],
                ["encode", m, input, "--out", o + "/e.safetensors", "--frames", "2"],
                ["visualize", input, "--model", m, "-o", o + "/v.mp4", "--frames", "2"],
                ["visualize", input, "--model", m, "-o", o + "/pngs/", "--frames", "2"],
                ["ask", input, "What?", "--model", m, "--frames", "2", "--max-tokens", "2"],
            ].map { ($0, input) }
        }
        // probe reads headers only: these three have whole ones, and it rightly reports them.
        cases.removeAll { $0.0.first == "probe" && [inputs[2], inputs[7], inputs[8]].contains($0.0[1]) }
        try assertRefused(cases, outputs: out)
    }

    /// Every command that reads a model directory, on each hostile one.
    func testEveryModelCommandRefusesEachHostileModelInOneLine() throws {
        let root = try temporaryDirectory("models"), out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        func text(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { json in
                var t = json["text_config"] as? [String: Any] ?? [:]
                edit(&t)
                json["text_config"] = t
            }
        }
        func vision(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { json in
                var v = json["vision_config"] as? [String: Any] ?? [:]
                edit(&v)
                json["vision_config"] = v
            }
        }
        let vocabulary = try Corpus.firstTensor(matching: "model.text_model.embed_tokens")
        let visionTensor = try Corpus.firstTensor(matching: "model.vision_model")
        // Which side each variant breaks: the text side is read by inspect, ask and chat; the vision
        // side by inspect, ask, stats, encode and visualize; the weights file by all of them.
        let textReaders: Set<String> = ["inspect", "ask", "chat"], visionReaders: Set<String> = ["inspect", "ask", "stats", "encode", "visualize"]
        let fileReaders = textReaders.union(visionReaders)
        let models: [(name: String, path: String, readers: Set<String>)] = [
            ("text-layers", try Corpus.model(in: root, named: "text-layers", edit: text { $0["num_hidden_layers"] = 1_000_000_000 }), textReaders),
            ("vision-layers", try Corpus.model(in: root, named: "vision-layers", edit: vision { $0["num_hidden_layers"] = 1_000_000_000 }), visionReaders),
            ("vision-width", try Corpus.model(in: root, named: "vision-width", edit: vision { $0["hidden_size"] = 1 << 40 }), visionReaders),
            ("vocabulary", try Corpus.model(in: root, named: "vocabulary", edit: text { $0["vocab_size"] = 1 << 40 }), textReaders),
            ("context", try Corpus.model(in: root, named: "context", edit: text { $0["max_position_embeddings"] = 1 << 50 }), textReaders),
            // Reals that make every norm or rotation NaN: refused, not answered with "".
            ("rms-eps", try Corpus.model(in: root, named: "rms-eps", edit: text { $0["rms_norm_eps"] = -1 }), textReaders),
            ("rope-theta", try Corpus.model(in: root, named: "rope-theta", edit: text { $0["rope_parameters"] = ["rope_theta": 0, "rope_type": "default"] }), textReaders),
            ("layer-norm-eps", try Corpus.model(in: root, named: "layer-norm-eps", edit: vision { $0["layer_norm_eps"] = 0 }), visionReaders),
            ("longest-edge", try Corpus.model(in: root, named: "longest-edge", file: "preprocessor_config.json") {
                $0["max_image_size"] = ["longest_edge": 100_000]
                $0["size"] = ["longest_edge": 100_000]
            }, visionReaders),
            ("truncated", try Corpus.model(in: root, named: "truncated") { $0.prefix($0.count - 1000) }, fileReaders),
            ("offset-2^70", try Corpus.model(in: root, named: "offset-2^70", weights: Corpus.replacing(visionTensor.name) { b, _ in
                "{\"dtype\":\"\(visionTensor.dtype)\",\"shape\":\(visionTensor.shape),\"data_offsets\":[\(b),1180591620717411303424]}"
            }), fileReaders),
            ("non-integer-shape", try Corpus.model(in: root, named: "non-integer-shape", weights: Corpus.replacing(visionTensor.name) { b, e in
                "{\"dtype\":\"\(visionTensor.dtype)\",\"shape\":[1.5],\"data_offsets\":[\(b),\(e)]}"
            }), fileReaders),
            ("duplicate", try Corpus.model(in: root, named: "duplicate", weights: Corpus.replacing(visionTensor.name) { b, e in
                let entry = "{\"dtype\":\"\(visionTensor.dtype)\",\"shape\":\(visionTensor.shape),\"data_offsets\":[\(b),\(e)]}"
                return entry + ",\"\(visionTensor.name)\":" + entry
            }), fileReaders),
            ("overlap", try Corpus.model(in: root, named: "overlap", weights: Corpus.replacing(visionTensor.name) { b, e in
                "{\"dtype\":\"\(visionTensor.dtype)\",\"shape\":\(visionTensor.shape),\"data_offsets\":[\(b + 4),\(e + 4)]}"
            }), fileReaders),
            ("nan-vision", try Corpus.model(in: root, named: "nan-vision") { try Self.poison($0, tensor: visionTensor.name) }, visionReaders.subtracting(["inspect"])),
            ("nan-text", try Corpus.model(in: root, named: "nan-text") { try Self.poison($0, tensor: vocabulary.name) }, ["ask", "chat"]),
        ]
        let clip = Corpus.clip, o = out.path
        var cases: [([String], String)] = []
        for m in models {
            // inspect reads headers, not values: the NaN variants are not its input.
            let all: [[String]] = [
                ["inspect", m.path],
                ["ask", clip, "What?", "--model", m.path, "--frames", "2", "--max-tokens", "2"],
                ["chat", "--model", m.path, "Hi", "--max-tokens", "2"],
                ["stats", clip, "--model", m.path, "--frames", "2"],
                ["encode", m.path, clip, "--out", o + "/e.safetensors", "--frames", "2"],
                ["visualize", clip, "--model", m.path, "-o", o + "/v.mp4", "--frames", "2"],
            ]
            cases += all.filter { m.readers.contains($0[0]) }.map { ($0, m.path) }
        }
        try assertRefused(cases, outputs: out)
    }

    /// NaN at the first element of `tensor` (F32 or BF16).
    static func poison(_ file: Data, tensor: String) throws -> Data {
        let (header, _) = try HostileCorpus.split(file)
        let entry = try XCTUnwrap(header[tensor] as? [String: Any])
        let begin = try XCTUnwrap((entry["data_offsets"] as? [Int])?.first)
        let length = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var bytes = [UInt8](file)
        let at = 8 + length + begin
        if entry["dtype"] as? String == "BF16" {
            bytes[at] = 0xC0; bytes[at + 1] = 0x7F
        } else {
            bytes[at] = 0; bytes[at + 1] = 0; bytes[at + 2] = 0xC0; bytes[at + 3] = 0x7F
        }
        return Data(bytes)
    }

    /// A GGUF whose llama.block_count is 10^9: refused at once, naming the file and the field.
    func testGGUFBlockCountIsBoundedBeforeAllocating() throws {
        let root = try temporaryDirectory("gguf")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: CLI.path("Tests/Fixtures/lm-gguf/model.gguf"))))
        let key = Array("llama.block_count".utf8)
        let at = try XCTUnwrap((0..<(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key })
        let type = Int(bytes[at + key.count]) | Int(bytes[at + key.count + 1]) << 8
        XCTAssertEqual(type, 4, "block_count is a u32")
        let value = at + key.count + 4
        for (i, b) in [UInt8(0x00), 0xCA, 0x9A, 0x3B].enumerated() { bytes[value + i] = b }  // 10^9
        let path = root.appendingPathComponent("layers.gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        // Refused from the header: a 10^9-layer allocation would have been killed (a signal, not status 1).
        let result = try CLI.run(["chat", "--model", path, "Hi", "--max-tokens", "2"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(path) && result.stderr.contains("llama.block_count"), result.stderr)
    }

    /// --max-tokens far beyond the context is bounded by it: no 8 TB reservation, no overflow trap.
    func testMaxTokensBeyondTheContextIsBoundedByIt() throws {
        for tokens in ["1000000000000", "9223372036854775807"] {
            let ask = try CLI.run(["ask", Corpus.clip, "What?", "--model", Corpus.model, "--frames", "2", "--max-tokens", tokens, "--json"])
            XCTAssertEqual(ask.status, 0, ask.stderr)
            let answer = try XCTUnwrap(CLI.events(ask.stdout).first)
            let generated = try XCTUnwrap((answer["answers"] as? [[String: Any]])?.first?["generated_tokens"] as? Int)
            XCTAssertLessThanOrEqual(generated + (answer["prefill_tokens"] as? Int ?? 0), 2048, "within the context")
            let chat = try CLI.run(["chat", "--model", Corpus.model, "Hi", "--max-tokens", tokens, "--context", "64"])
            XCTAssertEqual(chat.status, 0, chat.stderr)
        }
    }

    /// Flags out of range: exit 64, one line.
    func testHostileFlagsExit64() throws {
        try assertRefused([
            (["live", "udp://127.0.0.1:9", "--model", Corpus.model, "--max-reconnects", "-1"], "--max-reconnects"),
            (["ask", Corpus.clip, "What?", "--model", Corpus.model, "--max-tokens", "0"], "--max-tokens"),
            (["frames", Corpus.clip, "--frames", "0"], "--frames"),
            (["frames", Corpus.clip, "--start", "nan"], "--start"),
            (["stats", Corpus.clip, "--model", Corpus.model, "--end", "nan"], "--end"),
        ], outputs: try temporaryDirectory("flags"), status: 64...64)
    }

    // MARK: messages

    func testMessagesSayWhatTheInputIs() throws {
        let root = try temporaryDirectory("messages")
        let fifo = root.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // A writer that closes at once: the fifo is empty, but not "a file of 0 bytes".
        let writer = Thread { let fd = open(fifo, O_WRONLY); if fd >= 0 { close(fd) } }
        writer.start()
        let cases: [(input: String, says: String, never: String)] = [
            ("/dev/urandom", "/dev/urandom", "file is empty"),
            (fifo, fifo, "file is empty"),
            (root.path, "is a directory", "no such file"),
        ]
        for c in cases {
            let result = try CLI.run(["frames", c.input], timeout: 60)
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(c.says), result.stderr)
            XCTAssertFalse(result.stderr.contains(c.never), result.stderr)
        }
        // --out under a regular file: a plain message, before any encoding.
        let file = root.appendingPathComponent("plain").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let encode = try CLI.run(["encode", Corpus.model, Corpus.clip, "--out", file + "/e.safetensors", "--frames", "2"])
        XCTAssertEqual(encode.status, 1)
        XCTAssertEqual(encode.stderrLines, ["hiprune-video: \(file)/e.safetensors: \(file) is not a directory"])
        // A device as a model, a range past the end.
        XCTAssertEqual(try CLI.run(["chat", "--model", "/dev/zero", "Hi"]).stderrLines,
                       ["hiprune-video: /dev/zero: cannot read: not a regular file (a .gguf file or a model directory is expected)"])
        XCTAssertEqual(try CLI.run(["frames", Corpus.clip, "--start", "1e308"]).stderrLines,
                       ["hiprune-video: \(Corpus.clip): no frame between --start and --end"])
        // A truncated safetensors file names the same tensor every run.
        let model = try Corpus.model(in: root, named: "truncated") { $0.prefix($0.count - 1000) }
        let first = try CLI.run(["inspect", model]).stderr
        for _ in 0..<3 { XCTAssertEqual(try CLI.run(["inspect", model]).stderr, first) }
    }

    // MARK: output

    /// stdout on a full disk: one line naming stdout and the cause, exit 1 (not 0 with the output lost).
    func testFullDiskOnStdoutEndsWithOneLine() throws {
        let commands: [[String]] = [
            ["probe", Corpus.clip], ["probe", Corpus.clip, "--json"], ["frames", Corpus.clip, "--frames", "2"],
            ["stats", Corpus.clip, "--model", Corpus.model, "--frames", "2"], ["inspect", Corpus.model],
            ["ask", Corpus.clip, "What?", "--model", Corpus.model, "--frames", "2", "--max-tokens", "2"],
            ["ask", Corpus.clip, "What?", "--model", Corpus.model, "--frames", "2", "--max-tokens", "2", "--json"],
            ["chat", "--model", Corpus.model, "Hi", "--max-tokens", "2"],
            ["--help"], ["ask", "--help"], ["help", "stats"],
        ]
        for arguments in commands {
            let result = try run(arguments, stdout: FileHandle(forWritingAtPath: "/dev/full"))
            XCTAssertEqual(result.reason, .exit, arguments.joined(separator: " "))
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
            let lines = result.stderr.split(separator: "\n").filter { !$0.hasPrefix("load ") && !$0.hasPrefix("visual tokens") && !$0.hasPrefix("prefill") }
            XCTAssertEqual(lines, ["hiprune-video: stdout: No space left on device"], "\(arguments): \(result.stderr)")
        }
    }

    /// A closed pipe ends the process as it ends `head`'s writers: by SIGPIPE, nothing on stderr.
    func testClosedPipeEndsQuietly() throws {
        for arguments in [["frames", Corpus.clip], ["stats", Corpus.clip, "--model", Corpus.model, "--frames", "4"],
                          ["chat", "--model", Corpus.model, "Hi", "--max-tokens", "8"], ["ask", "--help"]] {
            let pipe = Pipe()
            try pipe.fileHandleForReading.close()
            let result = try run(arguments, stdout: pipe.fileHandleForWriting)
            XCTAssertEqual(result.reason, .uncaughtSignal, "\(arguments): \(result.stderr)")
            XCTAssertEqual(result.status, SIGPIPE)
            XCTAssertEqual(result.stderr.split(separator: "\n").filter { !$0.hasPrefix("load ") }, [], "\(arguments)")
        }
    }

    /// An unwritable stderr never traps: the exit status still says what happened.
    func testUnwritableStderrStillExitsWithTheStatus() throws {
        let process = Process()
        process.executableURL = try CLI.binary()
        process.arguments = ["frames", "/no/such/clip.mp4"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/full")
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 1)
    }

    struct Outcome {
        var status: Int32
        var reason: Process.TerminationReason
        var stderr: String
    }

    func run(_ arguments: [String], stdout: FileHandle?) throws -> Outcome {
        let process = Process()
        process.executableURL = try CLI.binary()
        process.arguments = arguments
        process.currentDirectoryURL = CLI.repository
        process.standardOutput = stdout
        let err = Pipe()
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, reason: process.terminationReason, stderr: String(decoding: text, as: UTF8.self))
    }

    /// `ask --every-frame` on a clip whose frames cannot fit the context: refused after the first
    /// frame (132 frames × 16 tokens > 2048), naming the numbers and the flags; on stdin, as soon
    /// as the frames so far overflow it.
    func testAskRefusesAPromptThatCannotFitBeforeEncodingTheClip() throws {
        let clip = CLI.path("media/bigbuckbunny.mp4")
        let result = try CLI.run(["ask", clip, "What?", "--model", Corpus.model, "--every-frame", "--method", "none"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("132 steps of 16 visual tokens (2112) do not fit the language model's context of 2048"), result.stderr)
        XCTAssertTrue(result.stderr.contains("--frames") && result.stderr.contains("--budget"), result.stderr)

        let piped = Process()
        piped.executableURL = try CLI.binary()
        piped.arguments = ["ask", "-", "What?", "--model", Corpus.model, "--every-frame", "--method", "none"]
        piped.currentDirectoryURL = CLI.repository
        piped.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: CLI.path("media/aspect-16x9.mp4")))
        let err = Pipe()
        piped.standardError = err
        piped.standardOutput = FileHandle.nullDevice
        try piped.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        piped.waitUntilExit()
        XCTAssertEqual(piped.terminationStatus, 0, "a short clip on stdin fits: \(text)")
    }

    /// `live` on a plain file ends at its end (no replay); on what no retry can fix (an unknown
    /// protocol, empty stdin) it gives up at once, even without --max-reconnects: the gave_up
    /// event, one line on stderr, exit 1.
    func testLiveEndsOrGivesUpInsteadOfLoopingSilently() throws {
        let file = try CLI.run(["live", Corpus.clip, "--model", Corpus.model, "--fps", "10", "--capacity", "16"], timeout: 60)
        XCTAssertEqual(file.status, 0, file.stderr)
        let kinds = CLI.events(file.stdout).compactMap { $0["event"] as? String }
        XCTAssertEqual(kinds, Array(repeating: "frame", count: 10) + ["summary"], "1 s at 10 fps, once: \(file.stdout)")
        for (url, cause) in [("foo://bar", "cannot open (Protocol not found)"), ("-", "cannot open")] {
            let result = try CLI.run(["live", url, "--model", Corpus.model], timeout: 30)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("hiprune-video: \(url): gave up: ") && result.stderr.contains(cause), result.stderr)
            XCTAssertEqual(CLI.events(result.stdout).compactMap { $0["event"] as? String }, ["gave_up", "summary"], result.stdout)
        }
    }

    /// `stats -` reads a pipe (an MP4 whose index comes first, and MPEG-TS) without probing it
    /// first: the probe used to eat the bytes the decoder needed.
    func testStatsReadsAPipe() throws {
        let root = try temporaryDirectory("pipe")
        let ts = try Corpus.transportStream(seconds: 3, in: root)
        for (bytes, frames) in [(try Data(contentsOf: URL(fileURLWithPath: CLI.path("media/aspect-16x9.mp4"))), 1), (ts, 3)] {
            let pipe = Pipe()
            let clip = frames == 1 ? "aspect-16x9.mp4" : "MPEG-TS"
            Thread { try? pipe.fileHandleForWriting.write(contentsOf: bytes); try? pipe.fileHandleForWriting.close() }.start()
            let running = try CLI.start(["stats", "-", "--model", Corpus.model, "--format", "jsonl"], stdin: pipe.fileHandleForReading)
            let result = running.finish()
            XCTAssertEqual(result.status, 0, "\(clip): \(result.stderr)")
            XCTAssertEqual(CLI.events(result.stdout).filter { $0["frame"] != nil }.count, frames, "\(clip): one row a second: \(result.stdout)")
        }
    }
}
