//! RFC 9457 problem details: every error leaves the server as `application/problem+json` with a
//! stable `code` and a Vietnamese and an English message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dancu_domain::Problem;
use dancu_registry::RegistryError;
use serde::Serialize;

/// The problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// URI naming the problem type: `urn:dancu:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short English title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// English explanation of this occurrence.
    pub detail: String,
    /// Stable machine code.
    pub code: String,
    /// Vietnamese message.
    pub message_vi: String,
    /// English message.
    pub message_en: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    vi: String,
    en: String,
}

impl ApiError {
    /// An error with explicit parts.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        vi: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            vi: vi.into(),
            en: en.into(),
        }
    }

    /// Its stable code and messages, for the HTML pages that show it in place.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, &str, &str) {
        (self.status, self.code, &self.vi, &self.en)
    }

    /// Malformed JSON or a body that does not fit the schema.
    pub fn bad_body(e: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("Nội dung yêu cầu không hợp lệ: {e}"),
            format!("The request body is not valid: {e}"),
        )
    }

    /// Missing or unknown credential.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Cần đăng nhập: gửi mã truy cập trong tiêu đề Authorization: Bearer …",
            "Authentication required: send the access token as Authorization: Bearer …",
        )
    }

    /// A failure of the server itself.
    pub fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Lỗi hệ thống; yêu cầu chưa được thực hiện. Vui lòng thử lại",
            "Internal error; the request was not carried out. Please try again",
        )
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        if let RegistryError::Store(s) = &e {
            tracing::warn!(error = %s, "store error");
        }
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code(),
            vi: e.message_vi(),
            en: e.message_en(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            kind: format!("urn:dancu:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.en.clone(),
            code: self.code.to_owned(),
            message_vi: self.vi,
            message_en: self.en,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}
