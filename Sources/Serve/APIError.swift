import Foundation
import Pipeline

/// An error a client sees: an HTTP status and OpenAI's error object, naming the request field
/// (`param`) at fault where there is one.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var param: String?
    public var type: String
    /// Seconds a client should wait before retrying (429 only).
    public var retryAfter: Int?

    public init(status: Int, _ message: String, param: String? = nil, type: String = "invalid_request_error",
                retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.param = param
        self.type = type
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status): \(message)" }

    static func badField(_ field: String, _ cause: String) -> APIError {
        APIError(status: 400, "\(field): \(cause)", param: field)
    }

    static func forbidden(_ field: String, _ cause: String) -> APIError {
        APIError(status: 403, "\(field): \(cause)", param: field, type: "permission_error")
    }

    /// `{"error": {"message", "type", "param", "code"}}`, as OpenAI's API answers.
    public var json: String {
        JSONLine.object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map { .string($0) } ?? .null), ("code", .int(status)),
        ]))])
    }
}
