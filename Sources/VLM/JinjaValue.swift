// The values a chat template computes with, and the Python semantics Jinja gives them (jinja2 runs
// on Python objects, so truthiness, equality, str(), repr() and json.dumps are Python's).
// Dictionaries keep their insertion order, as Python's do, so `tojson` and `items()` print keys in
// the order the conversation gave them.
import Foundation

public enum JinjaValue: Sendable, Equatable {
    /// A name or key that does not exist (jinja2's `Undefined`): renders as "", is falsy, iterates as empty.
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    case object(JinjaObject)
    /// `namespace(...)`: the one mutable object templates have (`{% set ns.x = … %}`).
    case namespace(JinjaObject)
    /// A global function by name (raise_exception, namespace, range, dict, strftime_now).
    case function(String)

    /// Python's truth value.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s): return !s.isEmpty
        case let .array(a): return !a.isEmpty
        case let .object(o): return !o.keys.isEmpty
        case .namespace, .function: return true
        }
    }

    /// The name Python gives the value's type (for error messages).
    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        case .namespace: return "namespace"
        case .function: return "function"
        }
    }

    /// Python's `str()`, which `{{ … }}`, `~` and the `string` filter use.
    var text: String {
        switch self {
        case .undefined: return ""
        case let .string(s): return s
        default: return repr
        }
    }

    /// Python's `repr()`.
    var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return Self.pythonFloat(d)
        case let .string(s): return Self.pythonQuoted(s)
        case let .array(a): return "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case let .object(o):
            return "{" + o.keys.map { Self.pythonQuoted($0) + ": " + (o.values[$0] ?? .none).repr }.joined(separator: ", ") + "}"
        case let .namespace(o):
            return "<Namespace " + o.keys.map { "\($0)=" + (o.values[$0] ?? .none).repr }.joined(separator: ", ") + ">"
        case let .function(name): return "<function \(name)>"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        // Swift's description is the shortest round-trip form, as Python's repr is; the exponent
        // is written with two digits at least in Python ("1e+16", "1e-05").
        var s = "\(d)"
        if let e = s.firstIndex(where: { $0 == "e" }) {
            var mantissa = String(s[..<e]), exponent = String(s[s.index(after: e)...])
            if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
            let sign = exponent.hasPrefix("-") ? "-" : "+"
            exponent = exponent.trimmingCharacters(in: CharacterSet(charactersIn: "+-"))
            if exponent.count < 2 { exponent = "0" + exponent }
            s = mantissa + "e" + sign + exponent
        }
        return s
    }

    static func pythonQuoted(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote { out += "\\" + String(quote) }
                else if scalar.value < 0x20 || scalar.value == 0x7f { out += String(format: "\\x%02x", scalar.value) }
                else { out.unicodeScalars.append(scalar) }
            }
        }
        out.append(quote)
        return out
    }

    /// Python `==` (1 == 1.0 == True; undefined equals only undefined).
    static func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(x), .string(y)): return Array(x.unicodeScalars) == Array(y.unicodeScalars)
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case let (.object(x), .object(y)), let (.namespace(x), .namespace(y)):
            return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { equal(x.values[$0] ?? .none, y.values[$0] ?? .none) }
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// The value as a number when it is one (bool counts, as in Python).
    var number: Double? {
        switch self {
        case let .bool(b): return b ? 1 : 0
        case let .int(i): return Double(i)
        case let .double(d): return d
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case let .bool(b): return b ? 1 : 0
        case let .int(i): return i
        default: return nil
        }
    }

    /// `json.dumps(self, ensure_ascii=False, indent=indent, sort_keys=sortKeys)` as transformers' `tojson` calls it.
    func json(indent: Int?, sortKeys: Bool, level: Int = 0) throws(JinjaFailure) -> String {
        let itemSeparator = indent == nil ? ", " : ","
        func newline(_ depth: Int) -> String {
            guard let indent else { return "" }
            return "\n" + String(repeating: " ", count: indent * depth)
        }
        switch self {
        case .undefined: throw JinjaFailure("tojson of an undefined value")
        case let .function(name): throw JinjaFailure("tojson of the function \(name)")
        case .none: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .double(d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
            return Self.pythonFloat(d)
        case let .string(s): return jsonStringLiteral(s)
        case let .array(a):
            if a.isEmpty { return "[]" }
            var parts: [String] = []
            for v in a { parts.append(try v.json(indent: indent, sortKeys: sortKeys, level: level + 1)) }
            return "[" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1)) + newline(level) + "]"
        case let .object(o), let .namespace(o):
            if o.keys.isEmpty { return "{}" }
            let keys = sortKeys ? o.keys.sorted { Array($0.unicodeScalars).lexicographicallyPrecedes(Array($1.unicodeScalars), by: { $0.value < $1.value }) } : o.keys
            var parts: [String] = []
            for k in keys {
                parts.append(jsonStringLiteral(k) + ": " + (try (o.values[k] ?? .none).json(indent: indent, sortKeys: sortKeys, level: level + 1)))
            }
            return "{" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1)) + newline(level) + "}"
        }
    }
}

/// An insertion-ordered string-keyed dictionary (Python's dict as templates use it).
public struct JinjaObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: JinjaValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public subscript(key: String) -> JinjaValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// A failure inside the engine before the template's file and line are attached.
struct JinjaFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A JSON string literal as Python's json.dumps(ensure_ascii=False) writes it: short escapes for the
/// quote, backslash, newline, return, tab, backspace and form feed, \u00XX for other control
/// characters, everything else as is. The one JSON string writer (chat templates' tojson, the
/// statistics report).
public func jsonStringLiteral(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
