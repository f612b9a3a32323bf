import CFFmpeg
import Foundation

/// FFmpeg is set up once per process: silent logs (errors reach users as `StreamError`s)
/// and the network layer for URLs.
let ffmpegReady: Bool = {
    av_log_set_level(AV_LOG_QUIET)
    avformat_network_init()
    return true
}()

/// Text of an FFmpeg error code.
func ffmpegErrorText(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    hv_error_string(code, &buffer, buffer.count)
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// A decoded frame waiting in `Decoder.frame`: its number among decoded frames and its time.
struct DecodedFrame {
    var sourceFrameNumber: Int
    var time: Double
}

/// The single owner of every FFmpeg object of one input (demuxer, decoder, scaler, frames,
/// packets). Not Sendable: it lives inside one iterator or one reader thread, and `deinit`
/// frees everything, so dropping it is how decoding stops.
final class Decoder {
    let input: String
    let info: VideoSourceInfo
    /// Recoverable decode errors skipped so far (the decoder resynchronised after each).
    private(set) var recoverableErrors = 0

    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    /// The frame most recently returned by `decodeNext`.
    private(set) var frame: UnsafeMutablePointer<AVFrame>?
    /// A frame kept back while sampling decides on it (fps sampling looks one frame ahead).
    private var heldFrame: UnsafeMutablePointer<AVFrame>?
    private var scaleTarget: UnsafeMutablePointer<AVFrame>?
    private var scaler: OpaquePointer?
    private var scalerKey: [Int32] = []
    private let streamIndex: Int32
    private let timeBase: AVRational
    private let interrupt: UnsafeMutablePointer<hv_interrupt>?
    private let threads: Int
    /// The source's counters, told when this decoder opens and closes.
    private let census: StreamCounters?

    private var draining = false
    private var finished = false
    private(set) var decodedFrames = 0
    private var packetCount = 0
    /// Keyframes-only mode numbers frames by packet; pts → packet number of the key packets sent.
    private var keyPacketNumbers: [Int64: Int] = [:]
    /// A demuxer error seen mid-stream: reported once the frames decoded before it are out.
    private var pendingError: StreamError?
    private var lastTime: Double?
    /// FFmpeg's receive ring for UDP-family inputs (about 8 s of a 2 Mbit/s stream).
    static let liveBufferBytes = 2 << 20

    /// Opens `input` and its best video stream; `decode` false only reads the facts (probe).
    init(input: String, decode: Bool = true, threads: Int = 0,
         interrupt: UnsafeMutablePointer<hv_interrupt>? = nil, census: StreamCounters? = nil) throws(StreamError) {
        _ = ffmpegReady
        self.input = input
        self.census = census
        self.interrupt = interrupt
        self.threads = threads
        let kind = InputKind(input)
        if kind == .file {
            // Only a regular file's size means anything: a fifo or a device (/dev/urandom) says 0.
            var facts = stat()
            guard stat(input, &facts) == 0 else {
                throw errno == ENOENT ? .fileNotFound(input: input) : .openFailed(input: input, reason: String(cString: strerror(errno)))
            }
            let type = facts.st_mode & S_IFMT
            if type == S_IFDIR { throw .openFailed(input: input, reason: "is a directory") }
            if type == S_IFREG && facts.st_size == 0 { throw .emptyFile(input: input) }
        }

        guard let context = avformat_alloc_context() else { throw .openFailed(input: input, reason: "out of memory") }
        if let interrupt { hv_install_interrupt(context, interrupt) }
        var options: OpaquePointer?
        if InputKind.isLive(input) {
            // A full UDP buffer drops datagrams instead of failing the input. Its size is a
            // memory budget, not slack: FFmpeg's UDP thread writes round a ring of `fifo_size`
            // 188-byte packets, touching every page once per lap, so RSS climbs at the stream's
            // bitrate until the first lap ends (a 188 MB ring looked like a 250 KB/s leak).
            // The reader thread drains it continuously, so a few seconds of video is plenty.
            av_dict_set(&options, "overrun_nonfatal", "1", 0)
            av_dict_set(&options, "fifo_size", "\(Decoder.liveBufferBytes / 188)", 0)
        }
        var opened: UnsafeMutablePointer<AVFormatContext>? = context
        let openStatus = avformat_open_input(&opened, InputKind.url(for: input), nil, &options)
        av_dict_free(&options)
        guard openStatus >= 0, let opened else {
            // avformat_open_input frees the context on failure.
            if let interrupt { hv_interrupt_detach(interrupt) }
            if let interrupt, hv_interrupt_is_set(interrupt) != 0 {
                throw .openFailed(input: input, reason: "cancelled")
            }
            throw Decoder.openError(input: input, code: openStatus, kind: kind)
        }
        format = opened
        // Until every stored property is set a throw skips `deinit`, so the demuxer is closed here.
        func closing(_ error: StreamError) -> StreamError {
            var demuxer: UnsafeMutablePointer<AVFormatContext>? = opened
            if let interrupt { hv_interrupt_detach(interrupt) }
            avformat_close_input(&demuxer)
            return error
        }
        let streamsStatus = avformat_find_stream_info(opened, nil)
        if streamsStatus < 0 {
            throw closing(.corrupt(input: input, reason: ffmpegErrorText(streamsStatus)))
        }
        var decoderCodec: UnsafePointer<AVCodec>?
        let best = av_find_best_stream(opened, AVMEDIA_TYPE_VIDEO, -1, -1, &decoderCodec, 0)
        guard best >= 0, let stream = opened.pointee.streams[Int(best)] else {
            if best == hv_averror_decoder_not_found() {
                throw closing(.unsupportedCodec(input: input, codec: Decoder.firstVideoCodecName(opened)))
            }
            throw closing(.noVideoStream(input: input))
        }
        streamIndex = best
        timeBase = stream.pointee.time_base
        info = Decoder.facts(input: input, format: opened, stream: stream)
        // Fully initialised: from here on `deinit` frees everything, on a throw too.
        census?.decoderOpened()

        guard decode else { return }
        guard let decoderCodec else { throw .unsupportedCodec(input: input, codec: info.codec) }
        guard let context = avcodec_alloc_context3(decoderCodec) else {
            throw .openFailed(input: input, reason: "out of memory")
        }
        codec = context
        if avcodec_parameters_to_context(context, stream.pointee.codecpar) < 0 {
            throw .unsupportedCodec(input: input, codec: info.codec)
        }
        context.pointee.pkt_timebase = stream.pointee.time_base
        context.pointee.thread_count = Int32(threads)
        context.pointee.thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE
        let codecStatus = avcodec_open2(context, decoderCodec, nil)
        if codecStatus < 0 {
            throw .unsupportedCodec(input: input, codec: "\(info.codec): \(ffmpegErrorText(codecStatus))")
        }
        packet = av_packet_alloc()
        frame = av_frame_alloc()
        heldFrame = av_frame_alloc()
        scaleTarget = av_frame_alloc()
        if packet == nil || frame == nil || heldFrame == nil || scaleTarget == nil {
            throw .openFailed(input: input, reason: "out of memory")
        }
    }

    deinit {
        census?.decoderClosed()
        if let scaler { sws_freeContext(scaler) }
        av_frame_free(&scaleTarget)
        av_frame_free(&heldFrame)
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        if let interrupt { hv_interrupt_detach(interrupt) }
        avformat_close_input(&format)
    }

    private var isInterrupted: Bool {
        guard let interrupt else { return false }
        return hv_interrupt_is_set(interrupt) != 0
    }

    // MARK: decoding

    /// Decodes up to the next frame in presentation order (left in `frame`); nil at the end.
    /// With `keyframesOnly`, non-key packets are dropped before the decoder sees them.
    func decodeNext(keyframesOnly: Bool) throws(StreamError) -> DecodedFrame? {
        guard let codec, let frame, let packet, let format, !finished else { return nil }
        while true {
            av_frame_unref(frame)
            let received = avcodec_receive_frame(codec, frame)
            if received == 0 {
                return number(frame, keyframesOnly: keyframesOnly)
            }
            if received == hv_averror_eof() {
                finished = true
                if let pendingError { throw pendingError }
                return nil
            }
            if received != hv_averror_eagain() {
                // The decoder reports a damaged frame and moves on to the next one.
                recoverableErrors += 1
                continue
            }
            if isInterrupted { finished = true; return nil }

            let read = av_read_frame(format, packet)
            if read < 0 {
                if isInterrupted { finished = true; return nil }
                if read != hv_averror_eof() {
                    pendingError = .corrupt(input: input, reason: ffmpegErrorText(read))
                } else if let expected = info.frameCount, packetCount < expected {
                    // The container's index promised more samples than the data holds.
                    pendingError = .corrupt(input: input, reason: "data ends after \(packetCount) of \(expected) frames")
                }
                // Drain: frames still inside the decoder come out before the end (or the error).
                draining = true
                avcodec_send_packet(codec, nil)
                continue
            }
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == streamIndex else { continue }
            let packetNumber = packetCount
            packetCount += 1
            if keyframesOnly {
                guard packet.pointee.flags & AV_PKT_FLAG_KEY != 0 else { continue }
                let pts = packet.pointee.pts != hv_nopts_value() ? packet.pointee.pts : packet.pointee.dts
                keyPacketNumbers[pts] = packetNumber
            }
            let sent = avcodec_send_packet(codec, packet)
            if sent == hv_averror_invaliddata() {
                recoverableErrors += 1
            } else if sent < 0 && sent != hv_averror_eagain() {
                finished = true
                throw .corrupt(input: input, reason: ffmpegErrorText(sent))
            }
        }
    }

    private func number(_ frame: UnsafeMutablePointer<AVFrame>, keyframesOnly: Bool) -> DecodedFrame {
        let pts = frame.pointee.pts != hv_nopts_value() ? frame.pointee.pts : frame.pointee.best_effort_timestamp
        var time: Double
        if pts != hv_nopts_value(), timeBase.den != 0 {
            time = Double(pts) * Double(timeBase.num) / Double(timeBase.den)
        } else {
            // No timestamp at all: continue from the last one at the stream's rate.
            let step = 1 / (info.frameRate ?? 25)
            time = (lastTime.map { $0 + step }) ?? 0
        }
        if !time.isFinite { time = lastTime ?? 0 }
        lastTime = time
        var sourceNumber = decodedFrames
        if keyframesOnly {
            sourceNumber = keyPacketNumbers.removeValue(forKey: pts) ?? sourceNumber
            // Key packets whose frame never came out (or came out retimed) must not pile up live.
            if keyPacketNumbers.count > 16 { keyPacketNumbers = keyPacketNumbers.filter { $0.key > pts } }
        }
        decodedFrames += 1
        return DecodedFrame(sourceFrameNumber: sourceNumber, time: time)
    }

    /// Keeps the current frame aside (replacing any frame held before).
    func holdCurrent() {
        guard let frame, let heldFrame else { return }
        av_frame_unref(heldFrame)
        av_frame_move_ref(heldFrame, frame)
    }

    /// RGB of the current frame, or of the held one.
    func rgb(held: Bool, target: FrameSize?, policy: ResizePolicy) throws(StreamError) -> VideoFrame? {
        guard let source = held ? heldFrame : frame else { return nil }
        let size = FrameSize(width: Int(source.pointee.width), height: Int(source.pointee.height))
        guard size.width > 0, size.height > 0 else { return nil }
        let layout = ScaleLayout(source: size, target: target, policy: policy)
        let rgb = try rgb(of: source, layout: layout)
        return VideoFrame(index: 0, sourceFrameNumber: 0, time: 0,
                          width: layout.canvas.width, height: layout.canvas.height, rgb: rgb)
    }

    /// Counts the video packets a decode would see, without decoding (demux only).
    /// Used where sampling needs the frame total up front.
    func countPackets(keyframesOnly: Bool, start: Double?, end: Double?) throws(StreamError) -> Int {
        guard let format, let packet = av_packet_alloc() else { return 0 }
        var packet2: UnsafeMutablePointer<AVPacket>? = packet
        defer { av_packet_free(&packet2) }
        var count = 0
        while true {
            let read = av_read_frame(format, packet)
            if read < 0 { break }
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == streamIndex else { continue }
            if keyframesOnly && packet.pointee.flags & AV_PKT_FLAG_KEY == 0 { continue }
            let pts = packet.pointee.pts != hv_nopts_value() ? packet.pointee.pts : packet.pointee.dts
            if pts != hv_nopts_value(), timeBase.den != 0 {
                let time = Double(pts) * Double(timeBase.num) / Double(timeBase.den)
                if let start, time < start { continue }
                if let end, time >= end { continue }
            }
            count += 1
        }
        return count
    }

    // MARK: scaling

    /// Converts `source` (a decoded frame) to packed RGB24 laid out as `layout` says.
    func rgb(of source: UnsafeMutablePointer<AVFrame>, layout: ScaleLayout) throws(StreamError) -> [UInt8] {
        let scaler = try scaler(for: source, picture: layout.picture)
        let target = try scaleTarget(for: layout.picture)
        let status = sws_scale_frame(scaler, target, source)
        if status < 0 { throw .corrupt(input: input, reason: "scaling failed: \(ffmpegErrorText(status))") }
        // swscale's SIMD writers store whole vectors, so they need FFmpeg's aligned, padded rows;
        // the packed contract (stride width*3) is met by copying the rows out.
        let canvas = layout.canvas
        let stride = canvas.width * 3
        let rowBytes = layout.picture.width * 3
        let pitch = Int(target.pointee.linesize.0)
        guard let scaled = target.pointee.data.0 else { return [UInt8](repeating: 0, count: stride * canvas.height) }
        return [UInt8](unsafeUninitializedCapacity: stride * canvas.height) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            if layout.isPadded { base.initialize(repeating: 0, count: stride * canvas.height) }
            let origin = base + layout.originY * stride + layout.originX * 3
            for row in 0..<layout.picture.height {
                (origin + row * stride).initialize(from: scaled + row * pitch, count: rowBytes)
            }
            initialized = stride * canvas.height
        }
    }

    /// The frame swscale writes into: FFmpeg-allocated (aligned, padded), reused while the
    /// picture size stays the same.
    private func scaleTarget(for picture: FrameSize) throws(StreamError) -> UnsafeMutablePointer<AVFrame> {
        guard let target = scaleTarget else { throw .openFailed(input: input, reason: "out of memory") }
        if target.pointee.buf.0 != nil, target.pointee.width == Int32(picture.width),
           target.pointee.height == Int32(picture.height) {
            return target
        }
        av_frame_unref(target)
        target.pointee.width = Int32(picture.width)
        target.pointee.height = Int32(picture.height)
        target.pointee.format = AV_PIX_FMT_RGB24.rawValue
        let status = av_frame_get_buffer(target, 0)
        if status < 0 { throw .openFailed(input: input, reason: "scale buffer: \(ffmpegErrorText(status))") }
        return target
    }

    /// The scaler for this source format and picture size, rebuilt only when either changes.
    private func scaler(for source: UnsafeMutablePointer<AVFrame>, picture: FrameSize) throws(StreamError) -> OpaquePointer {
        let s = source.pointee
        let key = [s.width, s.height, s.format, Int32(picture.width), Int32(picture.height),
                   Int32(s.color_range.rawValue), Int32(s.colorspace.rawValue)]
        if let scaler, key == scalerKey { return scaler }
        if let scaler { sws_freeContext(scaler) }
        scaler = nil
        guard let context = sws_alloc_context() else { throw .openFailed(input: input, reason: "out of memory") }
        let object = UnsafeMutableRawPointer(context)
        av_opt_set_int(object, "srcw", Int64(s.width), 0)
        av_opt_set_int(object, "srch", Int64(s.height), 0)
        av_opt_set_int(object, "src_format", Int64(s.format), 0)
        av_opt_set_int(object, "dstw", Int64(picture.width), 0)
        av_opt_set_int(object, "dsth", Int64(picture.height), 0)
        av_opt_set_int(object, "dst_format", Int64(AV_PIX_FMT_RGB24.rawValue), 0)
        // Bicubic is what ffmpeg's scale filter uses by default.
        av_opt_set_int(object, "sws_flags", Int64(SWS_BICUBIC), 0)
        av_opt_set_int(object, "threads", Int64(threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : threads), 0)
        let status = sws_init_context(context, nil, nil)
        guard status >= 0 else {
            sws_freeContext(context)
            throw .unsupportedCodec(input: input, codec: "\(info.codec) (pixel format \(s.format) cannot be scaled: \(ffmpegErrorText(status)))")
        }
        // Honour the frame's YUV range and matrix, as the scale filter does.
        let fullRange: Int32 = s.color_range == AVCOL_RANGE_JPEG || Decoder.isFullRangeFormat(s.format) ? 1 : 0
        let space = s.colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : Int32(s.colorspace.rawValue)
        let coefficients = sws_getCoefficients(space)
        sws_setColorspaceDetails(context, coefficients, fullRange, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16)
        scaler = context
        scalerKey = key
        return context
    }

    private static func isFullRangeFormat(_ format: Int32) -> Bool {
        [AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ411P]
            .contains { $0.rawValue == format }
    }

    // MARK: facts and errors

    private static func facts(input: String, format: UnsafeMutablePointer<AVFormatContext>,
                              stream: UnsafeMutablePointer<AVStream>) -> VideoSourceInfo {
        let parameters = stream.pointee.codecpar.pointee
        let base = stream.pointee.time_base
        func seconds(_ value: Int64, _ rational: AVRational) -> Double? {
            guard value != hv_nopts_value(), rational.den != 0 else { return nil }
            let result = Double(value) * Double(rational.num) / Double(rational.den)
            return result.isFinite ? result : nil
        }
        var duration = seconds(stream.pointee.duration, base)
        if duration == nil, format.pointee.duration != hv_nopts_value() {
            duration = Double(format.pointee.duration) / Double(hv_av_time_base())
        }
        func rate(_ r: AVRational) -> Double? {
            guard r.num > 0, r.den > 0 else { return nil }
            return Double(r.num) / Double(r.den)
        }
        var rotation = 0
        var sideDataSize: Int = 0
        if let matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &sideDataSize), sideDataSize >= 36 {
            let degrees = matrix.withMemoryRebound(to: Int32.self, capacity: 9) { av_display_rotation_get($0) }
            if degrees.isFinite { rotation = Int(degrees.rounded()) }
        }
        let formatName = format.pointee.iformat.map { String(cString: $0.pointee.name) } ?? "unknown"
        return VideoSourceInfo(
            input: input, format: formatName, codec: String(cString: avcodec_get_name(parameters.codec_id)),
            width: Int(parameters.width), height: Int(parameters.height), rotation: rotation,
            duration: duration, frameRate: rate(stream.pointee.avg_frame_rate) ?? rate(stream.pointee.r_frame_rate),
            frameCount: stream.pointee.nb_frames > 0 ? Int(stream.pointee.nb_frames) : nil,
            startTime: seconds(stream.pointee.start_time, base))
    }

    private static func firstVideoCodecName(_ format: UnsafeMutablePointer<AVFormatContext>) -> String {
        for i in 0..<Int(format.pointee.nb_streams) {
            guard let parameters = format.pointee.streams[i]?.pointee.codecpar.pointee,
                  parameters.codec_type == AVMEDIA_TYPE_VIDEO else { continue }
            if parameters.codec_id == AV_CODEC_ID_NONE {
                let tag = parameters.codec_tag
                let chars = (0..<4).map { UInt8(truncatingIfNeeded: tag >> (8 * $0)) }
                return "unknown (tag \(String(decoding: chars, as: UTF8.self)))"
            }
            return String(cString: avcodec_get_name(parameters.codec_id))
        }
        return "unknown"
    }

    /// Names why an input did not open: a damaged file of a known container is corrupt,
    /// anything FFmpeg cannot recognise is not a video.
    private static func openError(input: String, code: Int32, kind: InputKind) -> StreamError {
        let reason = ffmpegErrorText(code)
        var facts = stat()
        let regular = stat(input, &facts) == 0 && facts.st_mode & S_IFMT == S_IFREG
        // A fifo or a device (/dev/urandom) cannot be read again to tell damage from noise.
        if kind == .file, !regular, code == hv_averror_invaliddata() { return .notAVideo(input: input, reason: reason) }
        guard kind == .file, regular, code == hv_averror_invaliddata() else {
            if code == hv_averror(ENOENT) { return .fileNotFound(input: input) }
            // No retry can help: the URL names a protocol this FFmpeg lacks, or is malformed.
            if code == hv_averror_protocol_not_found() || (kind == .network && code == hv_averror(EINVAL)) {
                return .invalidRequest(input: input, reason: "cannot open (\(reason))")
            }
            return .openFailed(input: input, reason: reason)
        }
        guard let handle = FileHandle(forReadingAtPath: input) else { return .openFailed(input: input, reason: reason) }
        let head = (try? handle.read(upToCount: 4096)) ?? Data()
        try? handle.close()
        var bytes = [UInt8](head) + [UInt8](repeating: 0, count: Int(AVPROBE_PADDING_SIZE))
        let recognised = bytes.withUnsafeMutableBufferPointer { buffer -> Bool in
            var probe = AVProbeData()
            probe.buf = buffer.baseAddress
            probe.buf_size = Int32(head.count)
            var score: Int32 = 0
            return av_probe_input_format2(&probe, 1, &score) != nil && score >= AVPROBE_SCORE_MAX / 4
        }
        return recognised ? .corrupt(input: input, reason: reason) : .notAVideo(input: input, reason: reason)
    }
}
