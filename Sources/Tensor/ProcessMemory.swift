// This process's resident memory, as Linux reports it in /proc/self (nil elsewhere or when the
// files cannot be read): the figures the quantized-model memory bound is stated in.
import CKernels
import Foundation

public enum ProcessMemory {
    /// VmRSS: bytes resident now (anonymous memory, and the pages of mapped files — a GGUF's weights
    /// read in place, the executable and its shared libraries — that this process has touched).
    public static var resident: Int? { field("VmRSS:") }

    /// RssAnon: resident bytes not backed by a file (heap, KV cache, copied weights, thread stacks).
    public static var anonymousResident: Int? { field("RssAnon:") }

    /// Hands the allocator's freed heap back to the system, so `resident` counts memory in use (a
    /// benchmark measuring one model after another; a freed model's heap may otherwise stay).
    public static func returnFreedHeap() { decode_heap_trim() }

    /// VmHWM: the most bytes ever resident at once.
    public static var peakResident: Int? { field("VmHWM:") }

    /// Resident bytes of the executable and the shared libraries (every file this process maps with
    /// execute permission, all of its mappings): pages every run of the program holds whatever the
    /// model, shared with other processes through the page cache. The rest of `resident` is the
    /// model's (its mapped weights, copies, KV cache) and the heap's.
    public static var codeResident: Int? {
        // Read to the end: /proc files report no size, and smaps runs to hundreds of KB.
        guard let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile(),
              let text = String(data: data, encoding: .utf8) else { return nil }
        var codeFiles = Set<Substring>(), residentByFile: [Substring: Int] = [:]
        var path: Substring? = nil
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.contains("-"), fields.count >= 2, first.first?.isHexDigit == true {
                // A mapping's header: range, permissions, offset, device, inode, path.
                path = fields.count >= 6 && fields[5].hasPrefix("/") ? fields[5] : nil
                if let path, fields[1].contains("x") { codeFiles.insert(path) }
            } else if first == "Rss:", let path, fields.count >= 2, let kb = Int(fields[1]) {
                residentByFile[path, default: 0] += kb * 1024
            }
        }
        return codeFiles.reduce(0) { $0 + (residentByFile[$1] ?? 0) }
    }

    private static func field(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }
}
