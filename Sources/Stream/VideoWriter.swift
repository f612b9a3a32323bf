import CFFmpeg
import Console
import Foundation

/// Writes RGB24 pictures as a video file through FFmpeg: H.264 (libx264) where this FFmpeg has
/// it, else MPEG-4 part 2; yuv420p, so both sides are made even (an odd side is stretched by
/// one pixel). The container comes from the file name (`.mp4`, `.mkv`, `.mov`, …).
///
/// Nothing half-written: frames go to a hidden partial file beside `path` (PartialOutputs: the
/// same name on every run, removed on SIGINT/SIGTERM), renamed to `path` by `finish()`; a writer
/// dropped before `finish()` (an error anywhere) deletes it.
/// One writer is used from one task at a time.
public final class VideoWriter {
    public let path: String
    /// Size of the pictures `append` takes.
    public let width: Int
    public let height: Int
    /// Size in the file (even sides).
    public let encodedWidth: Int
    public let encodedHeight: Int
    /// Name of the FFmpeg encoder in use (libx264 or mpeg4).
    public let codecName: String
    public private(set) var frameCount = 0

    private let temporaryPath: String
    private var partial: PartialOutputs.Token?
    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private let stream: UnsafeMutablePointer<AVStream>
    private let scaler: OpaquePointer
    private var finished = false

    /// Opens `path` for `width` × `height` pictures shown `framesPerSecond` times a second.
    public init(path: String, width: Int, height: Int, framesPerSecond: Double) throws(StreamError) {
        _ = ffmpegReady
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw .writeFailed(path: path, reason: "\(width)x\(height) is not a picture size")
        }
        guard framesPerSecond > 0, framesPerSecond.isFinite else {
            throw .writeFailed(path: path, reason: "\(framesPerSecond) is not a frame rate")
        }
        self.path = path
        self.width = width
        self.height = height
        encodedWidth = (width + 1) / 2 * 2
        encodedHeight = (height + 1) / 2 * 2
        temporaryPath = PartialOutputs.partialPath(for: path)

        // Everything allocated so far is freed by the failing path's `cleanUp` call.
        var format: UnsafeMutablePointer<AVFormatContext>?
        var status = avformat_alloc_output_context2(&format, nil, nil, path)
        guard status >= 0, let format else {
            throw .writeFailed(path: path, reason: "no video container for this file name (use .mp4, .mkv or .mov)")
        }
        guard let encoder = avcodec_find_encoder_by_name("libx264") ?? avcodec_find_encoder(AV_CODEC_ID_MPEG4),
              let stream = avformat_new_stream(format, nil), let codec = avcodec_alloc_context3(encoder),
              let frame = av_frame_alloc(), let packet = av_packet_alloc(),
              let scaler = sws_getContext(Int32(width), Int32(height), AV_PIX_FMT_RGB24,
                                          Int32(encodedWidth), Int32(encodedHeight), AV_PIX_FMT_YUV420P,
                                          SWS_BICUBIC, nil, nil, nil) else {
            Self.cleanUp(format: format, codec: nil, frame: nil, packet: nil)
            throw .writeFailed(path: path, reason: "this FFmpeg has no H.264 or MPEG-4 encoder, or is out of memory")
        }
        self.format = format
        self.codec = codec
        self.frame = frame
        self.packet = packet
        self.stream = stream
        self.scaler = scaler
        codecName = String(cString: encoder.pointee.name)

