//! OpenID Connect provider building blocks, pure: tokens and the rules around them. The flows
//! over stored records live in `dancu-idp`, and the HTTP endpoints (discovery, authorize, PAR,
//! token, userinfo, revocation, introspection, logout) in the HTTP crate's `oidc` module.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod consent;
pub mod dpop;
pub mod grants;
pub mod issue;
pub mod jws;
pub mod par;
pub mod pkce;
pub mod session;
pub mod subject;

use dancu_domain::Problem;

/// Why an OAuth/OpenID request was refused. [`OidcError::oauth_error`] gives the RFC 6749 /
/// OpenID error code for the wire; [`Problem::code`] the stable dancu code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// PKCE verifier missing, malformed or wrong.
    #[error("PKCE verification failed")]
    PkceMismatch,
    /// The authorization code is unknown, expired, or for another client or redirect URI.
    #[error("invalid authorization code")]
    InvalidCode,
    /// The authorization code was used before: tokens issued from it must be revoked.
    #[error("authorization code reused")]
    CodeReused,
    /// The refresh token is unknown, expired, or for another client.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A rotated-out refresh token came back: the whole family is revoked.
    #[error("refresh token reused; the session's tokens are revoked")]
    RefreshTokenReused,
    /// The redirect URI is not registered for the client (exact match).
    #[error("redirect URI not registered")]
    RedirectUriMismatch,
    /// Client authentication failed.
    #[error("client authentication failed: {0}")]
    InvalidClient(&'static str),
    /// A client assertion or DPoP proof `jti` seen before.
    #[error("replayed jti")]
    Replay,
    /// The DPoP proof is invalid.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// The token is bound to another DPoP key.
    #[error("the token is bound to another key")]
    DpopKeyMismatch,
    /// Malformed request parameter.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// `prompt=none` but the user must log in.
    #[error("login required")]
    LoginRequired,
    /// `prompt=none` but the user must interact (step-up).
    #[error("interaction required")]
    InteractionRequired,
    /// `prompt=none` but consent is needed.
    #[error("consent required")]
    ConsentRequired,
    /// The requested `acr` cannot be met by this account.
    #[error("the requested assurance level cannot be met")]
    UnmetAuthenticationRequirements,
}

impl OidcError {
    /// The error code for the OAuth/OpenID wire response.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::PkceMismatch | Self::InvalidCode | Self::CodeReused => "invalid_grant",
            Self::InvalidRefreshToken | Self::RefreshTokenReused => "invalid_grant",
            Self::RedirectUriMismatch | Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) | Self::Replay => "invalid_client",
            Self::InvalidDpopProof(_) | Self::DpopKeyMismatch => "invalid_dpop_proof",
            Self::LoginRequired => "login_required",
            Self::InteractionRequired => "interaction_required",
            Self::ConsentRequired => "consent_required",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
        }
    }
}

impl Problem for OidcError {
    fn code(&self) -> &'static str {
        match self {
            Self::PkceMismatch => "oidc_pkce_mismatch",
            Self::InvalidCode => "oidc_invalid_code",
            Self::CodeReused => "oidc_code_reused",
            Self::InvalidRefreshToken => "oidc_invalid_refresh_token",
            Self::RefreshTokenReused => "oidc_refresh_token_reused",
            Self::RedirectUriMismatch => "oidc_redirect_uri_mismatch",
            Self::InvalidClient(_) => "oidc_invalid_client",
            Self::Replay => "oidc_jti_replay",
            Self::InvalidDpopProof(_) => "oidc_invalid_dpop_proof",
            Self::DpopKeyMismatch => "oidc_dpop_key_mismatch",
            Self::InvalidRequest(_) => "oidc_invalid_request",
            Self::LoginRequired => "oidc_login_required",
            Self::InteractionRequired => "oidc_interaction_required",
            Self::ConsentRequired => "oidc_consent_required",
            Self::UnmetAuthenticationRequirements => "oidc_unmet_acr",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::PkceMismatch => "Mã xác minh PKCE không đúng".to_owned(),
            Self::InvalidCode => "Mã ủy quyền không hợp lệ hoặc đã hết hạn".to_owned(),
            Self::CodeReused => {
                "Mã ủy quyền đã được sử dụng; các mã truy cập liên quan bị thu hồi".to_owned()
            }
            Self::InvalidRefreshToken => "Mã làm mới không hợp lệ hoặc đã hết hạn".to_owned(),
            Self::RefreshTokenReused => "Mã làm mới bị dùng lại; phiên đã bị thu hồi".to_owned(),
            Self::RedirectUriMismatch => "Địa chỉ chuyển hướng chưa được đăng ký".to_owned(),
            Self::InvalidClient(why) => format!("Xác thực ứng dụng thất bại ({why})"),
            Self::Replay => "Mã định danh jti đã được dùng".to_owned(),
            Self::InvalidDpopProof(why) => format!("Bằng chứng DPoP không hợp lệ ({why})"),
            Self::DpopKeyMismatch => "Mã truy cập gắn với khóa khác".to_owned(),
            Self::InvalidRequest(why) => format!("Yêu cầu không hợp lệ ({why})"),
            Self::LoginRequired => "Cần đăng nhập".to_owned(),
            Self::InteractionRequired => "Cần người dùng thao tác".to_owned(),
            Self::ConsentRequired => "Cần sự đồng ý của người dùng".to_owned(),
            Self::UnmetAuthenticationRequirements => {
                "Tài khoản không đạt mức độ xác thực được yêu cầu".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod flow_tests;
