import Foundation
import TestSupport
import XCTest

/// `serve` on a loopback port with the demo model, driven by curl as a client would. Every wait
/// is for an event (a line, a status, a metric) under a generous deadline, never a fixed sleep.
final class ServeCLITests: XCTestCase {
    let model = CLI.path("models/demo-smolvlm2")
    let clip = CLI.path("media/bigbuckbunny.mp4")
    var servers: [CLI.Running] = []

    override func tearDown() {
        for server in servers where server.process.isRunning { server.process.terminate() }
        servers.forEach { _ = $0.finish() }
        servers = []
    }

    /// Starts `serve --port 0` and reads the bound port from its "listening on" line.
    func startServer(_ extra: [String] = []) throws -> (CLI.Running, Int) {
        let server = try CLI.start(["serve", "--model", model, "--port", "0", "--allow-path", CLI.path("media")] + extra)
        servers.append(server)
        var port: Int?
        Wait.until {
            if let range = server.stderrSoFar.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = server.stderrSoFar[range].split(separator: ":").last.flatMap { Int($0) }
            }
            return port != nil || !server.process.isRunning
        }
        guard let port else { throw CLI.Failure("serve did not start: \(server.stderrSoFar)") }
        return (server, port)
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]) ?? [:] }
    }

    /// One HTTP exchange through curl (headers and body captured).
    func http(_ port: Int, _ method: String, _ path: String, body: String? = nil, key: String? = nil,
              timeout: Double = 120) throws -> Reply {
        var arguments = ["-sS", "-i", "-X", method, "--max-time", String(Int(timeout)), "http://127.0.0.1:\(port)\(path)"]
        if let key { arguments += ["-H", "Authorization: Bearer \(key)"] }
        var bodyFile: URL?
        if let body {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("serve-test-\(UUID().uuidString).json")
            try Data(body.utf8).write(to: file)
            bodyFile = file
            arguments += ["-H", "Content-Type: application/json", "--data-binary", "@\(file.path)"]
        }
        defer { bodyFile.map { try? FileManager.default.removeItem(at: $0) } }
        let result = try Self.curl(arguments, timeout: timeout + 5)
        return try Self.parse(result.stdout)
    }

    static func curl(_ arguments: [String], timeout: Double) throws -> CLI.Result {
        let process = try curlProcess(arguments)
        Wait.until(backstop: timeout) { !process.process.isRunning }
        if process.process.isRunning { process.process.terminate() }
        return process.finish()
    }

    static func curlProcess(_ arguments: [String]) throws -> CLI.Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let running = CLI.Running(process: process, out: out, err: err)
        try process.run()
        return running
    }

    static func parse(_ raw: String) throws -> Reply {
        guard let split = raw.range(of: "\r\n\r\n") else { throw CLI.Failure("no HTTP response: \(raw.prefix(200))") }
        let head = raw[..<split.lowerBound].split(separator: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Reply(status: status, headers: headers, body: String(raw[split.upperBound...]))
    }

    static func chatBody(url: String, question: String = "What happens in this video?", maxTokens: Int = 12,
                         stream: Bool = false, hiprune: String = #"{"frames": 4}"#) -> String {
        """
        {"model": "demo-smolvlm2", "max_tokens": \(maxTokens), "stream": \(stream), "stream_options": {"include_usage": true},
         "hiprune": \(hiprune),
         "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "\(url)"}},
                                                   {"type": "text", "text": "\(question)"}]}]}
        """
    }

    /// A Prometheus sample's value ("hiprune_inflight" → 0).
    func metric(_ port: Int, _ name: String) throws -> Int? {
        let text = try http(port, "GET", "/metrics").body
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(Double(line.split(separator: " ").last ?? "") ?? -1)
        }
        return nil
    }

    func waitFor(_ what: String, _ condition: () throws -> Bool) throws {
        if try !Wait.until(condition) { XCTFail("timed out waiting for \(what)") }
    }

    /// SSE `data:` payloads of a stream, in order.
    static func events(_ body: String) -> [String] {
        body.components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }

    func testAnswerMatchesAskStreamsAndEncodesOnce() throws {
        let ask = try CLI.run(["ask", clip, "What happens in this video?", "--model", model, "--frames", "4",
                               "--max-tokens", "12", "--json"])
        XCTAssertEqual(ask.status, 0, ask.stderr)
        let expected = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(ask.stdout.utf8))) as? [String: Any])
        let (_, port) = try startServer(["--api-key", "sesame"])

        let reply = try http(port, "POST", "/v1/chat/completions", body: Self.chatBody(url: "file://\(clip)"), key: "sesame")
        XCTAssertEqual(reply.status, 200, reply.body)
        let json = reply.json
        let message = try XCTUnwrap(((json["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any])
        XCTAssertEqual(message["content"] as? String, expected["answer"] as? String)
        let details = try XCTUnwrap(json["hiprune"] as? [String: Any])
        XCTAssertEqual(details["token_ids"] as? [Int], expected["token_ids"] as? [Int], "greedy tokens as ask's")
        XCTAssertEqual(details["frames_encoded"] as? Int, 4)
        let usage = try XCTUnwrap(json["usage"] as? [String: Any])
        XCTAssertEqual(usage["prompt_tokens"] as? Int, expected["prefill_tokens"] as? Int)
        XCTAssertEqual(usage["completion_tokens"] as? Int, (expected["token_ids"] as? [Int])?.count)
        XCTAssertEqual(usage["total_tokens"] as? Int, (usage["prompt_tokens"] as? Int ?? 0) + (usage["completion_tokens"] as? Int ?? 0))
        XCTAssertEqual(usage["visual_tokens_before"] as? Int, expected["visual_tokens_before"] as? Int)
        XCTAssertEqual(usage["visual_tokens_after"] as? Int, expected["visual_tokens_after"] as? Int)
        XCTAssertLessThan(usage["visual_tokens_after"] as? Int ?? .max, usage["visual_tokens_before"] as? Int ?? 0)

        // The same question streamed: chunks concatenate to the same answer; the frames come from the cache.
        let streamed = try http(port, "POST", "/v1/chat/completions", body: Self.chatBody(url: "file://\(clip)", stream: true),
                                key: "sesame")
        XCTAssertEqual(streamed.status, 200)
        XCTAssertEqual(streamed.headers["content-type"], "text/event-stream")
        let events = Self.events(streamed.body)
        XCTAssertEqual(events.last, "[DONE]")
        var text = "", finish: String?, streamUsage: [String: Any]?, streamDetails: [String: Any]?
        for event in events.dropLast() {
            let chunk = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(event.utf8))) as? [String: Any])
            XCTAssertEqual(chunk["object"] as? String, "chat.completion.chunk")
            let choice = try XCTUnwrap((chunk["choices"] as? [[String: Any]])?.first)
            text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
            if let f = choice["finish_reason"] as? String { finish = f }
            if let u = chunk["usage"] as? [String: Any] { streamUsage = u }
            if let d = chunk["hiprune"] as? [String: Any] { streamDetails = d }
        }
        XCTAssertEqual(text, expected["answer"] as? String)
        XCTAssertEqual(finish, "length")
        XCTAssertEqual(streamUsage?["completion_tokens"] as? Int, 12)
        XCTAssertEqual(streamDetails?["frames_encoded"] as? Int, 0, "the second question reuses the encoded frames")
        XCTAssertEqual(streamDetails?["cache_hit"] as? Bool, true)
        XCTAssertEqual(try metric(port, "hiprune_frames_encoded_total"), 4, "two questions, one encoding")
        XCTAssertEqual(try metric(port, "hiprune_frame_cache_hits_total"), 1)

        // `stop`: the answer ends before the first stop string, which never shows.
        let answer = try XCTUnwrap(expected["answer"] as? String)
        let cut = answer.index(answer.startIndex, offsetBy: answer.count / 2)
        let stop = String(answer[cut...].prefix(3))
        let stopped = try http(port, "POST", "/v1/chat/completions", body: Self.chatBody(url: "file://\(clip)")
            .replacingOccurrences(of: #""stream": false"#, with: #""stream": false, "stop": \#(Self.jsonString(stop))"#), key: "sesame")
        let stoppedChoice = (stopped.json["choices"] as? [[String: Any]])?.first
        XCTAssertEqual((stoppedChoice?["message"] as? [String: Any])?["content"] as? String,
                       String(answer[..<(answer.range(of: stop)?.lowerBound ?? cut)]), stopped.body)
        XCTAssertEqual(stoppedChoice?["finish_reason"] as? String, "stop")

        // An image as a data: URL (written to a private temporary file, removed afterwards).
        let png = try Data(contentsOf: URL(fileURLWithPath: CLI.path("media/still.png"))).base64EncodedString()
        let image = try http(port, "POST", "/v1/chat/completions", body: """
            {"max_tokens": 3, "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,\(png)"}}]}]}
            """, key: "sesame")
        XCTAssertEqual(image.status, 200, image.body)
        XCTAssertEqual(((image.json["hiprune"] as? [String: Any])?["frames"]) as? Int, 1)
    }

    func testErrorsNameTheirField() throws {
        let (_, port) = try startServer(["--api-key", "sesame", "--max-body-bytes", "4096"])
        let good = Self.chatBody(url: "file://\(clip)")
        XCTAssertEqual(try http(port, "GET", "/health").status, 200, "health needs no key")
        XCTAssertEqual(try http(port, "GET", "/v1/models").status, 401)
        XCTAssertEqual(try http(port, "POST", "/v1/chat/completions", body: good, key: "sesamf").status, 401)
        let models = try http(port, "GET", "/v1/models", key: "sesame")
        XCTAssertEqual(((models.json["data"] as? [[String: Any]])?.first?["id"]) as? String, "demo-smolvlm2")

        func expect(_ status: Int, param: String?, body: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let reply = try http(port, "POST", "/v1/chat/completions", body: body, key: "sesame")
            XCTAssertEqual(reply.status, status, reply.body, file: file, line: line)
            let error = reply.json["error"] as? [String: Any]
            XCTAssertNotNil(error?["message"] as? String, reply.body, file: file, line: line)
            if let param { XCTAssertEqual(error?["param"] as? String, param, reply.body, file: file, line: line) }
        }
        try expect(403, param: "messages[0].content[0].video_url", body: Self.chatBody(url: "file:///etc/passwd"))
        try expect(403, param: "messages[0].content[0].video_url", body: Self.chatBody(url: "file://\(CLI.path("media"))/../Package.swift"))
        try expect(403, param: "messages[0].content[0].video_url", body: Self.chatBody(url: "https://example.com/a.mp4"))
        try expect(400, param: "messages[0].content[0].video_url", body: Self.chatBody(url: "not a url"))
        try expect(400, param: "messages[0].content[0].video_url", body: Self.chatBody(url: "file://\(CLI.path("media/not-a-video.mp4"))"))
        try expect(400, param: "body", body: "{not json")
        try expect(400, param: "hiprune.budgett", body: Self.chatBody(url: "file://\(clip)", hiprune: #"{"budgett": 0.5}"#))
        try expect(400, param: "hiprune.budget", body: Self.chatBody(url: "file://\(clip)", hiprune: #"{"budget": 1.5}"#))
        try expect(400, param: "hiprune.frames", body: Self.chatBody(url: "file://\(clip)", hiprune: #"{"frames": 100000}"#))
        try expect(400, param: "max_tokens", body: Self.chatBody(url: "file://\(clip)", maxTokens: 1_000_000))
        try expect(400, param: "frequency_penaltyy", body: #"{"frequency_penaltyy": 1, "messages": []}"#)
        try expect(404, param: "model", body: Self.chatBody(url: "file://\(clip)").replacingOccurrences(of: "demo-smolvlm2", with: "gpt-4o"))
        try expect(413, param: "body", body: Self.chatBody(url: "file://\(clip)", question: String(repeating: "x", count: 5000)))
        XCTAssertEqual(try metric(port, "hiprune_frames_encoded_total"), 0, "no refused request decoded anything")
    }

    func testQueueFullThenDisconnectFreesTheSlot() throws {
        let (_, port) = try startServer(["--max-queue", "0", "--throttle-milliseconds", "50"])
        // A long streamed answer holds the only slot (the throttle makes 1500 tokens take over a minute).
        let body = Self.chatBody(url: "file://\(clip)", maxTokens: 1500, stream: true)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("serve-test-\(UUID().uuidString).json")
        try Data(body.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let holder = try Self.curlProcess(["-sS", "-N", "-H", "Content-Type: application/json", "--data-binary", "@\(file.path)",
                                           "http://127.0.0.1:\(port)/v1/chat/completions"])
        try waitFor("the first content chunk") { holder.stdoutSoFar.contains(#""content":"# + "\"") && holder.stdoutSoFar.components(separatedBy: "data: ").count > 2 }
        XCTAssertEqual(try metric(port, "hiprune_inflight"), 1)

        let refused = try http(port, "POST", "/v1/chat/completions", body: Self.chatBody(url: "file://\(clip)"))
        XCTAssertEqual(refused.status, 429, refused.body)
        XCTAssertEqual(refused.headers["retry-after"], "1")

        // The client goes away mid-stream: the generation stops and the slot frees.
        kill(holder.process.processIdentifier, SIGKILL)
        _ = holder.finish()
        try waitFor("the slot to free") { try metric(port, "hiprune_inflight") == 0 }
        XCTAssertEqual(try metric(port, "hiprune_requests_cancelled_total"), 1)
        XCTAssertEqual(try metric(port, "hiprune_completion_tokens_total"), 0, "the cancelled answer never completed")
        // A client of a non-streamed answer that gives up (curl --max-time) cancels it too.
        let plain = file.appendingPathExtension("plain")
        try Data(Self.chatBody(url: "file://\(clip)", maxTokens: 1500).utf8).write(to: plain)
        defer { try? FileManager.default.removeItem(at: plain) }
        let gaveUp = try Self.curl(["-sS", "--max-time", "2", "-H", "Content-Type: application/json",
                                    "--data-binary", "@\(plain.path)",
                                    "http://127.0.0.1:\(port)/v1/chat/completions"], timeout: 30)
        XCTAssertNotEqual(gaveUp.status, 0, "curl gave up before the 1500-token answer")
        try waitFor("the second cancellation") { try metric(port, "hiprune_requests_cancelled_total") == 2 }
        try waitFor("the slot to free again") { try metric(port, "hiprune_inflight") == 0 }

        let next = try http(port, "POST", "/v1/chat/completions", body: Self.chatBody(url: "file://\(clip)", maxTokens: 2))
        XCTAssertEqual(next.status, 200, next.body)
    }

    func testSIGTERMDrainsInFlightRequest() throws {
        let (server, port) = try startServer(["--throttle-milliseconds", "40"])
        let body = Self.chatBody(url: "file://\(clip)", maxTokens: 150)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("serve-test-\(UUID().uuidString).json")
        try Data(body.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let client = try Self.curlProcess(["-sS", "-H", "Content-Type: application/json", "--data-binary", "@\(file.path)",
                                           "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/v1/chat/completions"])
        try waitFor("the request to hold a slot") { try metric(port, "hiprune_inflight") == 1 }
        kill(server.process.processIdentifier, SIGTERM)
        // No new connections once draining has begun …
        try waitFor("the listener to close") {
            (try Self.curl(["-sS", "-o", "/dev/null", "http://127.0.0.1:\(port)/health"], timeout: 10)).status != 0
        }
        XCTAssertTrue(client.process.isRunning, "the listener closed while the answer was still being generated")
        // … while the request in flight finishes, and the server exits 0.
        let answer = client.finish()
        XCTAssertTrue(answer.stdout.hasSuffix("\n200"), answer.stdout + answer.stderr)
        XCTAssertEqual(((Self.parseJSON(String(answer.stdout.dropLast(4)))["usage"] as? [String: Any])?["completion_tokens"]) as? Int, 150)
        let result = server.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8), as: UTF8.self)
            .dropFirst().dropLast().description
    }

    static func parseJSON(_ text: String) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]) ?? [:]
    }

    func testLiveSessionStreamsEventsAndStopsOnDelete() throws {
        let (server, port) = try startServer()
        // The session's source binds the UDP port inside the server: it is ours once the server holds it.
        let (start, udp) = try LoopbackUDP.listen(
            start: { udp in
                try http(port, "POST", "/v1/live", body: """
                    {"url": "udp://127.0.0.1:\(udp)", "questions": ["What is shown?"], "every": "1s", "window": 3, "fps": 2,
                     "max_tokens": 4, "hiprune": {"budget": 0.33}}
                    """)
            },
            pid: { _ in server.process.processIdentifier }, failed: { $0.status != 200 },
            discard: { reply in
                if let id = reply.json["id"] as? String { _ = try? self.http(port, "DELETE", "/v1/live/\(id)") }
            })
        XCTAssertEqual(start.status, 200, start.body)
        let id = try XCTUnwrap(start.json["id"] as? String)
        XCTAssertEqual(try http(port, "POST", "/v1/live", body: #"{"url": "udp://127.0.0.1:1", "every": "soon"}"#).json["error"]
            .flatMap { ($0 as? [String: Any])?["param"] as? String }, "every")
        let events = try Self.curlProcess(["-sS", "-N", "http://127.0.0.1:\(port)/v1/live/\(id)/events"])
        let streamer = try CLI.streamer(to: "udp://127.0.0.1:\(udp)", seconds: 30)
        defer { if streamer.isRunning { streamer.terminate() } }
        func kinds() -> [String] {
            Self.events(events.stdoutSoFar).compactMap { Self.parseJSON($0)["event"] as? String }
        }
        try waitFor("frame and answer events") { kinds().filter { $0 == "frame" }.count >= 3 && kinds().contains("answer") }
        XCTAssertEqual(try http(port, "DELETE", "/v1/live/\(id)").status, 200)
        try waitFor("the event stream to end") { !events.process.isRunning }
        let all = Self.events(events.finish().stdout)
        XCTAssertEqual(all.last, "[DONE]")
        let summary = Self.parseJSON(all.dropLast().last ?? "")
        XCTAssertEqual(summary["event"] as? String, "summary")
        XCTAssertEqual(summary["stopped_by_signal"] as? Bool, true)
        for frame in all.map(Self.parseJSON) where frame["event"] as? String == "frame" {
            XCTAssertLessThan(frame["tokens_after"] as? Int ?? .max, frame["tokens_before"] as? Int ?? 0)
        }
        XCTAssertEqual(try http(port, "DELETE", "/v1/live/\(id)").status, 404, "a deleted session is gone")
    }
}
