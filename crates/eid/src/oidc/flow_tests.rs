//! The building blocks composed into whole flows, as the HTTP layer will compose them: PAR with
//! DPoP, authorization, step-up, code exchange, refresh rotation, and code reuse revoking what
//! the first exchange issued.

use super::authorize::{Client, ClientAuth, validate_authorization_request};
use super::claims::{
    ACR_LEVEL_2, AccessTokenClaims, Amr, IdTokenClaims, TYP_ACCESS_TOKEN, TYP_ID_TOKEN,
    achieved_level,
};
use super::client_auth::{AssertionCheck, JWT_BEARER, verify_client_assertion};
use super::dpop::{DpopPolicy, DpopRequest, access_token_hash, verify_dpop_proof};
use super::grants::{
    AuthorizationCode, CodeRedemption, Grant, RefreshFamily, RefreshPolicy, RevokedBy,
};
use super::issue::{TokenConfig, user_tokens};
use super::jws::{Jwk, KeySet, sign_es256};
use super::par::{PAR_LIFETIME, PushedRequest};
use super::session::{AuthRequirements, Interaction, Session, next_interaction};
use super::subject::{SubjectSalt, SubjectType};
use super::{OidcError, pkce};
use crate::account::Level;
use chrono::{DateTime, Duration, TimeZone, Utc};
use dancu_domain::PersonalId;
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::Generate;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashSet};

const ISSUER: &str = "https://id.dancu.example";
const PAR_URL: &str = "https://id.dancu.example/par";
const TOKEN_URL: &str = "https://id.dancu.example/token";
const USERINFO_URL: &str = "https://id.dancu.example/userinfo";
const CB: &str = "https://bank.example/cb";
const VERIFIER: &str = "a-very-long-random-code-verifier-0123456789abcdef";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
}

struct Rp {
    client_key: SigningKey,
    dpop_key: SigningKey,
    client: Client,
}

fn rp(rng: &mut StdRng) -> Rp {
    let client_key = SigningKey::generate_from_rng(rng);
    let dpop_key = SigningKey::generate_from_rng(rng);
    let client = Client {
        id: "bank".into(),
        name: "Ngân hàng".into(),
        redirect_uris: vec![CB.into()],
        auth: ClientAuth::PrivateKeyJwt {
            jwks: vec![Jwk::from_p256(client_key.verifying_key())],
        },
        require_par: true,
        require_dpop: true,
        subject_type: SubjectType::Pairwise {
            sector: "bank.example".into(),
        },
        allowed_scopes: vec!["openid".into()],
        machine: false,
    };
    Rp {
        client_key,
        dpop_key,
        client,
    }
}

impl Rp {
    fn assertion(&self, jti: &str, now: DateTime<Utc>) -> String {
        let c = serde_json::json!({
            "iss": "bank", "sub": "bank", "aud": ISSUER, "jti": jti,
            "iat": now.timestamp(), "exp": now.timestamp() + 60,
        });
        sign_es256(&self.client_key, "JWT", None, false, &c).unwrap()
    }

    fn dpop(
        &self,
        htm: &str,
        htu: &str,
        token: Option<&str>,
        jti: &str,
        now: DateTime<Utc>,
    ) -> String {
        let mut c = serde_json::json!({"jti": jti, "htm": htm, "htu": htu, "iat": now.timestamp()});
        if let Some(t) = token {
            c["ath"] = access_token_hash(t).into();
        }
        sign_es256(&self.dpop_key, "dpop+jwt", None, true, &c).unwrap()
    }
}

fn authenticate_client(
    rp: &Rp,
    assertion: &str,
    url: &str,
    seen: &mut HashSet<String>,
    now: DateTime<Utc>,
) -> Result<(), OidcError> {
    let ClientAuth::PrivateKeyJwt { jwks } = &rp.client.auth else {
        unreachable!()
    };
    let check = AssertionCheck {
        client_id: &rp.client.id,
        keys: jwks,
        audiences: &[ISSUER, url],
        max_lifetime: Duration::minutes(5),
        leeway: Duration::seconds(5),
    };
    verify_client_assertion(assertion, Some(JWT_BEARER), &check, now, |j, _| {
        !seen.insert(j.to_owned())
    })
    .map(|_| ())
}

