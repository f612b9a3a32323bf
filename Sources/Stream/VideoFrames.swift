// VideoFrames — the frames of a file (or stdin, or a non-live URL), pulled.
//
// Buffering: none beyond FFmpeg's own decoder delay. Nothing is demuxed, decoded or scaled
//   until `next()` is called; each call decodes just far enough to produce one sampled frame.
// Back-pressure: natural. A slow consumer slows decoding; memory stays flat however slow it
//   is, and no frame is ever dropped.
// Cancellation: `next()` returns nil once its task is cancelled (checked between frames), and
//   the iterator frees every FFmpeg object at once. Dropping the iterator frees them too.
// Errors: the first `next()` throws what opening the input throws (`StreamError`); a fatal
//   error mid-stream is thrown after the frames decoded before it; recoverable decode errors
//   are skipped and counted in `counters.recoverableErrors`.

/// The sampled frames of a pull-based input, in presentation order.
public struct VideoFrames: AsyncSequence, Sendable {
    public typealias Element = VideoFrame

    public let input: String
    public let options: DecodeOptions
    /// Shared by every iterator of this sequence.
    public let counters: StreamCounters

    /// `input`: a file path, `-` for stdin, or a URL FFmpeg can read.
    public init(input: String, options: DecodeOptions = DecodeOptions()) {
        self.input = input
        self.options = options
        self.counters = StreamCounters()
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(input: input, options: options, counters: counters)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let input: String
        let options: DecodeOptions
        let counters: StreamCounters
        private var producer: FrameProducer?
        private var opened = false

        init(input: String, options: DecodeOptions, counters: StreamCounters) {
            self.input = input
            self.options = options
            self.counters = counters
        }

        public mutating func next() async throws -> VideoFrame? {
            if Task.isCancelled {
                producer = nil
                return nil
            }
            if !opened {
                opened = true
                producer = try FrameProducer(input: input, options: options, counters: counters)
            }
            guard let producer else { return nil }
            do {
                if let frame = try producer.next() { return frame }
                self.producer = nil
                return nil
            } catch {
                self.producer = nil
                throw error
            }
        }
    }
}

extension VideoSourceInfo {
    /// The facts of `input`'s best video stream, reading only the header (and the first
    /// packets where the container needs them).
    public static func probe(_ input: String) throws(StreamError) -> VideoSourceInfo {
        try Decoder(input: input, decode: false).info
    }
}
