//! One error type for the service: every refusal carries an HTTP status, a stable code, a
//! Vietnamese and an English message and, for protocol endpoints, the OAuth error code.

use dancu_domain::Problem;
use dancu_eid::oidc::OidcError;

/// Why a use-case refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpError {
    /// HTTP status to answer with.
    pub status: u16,
    /// Stable dancu code.
    pub code: &'static str,
    /// Vietnamese message.
    pub vi: String,
    /// English message.
    pub en: String,
    /// OAuth/OpenID error code for protocol endpoints (`invalid_grant`, ...).
    pub oauth: &'static str,
}

impl std::fmt::Display for IdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.en)
    }
}

impl std::error::Error for IdpError {}

impl IdpError {
    /// An error from any domain problem, with a status.
    pub fn from_problem(status: u16, p: &dyn Problem) -> Self {
        Self {
            status,
            code: p.code(),
            vi: p.message_vi(),
            en: p.message_en(),
            oauth: "invalid_request",
        }
    }

    /// An error with explicit parts.
    pub fn new(status: u16, code: &'static str, vi: &str, en: &str) -> Self {
        Self {
            status,
            code,
            vi: vi.to_owned(),
            en: en.to_owned(),
            oauth: "invalid_request",
        }
    }

    /// A failure of the server itself; the detail goes to the log only.
    pub fn internal(what: &str) -> Self {
        tracing::error!(what, "e-ID internal error");
        Self {
            oauth: "server_error",
            ..Self::new(
                500,
                "internal_error",
                "Lỗi hệ thống; yêu cầu chưa được thực hiện. Vui lòng thử lại",
                "Internal error; the request was not carried out. Please try again",
            )
        }
    }

    /// Unknown person, account or record.
    pub fn not_found(code: &'static str, vi: &str, en: &str) -> Self {
        Self::new(404, code, vi, en)
    }
}

impl From<OidcError> for IdpError {
    fn from(e: OidcError) -> Self {
        let status = match e {
            OidcError::InvalidClient(_) | OidcError::Replay => 401,
            OidcError::DpopKeyMismatch => 401,
            _ => 400,
        };
        Self {
            oauth: e.oauth_error(),
            ..Self::from_problem(status, &e)
        }
    }
}

impl From<dancu_store::StoreError> for IdpError {
    fn from(e: dancu_store::StoreError) -> Self {
        match e {
            dancu_store::StoreError::Conflict { .. } | dancu_store::StoreError::Exists(_) => {
                Self::new(
                    409,
                    "eid_conflict",
                    "Yêu cầu khác vừa thay đổi dữ liệu này; vui lòng thử lại",
                    "Another request changed this record just now; please try again",
                )
            }
            other => Self::internal(&other.to_string()),
        }
    }
}

macro_rules! problem_status {
    ($($ty:ty => $status:expr),* $(,)?) => {$(
        impl From<$ty> for IdpError {
            fn from(e: $ty) -> Self {
                Self::from_problem($status, &e)
            }
        }
    )*};
}

problem_status! {
    dancu_eid::account::AccountError => 422,
    dancu_eid::authn::otp::OtpError => 422,
    dancu_eid::authn::passcode::PasscodeError => 422,
    dancu_eid::phone::PhoneError => 422,
    dancu_eid::oidc::jws::JoseError => 400,
}
