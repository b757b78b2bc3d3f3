//! Outcomes of individual verification checks: passed, failed or not checked, each failure and
//! skip with a stable code and a human-readable detail.

/// Why a check failed or was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// Stable machine-readable code, e.g. `dg.hash_mismatch`, `csca.unknown`.
    pub code: &'static str,
    /// Human-readable detail (English).
    pub detail: String,
}

impl Reason {
    /// A reason with a code and detail.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Reason {
            code,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check was made and passed.
    Passed,
    /// The check was made and failed.
    Failed(Reason),
    /// The check could not be made (missing input, or an earlier step failed).
    NotChecked(Reason),
}

impl Outcome {
    /// Whether the check passed.
    pub fn is_passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }

    /// Whether the check failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }

    /// The failure or skip code, if any.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Outcome::Passed => None,
            Outcome::Failed(r) | Outcome::NotChecked(r) => Some(r.code),
        }
    }

    pub(crate) fn from_result(r: Result<(), Reason>) -> Self {
        match r {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(e),
        }
    }

    pub(crate) fn skipped(code: &'static str, detail: impl Into<String>) -> Self {
        Outcome::NotChecked(Reason::new(code, detail))
    }
}
