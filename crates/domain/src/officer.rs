//! Officers (cán bộ) who keep the register, their roles and the jurisdiction (địa bàn) inside
//! which they may read and write.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an officer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads records in the jurisdiction (tra cứu).
    Viewer,
    /// Registers births, residences, deaths… in the jurisdiction (cán bộ đăng ký).
    Registrar,
    /// A registrar who may also correct fields and manage officers below them (lãnh đạo).
    Supervisor,
}

impl Role {
    /// Whether the role may make register changes.
    pub fn can_write(&self) -> bool {
        matches!(self, Self::Registrar | Self::Supervisor)
    }
    /// Whether the role may correct recorded fields.
    pub fn can_correct(&self) -> bool {
        matches!(self, Self::Supervisor)
    }
}

/// Where an officer's authority reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "level", content = "code", rename_all = "snake_case")]
pub enum Jurisdiction {
    /// The whole country (Bộ Công an).
    National,
    /// A province of the 2025 scheme, by its 2-digit code.
    Province(String),
    /// A commune of the 2025 scheme, by its 5-digit code.
    Commune(String),
}

impl Jurisdiction {
    /// Whether the jurisdiction covers a commune (2025 code). A commune-less subject (`None`,
    /// e.g. an address that maps to several communes) is covered only nationally.
    pub fn covers(&self, commune_code: Option<&str>) -> bool {
        match (self, commune_code) {
            (Self::National, _) => true,
            (_, None) => false,
            (Self::Commune(c), Some(code)) => c == code,
            (Self::Province(p), Some(code)) => crate::admin::AdminUnits::get()
                .commune(crate::admin::Scheme::Y2025, code)
                .is_some_and(|c| c.province_code == p.as_str()),
        }
    }

    /// Parses `national`, `province:NN` or `commune:NNNNN`, checking the unit exists.
    pub fn parse(s: &str) -> Result<Self, String> {
        let units = crate::admin::AdminUnits::get();
        let scheme = crate::admin::Scheme::Y2025;
        match s.split_once(':') {
            None if s == "national" => Ok(Self::National),
            Some(("province", code)) if units.province(scheme, code).is_some() => {
                Ok(Self::Province(code.to_owned()))
            }
            Some(("commune", code)) if units.commune(scheme, code).is_some() => {
                Ok(Self::Commune(code.to_owned()))
            }
            _ => Err(format!(
                "jurisdiction must be `national`, `province:NN` or `commune:NNNNN` with a unit of the 2025 scheme; got {s:?}"
            )),
        }
    }
}

impl std::fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::National => f.write_str("national"),
            Self::Province(c) => write!(f, "province:{c}"),
            Self::Commune(c) => write!(f, "commune:{c}"),
        }
    }
}

/// An officer as the register of officers holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Officer {
    /// Officer identifier (login name or staff number).
    pub id: String,
    /// Full name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// The officer's own personal ID number, which links their e-ID login (officer desk) to
    /// this record; `None` for officers who only use API tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<crate::id::PersonalId>,
}
