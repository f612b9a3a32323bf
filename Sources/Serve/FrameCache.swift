import Foundation
import Pipeline
import Stream

/// Encoded frames of recent videos, so further questions about a video skip decoding and
/// encoding it. Keyed by the file's identity (device, inode, size, modification time) and
/// everything that shaped the encoding (decode options, scored layers); bounded to `capacity`
/// videos, least recently used out. Pixels are dropped: pruning and answering read only the
/// encoder's output and each frame's time.
final class FrameCache: @unchecked Sendable {  // the lock guards both fields
    private let lock = NSLock()
    private var entries: [String: [FrameAnalysis.Step]] = [:]
    private var order: [String] = []
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: String) -> [FrameAnalysis.Step]? {
        lock.withLock {
            guard let steps = entries[key] else { return nil }
            order.removeAll { $0 == key }
            order.append(key)
            return steps
        }
    }

    func put(_ key: String, _ steps: [FrameAnalysis.Step]) {
        guard capacity > 0 else { return }
        let light = steps.map { step -> FrameAnalysis.Step in
            var step = step
            step.frames = step.frames.map {
                VideoFrame(index: $0.index, sourceFrameNumber: $0.sourceFrameNumber, time: $0.time, width: $0.width,
                           height: $0.height, rgb: [])
            }
            return step
        }
        lock.withLock {
            if entries[key] == nil, entries.count >= capacity, let oldest = order.first {
                entries[oldest] = nil
                order.removeFirst()
            }
            entries[key] = light
            order.removeAll { $0 == key }
            order.append(key)
        }
    }

    var count: Int { lock.withLock { entries.count } }
}
