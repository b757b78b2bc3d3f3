//! The face check of level-1 registration (đối chiếu khuôn mặt): a live capture compared with the
//! register's reference image. The comparison itself is a pluggable [`FaceVerifier`]; a real one
//! wraps a biometric matcher run by the public-security unit, which is outside this project.

use dancu_domain::PersonalId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What the register holds as the face reference of a person, as far as a verifier needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceReference {
    /// SHA-256 of the reference image bytes held by the register.
    pub sha256: [u8; 32],
}

/// A capture submitted by the applicant's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceCapture {
    /// The submitted image (or, for the demo verifier, any reference bytes).
    pub image: Vec<u8>,
}

/// The verifier's answer. Only [`FaceOutcome::Match`] lets a registration through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FaceOutcome {
    /// The capture matches the reference.
    Match {
        /// Matcher score in 0..=1, where the verifier has one.
        score: f32,
    },
    /// The capture does not match.
    NoMatch,
    /// The register holds no reference for this person: registration must go in person.
    NoReference,
    /// The verifier could not decide (service down, image unusable).
    Unavailable {
        /// Why, for the log; never shown to the applicant as is.
        detail: String,
    },
}

/// A face matcher. Implementations must never accept when they cannot decide: every doubt is
/// [`FaceOutcome::Unavailable`] or [`FaceOutcome::NoMatch`].
pub trait FaceVerifier: Send + Sync + std::fmt::Debug {
    /// A short name recorded with the registration, so that accounts registered with the demo
    /// verifier can be found later.
    fn name(&self) -> &'static str;

    /// Compares a capture of `person` with the register's reference (`None` when there is none).
    fn verify(
        &self,
        person: &PersonalId,
        reference: Option<&FaceReference>,
        capture: &FaceCapture,
    ) -> FaceOutcome;
}

/// **Demo only, not biometrics.** Accepts a capture when the SHA-256 of its bytes equals the
/// register's reference hash, i.e. when the device submits the very reference image. It exists so
/// that demos and tests can walk the level-1 flow without a biometric service.
///
/// It never accepts silently: with no reference it answers [`FaceOutcome::NoReference`], with an
/// empty capture [`FaceOutcome::Unavailable`], and with any other bytes [`FaceOutcome::NoMatch`].
/// Accounts it registered carry its [`FaceVerifier::name`], `"demo-hash-compare"`, so that a
/// deployment can refuse or re-check them.
#[derive(Debug, Default, Clone, Copy)]
pub struct DemoFaceVerifier;

impl DemoFaceVerifier {
    /// The reference an image would have in the register (for seeding demo data).
    pub fn reference_for(image: &[u8]) -> FaceReference {
        FaceReference {
            sha256: Sha256::digest(image).into(),
        }
    }
}

impl FaceVerifier for DemoFaceVerifier {
    fn name(&self) -> &'static str {
        "demo-hash-compare"
    }

    fn verify(
        &self,
        _person: &PersonalId,
        reference: Option<&FaceReference>,
        capture: &FaceCapture,
    ) -> FaceOutcome {
        let Some(reference) = reference else {
            return FaceOutcome::NoReference;
        };
        if capture.image.is_empty() {
            return FaceOutcome::Unavailable {
                detail: "empty capture".to_owned(),
            };
        }
        let submitted: [u8; 32] = Sha256::digest(&capture.image).into();
        if bool::from(submitted.ct_eq(&reference.sha256)) {
            FaceOutcome::Match { score: 1.0 }
        } else {
            FaceOutcome::NoMatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid() -> PersonalId {
        PersonalId::parse("001203000001").unwrap()
    }

    #[test]
    fn demo_matches_only_the_reference_bytes() {
        let v = DemoFaceVerifier;
        let r = DemoFaceVerifier::reference_for(b"face-of-an");
        let ok = v.verify(
            &pid(),
            Some(&r),
            &FaceCapture {
                image: b"face-of-an".to_vec(),
            },
        );
        assert_eq!(ok, FaceOutcome::Match { score: 1.0 });
        let other = v.verify(
            &pid(),
            Some(&r),
            &FaceCapture {
                image: b"someone".to_vec(),
            },
        );
        assert_eq!(other, FaceOutcome::NoMatch);
    }

    #[test]
    fn demo_never_accepts_without_reference_or_capture() {
        let v = DemoFaceVerifier;
        let capture = FaceCapture {
            image: b"x".to_vec(),
        };
        assert_eq!(v.verify(&pid(), None, &capture), FaceOutcome::NoReference);
        let r = DemoFaceVerifier::reference_for(b"");
        let empty = FaceCapture { image: Vec::new() };
        assert!(matches!(
            v.verify(&pid(), Some(&r), &empty),
            FaceOutcome::Unavailable { .. }
        ));
    }
}
