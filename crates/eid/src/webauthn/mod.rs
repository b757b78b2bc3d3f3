//! Passkeys (WebAuthn Level 3): verification of registrations and assertions for ES256
//! credentials with `fmt: "none"` attestation.
//!
//! The server side of a ceremony is: issue a random challenge (kept by the caller with the
//! session), receive what the browser returns, and call [`verify_registration`] or
//! [`verify_assertion`]. Checks: `clientDataJSON` type, challenge and origin; `rpIdHash`; user
//! presence (and user verification when the relying party requires it); the COSE key (EC2, P-256,
//! ES256); the signature over `authenticatorData ‖ SHA-256(clientDataJSON)`; and the signature
//! counter, whose going backwards suggests a cloned authenticator.

pub(crate) mod cbor;

use crate::b64;
use cbor::Value;
use dancu_domain::Problem;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The relying party: dancu's own web origin(s) and RP ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingParty {
    /// RP ID, a registrable domain such as `id.dancu.example`.
    pub id: String,
    /// Origins allowed in `clientDataJSON`, exactly, e.g. `https://id.dancu.example`.
    pub origins: Vec<String>,
    /// Whether the authenticator must have verified the user (PIN or biometrics), not only
    /// their presence.
    pub require_user_verification: bool,
}

/// A registered passkey, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    /// Credential ID chosen by the authenticator.
    pub credential_id: Vec<u8>,
    /// Public key, SEC1 uncompressed (65 bytes).
    pub public_key: Vec<u8>,
    /// Last signature counter seen.
    pub sign_count: u32,
    /// Authenticator model (AAGUID; zeros when not disclosed).
    pub aaguid: [u8; 16],
    /// The credential may be backed up (synced passkey).
    pub backup_eligible: bool,
    /// The credential is backed up.
    pub backed_up: bool,
}

/// What a successful assertion tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The authenticator verified the user (counts as a second factor).
    pub user_verified: bool,
    /// The new counter (already stored into the passkey).
    pub sign_count: u32,
}

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
}

fn check_client_data(
    rp: &RelyingParty,
    kind: &str,
    challenge: &[u8],
    client_data_json: &[u8],
) -> Result<(), WebAuthnError> {
    if client_data_json.len() > 8192 {
        return Err(WebAuthnError::MalformedClientData);
    }
    let cd: ClientData =
        serde_json::from_slice(client_data_json).map_err(|_| WebAuthnError::MalformedClientData)?;
    if cd.kind != kind {
        return Err(WebAuthnError::WrongType);
    }
    let got = b64::decode(&cd.challenge).ok_or(WebAuthnError::WrongChallenge)?;
    if challenge.is_empty() || !bool::from(got.ct_eq(challenge)) {
        return Err(WebAuthnError::WrongChallenge);
    }
    if cd.cross_origin || !rp.origins.contains(&cd.origin) {
        return Err(WebAuthnError::WrongOrigin);
    }
    Ok(())
}

struct AuthData<'a> {
    flags: u8,
    sign_count: u32,
    attested: Option<(
        /* aaguid */ [u8; 16],
        /* id */ &'a [u8],
        /* key */ VerifyingKey,
    )>,
}

fn parse_auth_data<'a>(rp: &RelyingParty, data: &'a [u8]) -> Result<AuthData<'a>, WebAuthnError> {
    let bad = || WebAuthnError::MalformedAuthenticatorData;
    if data.len() < 37 {
        return Err(bad());
    }
    let rp_hash: [u8; 32] = Sha256::digest(rp.id.as_bytes()).into();
    if !bool::from(data[..32].ct_eq(&rp_hash)) {
        return Err(WebAuthnError::WrongRpId);
    }
    let flags = data[32];
    let sign_count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    if flags & FLAG_UP == 0 {
        return Err(WebAuthnError::UserNotPresent);
    }
    if rp.require_user_verification && flags & FLAG_UV == 0 {
        return Err(WebAuthnError::UserNotVerified);
    }
    if flags & FLAG_BS != 0 && flags & FLAG_BE == 0 {
        return Err(bad());
    }
    let mut rest = &data[37..];
    let mut attested = None;
    if flags & FLAG_AT != 0 {
        if rest.len() < 18 {
            return Err(bad());
        }
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(&rest[..16]);
        let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        if id_len == 0 || id_len > 1023 || rest.len() < 18 + id_len {
            return Err(bad());
        }
        let id = &rest[18..18 + id_len];
        rest = &rest[18 + id_len..];
        let (key, used) = cbor::decode_prefix(rest).map_err(|_| WebAuthnError::UnsupportedKey)?;
        let key = cose_es256_key(&key)?;
        rest = &rest[used..];
        attested = Some((aaguid, id, key));
    }
    if flags & FLAG_ED != 0 {
        let (ext, used) = cbor::decode_prefix(rest).map_err(|_| bad())?;
        if !matches!(ext, Value::Map(_)) {
            return Err(bad());
        }
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(AuthData {
        flags,
        sign_count,
        attested,
    })
}

