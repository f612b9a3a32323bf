import ArgumentParser
import Console
import Foundation
import Pipeline
import Serve

/// `hiprune-video serve`: the model loaded once behind an OpenAI-compatible HTTP API (Sources/Serve).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve video questions and live streams over an OpenAI-compatible HTTP API.",
        discussion: """
            POST /v1/chat/completions (text + video_url/image_url parts, a `hiprune` object for pruning), \
            GET /v1/models, /health, /metrics, and POST /v1/live, GET /v1/live/ID/events, DELETE /v1/live/ID. \
            Prints "listening on http://HOST:PORT" to stderr once bound (--port 0 binds a free port). \
            SIGTERM or SIGINT drains: no new connections, requests in flight get --grace seconds, exit 0.
            """)

    @Option(help: ArgumentHelp(ModelRegistry.modelHelp))
    var model: String

    @Option(help: ArgumentHelp(ModelRegistry.mmprojHelp))
    var mmproj: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port).")
    var port = 8080

    @Option(help: "Require `Authorization: Bearer KEY` on /v1 routes (default: the HIPRUNE_API_KEY variable, if set).")
    var apiKey: String?

    @Option(name: .customLong("allow-path"), help: "A directory whose files file:// URLs may name (repeatable; none: no local files).")
    var allowPaths: [String] = []

    @Option(name: .customLong("allow-url-scheme"), help: "A network scheme media URLs may use, e.g. https (repeatable; live sessions also read udp, rtp, rtsp, srt, tcp, rtmp).")
    var allowURLSchemes: [String] = []

    @Option(help: "Requests that may wait for a compute slot; more get 429.")
    var maxQueue = 8

    @Option(help: "Requests computed at once on the one loaded model.")
    var parallel = 1

    @Option(help: "Live sessions at once.")
    var maxLive = 2

    @Option(help: "Videos whose encoded frames are kept for further questions.")
    var cacheVideos = 8

    @Option(help: "Most bytes of a request body (data: URLs included).")
    var maxBodyBytes = 32 << 20

    @Option(help: "Most frames one question samples.")
    var maxFrames = 64

    @Option(help: "Longest clip, in seconds, a question may be about.")
    var maxDuration = 3600.0

    @Option(help: "Seconds requests in flight get to finish after SIGTERM.")
    var grace = 30.0

    @OptionGroup var pruning: PruneOptions
    @OptionGroup var preprocessing: PreprocessOptions
    @OptionGroup var generating: GenerationFlags

    @Option(help: .hidden)
    var throttleMilliseconds = 0

    func validate() throws {
        if !(1...65535).contains(port) && port != 0 { throw ValidationError("--port must be 0 ... 65535") }
        if maxQueue < 0 { throw ValidationError("--max-queue must be 0 or more") }
        if !(1...64).contains(parallel) { throw ValidationError("--parallel must be 1 ... 64") }
        if maxLive < 0 || cacheVideos < 0 { throw ValidationError("--max-live and --cache-videos must be 0 or more") }
        if maxBodyBytes < 1024 { throw ValidationError("--max-body-bytes must be at least 1024") }
        if maxFrames < 1 { throw ValidationError("--max-frames must be at least 1") }
        if !(maxDuration > 0) || !(grace >= 0) { throw ValidationError("--max-duration must be positive, --grace 0 or more") }
        for directory in allowPaths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--allow-path \(directory) is not a directory")
            }
        }
    }

    func run() async throws {
        let metrics = ServeMetrics()
        let loaded = try ServeModel(files: try ModelFiles(model: model, mmproj: mmproj), precision: generating.weights,
                                    cacheVideos: cacheVideos, metrics: metrics, preprocessing: preprocessing.preprocess)
        let sampling = generating.options(seed: pruning.seed, stopTokens: []).sampling
        try sampling.validate()
        let media = MediaPolicy(allowedDirectories: allowPaths, allowedSchemes: Set(allowURLSchemes),
                                maxDataBytes: maxBodyBytes)
        var configuration = ServeConfiguration(
            media: media,
            defaults: RequestDefaults(pruning: pruning.settings, maxTokens: generating.maxTokens, sampling: sampling))
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey ?? ProcessInfo.processInfo.environment["HIPRUNE_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.maxQueue = maxQueue
        configuration.parallel = parallel
        configuration.maxLive = maxLive
        configuration.cacheVideos = cacheVideos
        configuration.graceSeconds = grace
        configuration.throttleMilliseconds = throttleMilliseconds
        configuration.limits.maxBodyBytes = maxBodyBytes
        configuration.limits.maxFrames = maxFrames
        configuration.limits.maxDurationSeconds = maxDuration
        let server = try Server(configuration: configuration, model: loaded, metrics: metrics)
        let host = self.host, id = loaded.id
        try await server.run { port in
            Console.err("listening on http://\(host):\(port) (model \(id))")
        }
        // Drained: leave without the libraries' exit handlers (serve writes only unbuffered
        // FileHandle output). OpenBLAS's joins its worker threads and was seen to hang there after
        // live sessions had called it from several threads.
        _exit(0)
    }
}
