//! Building and signing the tokens of a grant: ID token and access token for a person (with
//! `act` when a guardian acted, `cnf.jkt` when DPoP-bound), and access tokens for machine
//! clients (client credentials).

use super::claims::{
    AccessTokenClaims, Actor, Confirmation, IdTokenClaims, TYP_ACCESS_TOKEN, TYP_ID_TOKEN, acr_for,
    amr_list,
};
use super::grants::Grant;
use super::jws::{JoseError, KeySet};
use super::subject::{SubjectSalt, SubjectType, subject_for};
use crate::b64;
use chrono::{DateTime, Duration, Utc};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

/// Issuer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenConfig {
    /// Issuer identifier (`iss`), an https URL.
    pub issuer: String,
    /// Access-token lifetime (default 5 minutes).
    pub access_token_lifetime: Duration,
    /// ID-token lifetime (default 5 minutes).
    pub id_token_lifetime: Duration,
}

impl TokenConfig {
    /// Defaults for an issuer.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            access_token_lifetime: Duration::minutes(5),
            id_token_lifetime: Duration::minutes(5),
        }
    }

    /// The longest lifetime of anything signed: how long a retired key must keep verifying.
    pub fn longest_lifetime(&self) -> Duration {
        self.access_token_lifetime.max(self.id_token_lifetime)
    }
}

/// Tokens issued for a person.
#[derive(Debug, Clone)]
pub struct UserTokens {
    /// The access token (JWT, `at+jwt`).
    pub access_token: String,
    /// Its claims (for introspection records).
    pub access_claims: AccessTokenClaims,
    /// The ID token, when `openid` was in scope.
    pub id_token: Option<String>,
}

fn jti(rng: &mut impl CryptoRng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b64::encode(&b)
}

/// Issues the tokens of a redeemed grant. The client's subject type decides `sub` (and the
/// actor's `sub` in `act`); `audience` is the resource server the access token is for.
#[allow(clippy::too_many_arguments)]
pub fn user_tokens(
    cfg: &TokenConfig,
    keys: &KeySet,
    salt: &SubjectSalt,
    subject_type: &SubjectType,
    grant: &Grant,
    nonce: Option<&str>,
    audience: &str,
    rng: &mut impl CryptoRng,
    now: DateTime<Utc>,
) -> Result<UserTokens, JoseError> {
    let sub = subject_for(salt, subject_type, &grant.person);
    let act = grant.actor.as_ref().map(|g| Actor {
        sub: subject_for(salt, subject_type, g),
    });
    let iat = now.timestamp();
    let access_claims = AccessTokenClaims {
        iss: cfg.issuer.clone(),
        sub: sub.clone(),
        aud: audience.to_owned(),
        exp: (now + cfg.access_token_lifetime).timestamp(),
        iat,
        jti: jti(rng),
        client_id: grant.client_id.clone(),
        scope: grant.scope.clone(),
        acr: Some(acr_for(grant.level).to_owned()),
        auth_time: Some(grant.auth_time.timestamp()),
        act: act.clone(),
        cnf: grant
            .dpop_jkt
            .as_ref()
            .map(|jkt| Confirmation { jkt: jkt.clone() }),
    };
    let access_token = keys.sign(TYP_ACCESS_TOKEN, &access_claims)?;
    let id_token = if grant.scope.split(' ').any(|s| s == "openid") {
        let claims = IdTokenClaims {
            iss: cfg.issuer.clone(),
            sub,
            aud: grant.client_id.clone(),
            exp: (now + cfg.id_token_lifetime).timestamp(),
            iat,
            auth_time: grant.auth_time.timestamp(),
            nonce: nonce.map(str::to_owned),
            acr: acr_for(grant.level).to_owned(),
            amr: amr_list(&grant.amr),
            azp: Some(grant.client_id.clone()),
            sid: None,
            act,
        };
        Some(keys.sign(TYP_ID_TOKEN, &claims)?)
    } else {
        None
    };
    Ok(UserTokens {
        access_token,
        access_claims,
        id_token,
    })
}

