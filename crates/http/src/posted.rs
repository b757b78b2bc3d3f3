//! The extractor of the JSON APIs' POST handlers: a request's headers and its whole body.

use crate::ApiError;
use axum::RequestExt;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

/// A POST's headers and whole body, taken out of the request.
///
/// axum's own extractors would do the same work at a higher price on every call: its
/// `HeaderMap` extractor copies the header map (an allocation, and a reference-count change on
/// every shared header value), and its `Bytes` extractor gathers the body's frames into a list
/// before joining them, though an API call's body nearly always arrives as one frame. A body
/// over the route's limit (`DefaultBodyLimit`) is refused as problem+json, in both languages.
#[derive(Debug)]
pub(crate) struct Posted {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = ApiError;

    async fn from_request(mut req: Request, _: &S) -> Result<Self, ApiError> {
        let headers = std::mem::take(req.headers_mut());
        let mut body = req.into_limited_body();
        let mut first = Bytes::new();
        // Only when the body comes in more than one frame.
        let mut joined: Option<Vec<u8>> = None;
        while let Some(frame) = body.frame().await {
            let data = match frame.map_err(unreadable)?.into_data() {
                Ok(data) => data,
                // Trailers carry nothing an API call reads.
                Err(_) => continue,
            };
            match &mut joined {
                Some(buf) => buf.extend_from_slice(&data),
                None if first.is_empty() => first = data,
                None => {
                    let expected = axum::body::HttpBody::size_hint(&body).lower() as usize;
                    let mut buf = Vec::with_capacity(first.len() + data.len() + expected);
                    buf.extend_from_slice(&first);
                    buf.extend_from_slice(&data);
                    joined = Some(buf);
                }
            }
            if axum::body::HttpBody::is_end_stream(&body) {
                break;
            }
        }
        Ok(Self {
            headers,
            body: joined.map_or(first, Bytes::from),
        })
    }
}

fn unreadable(e: axum::Error) -> ApiError {
    let inner = e.into_inner();
    if inner
        .downcast_ref::<http_body_util::LengthLimitError>()
        .is_some()
    {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Nội dung yêu cầu vượt quá giới hạn cho phép của địa chỉ này",
            "The request body is larger than this route accepts",
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "body_unreadable",
        "Không đọc được nội dung yêu cầu",
        format!("The request body could not be read: {inner}"),
    )
}
