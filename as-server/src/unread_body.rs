//! Middleware that closes a connection whose request body was not read to its end.
//!
//! actix-http keeps a connection open after the answer to drain a *chunked* request body that
//! the handler dropped unread, and no timer runs while it drains (actix-http 3.20,
//! `should_close_for_unread_payload`). So a client that sends a chunked body one byte at a time
//! (to any path, `GET /healthz` too, no token needed) held its connection for ever, even after
//! its 408 at the body deadline, and a few such clients filled the connection bound.
//!
//! actix-http closes the connection instead when the body is still *held* as the answer goes
//! out. This middleware makes that always so: it takes the request body, hands the handler a
//! stream that reads from it, and keeps the body itself inside the answer until the answer is
//! sent. Guarantee: after an answer to a request whose body was not read to its end (refused
//! early, too large, too slow, or not wanted), the connection is closed, never drained. A body
//! read to its end leaves the connection open for the next request, as before.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use futures_core::Stream;

/// The request body, shared by the handler's stream and the answer that holds it.
type SharedBody = Rc<RefCell<Payload>>;

/// See the module doc. A request without a body (no `Content-Length` or
/// `Transfer-Encoding`: most GETs) has nothing to drain and is passed on as it is.
pub async fn close_if_unread(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<HoldingBody>, actix_web::Error> {
    let headers = req.headers();
    let has_body = headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING);
    let body: Option<SharedBody> = has_body.then(|| Rc::new(RefCell::new(req.take_payload())));
    if let Some(body) = &body {
        req.set_payload(Payload::Stream {
            payload: Box::pin(ReadShared(Rc::clone(body))),
        });
    }
    let response = next.call(req).await?;
    Ok(response.map_body(|_, answer| HoldingBody {
        answer: answer.boxed(),
        _request_body: body,
    }))
}

/// The handler's view of the request body: reads the shared one.
struct ReadShared(SharedBody);

impl Stream for ReadShared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Only this stream polls the body, one poll at a time: the borrow cannot clash.
        match self.0.try_borrow_mut() {
            Ok(mut body) => Pin::new(&mut *body).poll_next(cx),
            Err(_) => Poll::Ready(Some(Err(PayloadError::Incomplete(None)))),
        }
    }
}

/// An answer body that keeps the request body alive until it is sent.
pub struct HoldingBody {
    answer: BoxBody,
    _request_body: Option<SharedBody>,
}

impl MessageBody for HoldingBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.answer.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.answer).poll_next(cx)
    }
}
