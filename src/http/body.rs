//! Reading a request body with a size limit, counted as it streams.

use std::pin::pin;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use poem::http::HeaderMap;
use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Response};

use crate::error_code::ErrorCode;
use crate::ingest::Refused;

/// The most set aside for a body from its Content-Length before it arrives.
const BODY_RESERVE_LIMIT: usize = 256 * 1024;

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge { limit: usize },
    Unreadable,
}

impl BodyError {
    pub fn code(self) -> ErrorCode {
        match self {
            BodyError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            BodyError::Unreadable => ErrorCode::UnreadableBody,
        }
    }

    pub fn message(self) -> String {
        match self {
            BodyError::TooLarge { limit } => format!(
                "the body is over the {limit} byte limit (--body-limit / PUSH_TRACKER_BODY_LIMIT)"
            ),
            BodyError::Unreadable => self.code().default_message().to_owned(),
        }
    }

    /// The JSON error answer.
    pub fn response(self) -> Response {
        self.code().response(self.message())
    }
}

impl From<BodyError> for Refused {
    fn from(e: BodyError) -> Refused {
        Refused::Body {
            code: e.code(),
            message: e.message(),
        }
    }
}

/// Reads a body of at most `limit` bytes. Unlike poem's `into_bytes_limit`, which copies
/// through a 4 KiB buffer into one that keeps growing, it keeps a body that arrives in one piece
/// as it is and sizes the buffer from Content-Length otherwise, and it refuses a body declared
/// too large before reading any of it.
pub async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared: Option<usize> = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let too_large = BodyError::TooLarge { limit };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    let mut chunks = pin!(body.into_bytes_stream());
    let (mut first, mut joined, mut read) = (None::<Bytes>, BytesMut::new(), 0usize);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        read += chunk.len();
        if read > limit {
            return Err(too_large);
        }
        if let Some(first) = first.take() {
            // Sized from Content-Length, within reason: a header alone must not make the
            // server set aside much memory.
            joined.reserve(declared.unwrap_or(0).min(BODY_RESERVE_LIMIT));
            joined.extend_from_slice(&first);
        }
        if joined.is_empty() {
            first = Some(chunk);
        } else {
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}
