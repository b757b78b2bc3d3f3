//! The errors a register use-case can end with, each a [`Problem`] with a stable code and an HTTP
//! status that the transport layer uses as is.

use dancu_domain::Problem;
use dancu_store::StoreError;

/// Why a command or query was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Input that breaks a domain rule (bad ID, bad name, unknown commune…).
    #[error("{en}")]
    Invalid {
        code: &'static str,
        vi: String,
        en: String,
    },
    /// A register rule refused the change.
    #[error(transparent)]
    Rule(#[from] dancu_domain::event::RuleError),
    /// No such person or household.
    #[error("{what} was not found")]
    NotFound { what: String },
    /// Outside the officer's jurisdiction or role.
    #[error("{en}")]
    Forbidden {
        code: &'static str,
        vi: String,
        en: String,
    },
    /// The record changed since the caller read it.
    #[error("the record is at version {actual}, not the expected {expected}: reload and try again")]
    StaleVersion { expected: u64, actual: u64 },
    /// An idempotency key reused for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    /// The database failed.
    #[error("storage failure: {0}")]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict {
                expected, actual, ..
            } => Self::StaleVersion { expected, actual },
            StoreError::IdempotencyMismatch => Self::IdempotencyMismatch,
            other => Self::Store(other),
        }
    }
}

impl RegistryError {
    /// Wraps any domain [`Problem`] as invalid input.
    pub fn invalid(p: &dyn Problem) -> Self {
        Self::Invalid {
            code: p.code(),
            vi: p.message_vi(),
            en: p.message_en(),
        }
    }

    /// Invalid input with a message in both languages.
    pub fn invalid_msg(code: &'static str, vi: impl Into<String>, en: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            vi: vi.into(),
            en: en.into(),
        }
    }

    /// Refusal with a message in both languages.
    pub fn forbidden(code: &'static str, vi: impl Into<String>, en: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            vi: vi.into(),
            en: en.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 422,
            Self::Rule(r) => match r {
                dancu_domain::event::RuleError::NotCreated => 404,
                _ => 409,
            },
            Self::NotFound { .. } => 404,
            Self::Forbidden { .. } => 403,
            Self::StaleVersion { .. } => 409,
            Self::IdempotencyMismatch => 422,
            Self::Store(_) => 503,
        }
    }
}

impl Problem for RegistryError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } | Self::Forbidden { code, .. } => code,
            Self::Rule(r) => r.code(),
            Self::NotFound { .. } => "not_found",
            Self::StaleVersion { .. } => "stale_version",
            Self::IdempotencyMismatch => "idempotency_key_reused",
            Self::Store(_) => "storage_unavailable",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::Invalid { vi, .. } | Self::Forbidden { vi, .. } => vi.clone(),
            Self::Rule(r) => r.message_vi(),
            Self::NotFound { what } => format!("Không tìm thấy {what}"),
            Self::StaleVersion { expected, actual } => format!(
                "Hồ sơ đã được người khác cập nhật (phiên bản {actual}, không phải {expected}); hãy tải lại rồi thực hiện lại"
            ),
            Self::IdempotencyMismatch => {
                "Khóa Idempotency-Key này đã được dùng cho một yêu cầu khác".to_owned()
            }
            Self::Store(_) => {
                "Hệ thống lưu trữ tạm thời không phục vụ được; vui lòng thử lại sau".to_owned()
            }
        }
    }
}
