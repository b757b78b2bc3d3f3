//! Claim sets of the tokens the provider issues: ID tokens (OpenID Connect Core) and JWT access
//! tokens (RFC 9068, `typ: at+jwt`), with `acr` values mapped from the e-ID levels, `amr`
//! (RFC 8176), `act` (RFC 8693) when a guardian acts for a minor, and `cnf.jkt` (RFC 9449) for
//! DPoP-bound tokens.

use crate::account::Level;
use serde::{Deserialize, Serialize};

/// `acr` of a level-1 authentication.
pub const ACR_LEVEL_1: &str = "urn:dancu:loa:1";
/// `acr` of a level-2 authentication.
pub const ACR_LEVEL_2: &str = "urn:dancu:loa:2";

/// The `acr` value of a level.
pub fn acr_for(level: Level) -> &'static str {
    match level {
        Level::One => ACR_LEVEL_1,
        Level::Two => ACR_LEVEL_2,
    }
}

/// The level an `acr` value stands for; `None` for values this provider does not issue.
pub fn level_for_acr(acr: &str) -> Option<Level> {
    match acr {
        ACR_LEVEL_1 => Some(Level::One),
        ACR_LEVEL_2 => Some(Level::Two),
        _ => None,
    }
}

/// Authentication methods (RFC 8176 values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Amr {
    /// The six-digit passcode.
    #[serde(rename = "pin")]
    Passcode,
    /// A one-time code by SMS.
    #[serde(rename = "sms")]
    Sms,
    /// A TOTP code.
    #[serde(rename = "otp")]
    Totp,
    /// A passkey (hardware- or platform-bound key).
    #[serde(rename = "hwk")]
    Passkey,
    /// The passkey's authenticator verified the user (PIN or biometrics on the device).
    #[serde(rename = "user")]
    UserVerification,
    /// Face check.
    #[serde(rename = "face")]
    Face,
    /// More than one factor.
    #[serde(rename = "mfa")]
    Mfa,
}

impl Amr {
    /// The factor class, for counting distinct factors: knowledge, possession, inherence.
    fn factor(self) -> Option<u8> {
        match self {
            Self::Passcode => Some(0),
            Self::Sms | Self::Totp | Self::Passkey => Some(1),
            Self::Face | Self::UserVerification => Some(2),
            Self::Mfa => None,
        }
    }
}

/// The `amr` list to put in tokens: the methods used, sorted, with `mfa` added when factors of
/// two classes were used.
pub fn amr_list(methods: &[Amr]) -> Vec<Amr> {
    let mut out: Vec<Amr> = methods.iter().copied().filter(|m| *m != Amr::Mfa).collect();
    out.sort();
    out.dedup();
    let mut classes: Vec<u8> = out.iter().filter_map(|m| m.factor()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() >= 2 {
        out.push(Amr::Mfa);
    }
    out
}

/// The level an authentication reached: the account's level, capped at level 1 unless factors of
/// two classes were used (e.g. passcode and SMS code, or a user-verifying passkey).
pub fn achieved_level(account_level: Level, methods: &[Amr]) -> Level {
    if account_level == Level::Two && amr_list(methods).contains(&Amr::Mfa) {
        Level::Two
    } else {
        Level::One
    }
}

/// `act`: who acts for the subject (a guardian for a minor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's subject identifier, in the same subject space as `sub`.
    pub sub: String,
}

/// `cnf` of a sender-constrained token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP key.
    pub jkt: String,
}

/// ID token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject (pairwise or public).
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The request's nonce, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Assurance (`urn:dancu:loa:1|2`).
    pub acr: String,
    /// Methods.
    pub amr: Vec<Amr>,
    /// Authorized party (the client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Session ID, for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The guardian acting for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// JWT access token claims (RFC 9068).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the person (pairwise) or, for client credentials, the client ID.
    pub sub: String,
    /// Resource server(s).
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token ID (for revocation and introspection).
    pub jti: String,
    /// The client.
    pub client_id: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// Assurance of the authentication behind it (absent for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// When the user authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The guardian acting for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// DPoP binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The JOSE `typ` of ID tokens.
pub const TYP_ID_TOKEN: &str = "JWT";
/// The JOSE `typ` of access tokens (RFC 9068).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::jws::KeySet;
    use chrono::{TimeZone, Utc};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn acr_mapping_round_trips() {
        for l in [Level::One, Level::Two] {
            assert_eq!(level_for_acr(acr_for(l)), Some(l));
        }
        assert_eq!(level_for_acr("urn:mace:incommon:iap:silver"), None);
    }

    #[test]
    fn level_two_needs_two_factor_classes() {
        use Amr::*;
        assert_eq!(achieved_level(Level::Two, &[Passcode]), Level::One);
        assert_eq!(achieved_level(Level::Two, &[Passcode, Sms]), Level::Two);
        assert_eq!(
            achieved_level(Level::Two, &[Passkey, UserVerification]),
            Level::Two
        );
        assert_eq!(achieved_level(Level::Two, &[Sms, Totp]), Level::One);
        assert_eq!(achieved_level(Level::One, &[Passcode, Sms]), Level::One);
        assert_eq!(amr_list(&[Sms, Passcode, Sms]), vec![Passcode, Sms, Mfa]);
    }

    #[test]
    fn guardian_token_says_who_acts_and_serialises_as_registered_names() {
        let t = Utc
            .with_ymd_and_hms(2025, 9, 1, 3, 0, 0)
            .unwrap()
            .timestamp();
        let claims = AccessTokenClaims {
            iss: "https://id.dancu.example".into(),
            sub: "child-sub".into(),
            aud: "https://api.school.example".into(),
            exp: t + 300,
            iat: t,
            jti: "j1".into(),
            client_id: "school".into(),
            scope: "openid profile".into(),
            acr: Some(ACR_LEVEL_1.into()),
            auth_time: Some(t),
            act: Some(Actor {
                sub: "parent-sub".into(),
            }),
            cnf: Some(Confirmation { jkt: "abc".into() }),
        };
        let v = serde_json::to_value(&claims).unwrap();
        assert_eq!(v["act"]["sub"], "parent-sub");
        assert_eq!(v["cnf"]["jkt"], "abc");
        assert_eq!(v["acr"], "urn:dancu:loa:1");
        let mut rng = StdRng::seed_from_u64(5);
        let now = Utc.timestamp_opt(t, 0).unwrap();
        let ks = KeySet::generate(&mut rng, now).unwrap();
        let token = ks.sign(TYP_ACCESS_TOKEN, &claims).unwrap();
        let back: AccessTokenClaims = ks.verify(&token, TYP_ACCESS_TOKEN, now).unwrap();
        assert_eq!(back, claims);
        let id = IdTokenClaims {
            iss: claims.iss.clone(),
            sub: "s".into(),
            aud: "c".into(),
            exp: t + 300,
            iat: t,
            auth_time: t,
            nonce: Some("n-0S6_WzA2Mj".into()),
            acr: ACR_LEVEL_2.into(),
            amr: amr_list(&[Amr::Passcode, Amr::Sms]),
            azp: None,
            sid: None,
            act: None,
        };
        let v = serde_json::to_value(&id).unwrap();
        assert_eq!(v["amr"], serde_json::json!(["pin", "sms", "mfa"]));
        assert!(v.get("act").is_none());
    }
}