/// Issues a client-credentials access token: the client is its own subject.
#[allow(clippy::too_many_arguments)]
pub fn client_credentials_token(
    cfg: &TokenConfig,
    keys: &KeySet,
    client_id: &str,
    scope: &str,
    audience: &str,
    dpop_jkt: Option<&str>,
    rng: &mut impl CryptoRng,
    now: DateTime<Utc>,
) -> Result<(String, AccessTokenClaims), JoseError> {
    let claims = AccessTokenClaims {
        iss: cfg.issuer.clone(),
        sub: client_id.to_owned(),
        aud: audience.to_owned(),
        exp: (now + cfg.access_token_lifetime).timestamp(),
        iat: now.timestamp(),
        jti: jti(rng),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        acr: None,
        auth_time: None,
        act: None,
        cnf: dpop_jkt.map(|j| Confirmation { jkt: j.to_owned() }),
    };
    Ok((keys.sign(TYP_ACCESS_TOKEN, &claims)?, claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::tests::{adult, check, ctx, level1_account, now, person, request};
    use crate::account::{Account, Applicant, GuardianBasis, Level, vietnam_date};
    use crate::face::DemoFaceVerifier;
    use crate::oidc::claims::Amr;
    use dancu_domain::person::Relative;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn guardian_acting_for_a_minor_is_stated_in_both_tokens() {
        let mut rng = StdRng::seed_from_u64(1);
        // The register: a parent and their child of 4.
        let parent = adult();
        let mut child = person("001222000002", "2021-06-01");
        child.father = Some(Relative {
            id: Some(parent.id),
            name: "Nguyễn Văn An".into(),
        });
        let mut parent_acc = level1_account(&parent);
        parent_acc
            .raise_to_level2(&parent, &Applicant::Holder, check(), now())
            .unwrap();
        let guardian = Applicant::Guardian {
            id: parent.id,
            basis: GuardianBasis::RecordedParent,
        };
        let r = DemoFaceVerifier::reference_for(b"face");
        let mut c = ctx(&child, &r);
        c.guardian_account = Some(&parent_acc);
        let child_acc =
            Account::register_level1(c, &request(guardian), &DemoFaceVerifier, now()).unwrap();
        // The provider checks the guardian may act, then records it in the grant.
        child_acc
            .guardian_may_act(&parent.id, &child.date_of_birth, vietnam_date(now()))
            .unwrap();
        let grant = Grant {
            id: "g".into(),
            client_id: "school".into(),
            person: child.id,
            actor: Some(parent.id),
            scope: "openid profile".into(),
            level: Level::One,
            amr: vec![Amr::Passcode],
            auth_time: now(),
            dpop_jkt: Some("jkt".into()),
        };
        let cfg = TokenConfig::new("https://id.dancu.example");
        let keys = KeySet::generate(&mut rng, now()).unwrap();
        let salt = SubjectSalt::new([3; 32]);
        let st = SubjectType::Pairwise {
            sector: "school.example".into(),
        };
        let t = user_tokens(
            &cfg,
            &keys,
            &salt,
            &st,
            &grant,
            Some("n1"),
            "https://api.school.example",
            &mut rng,
            now(),
        )
        .unwrap();
        let at: AccessTokenClaims = keys
            .verify(&t.access_token, TYP_ACCESS_TOKEN, now())
            .unwrap();
        assert_eq!(at.sub, subject_for(&salt, &st, &child.id));
        assert_eq!(at.act.unwrap().sub, subject_for(&salt, &st, &parent.id));
        assert_eq!(at.cnf.unwrap().jkt, "jkt");
        assert_eq!(at.acr.as_deref(), Some("urn:dancu:loa:1"));
        let id: IdTokenClaims = keys
            .verify(t.id_token.as_deref().unwrap(), TYP_ID_TOKEN, now())
            .unwrap();
        assert_eq!(id.nonce.as_deref(), Some("n1"));
        assert_eq!(id.aud, "school");
        assert!(id.act.is_some());
    }

    #[test]
    fn client_credentials_without_openid_has_no_user_claims() {
        let mut rng = StdRng::seed_from_u64(2);
        let cfg = TokenConfig::new("https://id.dancu.example");
        let keys = KeySet::generate(&mut rng, now()).unwrap();
        let (tok, claims) = client_credentials_token(
            &cfg,
            &keys,
            "tax",
            "registry:verify",
            "https://api",
            None,
            &mut rng,
            now(),
        )
        .unwrap();
        let back: AccessTokenClaims = keys.verify(&tok, TYP_ACCESS_TOKEN, now()).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.sub, "tax");
        assert!(back.acr.is_none() && back.act.is_none());
        assert_eq!(cfg.longest_lifetime(), Duration::minutes(5));
    }
}
