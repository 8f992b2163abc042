//! An OTLP/HTTP request body to the OTLP messages, and the messages of the
//! answer, in the request's own encoding (OTLP specification, "OTLP/HTTP").
//!
//! Pure: the bytes in, the message or a [`Refusal`] out.
//!
//! **Invariant:** at most [`MAX_BODY_BYTES`] are read, before and after
//! gzip: a small compressed body that inflates past the bound (a gzip bomb)
//! is refused with 413 once the bound is passed, without inflating the rest.

use std::io::Read;

use prost::Message;
use serde::de::DeserializeOwned;

/// The largest body accepted, compressed or inflated: 4 MiB. Claude Code's
/// exports are a few kilobytes; the OpenTelemetry SDKs batch at most 512
/// log records.
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;

/// How the body is encoded (`Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From the `Content-Type` header; parameters (`; charset=utf-8`) are ignored.
    pub(crate) fn from_content_type(value: &str) -> Option<Encoding> {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// How the body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}

impl Compression {
    pub(crate) fn from_header(value: Option<&str>) -> Option<Compression> {
        match value.map(str::trim) {
            None | Some("") => Some(Compression::None),
            Some(value) if value.eq_ignore_ascii_case("identity") => Some(Compression::None),
            Some(value) if value.eq_ignore_ascii_case("gzip") => Some(Compression::Gzip),
            Some(_) => None,
        }
    }
}

/// Why a request is refused: its HTTP status and the reason sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    fn too_large() -> Refusal {
        Refusal::new(
            413,
            format!("the body is over {MAX_BODY_BYTES} bytes (after decompression)"),
        )
    }
}

/// Reads at most [`MAX_BODY_BYTES`] from `reader`; more is a 413.
pub(crate) fn read_bounded(reader: impl Read) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    reader
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|error| Refusal::new(400, format!("cannot read the body: {error}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::too_large());
    }
    Ok(body)
}

/// The body without its compression, still bounded.
pub(crate) fn inflate(body: Vec<u8>, compression: Compression) -> Result<Vec<u8>, Refusal> {
    match compression {
        Compression::None => Ok(body),
        Compression::Gzip => {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(body.as_slice())
                .take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|error| {
                    Refusal::new(400, format!("the body is not valid gzip: {error}"))
                })?;
            if inflated.len() > MAX_BODY_BYTES {
                return Err(Refusal::too_large());
            }
            Ok(inflated)
        }
    }
}

/// One export request message from its (inflated) body.
pub(crate) fn message<M: Message + Default + DeserializeOwned>(
    body: &[u8],
    encoding: Encoding,
) -> Result<M, Refusal> {
    match encoding {
        Encoding::Protobuf => M::decode(body).map_err(|error| {
            Refusal::new(
                400,
                format!("the body is not a valid OTLP protobuf message: {error}"),
            )
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|error| {
            Refusal::new(400, format!("the body is not valid OTLP JSON: {error}"))
        }),
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The error answer's body: a `Status` with the reason, in `encoding`. Its
/// `code` is gRPC's for the HTTP status (OTLP leaves it to the server).
pub(crate) fn status_body(refusal: &Refusal, encoding: Encoding) -> Vec<u8> {
    let code = match refusal.status {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 2,               // UNKNOWN
    };
    match encoding {
        Encoding::Protobuf => Status {
            code,
            message: refusal.reason.clone(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": refusal.reason})
            .to_string()
            .into_bytes(),
    }
}

/// Which signal an export carries (its path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Logs,
    Metrics,
}

/// A partial success's count field: `rejectedLogRecords` or `rejectedDataPoints`.
#[derive(Clone, PartialEq, Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// `ExportLogsServiceResponse` / `ExportMetricsServiceResponse` (the same
/// shape: field 1, `partial_success`).
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

/// The success answer's body: `partial_success` is set only when records
/// were refused (an empty one means the same as none).
pub(crate) fn success_body(
    signal: Signal,
    encoding: Encoding,
    rejected: i64,
    reason: Option<&str>,
) -> Vec<u8> {
    let partial = (rejected > 0).then(|| PartialSuccess {
        rejected,
        error_message: reason.unwrap_or_default().to_owned(),
    });
    match encoding {
        Encoding::Protobuf => ExportResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let field = match signal {
                Signal::Logs => "rejectedLogRecords",
                Signal::Metrics => "rejectedDataPoints",
            };
            let body = match partial {
                // int64 is a string in OTLP JSON.
                Some(partial) => serde_json::json!({"partialSuccess": {
                    field: partial.rejected.to_string(),
                    "errorMessage": partial.error_message,
                }}),
                None => serde_json::json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}