/// Reads a COSE_Key that must be EC2 (kty 2) on P-256 (crv 1) for ES256 (alg −7).
fn cose_es256_key(key: &Value<'_>) -> Result<VerifyingKey, WebAuthnError> {
    let int = |k| key.get_int(k).and_then(Value::as_int);
    if int(1) != Some(2) || int(3) != Some(-7) || int(-1) != Some(1) {
        return Err(WebAuthnError::UnsupportedKey);
    }
    let (Some(Value::Bytes(x)), Some(Value::Bytes(y))) = (key.get_int(-2), key.get_int(-3)) else {
        return Err(WebAuthnError::UnsupportedKey);
    };
    if x.len() != 32 || y.len() != 32 {
        return Err(WebAuthnError::UnsupportedKey);
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| WebAuthnError::UnsupportedKey)
}

/// Verifies a registration (`navigator.credentials.create`) and returns the passkey to store.
///
/// `attestation_object` must carry `fmt: "none"` with an empty `attStmt`: dancu does not trust
/// authenticator makers' attestation, it trusts the logged-in session the passkey is added to.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<Passkey, WebAuthnError> {
    check_client_data(rp, "webauthn.create", challenge, client_data_json)?;
    if attestation_object.len() > 16 * 1024 {
        return Err(WebAuthnError::MalformedAttestation);
    }
    let att = cbor::decode(attestation_object).map_err(|_| WebAuthnError::MalformedAttestation)?;
    match att.get_text("fmt") {
        Some(Value::Text("none")) => {}
        Some(Value::Text(_)) => return Err(WebAuthnError::UnsupportedAttestation),
        _ => return Err(WebAuthnError::MalformedAttestation),
    }
    match att.get_text("attStmt") {
        Some(Value::Map(m)) if m.is_empty() => {}
        _ => return Err(WebAuthnError::UnsupportedAttestation),
    }
    let Some(Value::Bytes(auth_data)) = att.get_text("authData") else {
        return Err(WebAuthnError::MalformedAttestation);
    };
    let ad = parse_auth_data(rp, auth_data)?;
    let Some((aaguid, id, key)) = ad.attested else {
        return Err(WebAuthnError::MalformedAuthenticatorData);
    };
    Ok(Passkey {
        credential_id: id.to_vec(),
        public_key: key.to_sec1_bytes().to_vec(),
        sign_count: ad.sign_count,
        aaguid,
        backup_eligible: ad.flags & FLAG_BE != 0,
        backed_up: ad.flags & FLAG_BS != 0,
    })
}

