//! Subject identifiers (`sub`): pairwise per sector by default, so relying parties cannot join
//! their records on a shared identifier, or public for dancu's own pages. Neither form reveals the
//! personal ID number: both are HMAC-SHA256 values under a provider secret.

use dancu_domain::PersonalId;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The secret salt of subject identifiers. Changing it changes every `sub`: keep it for the life
/// of the deployment.
#[derive(Clone)]
pub struct SubjectSalt([u8; 32]);

impl SubjectSalt {
    /// From 32 bytes of configuration.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for SubjectSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectSalt(..)")
    }
}

/// How a client sees subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "subject_type", rename_all = "snake_case")]
pub enum SubjectType {
    /// The same `sub` for every client configured public (dancu's own pages).
    Public,
    /// A `sub` per sector: clients sharing a sector identifier (the host of their redirect URIs,
    /// or their `sector_identifier_uri`) see the same value.
    Pairwise {
        /// The sector identifier (a host name).
        sector: String,
    },
}

/// The `sub` of `person` for a client of `subject_type`.
pub fn subject_for(salt: &SubjectSalt, subject_type: &SubjectType, person: &PersonalId) -> String {
    let sector = match subject_type {
        SubjectType::Public => "",
        SubjectType::Pairwise { sector } => sector.as_str(),
    };
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&salt.0)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    // A tag byte keeps the public form apart from a pairwise one with an empty sector.
    m.update(&[u8::from(matches!(
        subject_type,
        SubjectType::Pairwise { .. }
    ))]);
    m.update(&(sector.len() as u32).to_be_bytes());
    m.update(sector.as_bytes());
    m.update(person.as_str().as_bytes());
    crate::b64::encode(&m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PersonalId {
        PersonalId::parse(s).unwrap()
    }

    #[test]
    fn pairwise_differs_by_sector_and_person_and_salt() {
        let salt = SubjectSalt::new([1; 32]);
        let a = SubjectType::Pairwise {
            sector: "bank.example".into(),
        };
        let b = SubjectType::Pairwise {
            sector: "tax.example".into(),
        };
        let p = pid("001090000001");
        let q = pid("001090000009");
        let s = subject_for(&salt, &a, &p);
        assert_eq!(s, subject_for(&salt, &a, &p), "stable");
        assert_ne!(s, subject_for(&salt, &b, &p));
        assert_ne!(s, subject_for(&salt, &a, &q));
        assert_ne!(s, subject_for(&SubjectSalt::new([2; 32]), &a, &p));
        assert_ne!(s, subject_for(&salt, &SubjectType::Public, &p));
        assert!(!s.contains("001090000001"));
        assert_eq!(s.len(), 43);
    }

    #[test]
    fn public_is_the_same_for_every_client() {
        let salt = SubjectSalt::new([1; 32]);
        let p = pid("001090000001");
        assert_eq!(
            subject_for(&salt, &SubjectType::Public, &p),
            subject_for(&salt, &SubjectType::Public, &p)
        );
        assert_ne!(
            subject_for(&salt, &SubjectType::Public, &p),
            subject_for(
                &salt,
                &SubjectType::Pairwise {
                    sector: String::new()
                },
                &p
            )
        );
    }
}
