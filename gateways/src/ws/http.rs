//! HTTP/1.1 request parsing (on `httparse`) and response encoding.
//!
//! Pure functions over byte buffers, owned by no thread: the event loop
//! feeds each connection's input buffer to [`parse_request`] until it
//! answers [`Parsed::Complete`] or [`Parsed::Error`]. Every malformed input
//! becomes a precise 4xx [`HttpError`], never a panic (fuzzed by
//! `fuzz/fuzz_targets/http_request.rs`).

use serde_json::Value;

/// Limits the parser enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Request line and headers, bytes.
    pub max_header_bytes: usize,
    /// Body, bytes.
    pub max_body_bytes: usize,
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter named `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a WebSocket upgrade request.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }
}

/// A request the server refuses, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// 4xx (or 5xx) status.
    pub status: u16,
    /// Machine-readable code (`"malformed_request"`, `"body_too_large"`, ...).
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl HttpError {
    /// An error with a status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// What [`parse_request`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A request, and how many bytes of the buffer it used.
    Complete(Request, usize),
    /// The input can never become a valid request; answer and close.
    Error(HttpError),
}

const MAX_HEADERS: usize = 64;

/// Parses one request from the start of `buf`.
pub fn parse_request(buf: &[u8], limits: &ParseLimits) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Parsed::Error(HttpError::new(
                    431,
                    "headers_too_large",
                    format!("request head exceeds {} bytes", limits.max_header_bytes),
                ));
            }
            return Parsed::Incomplete;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Error(HttpError::new(
                431,
                "too_many_headers",
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => {
            return Parsed::Error(HttpError::new(
                400,
                "malformed_request",
                format!("malformed HTTP request: {e}"),
            ))
        }
    };
    if head_len > limits.max_header_bytes {
        return Parsed::Error(HttpError::new(
            431,
            "headers_too_large",
            format!("request head exceeds {} bytes", limits.max_header_bytes),
        ));
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    let version = req.version.unwrap_or(1);
    let mut out_headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Parsed::Error(HttpError::new(
                400,
                "malformed_request",
                format!("header {} is not valid UTF-8", h.name),
            ));
        };
        out_headers.push((h.name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let find = |name: &'static str| header_values(&out_headers, name);
    if find("transfer-encoding").next().is_some() {
        return Parsed::Error(HttpError::new(
            411,
            "length_required",
            "Transfer-Encoding bodies are not supported; send Content-Length",
        ));
    }
    let mut content_length: Option<usize> = None;
    for v in find("content-length") {
        let Ok(n) = v.parse::<usize>() else {
            return Parsed::Error(HttpError::new(
                400,
                "malformed_request",
                format!("invalid Content-Length {v:?}"),
            ));
        };
        if content_length.is_some_and(|c| c != n) {
            return Parsed::Error(HttpError::new(
                400,
                "malformed_request",
                "conflicting Content-Length headers",
            ));
        }
        content_length = Some(n);
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return Parsed::Error(HttpError::new(
            413,
            "body_too_large",
            format!(
                "request body of {body_len} bytes exceeds the limit of {} bytes",
                limits.max_body_bytes
            ),
        ));
    }
    if buf.len() - head_len < body_len {
        return Parsed::Incomplete;
    }
    let connection = find("connection").next().unwrap_or("");
    let keep_alive = if version == 0 {
        connection.eq_ignore_ascii_case("keep-alive")
    } else {
        !connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
    };
    if !target.starts_with('/') {
        return Parsed::Error(HttpError::new(
            400,
            "malformed_request",
            format!("request target {target:?} must be an absolute path"),
        ));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let Some(path) = percent_decode(raw_path) else {
        return Parsed::Error(HttpError::new(
            400,
            "malformed_request",
            "invalid percent-encoding in the path",
        ));
    };
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (percent_decode(k), percent_decode(v)) {
            (Some(k), Some(v)) => query.push((k, v)),
            _ => {
                return Parsed::Error(HttpError::new(
                    400,
                    "malformed_request",
                    "invalid percent-encoding in the query",
                ))
            }
        }
    }
    let body = buf[head_len..head_len + body_len].to_vec();
    Parsed::Complete(
        Request {
            method,
            path,
            query,
            headers: out_headers,
            body,
            keep_alive,
        },
        head_len + body_len,
    )
}

fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes `%XX` escapes (and `+` as space); `None` for a bad escape or
/// invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The reason phrase of a status.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Encodes a response with a body.
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\nCache-Control: no-store\r\n",
        reason_phrase(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    for (name, value) in extra_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value, keep_alive: bool) -> Vec<u8> {
    response(
        status,
        "application/json",
        body.to_string().as_bytes(),
        keep_alive,
        &[],
    )
}

/// The JSON error body every error response carries:
/// `{"error":{"code":..,"message":..}}`.
pub fn error_body(code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

/// A JSON error response.
pub fn error_response(status: u16, code: &str, message: &str, keep_alive: bool) -> Vec<u8> {
    json_response(status, &error_body(code, message), keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_header_bytes: 1024,
        max_body_bytes: 16,
    };

    #[test]
    fn parses_a_request_with_query_and_body() {
        let raw =
            b"POST /a/b%20c?x=1&y=two+words HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}rest";
        let Parsed::Complete(req, used) = parse_request(raw, &LIMITS) else {
            panic!("not complete")
        };
        assert_eq!(used, raw.len() - 4);
        assert_eq!(req.path, "/a/b c");
        assert_eq!(req.query_param("y"), Some("two words"));
        assert_eq!(req.body, b"{}");
        assert!(req.keep_alive);
    }

    #[test]
    fn waits_for_the_rest_of_the_head_and_body() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHo", &LIMITS),
            Parsed::Incomplete
        );
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", &LIMITS),
            Parsed::Incomplete
        );
    }

    #[test]
    fn refuses_bad_input_with_precise_statuses() {
        let status = |raw: &[u8]| match parse_request(raw, &LIMITS) {
            Parsed::Error(e) => e.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: 99\r\n\r\n"), 413);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status(b"G\x01T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET nopath HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(&[b'a'; 2000]), 431);
        assert_eq!(status(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(status(&long), 431);
    }
}
