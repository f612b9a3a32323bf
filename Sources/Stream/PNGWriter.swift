import CFFmpeg
import Foundation

/// Writes RGB24 pictures as PNG through FFmpeg's PNG encoder (frames dumped by the CLI,
/// and later the pruning overlays).
public enum PNGWriter {
    /// PNG bytes of a packed RGB24 picture.
    public static func encode(rgb: [UInt8], width: Int, height: Int, name: String = "image") throws(StreamError) -> [UInt8] {
        _ = ffmpegReady
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw .writeFailed(path: name, reason: "\(rgb.count) bytes do not make a \(width)x\(height) RGB24 picture")
        }
        guard let codec = avcodec_find_encoder(AV_CODEC_ID_PNG) else {
            throw .writeFailed(path: name, reason: "this FFmpeg has no PNG encoder")
        }
        var context = avcodec_alloc_context3(codec)
        var frame = av_frame_alloc()
        var packet = av_packet_alloc()
        defer {
            av_packet_free(&packet)
            av_frame_free(&frame)
            avcodec_free_context(&context)
        }
        guard let context, let frame, let packet else { throw .writeFailed(path: name, reason: "out of memory") }
        context.pointee.width = Int32(width)
        context.pointee.height = Int32(height)
        context.pointee.pix_fmt = AV_PIX_FMT_RGB24
        context.pointee.time_base = AVRational(num: 1, den: 25)
        var status = avcodec_open2(context, codec, nil)
        guard status >= 0 else { throw .writeFailed(path: name, reason: ffmpegErrorText(status)) }
        var pixels = rgb
        var bytes: [UInt8] = []
        pixels.withUnsafeMutableBufferPointer { buffer in
            frame.pointee.width = Int32(width)
            frame.pointee.height = Int32(height)
            frame.pointee.format = AV_PIX_FMT_RGB24.rawValue
            frame.pointee.data.0 = buffer.baseAddress
            frame.pointee.linesize.0 = Int32(width * 3)
            status = avcodec_send_frame(context, frame)
            guard status >= 0 else { return }
            status = avcodec_send_frame(context, nil)
            while avcodec_receive_packet(context, packet) == 0 {
                if let data = packet.pointee.data {
                    bytes.append(contentsOf: UnsafeBufferPointer(start: data, count: Int(packet.pointee.size)))
                }
                av_packet_unref(packet)
            }
        }
        guard status >= 0, !bytes.isEmpty else {
            throw .writeFailed(path: name, reason: status < 0 ? ffmpegErrorText(status) : "the encoder produced nothing")
        }
        return bytes
    }

    /// Writes `frame` as a PNG file at `path`.
    public static func write(_ frame: VideoFrame, to path: String) throws(StreamError) {
        let bytes = try encode(rgb: frame.rgb, width: frame.width, height: frame.height, name: path)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .writeFailed(path: path, reason: error.localizedDescription)
        }
    }
}
