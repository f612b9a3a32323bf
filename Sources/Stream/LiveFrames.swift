import CFFmpeg
import Foundation

// LiveFrames — the frames of a live source (udp, rtp, rtsp, srt, tcp, …), newest wins.
//
// Buffering: a reader thread of its own reads, decodes, samples and scales continuously, so
//   the socket never overflows, and keeps at most `capacity` sampled frames.
// Back-pressure: none reaches the source (it cannot wait). When the ring is full the oldest
//   waiting frame is dropped for the new one; every drop is counted in
//   `counters.droppedFrames`. A consumer that keeps up sees every sampled frame.
// Cancellation: cancelling the consuming task, calling `stop()`, or dropping the iterator
//   raises FFmpeg's interrupt flag, so a blocked network read returns at once; the reader
//   thread then frees every FFmpeg object and ends. `next()` returns nil.
// One consumer: the reader starts on the first `makeAsyncIterator()`; later iterators share
//   the same ring.

/// Sampled frames of a live input, newest first to survive.
public final class LiveFrames: AsyncSequence, Sendable {
    public typealias Element = VideoFrame

    public let input: String
    public let options: DecodeOptions
    /// Most sampled frames ever waiting for the consumer.
    public let capacity: Int
    public let counters: StreamCounters
    private let ring: LiveRing

    public init(input: String, options: DecodeOptions = DecodeOptions(), capacity: Int = 4) {
        self.input = input
        self.options = options
        self.capacity = Swift.max(1, capacity)
        self.counters = StreamCounters()
        self.ring = LiveRing(capacity: Swift.max(1, capacity), counters: counters)
    }

    public func makeAsyncIterator() -> AsyncIterator {
        ring.startOnce(input: input, options: options)
        return AsyncIterator(ring: ring, stopper: Stopper(ring: ring))
    }

    /// Stops reading now; the sequence then ends.
    public func stop() { ring.stop() }

    /// Bytes the demuxer has read from the connection so far: it grows while packets arrive, even
    /// before any of them decodes to a frame (a stream joined between keyframes).
    public var bytesRead: Int64 { hv_interrupt_bytes(ring.interrupt) }

    /// True while the reader thread still holds FFmpeg objects (its socket among them).
    public var isReading: Bool { ring.isReading }

    /// Stops reading and waits until the reader has freed its FFmpeg objects: a new source may
    /// then bind the port this one listened on.
    public func close() async {
        stop()
        while ring.isReading { try? await Task.sleep(nanoseconds: 10_000_000) }
    }

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let ring: LiveRing
        let stopper: Stopper

        public mutating func next() async throws -> VideoFrame? {
            let ring = self.ring
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    ring.take(continuation)
                }
            } onCancel: {
                ring.stop()
            }
        }
    }

    /// Stops the reader when the last copy of an iterator goes away.
    final class Stopper: Sendable {
        let ring: LiveRing
        init(ring: LiveRing) { self.ring = ring }
        deinit { ring.stop() }
    }
}

/// The newest-wins ring between the reader thread and the consumer.
final class LiveRing: @unchecked Sendable {
    private let lock = NSLock()
    private let capacity: Int
    private let counters: StreamCounters
    private var frames: [VideoFrame] = []
    private var waiter: CheckedContinuation<VideoFrame?, any Error>?
    private var ending: StreamError?
    private var ended = false
    private var started = false
    private var reading = false
    /// Polled by FFmpeg during blocking reads; lives as long as the ring.
    let interrupt: UnsafeMutablePointer<hv_interrupt>

    init(capacity: Int, counters: StreamCounters) {
        self.capacity = capacity
        self.counters = counters
        interrupt = .allocate(capacity: 1)
        interrupt.initialize(to: hv_interrupt(stop: 0, ctx: nil, bytes: 0))
    }

    deinit { interrupt.deallocate() }

    var isReading: Bool { lock.withLock { reading } }

    func startOnce(input: String, options: DecodeOptions) {
        let start: Bool = lock.withLock {
            guard !started, !ended else { return false }
            started = true
            reading = true
            return true
        }
        guard start else { return }
        // A thread, not a task: av_read_frame blocks, and must not hold a cooperative thread.
        let thread = Thread { [self] in
            finish(read(input: input, options: options))
        }
        thread.name = "hiprune-live-reader"
        thread.start()
    }

    private func push(_ frame: VideoFrame) {
        let waiting: CheckedContinuation<VideoFrame?, any Error>? = lock.withLock {
            if ended { return nil }
            if let waiter {
                self.waiter = nil
                return waiter
            }
            frames.append(frame)
            var dropped = false
            if frames.count > capacity {
                frames.removeFirst()
                dropped = true
            }
            counters.recordBuffer(count: frames.count, droppedOne: dropped)
            return nil
        }
        waiting?.resume(returning: frame)
    }

    /// Reads until the input ends, fails or is interrupted. The producer (and with it every FFmpeg
    /// object and the socket) is freed when this returns, before `finish` says the reader is done:
    /// a reconnect may bind the same port as soon as `isReading` is false.
    private func read(input: String, options: DecodeOptions) -> StreamError? {
        do throws(StreamError) {
            let producer = try FrameProducer(input: input, options: options, counters: counters, interrupt: interrupt)
            while let frame = try producer.next() {
                push(frame)
            }
            return nil
        } catch {
            return error
        }
    }

    /// The reader is done (`read` freed the FFmpeg objects as it returned).
    private func finish(_ error: StreamError?) {
        let waiting: CheckedContinuation<VideoFrame?, any Error>? = lock.withLock {
            reading = false
            if !ended { ending = error }
            ended = true
            let waiting = frames.isEmpty ? waiter : nil
            if waiting != nil { waiter = nil }
            return waiting
        }
        if let error { waiting?.resume(throwing: error) } else { waiting?.resume(returning: nil) }
    }

    func take(_ continuation: CheckedContinuation<VideoFrame?, any Error>) {
        enum Answer { case frame(VideoFrame), end, failure(StreamError), wait }
        let answer: Answer = lock.withLock {
            if !frames.isEmpty {
                let frame = frames.removeFirst()
                counters.recordBuffer(count: frames.count, droppedOne: false)
                return .frame(frame)
            }
            if ended {
                if let ending {
                    self.ending = nil
                    return .failure(ending)
                }
                return .end
            }
            waiter = continuation
            return .wait
        }
        switch answer {
        case .frame(let frame): continuation.resume(returning: frame)
        case .end: continuation.resume(returning: nil)
        case .failure(let error): continuation.resume(throwing: error)
        case .wait: break
        }
    }

    func stop() {
        hv_interrupt_set(interrupt)
        let waiting: CheckedContinuation<VideoFrame?, any Error>? = lock.withLock {
            ended = true
            frames.removeAll()
            counters.recordBuffer(count: 0, droppedOne: false)
            let waiting = waiter
            waiter = nil
            return waiting
        }
        waiting?.resume(returning: nil)
    }
}
