import ArgumentParser
import Foundation
import Tensor
import VLM

/// `hiprune-bench quant`: decode tokens/s and prefill seconds on quantized GGUF files (Q8_0 and
/// Q4_K_M as llama.cpp lays them out, random weights) at SmolLM2-135M shapes and at Llama-2-7B
/// shapes cut to `--layers` blocks, beside llama-bench on the same files. The files are written
/// here (random blocks with valid scales; the values do not matter for timing) and kept in `--dir`.
struct QuantBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quant",
        abstract: "Quantized weights: decode t/s and prefill s at 612/268/142 tokens on Q8_0 and Q4_K_M GGUFs (SmolLM2-135M and Llama-2-7B shapes), beside llama-bench.")

    @OptionGroup var timing: DecoderTimingOptions
    var runs: Int { timing.runs ?? 3 }
    var decodeTokens: Int { timing.decodeTokens ?? 32 }

    @Option(help: "Blocks of the 7B-shaped model (of 32); figures are also given per block and scaled to 32.")
    var layers = 2

    @Option(help: "Shapes to run: smollm2, llama2-7b (comma-separated).")
    var shapes = "smollm2,llama2-7b"

    @Option(help: "File layouts: q8_0, q4_k_m (comma-separated).")
    var schemes = "q8_0,q4_k_m"

    @Option(help: "llama.cpp's llama-bench (default: $HIPRUNE_LLAMA_BENCH, else llama-bench on PATH); skipped if missing.")
    var llamaBench: String?

    @Option(help: "Where the GGUF files are written and reused.")
    var dir = ".cache/bench-quant"

    @Flag(help: "Also time prefill with every block format through F32 tiles + sgemm, and through integer dot products (the default picks per format).")
    var compareConversion = false

    @Option(help: "MB read by the memory-bandwidth probe.")
    var probeMegabytes = 512

    static let lengths = [612, 268, 142]

    struct Shape {
        var name: String
        var hidden, intermediate, totalLayers, heads, kvHeads, vocabulary: Int
        var tied: Bool
    }

    static let knownShapes = [
        "smollm2": Shape(name: "SmolLM2-135M", hidden: 576, intermediate: 1536, totalLayers: 30, heads: 9, kvHeads: 3,
                         vocabulary: 49152, tied: true),
        "llama2-7b": Shape(name: "Llama-2-7B", hidden: 4096, intermediate: 11008, totalLayers: 32, heads: 32, kvHeads: 32,
                           vocabulary: 32000, tied: false),
    ]

    func run() async throws {
        guard runs >= 1, decodeTokens >= 1, layers >= 1, layers <= 32 else {
            throw ValidationError("--runs and --decode-tokens must be at least 1, --layers in 1...32")
        }
        let shapeNames = shapes.split(separator: ",").map(String.init)
        let schemeNames = schemes.split(separator: ",").map(String.init)
        for s in shapeNames where Self.knownShapes[s] == nil { throw ValidationError("unknown shape '\(s)' (smollm2, llama2-7b)") }
        for s in schemeNames where !["q8_0", "q4_k_m"].contains(s) { throw ValidationError("unknown scheme '\(s)' (q8_0, q4_k_m)") }
        let peer = llamaBench ?? ProcessInfo.processInfo.environment["HIPRUNE_LLAMA_BENCH"] ?? Self.onPath("llama-bench")
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw ValidationError("cannot create \(dir): \(error.localizedDescription)")
        }
        print("CPU: \(Self.cpuModel()), \(ProcessInfo.processInfo.activeProcessorCount) cores; decode team \(DecodeTeam.size) threads")
        print("kernels: quantized \(DecodeTeam.quantInstructionSet) (available: \(DecodeTeam.quantInstructionSets.joined(separator: ", "))), F32/BF16 \(InstructionSet.active); \(InstructionSet.summary)")
        print("load before: \(Self.loadAverage())")
        let bandwidth = DecodeTeam.streamingBandwidth(megabytes: probeMegabytes, passes: 3) ?? .nan
        print(String(format: "memory bandwidth: %.1f GB/s (streaming sum of %d MB on the decode team)", bandwidth / 1e9, probeMegabytes))
        print("\(runs) rounds after a warm-up, each ours then llama-bench's (one repetition) or the reverse; decode: \(decodeTokens) tokens after a 142-token prompt; llama-bench: \(peer ?? "not found"), 2 threads")
        for shapeName in shapeNames {
            let shape = Self.knownShapes[shapeName]!
            let blocks = shapeName == "smollm2" ? shape.totalLayers : layers
            for scheme in schemeNames {
                let path = (dir as NSString).appendingPathComponent("\(shapeName)-\(blocks)of\(shape.totalLayers)-\(scheme).gguf")
                if !FileManager.default.fileExists(atPath: path) {
                    try QuantBenchFile.write(path: path, shape: shape, layers: blocks, scheme: scheme)
                }
                try measure(path: path, shape: shape, blocks: blocks, scheme: scheme, bandwidth: bandwidth, peer: peer)
            }
        }
        if shapeNames.contains("smollm2") { try measureBF16(bandwidth: bandwidth) }
        print("load after: \(Self.loadAverage())")
    }

    private func measure(path: String, shape: Shape, blocks: Int, scheme: String, bandwidth: Double, peer: String?) throws {
        // The previous file's model is gone, but the allocator may keep its freed heap resident:
        // hand that back, so the resident figure below is this model's, as in a process of its own.
        ProcessMemory.returnFreedHeap()
        let loadStart = DispatchTime.now()
        let gguf = try GGUFFile(path: path)
        let model = try LlamaModel(gguf: gguf)
        let loadSeconds = Self.seconds(since: loadStart)
        let session = try DecoderSession(model: model, context: 1024)
        let weightBytes = Double(model.decoder.weightBytes)
        print("")
        print("\(shape.name) shapes, \(blocks) of \(shape.totalLayers) blocks, \(scheme.uppercased()) (\((path as NSString).lastPathComponent), "
              + String(format: "%.1f MB of weights held, loaded in %.3f s)", weightBytes / 1e6, loadSeconds))
        var random = UInt64(12345)
        func token() -> Int {
            random = random &* 6364136223846793005 &+ 1442695040888963407
            return Int((random >> 33) % UInt64(shape.vocabulary))
        }
        // Rounds alternate ours and llama-bench's (one repetition each; which goes first alternates
        // too), so drift of this shared machine's load touches both sides alike. With
        // --compare-conversion our three prefill paths also alternate inside each round.
        let paths: [WeightMatrix.PrefillConversion] = compareConversion ? [.automatic, .tiles, .integer] : [.automatic]
        let prompts = Self.lengths.map { n in (0..<n).map { _ in token() } }
        let prompt = (0..<142).map { _ in token() }
        var ourPrefill = [[Samples]](repeating: [Samples](repeating: Samples(), count: paths.count), count: Self.lengths.count)
        var ourDecode = Samples(), theirDecode = Samples(), decodeRatios = Samples()
        var theirPrefill = [Samples](repeating: Samples(), count: Self.lengths.count), prefillRatios = theirPrefill
        var peerFailed = false
        var probes = Samples()
        if bandwidth.isFinite { probes.add(bandwidth) }
        func ours(record: Bool) throws {
            for (i, ids) in prompts.enumerated() {
                for (p, path) in paths.enumerated() {
                    WeightMatrix.prefillConversion = path
                    defer { WeightMatrix.prefillConversion = .automatic }
                    session.cache.truncate(to: 0)
                    let start = DispatchTime.now()
                    try session.prefill(tokens: ids)
                    if record { ourPrefill[i][p].add(Self.seconds(since: start)) }
                }
            }
            session.cache.truncate(to: 0)
            try session.prefill(tokens: prompt)
            var next = argmax(session.logits)
            // This shared host's bandwidth drifts by a fifth within minutes: the probe is taken again
            // beside each decode measurement and the roofline uses the fastest of them.
            if record, let probe = DecodeTeam.streamingBandwidth(megabytes: probeMegabytes, passes: 2) { probes.add(probe) }
            let start = DispatchTime.now()
            for _ in 0..<decodeTokens {
                try session.step(token: next)
                next = argmax(session.logits)
            }
            if record { ourDecode.add(Double(decodeTokens) / Self.seconds(since: start)) }
        }
        func theirs() {
            guard let peer, !peerFailed else { return }
            guard let t = Peer.llamaBench(peer, gguf: path, prompts: Self.lengths, depth: 142, runs: 1, decodeTokens: decodeTokens) else {
                peerFailed = true
                return
            }
            for (i, n) in Self.lengths.enumerated() { if let s = t.prefill[n] { theirPrefill[i].add(s) } }
            if let d = t.decode { theirDecode.add(d) }
        }
        try ours(record: false)  // warm-up (llama-bench warms up inside each run)
        for round in 0..<runs {
            let before = theirPrefill.map(\.values.count), decodesBefore = theirDecode.values.count
            if round % 2 == 1 { theirs() }
            try ours(record: true)
            if round % 2 == 0 { theirs() }
            // Each round's own ratios (llama.cpp's time / ours): paired in time, so drift cancels.
            for i in Self.lengths.indices where theirPrefill[i].values.count > before[i] {
                prefillRatios[i].add(theirPrefill[i].values.last! / ourPrefill[i][0].values.last!)
            }
            if theirDecode.values.count > decodesBefore { decodeRatios.add(ourDecode.values.last! / theirDecode.values.last!) }
        }
        // Scaling to the full depth: prefill is work per block (the head is computed for one row);
        // decode reads the head and every block once per token (the untied embedding only a row).
        let headBytes = Double(gguf.tensors[shape.tied ? "token_embd.weight" : "output.weight"]?.range.count ?? 0)
        let layerBytes = Double(gguf.tensors.values.filter { $0.name.hasPrefix("blk.") }.reduce(0) { $0 + $1.range.count }) / Double(blocks)
        let fullScale = Double(shape.totalLayers) / Double(blocks)
        let kvBytes = Double(2 * blocks * shape.kvHeads * (shape.hidden / shape.heads) * 4) * (142 + Double(decodeTokens + 1) / 2)
        print("prefill path: " + Set(model.decoder.weightFormats).sorted { $0.rawValue < $1.rawValue }
              .map { "\($0.name) \(WeightMatrix.integerProducts($0, rows: 142) ? "integer" : "F32 tiles")" }.joined(separator: ", ")
              + " at 142 rows")
        print("median [min–max] of \(runs) rounds, ours and llama-bench's alternating; speed-up: median of the rounds' own ratios [min–max]")
        print("case          swift                        llama.cpp                    speed-up (llama.cpp time / ours)" + (compareConversion ? "   all F32 tiles  all integer" : "")
              + (blocks < shape.totalLayers ? "   per block   ×\(shape.totalLayers) estimate" : ""))
        for (i, n) in Self.lengths.enumerated() {
            let ours = ourPrefill[i][0].median
            var line = String(format: "prefill %4d  ", n) + ourPrefill[i][0].text("s") + "  "
            if theirPrefill[i].values.isEmpty { line += String(repeating: " ", count: 29) + "        -" } else {
                line += theirPrefill[i].text("s") + "  " + prefillRatios[i].text("x")
            }
            if compareConversion { line += String(format: "   %9.3f s  %9.3f s", ourPrefill[i][1].median, ourPrefill[i][2].median) }
            if blocks < shape.totalLayers { line += String(format: "   %7.3f s   %8.2f s", ours / Double(blocks), ours * fullScale) }
            print(line)
        }
        let rate = ourDecode.median
        var line = "decode        " + ourDecode.text("t/s") + "  "
        if theirDecode.values.isEmpty { line += String(repeating: " ", count: 29) + "        -" } else {
            line += theirDecode.text("t/s") + "  " + decodeRatios.text("x")
        }
        if compareConversion { line += "                          " }
        if blocks < shape.totalLayers {
            let perToken = 1 / rate
            let full = perToken * (headBytes + Double(shape.totalLayers) * layerBytes) / (headBytes + Double(blocks) * layerBytes)
            line += String(format: "   %7.2f ms   %8.2f t/s", perToken * 1e3 * layerBytes / (headBytes + Double(blocks) * layerBytes), 1 / full)
        }
        print(line)
        let perToken = headBytes + Double(blocks) * layerBytes + kvBytes
        let roof = probes.values.max() ?? .nan
        print(String(format: "decode roofline: %.1f MB per token (weights read + KV cache) at %.1f GB/s (the fastest of %d probes: the run's first and one beside each decode; slowest %.1f) = %.1f t/s; ours at %.0f %% of it",
                     perToken / 1e6, roof / 1e9, probes.values.count, (probes.values.min() ?? .nan) / 1e9, roof / perToken, 100 * rate * perToken / roof))
        let cacheBytes = Double(session.cache.byteCount)
        let resident = Self.residentBytes(), code = Double(ProcessMemory.codeResident ?? 0)
        let anonymous = Double(ProcessMemory.anonymousResident ?? 0)
        print(String(format: "resident: %.1f MB (VmRSS; %.1f MB of it executable and library pages, %.1f MB anonymous) for %.1f MB of weights held + %.1f MB of KV cache (%.2fx, %.2fx without those pages)",
                     resident / 1e6, code / 1e6, anonymous / 1e6, weightBytes / 1e6, cacheBytes / 1e6,
                     resident / (weightBytes + cacheBytes), (resident - code) / (weightBytes + cacheBytes)))
        if peerFailed { print("llama-bench failed on \(path)") }
    }

    /// BF16 weights (the way Hugging Face ships checkpoints) at SmolLM2 shapes: prefill on the default
    /// path (bf16w_gemm: the weights widened inside the product), F32 tiles + sgemm, and the whole matrix
    /// widened first.
    private func measureBF16(bandwidth: Double) throws {
        var c = LlamaConfiguration()
        c.vocabularySize = 49152
        c.hiddenSize = 576
        c.intermediateSize = 1536
        c.layers = 30
        c.heads = 9
        c.kvHeads = 3
        c.headDimension = 64
        c.maxPositions = 8192
        c.tieWordEmbeddings = true
        let model = try LlamaModel(randomWeights: c, seed: 1, precision: .bfloat16)
        let session = try DecoderSession(model: model, context: 1024)
        print("")
        print("SmolLM2-135M shapes, BF16 weights (random): prefill, bf16w_gemm (default) vs F32 tiles + sgemm vs the whole matrix first")
        print("case          bf16w_gemm  F32 tiles   whole matrix")
        var random = UInt64(99)
        for n in Self.lengths {
            let ids = (0..<n).map { _ in
                random = random &* 6364136223846793005 &+ 1442695040888963407
                return Int((random >> 33) % UInt64(c.vocabularySize))
            }
            defer { WeightMatrix.prefillConversion = .automatic }
            let registers = try median { session.cache.truncate(to: 0); try session.prefill(tokens: ids) }
            WeightMatrix.prefillConversion = .tiles
            let tiles = try median { session.cache.truncate(to: 0); try session.prefill(tokens: ids) }
            WeightMatrix.prefillConversion = .wholeMatrix
            let whole = try median { session.cache.truncate(to: 0); try session.prefill(tokens: ids) }
            print(String(format: "prefill %4d  %7.3f s   %7.3f s   %7.3f s", n, registers, tiles, whole))
        }
    }

    private func median(_ body: () throws -> Void) throws -> Double {
        try body()  // warm-up
        var samples: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now()
            try body()
            samples.append(Self.seconds(since: start))
        }
        return samples.sorted()[samples.count / 2]
    }

    /// Timings of one case: the median and the range.
    struct Samples {
        var values: [Double] = []
        mutating func add(_ v: Double) { values.append(v) }
        var median: Double { values.isEmpty ? .nan : values.sorted()[values.count / 2] }
        /// "  1.234 s [1.200–1.300]" (3 decimals for seconds, 2 for ratios, 1 otherwise), padded to 27.
        func text(_ unit: String) -> String {
            guard let low = values.min(), let high = values.max() else { return "-" }
            let digits = unit == "s" ? 3 : unit == "x" ? 2 : 1
            let f = "%.\(digits)f"
            let body = String(format: "%7.\(digits)f", median) + " " + unit + " ["
                + String(format: f, low) + "–" + String(format: f, high) + "]"
            return body.padding(toLength: 27, withPad: " ", startingAt: 0)
        }
    }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "unknown"
    }

    /// VmRSS of this process in bytes.
    static func residentBytes() -> Double { ProcessMemory.resident.map(Double.init) ?? .nan }

    static func onPath(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = (String(dir) as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}

/// Writes a llama-architecture GGUF with random blocks: every tensor in the type llama.cpp's
/// quantizer would give it for the scheme (Q4_K_M: Q6_K for the output and for half the blocks'
/// V and down projections, Q4_K elsewhere; rows that are not whole 256-value blocks fall back to
/// Q5_0 / Q8_0 as llama-quantize does), with scales set so that weights stay within about ±0.05.
enum QuantBenchFile {
    static func write(path: String, shape s: QuantBench.Shape, layers: Int, scheme: String) throws {
        let d = s.hidden / s.heads
        var tensors: [(name: String, cols: Int, rows: Int, format: WeightFormat)] = []
        func type(_ wanted: WeightFormat, cols: Int) -> WeightFormat {
            guard cols % 256 != 0 else { return wanted }
            switch wanted {
            case .q4_K: return .q5_0
            case .q6_K: return .q8_0
            default: return wanted
            }
        }
        func add(_ name: String, _ cols: Int, _ rows: Int, _ wanted: WeightFormat) {
            tensors.append((name, cols, rows, rows == 1 ? .f32 : type(wanted, cols: cols)))
        }
        let q8 = scheme == "q8_0"
        add("token_embd.weight", s.hidden, s.vocabulary, q8 ? .q8_0 : (s.tied ? .q6_K : .q4_K))
        for l in 0..<layers {
            // Half the blocks (llama.cpp's use_more_bits picks 16 of 32) keep V and down in Q6_K.
            let more: WeightFormat = q8 ? .q8_0 : (l % 2 == 0 ? .q6_K : .q4_K), base: WeightFormat = q8 ? .q8_0 : .q4_K
            add("blk.\(l).attn_norm.weight", s.hidden, 1, .f32)
            add("blk.\(l).attn_q.weight", s.hidden, s.heads * d, base)
            add("blk.\(l).attn_k.weight", s.hidden, s.kvHeads * d, base)
            add("blk.\(l).attn_v.weight", s.hidden, s.kvHeads * d, more)
            add("blk.\(l).attn_output.weight", s.heads * d, s.hidden, base)
            add("blk.\(l).ffn_norm.weight", s.hidden, 1, .f32)
            add("blk.\(l).ffn_gate.weight", s.hidden, s.intermediate, base)
            add("blk.\(l).ffn_up.weight", s.hidden, s.intermediate, base)
            add("blk.\(l).ffn_down.weight", s.intermediate, s.hidden, more)
        }
        add("output_norm.weight", s.hidden, 1, .f32)
        if !s.tied { add("output.weight", s.hidden, s.vocabulary, q8 ? .q8_0 : .q6_K) }

        var header = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func string(_ v: String) { u64(UInt64(v.utf8.count)); header.append(contentsOf: Array(v.utf8)) }
        func kvU32(_ key: String, _ v: Int) { string(key); u32(4); u32(UInt32(v)) }
        func kvF32(_ key: String, _ v: Float) { string(key); u32(6); u32(v.bitPattern) }
        func kvString(_ key: String, _ v: String) { string(key); u32(8); string(v) }
        let tokens = (0..<s.vocabulary).map { i -> String in
            switch i {
            case 0: return "<unk>"
            case 1: return "<s>"
            case 2: return "</s>"
            case 3..<259: return String(format: "<0x%02X>", i - 3)
            default: return "▁t\(i)"
            }
        }
        header.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        u64(14)
        kvString("general.architecture", "llama")
        kvString("general.name", "random \(s.name) \(scheme)")
        kvU32("general.file_type", q8 ? 7 : 15)
        kvU32("llama.context_length", 4096)
        kvU32("llama.embedding_length", s.hidden)
        kvU32("llama.feed_forward_length", s.intermediate)
        kvU32("llama.block_count", layers)
        kvU32("llama.attention.head_count", s.heads)
        kvU32("llama.attention.head_count_kv", s.kvHeads)
        kvU32("llama.rope.dimension_count", d)
        kvF32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        kvF32("llama.rope.freq_base", 10000)
        kvString("tokenizer.ggml.model", "llama")
        string("tokenizer.ggml.tokens"); u32(9); u32(8); u64(UInt64(tokens.count))
        for t in tokens { string(t) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            string(t.name)
            u32(t.rows == 1 ? 1 : 2)
            u64(UInt64(t.cols))
            if t.rows > 1 { u64(UInt64(t.rows)) }
            u32(t.format.rawValue)
            u64(UInt64(offset))
            offsets.append(offset)
            offset += (t.format.rowBytes(t.cols) * t.rows + 31) / 32 * 32
        }
        while header.count % 32 != 0 { header.append(0) }
        let temporary = path + ".part"
        guard FileManager.default.createFile(atPath: temporary, contents: header),
              let handle = FileHandle(forWritingAtPath: temporary) else {
            throw ValidationError("cannot write \(temporary)")
        }
        // A failed write (a full disk) leaves no partial file behind under either name.
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        do { try handle.seekToEnd() } catch { throw ValidationError("cannot write \(temporary): \(error.localizedDescription)") }
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        for t in tensors {
            let bytes = t.format.rowBytes(t.cols) * t.rows
            var block = [UInt8](repeating: 0, count: (bytes + 31) / 32 * 32)
            if t.format == .f32 {
                block.withUnsafeMutableBytes { raw in
                    for j in 0..<(bytes / 4) { raw.storeBytes(of: Float(1).bitPattern, toByteOffset: 4 * j, as: UInt32.self) }
                }
            } else {
                block.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for j in 0..<(bytes / 8) {
                        state ^= state << 13; state ^= state >> 7; state ^= state << 17
                        words[j] = state
                    }
                }
                setScales(&block, format: t.format, blocks: bytes / t.format.blockBytes)
            }
            do { try handle.write(contentsOf: block) } catch {
                try? handle.close()
                throw ValidationError("cannot write \(temporary): \(error.localizedDescription)")
            }
        }
        do { try handle.close() } catch { throw ValidationError("cannot write \(temporary): \(error.localizedDescription)") }
        do { try FileManager.default.moveItem(atPath: temporary, toPath: path) } catch {
            throw ValidationError("cannot move \(temporary) to \(path): \(error.localizedDescription)")
        }
    }

    /// The half-precision scales of random blocks, so that values stay small and finite.
    private static func setScales(_ bytes: inout [UInt8], format: WeightFormat, blocks: Int) {
        func half(_ v: Float, _ at: Int) {
            let bits = Float16(v).bitPattern
            bytes[at] = UInt8(bits & 0xFF)
            bytes[at + 1] = UInt8(bits >> 8)
        }
        let size = format.blockBytes
        for b in 0..<blocks {
            let o = b * size
            switch format {
            case .q8_0: half(0.05 / 127, o)
            case .q5_0: half(0.05 / 16, o)
            case .q4_0: half(0.05 / 8, o)
            case .q4_K: half(0.05 / (63 * 15), o); half(0.025 / 63, o + 2)
            case .q6_K: half(0.05 / (128 * 32), o + 208)
            default: break
            }
        }
    }
}