/// Verifies an assertion (`navigator.credentials.get`) made with `passkey`. On success the
/// passkey's counter and backup state are updated: store it back.
pub fn verify_assertion(
    rp: &RelyingParty,
    passkey: &mut Passkey,
    challenge: &[u8],
    credential_id: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature_der: &[u8],
) -> Result<AssertionOutcome, WebAuthnError> {
    if credential_id != passkey.credential_id.as_slice() {
        return Err(WebAuthnError::UnknownCredential);
    }
    check_client_data(rp, "webauthn.get", challenge, client_data_json)?;
    let ad = parse_auth_data(rp, authenticator_data)?;
    if ad.attested.is_some() {
        return Err(WebAuthnError::MalformedAuthenticatorData);
    }
    let key = VerifyingKey::from_sec1_bytes(&passkey.public_key)
        .map_err(|_| WebAuthnError::UnsupportedKey)?;
    let sig = Signature::from_der(signature_der).map_err(|_| WebAuthnError::BadSignature)?;
    // Authenticators may emit either S; accept both by normalising to low S.
    let sig = sig.normalize_s();
    let mut signed = Vec::with_capacity(authenticator_data.len() + 32);
    signed.extend_from_slice(authenticator_data);
    signed.extend_from_slice(&Sha256::digest(client_data_json));
    key.verify(&signed, &sig)
        .map_err(|_| WebAuthnError::BadSignature)?;
    // Backup eligibility is fixed when the credential is made; a change means another
    // authenticator (or a forged one) is answering.
    if (ad.flags & FLAG_BE != 0) != passkey.backup_eligible {
        return Err(WebAuthnError::MalformedAuthenticatorData);
    }
    if (ad.sign_count != 0 || passkey.sign_count != 0) && ad.sign_count <= passkey.sign_count {
        return Err(WebAuthnError::CounterRegression {
            stored: passkey.sign_count,
            presented: ad.sign_count,
        });
    }
    passkey.sign_count = ad.sign_count;
    passkey.backed_up = ad.flags & FLAG_BS != 0;
    Ok(AssertionOutcome {
        user_verified: ad.flags & FLAG_UV != 0,
        sign_count: ad.sign_count,
    })
}

/// Why a ceremony was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebAuthnError {
    /// `clientDataJSON` is not the expected JSON.
    #[error("malformed clientDataJSON")]
    MalformedClientData,
    /// Wrong ceremony type.
    #[error("wrong ceremony type in clientDataJSON")]
    WrongType,
    /// The challenge is not the one issued.
    #[error("the challenge does not match")]
    WrongChallenge,
    /// The origin is not one of ours, or the request was cross-origin.
    #[error("the origin is not allowed")]
    WrongOrigin,
    /// The authenticator data is malformed.
    #[error("malformed authenticator data")]
    MalformedAuthenticatorData,
    /// The attestation object is malformed.
    #[error("malformed attestation object")]
    MalformedAttestation,
    /// Attestation other than `none`.
    #[error("only \"none\" attestation is accepted")]
    UnsupportedAttestation,
    /// The credential is for another RP ID.
    #[error("the credential is for another relying party")]
    WrongRpId,
    /// User presence flag not set.
    #[error("the user was not present")]
    UserNotPresent,
    /// User verification required but not done.
    #[error("the authenticator did not verify the user")]
    UserNotVerified,
    /// Not an ES256 P-256 key.
    #[error("only ES256 (P-256) passkeys are accepted")]
    UnsupportedKey,
    /// The assertion names another credential.
    #[error("unknown credential")]
    UnknownCredential,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The counter did not go up: the authenticator may have been cloned.
    #[error("signature counter went from {stored} to {presented}: possible cloned authenticator")]
    CounterRegression {
        /// The counter stored.
        stored: u32,
        /// The counter presented.
        presented: u32,
    },
}