#[test]
fn par_dpop_step_up_code_exchange_refresh_and_code_reuse() {
    let mut rng = StdRng::seed_from_u64(42);
    let rp = rp(&mut rng);
    let keys = KeySet::generate(&mut rng, t0()).unwrap();
    let cfg = TokenConfig::new(ISSUER);
    let salt = SubjectSalt::new([7; 32]);
    let mut seen_assertions = HashSet::new();
    let mut seen_proofs = HashSet::new();
    let now = t0();

    // 1. PAR: client authenticates with private_key_jwt; its DPoP proof gives the key to bind.
    authenticate_client(
        &rp,
        &rp.assertion("a1", now),
        PAR_URL,
        &mut seen_assertions,
        now,
    )
    .unwrap();
    let proof = rp.dpop("POST", PAR_URL, None, "p1", now);
    let dpop = verify_dpop_proof(
        &proof,
        &DpopRequest {
            method: "POST",
            url: PAR_URL,
            access_token: None,
            expected_jkt: None,
            nonce: None,
        },
        now,
        &DpopPolicy::default(),
        |j, _| !seen_proofs.insert(j.to_owned()),
    )
    .unwrap();
    let mut params: BTreeMap<String, String> = [
        ("client_id", "bank"),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "xyz"),
        ("nonce", "n-123"),
        ("code_challenge_method", "S256"),
        ("acr_values", ACR_LEVEL_2),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    params.insert("code_challenge".into(), pkce::challenge_s256(VERIFIER));
    params.insert("dpop_jkt".into(), dpop.jkt.clone());
    let (mut pushed, request_uri) = PushedRequest::push(
        &mut rng,
        "bank",
        serde_json::to_value(&params).unwrap(),
        now,
        PAR_LIFETIME,
    );

    // 2. The browser arrives with the request_uri; without PAR the client would be refused.
    assert!(validate_authorization_request(Some(&rp.client), &params, false).is_err());
    let taken: BTreeMap<String, String> =
        serde_json::from_value(pushed.take(&request_uri, "bank", now).unwrap().clone()).unwrap();
    let req = validate_authorization_request(Some(&rp.client), &taken, true).unwrap();

    // 3. A level-1 session (passcode only) on a level-2 account must step up.
    let person = PersonalId::parse("001090000001").unwrap();
    let session = Session {
        level: achieved_level(Level::Two, &[Amr::Passcode]),
        auth_time: now,
    };
    let reqs = AuthRequirements {
        acr_values: req.acr_values.clone(),
        ..Default::default()
    };
    assert_eq!(
        next_interaction(Some(&session), Some(Level::Two), &reqs, true, now),
        Ok(Interaction::StepUp { to: Level::Two })
    );
    let methods = [Amr::Passcode, Amr::Sms];
    let session = Session {
        level: achieved_level(Level::Two, &methods),
        auth_time: now,
    };
    let reqs = AuthRequirements {
        authenticated_in_this_request: true,
        ..reqs
    };
    assert_eq!(
        next_interaction(Some(&session), Some(Level::Two), &reqs, true, now),
        Ok(Interaction::Proceed { level: Level::Two })
    );

    // 4. Code issued, bound to the DPoP key from PAR.
    let grant = Grant {
        id: "grant-1".into(),
        client_id: req.client_id.clone(),
        person,
        actor: None,
        scope: req.scopes.join(" "),
        level: session.level,
        amr: methods.to_vec(),
        auth_time: session.auth_time,
        dpop_jkt: req.dpop_jkt.clone(),
    };
    let (mut code_rec, code) = AuthorizationCode::issue(
        &mut rng,
        grant,
        req.redirect_uri.clone(),
        req.code_challenge.clone(),
        req.nonce.clone(),
        now,
    );
    assert_eq!(code_rec.code_hash, super::grants::token_hash(&code));

    // 5. Token request: client assertion (a replay is refused), DPoP proof, code + verifier.
    let later = now + Duration::seconds(5);
    let a2 = rp.assertion("a2", later);
    authenticate_client(&rp, &a2, TOKEN_URL, &mut seen_assertions, later).unwrap();
    assert_eq!(
        authenticate_client(&rp, &a2, TOKEN_URL, &mut seen_assertions, later),
        Err(OidcError::Replay)
    );
    let proof = rp.dpop("POST", TOKEN_URL, None, "p2", later);
    let dpop = verify_dpop_proof(
        &proof,
        &DpopRequest {
            method: "POST",
            url: TOKEN_URL,
            access_token: None,
            expected_jkt: None,
            nonce: None,
        },
        later,
        &DpopPolicy::default(),
        |j, _| !seen_proofs.insert(j.to_owned()),
    )
    .unwrap();
    let redemption = CodeRedemption {
        client_id: "bank",
        redirect_uri: Some(CB),
        code_verifier: Some(VERIFIER),
        dpop_jkt: Some(&dpop.jkt),
    };
    let grant = code_rec.redeem(&redemption, later).unwrap().clone();
    let tokens = user_tokens(
        &cfg,
        &keys,
        &salt,
        &rp.client.subject_type,
        &grant,
        code_rec.nonce.as_deref(),
        "https://api.bank.example",
        &mut rng,
        later,
    )
    .unwrap();
    let (mut family, refresh) =
        RefreshFamily::start(&mut rng, grant.clone(), later, &RefreshPolicy::default());

    // The relying party's checks on the ID token.
    let id: IdTokenClaims = keys
        .verify(tokens.id_token.as_deref().unwrap(), TYP_ID_TOKEN, later)
        .unwrap();
    assert_eq!(
        (
            id.iss.as_str(),
            id.aud.as_str(),
            id.nonce.as_deref(),
            id.acr.as_str()
        ),
        (ISSUER, "bank", Some("n-123"), ACR_LEVEL_2)
    );
    let at: AccessTokenClaims = keys
        .verify(&tokens.access_token, TYP_ACCESS_TOKEN, later)
        .unwrap();
    assert_eq!(at.cnf.as_ref().unwrap().jkt, dpop.jkt);

    // 6. Userinfo with the DPoP-bound token: the proof must carry ath and the bound key.
    let ui = DpopRequest {
        method: "GET",
        url: USERINFO_URL,
        access_token: Some(&tokens.access_token),
        expected_jkt: Some(&dpop.jkt),
        nonce: None,
    };
    let good = rp.dpop("GET", USERINFO_URL, Some(&tokens.access_token), "p3", later);
    assert!(
        verify_dpop_proof(&good, &ui, later, &DpopPolicy::default(), |j, _| {
            !seen_proofs.insert(j.to_owned())
        })
        .is_ok()
    );
    let no_ath = rp.dpop("GET", USERINFO_URL, None, "p4", later);
    assert!(
        verify_dpop_proof(&no_ath, &ui, later, &DpopPolicy::default(), |j, _| {
            !seen_proofs.insert(j.to_owned())
        })
        .is_err()
    );

    // 7. Refresh rotates, bound to the same key.
    let r2 = family
        .rotate(
            &mut rng,
            &refresh,
            "bank",
            Some(&dpop.jkt),
            later,
            &RefreshPolicy::default(),
        )
        .unwrap();
    assert_ne!(r2, refresh);

    // 8. The code comes back (an attacker replays it): refused, and the caller revokes every
    //    token of the grant — here, the refresh family; access tokens by grant ID.
    let err = code_rec.redeem(&redemption, later).unwrap_err();
    assert_eq!(err, OidcError::CodeReused);
    assert_eq!(family.grant.id, code_rec.grant.id);
    family.revoke(RevokedBy::CodeReuse);
    assert_eq!(
        family.rotate(
            &mut rng,
            &r2,
            "bank",
            Some(&dpop.jkt),
            later,
            &RefreshPolicy::default()
        ),
        Err(OidcError::InvalidRefreshToken)
    );

    // 9. The pushed request URI was single-use.
    assert!(pushed.take(&request_uri, "bank", later).is_err());
}
