import ArgumentParser
import COpenBLAS
import Foundation
import Pipeline
import Stream
import Tensor
import Vision

/// `hiprune-bench encode`: the SmolVLM2-256M vision encoder + connector (random weights made here)
/// per frame, with and without score capture, beside PyTorch (eager, same threads) and beside
/// cblas_sgemm's own GFLOP/s on this machine.
struct EncodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Vision encoder seconds per frame (median) and GFLOP/s, with and without score capture; PyTorch peer.")

    @Option(help: "Timed frames per case (median reported).")
    var runs = 5

    @Option var hidden = 768
    @Option var layers = 12
    @Option var heads = 12
    @Option var intermediate = 3072
    @Option var image = 512
    @Option var patch = 16
    @Option var scale = 4
    @Option(help: "Connector output width (SmolVLM2-256M's text hidden size).")
    var textHidden = 576

    @Option(help: "Python for the PyTorch peer (tools/bench_torch_vision.py); skipped if it does not exist.")
    var python = Peer.defaultPython

    @Option(help: "The peer script.")
    var peer = "tools/bench_torch_vision.py"

    @Option(help: "Threads for every side (OpenBLAS here, torch.set_num_threads and llama.cpp -t there).")
    var threads = 2

    @Option(help: "llama.cpp's llama-mtmd-cli, run as a peer on a 512x512 image (skipped unless given with --llama-model and --mmproj).")
    var llamaMtmd: String?

    @Option(help: "The text GGUF for llama-mtmd-cli (tools/make_mmproj.py writes one).")
    var llamaModel: String?

    @Option(help: "The vision projector GGUF for llama-mtmd-cli (F16: tools/make_mmproj.py --mmproj-type f16).")
    var mmproj: String?

    @Option(help: "A clip whose frames are decoded and preprocessed both ways (--preprocess reference and fast) to weigh the reference's resize against a frame's encode; '' skips it.")
    var clip = "media/bigbuckbunny.mp4"

    @Flag(help: "Instead, time every operation inside whole frames (GEMMs by shape against their own sgemm ceiling, attention, layer norm, GELU, …).")
    var profile = false

    @Flag(help: "Instead, A/B in this process: the earlier paths (see `EncoderPaths.earlier`) against the current ones, frame by frame alternating, medians and their ratio.")
    var ab = false

    @Option(help: ArgumentHelp(
        "The encoder's F32 GEMM kernel for this run's encoders (default: EncoderPaths.best's): openblas "
        + "(cblas_sgemm on the weights as stored) or packed (weights packed at load, bias/residual/GELU in the epilogue); "
        + "with --ab, the current side."))
    var gemmKernel: String?

    @Option(help: ArgumentHelp(
        "Run with OPENBLAS_THREAD_TIMEOUT=N (2^N cycles of spinning before an idle OpenBLAS thread sleeps; OpenBLAS "
        + "reads it at load, so the bench re-executes itself). Default: OpenBLAS's own (28, ≈ 0.1 s), as the CLI runs."))
    var openblasThreadTimeout: Int?

    func run() async throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let timeout = openblasThreadTimeout, ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] != "\(timeout)" {
            guard (4...30).contains(timeout) else { throw ValidationError("--openblas-thread-timeout must be in 4...30") }
            setenv("OPENBLAS_THREAD_TIMEOUT", "\(timeout)", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            throw ValidationError("could not re-execute with OPENBLAS_THREAD_TIMEOUT=\(timeout)")
        }
        openblas_set_num_threads(Int32(threads))
        if let gemmKernel {
            switch gemmKernel {
            case "openblas": EncoderPaths.current.gemmKernel = .openBLAS
            case "packed": EncoderPaths.current.gemmKernel = .packed
            default: throw ValidationError("--gemm-kernel must be openblas or packed, not \(gemmKernel)")
            }
        }
        var config = SmolVLMConfiguration()
        config.visionConfig.hiddenSize = hidden
        config.visionConfig.numHiddenLayers = layers
        config.visionConfig.numAttentionHeads = heads
        config.visionConfig.intermediateSize = intermediate
        config.visionConfig.imageSize = image
        config.visionConfig.patchSize = patch
        config.scaleFactor = scale
        config.textConfig.hiddenSize = textHidden
        var preprocessing = SmolVLMPreprocessorConfiguration()
        preprocessing.maxImageSize = ["longest_edge": image]
        // As tools/make_bench_model.py's preprocessor_config.json: the first resize to the longest edge 512.
        preprocessing.videoResize = ["longest_edge": image]
        func build(_ precision: EncoderPrecision) throws -> SmolVLMVisionModel {
            var random = BenchRandom(seed: 1)
            return try SmolVLMVisionModel(configuration: config, preprocessing: preprocessing, precision: precision) { (_, shape) throws(WeightsError) in
                let rows = shape.count >= 2 ? shape[0] : 1
                let cols = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : shape[0]
                let s = 1 / Float(cols).squareRoot()
                var m = Matrix(rows: rows, cols: cols)
                for i in m.storage.indices { m.storage[i] = random.next() * s }
                return m
            }
        }
        let model = try build(.f32)
        let rgb = (0..<(image * image * 3)).map { _ in UInt8.random(in: 0...255) }
        let all = Set(1...layers)
        if ab {
            // The same random weights loaded under the earlier paths (they decide how weights are held).
            let current = EncoderPaths.current
            EncoderPaths.current = .earlier
            let earlierModel = try build(.f32)
            EncoderPaths.current = current
            try compareEarlierPaths(earlierModel, model, rgb: rgb, scoreLayers: [], label: "F32, no score capture")
            try compareEarlierPaths(earlierModel, model, rgb: rgb, scoreLayers: all, label: "F32, scores of all \(layers) layers")
            return
        }
        if profile {
            try operationProfile(model, rgb: rgb, scoreLayers: [], label: "swift F32, no score capture")
            try operationProfile(model, rgb: rgb, scoreLayers: all, label: "swift F32, scores of all \(layers) layers")
            return
        }
        let flops = model.flopsPerFrame

        // Plain and captured runs alternate, so that load from other processes hits both alike.
        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        var plainRuns: [Double] = [], capturedRuns: [Double] = []
        _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: all)  // warm-up
        for run in 0..<runs {
            let plainFirst = run % 2 == 0
            if plainFirst { plainRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: []) }) }
            capturedRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: all) })
            if !plainFirst { plainRuns.append(try seconds { _ = try model.encode(width: image, height: image, rgb: rgb, scoreLayers: []) }) }
        }
        let plain = plainRuns.sorted()[runs / 2], captured = capturedRuns.sorted()[runs / 2]
        // The BF16 encoder: weights held BF16; BF16 dot products where the CPU has AVX512-BF16, else
        // the weights widen a panel at a time for the F32 GEMM.
        let half = try build(.bf16)
        let route = EncoderPrecision.nativeBF16 ? "avx512_bf16 dot products" : "BF16 weights widened per panel, F32 GEMM"
        var halfPlainRuns: [Double] = [], halfCapturedRuns: [Double] = []
        _ = try half.encode(width: image, height: image, rgb: rgb, scoreLayers: all)
        for _ in 0..<runs {
            halfPlainRuns.append(try seconds { _ = try half.encode(width: image, height: image, rgb: rgb, scoreLayers: []) })
            halfCapturedRuns.append(try seconds { _ = try half.encode(width: image, height: image, rgb: rgb, scoreLayers: all) })
        }
        let halfPlain = halfPlainRuns.sorted()[runs / 2], halfCaptured = halfCapturedRuns.sorted()[runs / 2]
        let gemm = try sgemmGFLOPs(m: (image / patch) * (image / patch), n: intermediate, k: hidden)
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"

        print("SmolVLM vision encoder + connector: hidden \(hidden), \(layers) layers, \(heads) heads, intermediate \(intermediate), "
              + "\(image)x\(image) patch \(patch), scale \(scale); \(String(format: "%.1f", flops / 1e9)) GFLOP/frame; "
              + "\(threads) threads, OpenBLAS core \(core), "
              + "OPENBLAS_THREAD_TIMEOUT \(ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] ?? "default"), median of \(runs)")
        func row(_ name: String, _ seconds: Double) {
            print(name.padding(toLength: 40, withPad: " ", startingAt: 0)
                  + String(format: "%8.3f s/frame  %7.1f GFLOP/s", seconds, flops / seconds / 1e9))
        }
        row("swift F32, no score capture", plain)
        row("swift F32, scores of all \(layers) layers", captured)
        print(String(format: "score capture overhead            %+7.1f %%", (captured / plain - 1) * 100))
        print("swift BF16 (--encoder-precision bf16): \(route); auto picks \(EncoderPrecision.auto.resolved) here")
        row("swift BF16, no score capture", halfPlain)
        row("swift BF16, scores of all \(layers) layers", halfCaptured)
        print(String(format: "cblas_sgemm %dx%dx%d              %8.1f GFLOP/s (the ceiling for the GEMMs)",
                     (image / patch) * (image / patch), intermediate, hidden, gemm))
        // PyTorch's paths: sdpa (its fastest on CPU, no attention weights) in F32 and under BF16
        // autocast, and eager with the attentions HiPrune needs.
        let swiftBest = min(plain, halfPlain), swiftBestCaptured = min(captured, halfCaptured)
        var fastestTorch: Double?
        for (label, arguments, captures) in [("pytorch sdpa F32, no attentions", ["--attn", "sdpa"], false),
                                             ("pytorch sdpa BF16 autocast", ["--attn", "sdpa", "--bf16"], false),
                                             ("pytorch eager F32, output_attentions", ["--attentions"], true)] {
            guard let torch = torchPeer(arguments) else {
                print("\(label): skipped (\(python) or \(peer) not usable)")
                continue
            }
            row(label, torch)
            if !captures { fastestTorch = min(fastestTorch ?? torch, torch) }
            let ratio = "  ÷ swift's fastest" + (captures ? " (with scores)" : "")
            print(ratio.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%8.2f ×", torch / (captures ? swiftBestCaptured : swiftBest)))
        }
        if let fastestTorch {
            print(String(format: "pytorch's fastest / swift's fastest (no capture): %.2f ×; swift F32 GEMMs at %.0f %% of cblas_sgemm",
                         fastestTorch / swiftBest, flops / plain / 1e9 / gemm * 100))
        }
        if !clip.isEmpty { try await preprocessingCost(model: model, encodeSeconds: plain) }
        guard llamaMtmd != nil || llamaModel != nil || mmproj != nil else {
            print("llama.cpp peer skipped: not given (--llama-mtmd PATH --llama-model GGUF --mmproj F16-GGUF; tools/make_mmproj.py writes the pair)")
            return
        }
        guard let llama = try llamaPeer() else {
            print("llama.cpp peer skipped: --llama-mtmd, --llama-model and --mmproj must all name existing files")
            return
        }
        let slicesNote = "\(llama.slices) encoder pass\(llama.slices == 1 ? "" : "es") per \(image)x\(image) image"
        print("llama.cpp llama-mtmd-cli (\(threads) threads, \(((mmproj ?? "") as NSString).lastPathComponent)): \(slicesNote), "
              + "\(llama.batches) encode call\(llama.batches == 1 ? "" : "s"); median of \(runs) runs")
        row("llama.cpp, per slice (one pass)", llama.perSlice)
        row("llama.cpp, per image (\(llama.slices) slices)", llama.perImage)
        print(String(format: "llama.cpp slice / swift frame      %8.2f ×", llama.perSlice / plain))
        print(String(format: "llama.cpp image / swift frame      %8.2f ×", llama.perImage / plain))
    }

    /// Decode + preprocess per frame of `clip` (every frame, to pixel values) under `--preprocess fast`
    /// (FFmpeg scales to the square while converting to RGB) and `reference` (RGB at the source size,
    /// then SmolVLM2's two resizes here); the difference is what `reference` adds to a frame, set
    /// against the encoder's seconds per frame (no score capture: the smaller, so the larger share).
    func preprocessingCost(model: SmolVLMVisionModel, encodeSeconds: Double) async throws {
        guard FileManager.default.fileExists(atPath: clip) else {
            print("preprocessing: skipped (\(clip) does not exist)")
            return
        }
        func perFrame(_ mode: Preprocessing) async throws -> (seconds: Double, frames: Int, size: String) {
            let options = FrameAnalysis(encoder: model, preprocessing: mode).decodeOptions(DecodeOptions(sampling: .everyFrame), input: clip)
            var frames = 0, size = ""
            let start = DispatchTime.now().uptimeNanoseconds
            for try await frame in VideoFrames(input: clip, options: options) {
                _ = try model.preprocessor.pixelValues(width: frame.width, height: frame.height, rgb: frame.rgb)
                frames += 1
                size = "\(frame.width)x\(frame.height)"
            }
            return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(max(frames, 1)), frames, size)
        }
        var fast: [Double] = [], reference: [Double] = []
        var facts = (frames: 0, fastSize: "", referenceSize: "")
        for run in 0..<runs {  // alternating, so that load from other processes hits both alike
            let first: Preprocessing = run % 2 == 0 ? .fast : .reference
            for mode in [first, first == .fast ? .reference : .fast] {
                let r = try await perFrame(mode)
                if mode == .fast { fast.append(r.seconds); facts.fastSize = r.size } else { reference.append(r.seconds); facts.referenceSize = r.size }
                facts.frames = r.frames
            }
        }
        let f = fast.sorted()[runs / 2], r = reference.sorted()[runs / 2]
        let side = model.preprocessor.side
        print("preprocessing \(clip) (\(facts.frames) frames, every frame to \(side)x\(side) pixel values; median of \(runs); "
              + "resize kernel path \(InstructionSet.active)):")
        print(String(format: "  fast      (FFmpeg scale, decoded at %@)      %8.2f ms/frame", facts.fastSize, f * 1000))
        print(String(format: "  reference (decoded at %@, two resizes here) %8.2f ms/frame", facts.referenceSize, r * 1000))
        print(String(format: "  reference − fast: %+.2f ms/frame = %+.1f %% of a frame's encode (%.3f s, no capture)",
                     (r - f) * 1000, (r - f) / encodeSeconds * 100, encodeSeconds))
    }

    /// llama-mtmd-cli on one image per run: the median seconds of one encoder pass (a slice) and of
    /// the whole image (every slice it cut), from the encode times the tool logs.
    func llamaPeer() throws -> (perSlice: Double, perImage: Double, slices: Int, batches: Int)? {
        guard let llamaMtmd, let llamaModel, let mmproj,
              FileManager.default.isExecutableFile(atPath: llamaMtmd),
              FileManager.default.fileExists(atPath: llamaModel), FileManager.default.fileExists(atPath: mmproj) else { return nil }
        // A random-noise frame: what llama.cpp's preprocessor sees does not change its work.
        var random = BenchRandom(seed: 2)
        let rgb = (0..<(image * image * 3)).map { _ in UInt8(truncatingIfNeeded: Int(random.next() * 127) + 128) }
        let path = NSTemporaryDirectory() + "hiprune-bench-encode-\(ProcessInfo.processInfo.processIdentifier).png"
        try Data(PNGWriter.encode(rgb: rgb, width: image, height: image)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var perSlice: [Double] = [], perImage: [Double] = []
        var slices = 0, batches = 0
        for _ in 0..<runs {
            guard let data = Peer.run(llamaMtmd, ["-m", llamaModel, "--mmproj", mmproj, "--image", path, "-p", "Describe the image.",
                                                  "-n", "1", "-t", "\(threads)", "--temp", "0"], capture: .standardError) else { return nil }
            let timing = Self.llamaEncodeTimes(String(decoding: data, as: UTF8.self))
            guard timing.slices > 0 else { return nil }
            slices = timing.slices
            batches = timing.batches
            perImage.append(timing.seconds)
            perSlice.append(timing.seconds / Double(timing.slices))
        }
        return (perSlice.sorted()[runs / 2], perImage.sorted()[runs / 2], slices, batches)
    }

    /// Encode time in llama-mtmd-cli's log: "encoding mtmd batch, n_chunks = K …" followed by
    /// "mtmd batch encoding done in N ms" (K slices in one call), or the older per-slice
    /// "image slice encoded in N ms".
    static func llamaEncodeTimes(_ log: String) -> (seconds: Double, slices: Int, batches: Int) {
        var milliseconds = 0.0, slices = 0, batches = 0, pending = 1
        func number(after marker: String, in line: Substring) -> Double? {
            guard let range = line.range(of: marker) else { return nil }
            return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." })
        }
        for line in log.split(separator: "\n") {
            if let k = number(after: "encoding mtmd batch, n_chunks = ", in: line) {
                pending = Int(k)
            } else if let ms = number(after: "mtmd batch encoding done in ", in: line) {
                milliseconds += ms
                slices += pending
                batches += 1
                pending = 1
            } else if let ms = number(after: "image slice encoded in ", in: line) {
                milliseconds += ms
                slices += 1
                batches += 1
            }
        }
        return (milliseconds / 1000, slices, batches)
    }

    /// The earlier paths against the current ones on the same frames: runs alternate (which goes
    /// first alternates too), so load from other processes falls on both alike.
    func compareEarlierPaths(_ earlierModel: SmolVLMVisionModel, _ model: SmolVLMVisionModel, rgb: [UInt8], scoreLayers: Set<Int>,
                             label: String) throws {
        func frame(_ earlier: Bool) throws -> (wall: Double, cpu: Double) {
            let previous = EncoderPaths.current
            EncoderPaths.current = earlier ? .earlier : previous
            defer { EncoderPaths.current = previous }
            let start = DispatchTime.now().uptimeNanoseconds, cpu = OperationProfile.processCPUSeconds()
            _ = try (earlier ? earlierModel : model).encode(width: image, height: image, rgb: rgb, scoreLayers: scoreLayers)
            return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, OperationProfile.processCPUSeconds() - cpu)
        }
        _ = try frame(true)
        _ = try frame(false)
        var before: [Double] = [], after: [Double] = [], ratios: [Double] = [], cpuBefore: [Double] = [], cpuAfter: [Double] = []
        for run in 0..<runs {
            let first = try frame(run % 2 == 0), second = try frame(run % 2 != 0)
            let (old, new) = run % 2 == 0 ? (first, second) : (second, first)
            before.append(old.wall)
            after.append(new.wall)
            cpuBefore.append(old.cpu)
            cpuAfter.append(new.cpu)
            ratios.append(old.wall / new.wall)
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let flops = model.flopsPerFrame
        print("A/B \(label), \(runs) alternating pairs; earlier: \(EncoderPaths.earlier), current: \(EncoderPaths.current)")
        print(String(format: "  earlier %.3f s/frame (%.1f GFLOP/s)   current %.3f s/frame (%.1f GFLOP/s)   "
                     + "earlier/current: median of pair ratios %.3f ×, ratio of medians %.3f ×",
                     median(before), flops / median(before) / 1e9, median(after), flops / median(after) / 1e9,
                     median(ratios), median(before) / median(after)))
        print(String(format: "  CPU seconds per frame (all threads): earlier %.3f, current %.3f, earlier/current %.3f ×",
                     median(cpuBefore), median(cpuAfter), median(cpuBefore) / median(cpuAfter)))
    }

    /// Where a frame's time goes: every operation of `runs` whole frames timed in place (so OpenBLAS's
    /// idle threads, caches and hand-offs are as in a real frame), per frame, beside each GEMM shape's
    /// own cblas_sgemm rate alone (its ceiling) and the MLP-shaped ceiling for attention.
    func operationProfile(_ model: SmolVLMVisionModel, rgb: [UInt8], scoreLayers: Set<Int>, label: String) throws {
        let profile = OperationProfile()
        var totals: [Double] = []
        for run in 0...runs {
            if run == 1 { profile.reset() }  // the first frame warms up
            let cpu = OperationProfile.processCPUSeconds(), start = DispatchTime.now().uptimeNanoseconds
            let side = model.preprocessor.side
            let pixels = try profile.time("preprocess") { () throws(VisionError) in try model.preprocessor.pixelValues(width: image, height: image, rgb: rgb) }
            let out = try model.forward(pixelValues: pixels, height: side, width: side, scoreLayers: scoreLayers, profile: profile)
            _ = try profile.time("connector (shuffle + GEMM)") { () throws(VisionError) in try model.connect(out.lastHiddenState, side: model.shuffle.side) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if run > 0 {
                totals.append(seconds)
                profile.record("whole frame", seconds: seconds, cpuSeconds: OperationProfile.processCPUSeconds() - cpu, flops: 0)
            }
        }
        let frames = Double(runs)
        let entries = profile.entries.filter { $0.name != "whole frame" }
        guard let whole = profile.entries.first(where: { $0.name == "whole frame" }) else { return }
        // Each GEMM alone at its shape ("qkv GEMM MxNxK …"): x · Wᵀ as linear runs it.
        func ceiling(_ name: String) throws -> (wall: Double, cpu: Double)? {
            guard let shape = name.split(separator: " ").first(where: { $0.split(separator: "x").count == 3 }) else { return nil }
            let dims = shape.split(separator: "x").compactMap { Int($0) }
            guard dims.count == 3 else { return nil }
            return try sgemmRates(m: dims[0], n: dims[1], k: dims[2])
        }
        let mlp = try sgemmRates(m: (image / patch) * (image / patch), n: intermediate, k: hidden)
        print("\(label): per-operation profile, mean of \(runs) frames after one warm-up; CPU/wall = cores busy "
              + "(OpenBLAS's spinning threads count)")
        print("operation".padding(toLength: 44, withPad: " ", startingAt: 0)
              + "calls   ms/frame  share  CPU/wall  GFLOP/s  ceiling  % of ceiling | per CPU-s: GFLOP  ceiling  %")
        var sum = 0.0
        for e in entries {
            sum += e.seconds
            var line = e.name.padding(toLength: 44, withPad: " ", startingAt: 0)
                + String(format: "%5.0f %10.1f %5.1f%% %8.2f", Double(e.calls) / frames, e.seconds / frames * 1e3,
                         e.seconds / whole.seconds * 100, e.cpuSeconds / max(e.seconds, 1e-12))
            if e.flops > 0 {
                let rate = e.flops / e.seconds / 1e9, cpuRate = e.flops / e.cpuSeconds / 1e9
                let top = try ceiling(e.name) ?? mlp
                line += String(format: " %8.1f %8.1f %8.0f %%    | %14.1f %8.1f %3.0f %%", rate, top.wall, rate / top.wall * 100,
                               cpuRate, top.cpu, cpuRate / top.cpu * 100)
            }
            print(line)
        }
        print("outside the timed operations".padding(toLength: 44, withPad: " ", startingAt: 0)
              + String(format: "      %10.1f %5.1f%%", (whole.seconds - sum) / frames * 1e3, (whole.seconds - sum) / whole.seconds * 100))
        let median = totals.sorted()[totals.count / 2]
        print("whole frame".padding(toLength: 44, withPad: " ", startingAt: 0)
              + String(format: "      %10.1f        %8.2f %8.1f %8.1f %8.0f %%    | %14.1f %8.1f %3.0f %%  (median %.3f s)",
                       whole.seconds / frames * 1e3, whole.cpuSeconds / whole.seconds, model.flopsPerFrame * frames / whole.seconds / 1e9,
                       mlp.wall, model.flopsPerFrame * frames / whole.seconds / 1e9 / mlp.wall * 100,
                       model.flopsPerFrame * frames / whole.cpuSeconds / 1e9, mlp.cpu,
                       model.flopsPerFrame * frames / whole.cpuSeconds / 1e9 / mlp.cpu * 100, median))
    }

    /// GFLOP/s of one big sgemm shaped like the MLP's, median of 5.
    func sgemmGFLOPs(m: Int, n: Int, k: Int) throws -> Double { try sgemmRates(m: m, n: n, k: k).wall }

    /// The same sgemm's GFLOP per wall second and per CPU second (the latter holds up better when
    /// other processes share the cores: it counts only the time this process ran).
    func sgemmRates(m: Int, n: Int, k: Int) throws -> (wall: Double, cpu: Double) {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        var samples: [Double] = [], cpuSamples: [Double] = []
        for i in 0..<6 {
            let start = DispatchTime.now().uptimeNanoseconds, cpu = OperationProfile.processCPUSeconds()
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
            if i > 0 {
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                cpuSamples.append(OperationProfile.processCPUSeconds() - cpu)
            }
        }
        let flops = 2 * Double(m * n * k)
        return (flops / samples.sorted()[samples.count / 2] / 1e9, flops / cpuSamples.sorted()[cpuSamples.count / 2] / 1e9)
    }

    /// Median seconds per frame of the PyTorch peer, or nil when it cannot run.
    func torchPeer(_ extra: [String]) -> Double? {
        guard FileManager.default.fileExists(atPath: peer),
              let data = Peer.run(python, [peer, "--hidden", "\(hidden)", "--layers", "\(layers)", "--heads", "\(heads)",
                                           "--intermediate", "\(intermediate)", "--image", "\(image)", "--patch", "\(patch)",
                                           "--scale", "\(scale)", "--text-hidden", "\(textHidden)", "--threads", "\(threads)",
                                           "--runs", "\(runs)"] + extra),
              let json = Peer.lastJSONObject(data), let median = json["median"] as? Double else { return nil }
        return median
    }
}

/// Deterministic values in -1...1 for bench weights.
struct BenchRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
    }
}