impl Problem for WebAuthnError {
    fn code(&self) -> &'static str {
        match self {
            Self::MalformedClientData => "eid_webauthn_client_data",
            Self::WrongType => "eid_webauthn_type",
            Self::WrongChallenge => "eid_webauthn_challenge",
            Self::WrongOrigin => "eid_webauthn_origin",
            Self::MalformedAuthenticatorData => "eid_webauthn_authenticator_data",
            Self::MalformedAttestation => "eid_webauthn_attestation",
            Self::UnsupportedAttestation => "eid_webauthn_attestation_format",
            Self::WrongRpId => "eid_webauthn_rp_id",
            Self::UserNotPresent => "eid_webauthn_user_presence",
            Self::UserNotVerified => "eid_webauthn_user_verification",
            Self::UnsupportedKey => "eid_webauthn_key",
            Self::UnknownCredential => "eid_webauthn_unknown_credential",
            Self::BadSignature => "eid_webauthn_signature",
            Self::CounterRegression { .. } => "eid_webauthn_counter_regression",
        }
    }
    fn message_vi(&self) -> String {
        match self {
            Self::MalformedClientData
            | Self::MalformedAuthenticatorData
            | Self::MalformedAttestation => "Dữ liệu khóa truy cập không hợp lệ".to_owned(),
            Self::WrongType | Self::WrongChallenge => {
                "Phiên xác thực không khớp; vui lòng thử lại".to_owned()
            }
            Self::WrongOrigin | Self::WrongRpId => {
                "Khóa truy cập không dành cho trang này".to_owned()
            }
            Self::UnsupportedAttestation | Self::UnsupportedKey => {
                "Loại khóa truy cập này chưa được hỗ trợ".to_owned()
            }
            Self::UserNotPresent | Self::UserNotVerified => {
                "Thiết bị chưa xác minh người dùng".to_owned()
            }
            Self::UnknownCredential => "Khóa truy cập không được đăng ký cho tài khoản".to_owned(),
            Self::BadSignature => "Chữ ký của khóa truy cập không hợp lệ".to_owned(),
            Self::CounterRegression { .. } => {
                "Bộ đếm của khóa truy cập bất thường; thiết bị có thể đã bị sao chép".to_owned()
            }
        }
    }
}

#[cfg(any(test, feature = "soft-authenticator"))]
pub mod soft;

#[cfg(test)]
mod tests {
    use super::soft::SoftAuthenticator;
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const ORIGIN: &str = "https://id.dancu.example";

    fn rp() -> RelyingParty {
        RelyingParty {
            id: "id.dancu.example".into(),
            origins: vec![ORIGIN.into()],
            require_user_verification: true,
        }
    }

    fn registered(rng: &mut StdRng) -> (SoftAuthenticator, Passkey) {
        let mut a = SoftAuthenticator::new(rng, "id.dancu.example");
        let (cdj, att) = a.create(b"register-challenge", ORIGIN);
        let pk = verify_registration(&rp(), b"register-challenge", &cdj, &att).unwrap();
        (a, pk)
    }

