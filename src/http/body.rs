//! Reading a request body with a size limit, counted as it streams, within a deadline, and for
//! webhooks within a budget of body bytes held at once (over all clients and per client).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    TooLarge {
        limit: usize,
    },
    Unreadable,
    /// Not all of it arrived within the body deadline.
    TimedOut,
    /// The webhook body budget (all clients', or this client's) is full.
    Busy,
}

impl BodyError {
    pub fn code(self) -> ErrorCode {
        match self {
            BodyError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            BodyError::Unreadable => ErrorCode::UnreadableBody,
            BodyError::TimedOut => ErrorCode::BodyTimeout,
            BodyError::Busy => ErrorCode::ServerBusy,
        }
    }

    pub fn message(self) -> String {
        match self {
            BodyError::TooLarge { limit } => format!(
                "the body is over the {limit} byte limit (--body-limit / PUSH_TRACKER_BODY_LIMIT)"
            ),
            BodyError::Unreadable | BodyError::TimedOut | BodyError::Busy => {
                self.code().default_message().to_owned()
            }
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

/// Webhook body bytes held at once: bodies are buffered whole before their signature can be
/// checked, so without a budget anyone who knows a webhook URL could make the server hold
/// connections times `--body-limit`. A body that does not fit is refused at once (503) rather
/// than waited for: waiting would hold its connection.
pub struct WebhookBudget {
    total: usize,
    per_address: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl WebhookBudget {
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(WebhookBudget {
            total,
            per_address,
            held: Mutex::default(),
        })
    }

    /// An empty reservation for one body from `client` (counted in its
    /// [bucket](crate::client_ip::bucket)), grown as the body arrives.
    pub fn reservation(self: &Arc<Self>, client: IpAddr) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            client: crate::client_ip::bucket(client),
            bytes: 0,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Bytes of the budget set aside for one body; given back when dropped.
pub struct Reservation {
    budget: Arc<WebhookBudget>,
    client: IpAddr,
    bytes: usize,
}

impl Reservation {
    /// Holds at least `bytes` in all, or refuses when the budget cannot spare them.
    fn hold(&mut self, bytes: usize) -> Result<(), BodyError> {
        let more = bytes.saturating_sub(self.bytes);
        if more == 0 {
            return Ok(());
        }
        let budget = &self.budget;
        let mut held = budget.held();
        let from_client = held.per_address.get(&self.client).copied().unwrap_or(0);
        if held.total + more > budget.total || from_client + more > budget.per_address {
            return Err(BodyError::Busy);
        }
        held.total += more;
        *held.per_address.entry(self.client).or_default() += more;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut held = self.budget.held();
        held.total -= self.bytes;
        if let Some(n) = held.per_address.get_mut(&self.client) {
            *n -= self.bytes;
            if *n == 0 {
                held.per_address.remove(&self.client);
            }
        }
    }
}

/// Reads a body of at most `limit` bytes within `deadline`, holding what it reads (or the
/// Content-Length it declares) in `reservation` when one is given. Unlike poem's
/// `into_bytes_limit`, which copies through a 4 KiB buffer into one that keeps growing, it keeps
/// a body that arrives in one piece as it is and sizes the buffer from Content-Length otherwise,
/// and it refuses a body declared too large (or over the budget) before reading any of it.
pub async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
    reservation: Option<&mut Reservation>,
) -> Result<Bytes, BodyError> {
    tokio::time::timeout(deadline, read(body, headers, limit, reservation))
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    mut reservation: Option<&mut Reservation>,
) -> Result<Bytes, BodyError> {
    let declared: Option<usize> = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let too_large = BodyError::TooLarge { limit };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    // Sized from Content-Length, within reason: a header alone must not make the server set
    // aside much memory, unless the budget holds that much for this body anyway.
    let mut reserve = declared.unwrap_or(0).min(BODY_RESERVE_LIMIT);
    if let (Some(held), Some(declared)) = (reservation.as_deref_mut(), declared) {
        held.hold(declared)?;
        reserve = declared;
    }
    let mut chunks = pin!(body.into_bytes_stream());
    let (mut first, mut joined, mut read) = (None::<Bytes>, BytesMut::new(), 0usize);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        read += chunk.len();
        if read > limit {
            return Err(too_large);
        }
        if let Some(held) = reservation.as_deref_mut() {
            held.hold(read)?;
        }
        if let Some(first) = first.take() {
            joined.reserve(reserve);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_bodies_share_one_per_address_budget_per_64() {
        let budget = WebhookBudget::new(1000, 100);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut first = budget.reservation(ip("2001:db8:1:2::1"));
        first.hold(60).unwrap();
        let mut same_64 = budget.reservation(ip("2001:db8:1:2::ffff"));
        assert!(matches!(same_64.hold(60), Err(BodyError::Busy)));
        let mut next_64 = budget.reservation(ip("2001:db8:1:3::1"));
        next_64.hold(60).unwrap();
        drop(first);
        same_64.hold(60).unwrap();
    }
}