        let rate = av_d2q(framesPerSecond, 1_000_000)
        codec.pointee.width = Int32(encodedWidth)
        codec.pointee.height = Int32(encodedHeight)
        codec.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        codec.pointee.time_base = av_inv_q(rate)
        codec.pointee.framerate = rate
        // swscale's default RGB → YUV matrix is BT.601, limited range: say so in the stream.
        codec.pointee.colorspace = AVCOL_SPC_SMPTE170M
        codec.pointee.color_range = AVCOL_RANGE_MPEG
        if codecName == "libx264" {
            av_opt_set(codec.pointee.priv_data, "preset", "veryfast", 0)
            av_opt_set(codec.pointee.priv_data, "crf", "20", 0)
        } else {
            codec.pointee.bit_rate = Int64(min(20_000_000, max(400_000, encodedWidth * encodedHeight * 4)))
        }
        if format.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            codec.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        }
        status = avcodec_open2(codec, encoder, nil)
        if status >= 0 { status = avcodec_parameters_from_context(stream.pointee.codecpar, codec) }
        if status >= 0 {
            stream.pointee.time_base = codec.pointee.time_base
            stream.pointee.avg_frame_rate = rate
            frame.pointee.format = AV_PIX_FMT_YUV420P.rawValue
            frame.pointee.width = Int32(encodedWidth)
            frame.pointee.height = Int32(encodedHeight)
            status = av_frame_get_buffer(frame, 0)
        }
        if status >= 0 {
            // (Every stored property is set: a throw from here on frees the FFmpeg state in deinit.)
            do {
                partial = try PartialOutputs.claim(temporaryPath, of: path)
            } catch {
                throw .writeFailed(path: path, reason: error.cause)
            }
            status = avio_open(&format.pointee.pb, temporaryPath, AVIO_FLAG_WRITE)
        }
        if status >= 0 {
            status = avformat_write_header(format, nil)
            if status < 0 { unlink(temporaryPath) }
        }
        guard status >= 0 else {
            if let partial { PartialOutputs.discard(partial) }
            throw .writeFailed(path: path, reason: ffmpegErrorText(status))
        }
    }

    /// Appends one packed RGB24 picture of `width` × `height`.
    public func append(rgb: [UInt8]) throws(StreamError) {
        guard !finished, let frame else { throw .writeFailed(path: path, reason: "the video is already finished") }
        guard rgb.count == width * height * 3 else {
            throw .writeFailed(path: path, reason: "\(rgb.count) bytes do not make a \(width)x\(height) RGB24 picture")
        }
        var status = av_frame_make_writable(frame)
        guard status >= 0 else { throw .writeFailed(path: path, reason: ffmpegErrorText(status)) }
        let rows = Int32(height), scaler = scaler
        rgb.withUnsafeBufferPointer { source in
            let planes: [UnsafePointer<UInt8>?] = [source.baseAddress, nil, nil, nil]
            let strides: [Int32] = [Int32(width * 3), 0, 0, 0]
            withUnsafeMutableBytes(of: &frame.pointee.data) { data in
                withUnsafeBytes(of: &frame.pointee.linesize) { linesize in
                    let targets = data.bindMemory(to: UnsafeMutablePointer<UInt8>?.self)
                    let targetStrides = linesize.bindMemory(to: Int32.self)
                    status = sws_scale(scaler, planes, strides, 0, rows, targets.baseAddress, targetStrides.baseAddress)
                }
            }
        }
        guard status > 0 else { throw .writeFailed(path: path, reason: "the scaler produced no picture") }
        frame.pointee.pts = Int64(frameCount)
        try send(frame)
        frameCount += 1
    }

    /// Flushes the encoder, closes the file and moves it to `path`.
    public func finish() throws(StreamError) {
        guard !finished, let format else { return }
        guard frameCount > 0 else { throw .writeFailed(path: path, reason: "no frame to write") }
        try send(nil)
        var status = av_write_trailer(format)
        let closed = avio_closep(&format.pointee.pb)
        if status >= 0 { status = closed }
        guard status >= 0 else { throw .writeFailed(path: path, reason: ffmpegErrorText(status)) }
        guard rename(temporaryPath, path) == 0 else {
            throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
        if let partial { PartialOutputs.done(partial) }
        finished = true
    }

    /// Encodes `frame` (nil: drain) and muxes every packet that comes out.
    private func send(_ frame: UnsafeMutablePointer<AVFrame>?) throws(StreamError) {
        guard let codec, let packet, let format else { return }
        var status = avcodec_send_frame(codec, frame)
        guard status >= 0 else { throw .writeFailed(path: path, reason: ffmpegErrorText(status)) }
        while true {
            status = avcodec_receive_packet(codec, packet)
            if status == hv_averror_eagain() || status == hv_averror_eof() { return }
            guard status >= 0 else { throw .writeFailed(path: path, reason: ffmpegErrorText(status)) }
            av_packet_rescale_ts(packet, codec.pointee.time_base, stream.pointee.time_base)
            packet.pointee.stream_index = stream.pointee.index
            status = av_interleaved_write_frame(format, packet)  // takes the packet's reference
            guard status >= 0 else { throw .writeFailed(path: path, reason: ffmpegErrorText(status)) }
        }
    }

    private static func cleanUp(format: UnsafeMutablePointer<AVFormatContext>?, codec: UnsafeMutablePointer<AVCodecContext>?,
                                frame: UnsafeMutablePointer<AVFrame>?, packet: UnsafeMutablePointer<AVPacket>?) {
        var codec = codec, frame = frame, packet = packet
        if let format {
            if format.pointee.pb != nil { avio_closep(&format.pointee.pb) }
            avformat_free_context(format)
        }
        avcodec_free_context(&codec)
        av_frame_free(&frame)
        av_packet_free(&packet)
    }

    deinit {
        sws_freeContext(scaler)
        let open = format?.pointee.pb != nil
        Self.cleanUp(format: format, codec: codec, frame: frame, packet: packet)
        if !finished, let partial { PartialOutputs.discard(partial) } else if !finished && open { unlink(temporaryPath) }
    }
}