    #[test]
    fn register_then_login_with_real_signatures() {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut a, mut pk) = registered(&mut rng);
        assert_eq!(pk.credential_id, a.credential_id);
        assert_eq!(pk.public_key.len(), 65);
        assert_eq!(pk.sign_count, 0);
        for round in 1..=3 {
            let (cdj, ad, sig) = a.get(b"login-challenge", ORIGIN);
            let out = verify_assertion(
                &rp(),
                &mut pk,
                b"login-challenge",
                &a.credential_id,
                &cdj,
                &ad,
                &sig,
            )
            .unwrap();
            assert!(out.user_verified);
            assert_eq!(out.sign_count, round);
        }
    }

    #[test]
    fn registration_checks() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut a = SoftAuthenticator::new(&mut rng, "id.dancu.example");
        let (cdj, att) = a.create(b"c1", ORIGIN);
        assert_eq!(
            verify_registration(&rp(), b"c2", &cdj, &att),
            Err(WebAuthnError::WrongChallenge)
        );
        let (cdj, att) = a.create(b"c1", "https://evil.example");
        assert_eq!(
            verify_registration(&rp(), b"c1", &cdj, &att),
            Err(WebAuthnError::WrongOrigin)
        );
        let mut other = SoftAuthenticator::new(&mut rng, "evil.example");
        let (cdj, att) = other.create(b"c1", ORIGIN);
        assert_eq!(
            verify_registration(&rp(), b"c1", &cdj, &att),
            Err(WebAuthnError::WrongRpId)
        );
        a.user_verified = false;
        let (cdj, att) = a.create(b"c1", ORIGIN);
        assert_eq!(
            verify_registration(&rp(), b"c1", &cdj, &att),
            Err(WebAuthnError::UserNotVerified)
        );
        a.user_verified = true;
        a.attestation_format = "packed";
        let (cdj, att) = a.create(b"c1", ORIGIN);
        assert_eq!(
            verify_registration(&rp(), b"c1", &cdj, &att),
            Err(WebAuthnError::UnsupportedAttestation)
        );
        // A get ceremony's clientData cannot register.
        a.attestation_format = "none";
        let (cdj, _, _) = a.get(b"c1", ORIGIN);
        let (_, att) = a.create(b"c1", ORIGIN);
        assert_eq!(
            verify_registration(&rp(), b"c1", &cdj, &att),
            Err(WebAuthnError::WrongType)
        );
        // Garbage.
        assert!(verify_registration(&rp(), b"c1", b"{}", &[0xa0]).is_err());
        assert!(verify_registration(&rp(), b"c1", b"not json", &[]).is_err());
    }

    #[test]
    fn assertion_checks() {
        let mut rng = StdRng::seed_from_u64(13);
        let (mut a, pk) = registered(&mut rng);
        let id = a.credential_id.clone();
        // Signature over other data.
        let (cdj, ad, sig) = a.get(b"c", ORIGIN);
        let mut tampered = ad.clone();
        tampered[33..37].copy_from_slice(&99u32.to_be_bytes());
        assert_eq!(
            verify_assertion(&rp(), &mut pk.clone(), b"c", &id, &cdj, &tampered, &sig),
            Err(WebAuthnError::BadSignature)
        );
        // Another key's signature.
        let (mut b, _) = registered(&mut rng);
        b.credential_id = id.clone();
        let (cdj, ad, sig) = b.get(b"c", ORIGIN);
        assert_eq!(
            verify_assertion(&rp(), &mut pk.clone(), b"c", &id, &cdj, &ad, &sig),
            Err(WebAuthnError::BadSignature)
        );
        // Wrong credential ID, challenge, user presence.
        let (cdj, ad, sig) = a.get(b"c", ORIGIN);
        assert_eq!(
            verify_assertion(&rp(), &mut pk.clone(), b"c", b"other", &cdj, &ad, &sig),
            Err(WebAuthnError::UnknownCredential)
        );
        assert_eq!(
            verify_assertion(&rp(), &mut pk.clone(), b"d", &id, &cdj, &ad, &sig),
            Err(WebAuthnError::WrongChallenge)
        );
        let mut flipped = pk.clone();
        flipped.backup_eligible = true;
        assert_eq!(
            verify_assertion(&rp(), &mut flipped, b"c", &id, &cdj, &ad, &sig),
            Err(WebAuthnError::MalformedAuthenticatorData)
        );
        a.user_present = false;
        let (cdj, ad, sig) = a.get(b"c", ORIGIN);
        assert_eq!(
            verify_assertion(&rp(), &mut pk.clone(), b"c", &id, &cdj, &ad, &sig),
            Err(WebAuthnError::UserNotPresent)
        );
    }

    #[test]
    fn counter_regression_flags_a_clone() {
        let mut rng = StdRng::seed_from_u64(14);
        let (mut a, mut pk) = registered(&mut rng);
        let mut clone = a.clone();
        let id = a.credential_id.clone();
        for _ in 0..3 {
            let (cdj, ad, sig) = a.get(b"c", ORIGIN);
            verify_assertion(&rp(), &mut pk, b"c", &id, &cdj, &ad, &sig).unwrap();
        }
        let (cdj, ad, sig) = clone.get(b"c", ORIGIN);
        assert_eq!(
            verify_assertion(&rp(), &mut pk, b"c", &id, &cdj, &ad, &sig),
            Err(WebAuthnError::CounterRegression {
                stored: 3,
                presented: 1
            })
        );
        // Authenticators that never count (always 0) are accepted.
        let (mut z, mut zpk) = registered(&mut rng);
        z.counts = false;
        let zid = z.credential_id.clone();
        for _ in 0..2 {
            let (cdj, ad, sig) = z.get(b"c", ORIGIN);
            verify_assertion(&rp(), &mut zpk, b"c", &zid, &cdj, &ad, &sig).unwrap();
        }
    }

    #[test]
    fn high_s_signatures_are_accepted() {
        let mut rng = StdRng::seed_from_u64(15);
        let (mut a, mut pk) = registered(&mut rng);
        a.high_s = true;
        let id = a.credential_id.clone();
        let (cdj, ad, sig) = a.get(b"c", ORIGIN);
        verify_assertion(&rp(), &mut pk, b"c", &id, &cdj, &ad, &sig).unwrap();
    }
}
