//! The holder's second factors over the service: a TOTP authenticator app (enrolled with a
//! secret and an `otpauth://` URI, confirmed by a first code, then asked for at a step-up to
//! level 2) and passkeys (WebAuthn registration bound to the logged-in holder, and login with a
//! passkey inside a pending authorization).
//!
//! Every code or assertion goes through the same login throttles as passcodes (per account
//! and per source address) and into the usage history. WebAuthn challenges are one-time: a
//! ceremony's finish deletes its challenge in the same transaction that reads it, whatever the
//! outcome, so neither a replay nor a second guess can use it again.

use crate::accounts::{bad_credentials, throttled};
use crate::flow::{PENDING_LIFETIME, SessionRec};
use crate::store::{self, hex, kind};
use crate::{AuthorizeStep, Idp, IdpError};
use chrono::{DateTime, Duration, Utc};
use dancu_domain::PersonalId;
use dancu_eid::authn::throttle::{ThrottleDecision, ThrottleState};
use dancu_eid::authn::totp::TotpCredential;
use dancu_eid::b64;
use dancu_eid::history::{AuthenticatorChange, UsageKind};
use dancu_eid::oidc::claims::Amr;
use dancu_eid::oidc::grants::new_token;
use dancu_eid::webauthn::{self, Passkey};
use dancu_store::docs::DocWrite;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long a WebAuthn challenge may be answered.
const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);
/// At most this many passkeys per account.
const MAX_PASSKEYS: usize = 10;

/// The holder's TOTP authenticator as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TotpRecord {
    pub(crate) credential: TotpCredential,
    /// A first code has proved the app holds the secret.
    pub(crate) confirmed: bool,
    created_at: DateTime<Utc>,
}

/// What the holder scans into an authenticator app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://totp/…` URI, for a QR code.
    pub uri: String,
}

/// A passkey assertion as the browser returns it (`navigator.credentials.get`).
#[derive(Debug, Clone)]
pub struct PasskeyAssertion {
    /// The challenge's ID from the options.
    pub challenge_id: String,
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// `clientDataJSON`.
    pub client_data_json: Vec<u8>,
    /// `authenticatorData`.
    pub authenticator_data: Vec<u8>,
    /// The DER signature.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
enum ChallengePurpose {
    /// Adding a passkey to this person's account.
    Register { person: PersonalId },
    /// Logging in within this pending authorization.
    Login { tx: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Challenge {
    purpose: ChallengePurpose,
    challenge: Vec<u8>,
    expires_at: DateTime<Utc>,
}

/// The account's and the source's throttle states with the versions read.
pub(crate) type Throttles = ((ThrottleState, u64), (ThrottleState, u64));

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PasskeyList {
    pub(crate) passkeys: Vec<Passkey>,
}

fn totp_not_started() -> IdpError {
    IdpError::new(
        404,
        "eid_totp_not_enrolled",
        "Chưa đăng ký ứng dụng xác thực; hãy bắt đầu đăng ký trước",
        "No authenticator app is being enrolled; start the enrolment first",
    )
}

fn totp_exists() -> IdpError {
    IdpError::new(
        409,
        "eid_totp_exists",
        "Tài khoản đã có ứng dụng xác thực",
        "The account already has an authenticator app",
    )
}

pub(crate) fn no_account() -> IdpError {
    IdpError::not_found(
        "eid_account_not_found",
        "Công dân chưa có tài khoản định danh điện tử",
        "The person has no e-ID account",
    )
}

fn challenge_unknown() -> IdpError {
    IdpError::new(
        400,
        "eid_webauthn_challenge_unknown",
        "Yêu cầu xác thực bằng khóa truy cập không tồn tại, đã dùng hoặc đã hết hạn",
        "The passkey challenge is unknown, already used or expired",
    )
}

fn passkey_unknown() -> IdpError {
    IdpError::new(
        401,
        "eid_passkey_unknown",
        "Khóa truy cập không được đăng ký cho tài khoản nào",
        "This passkey is not registered to any account",
    )
}

impl Idp {
    pub(crate) fn throttle_pair(
        &self,
        account_key: &str,
        source: &str,
    ) -> Result<Throttles, IdpError> {
        let load = |k: &str| -> Result<(ThrottleState, u64), IdpError> {
            Ok(store::load(self.docs.as_ref(), kind::THROTTLE, k)?.unwrap_or_default())
        };
        let acct = load(account_key)?;
        let src = load(&format!("src:{source}"))?;
        match self.cfg.throttle.check(&acct.0, &src.0, self.now()) {
            ThrottleDecision::Allow => Ok((acct, src)),
            ThrottleDecision::RetryAfter(t) | ThrottleDecision::LockedUntil(t) => Err(throttled(t)),
        }
    }

    /// Records an attempt in both throttles and the usage history; returns the writes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attempt_writes(
        &self,
        person: PersonalId,
        account_key: &str,
        throttles: Throttles,
        source: &str,
        client_id: Option<&str>,
        methods: Vec<Amr>,
        success: bool,
    ) -> Result<Vec<DocWrite>, IdpError> {
        let now = self.now();
        let ((mut acct, acct_v), (mut src, src_v)) = throttles;
        self.cfg.throttle.record(&mut acct, &mut src, success, now);
        Ok(vec![
            store::put(kind::THROTTLE, account_key, acct_v, &acct, None)?,
            store::put(kind::THROTTLE, &format!("src:{source}"), src_v, &src, None)?,
            self.usage_write(
                person,
                UsageKind::Authentication {
                    client_id: client_id.map(str::to_owned),
                    methods,
                    success,
                    source: source.to_owned(),
                },
            )?,
        ])
    }

    // ----- TOTP ----------------------------------------------------------------------------

    /// Whether the person has a confirmed TOTP authenticator.
    pub fn has_totp(&self, id: &PersonalId) -> Result<bool, IdpError> {
        Ok(
            store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &id.to_string())?
                .is_some_and(|(r, _)| r.confirmed),
        )
    }

    /// Starts enrolling an authenticator app: a fresh secret, pending until
    /// [`Idp::confirm_totp`] sees a first code. Starting again replaces a pending secret; a
    /// confirmed authenticator is refused.
    pub fn begin_totp(&self, id: &PersonalId) -> Result<TotpEnrolment, IdpError> {
        let key = id.to_string();
        let account = self.sync_with_register(id)?.ok_or_else(no_account)?;
        account.ensure_unlocked()?;
        let existing = store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &key)?;
        if existing.as_ref().is_some_and(|(r, _)| r.confirmed) {
            return Err(totp_exists());
        }
        let credential = TotpCredential::generate(&mut *self.rng());
        let enrolment = TotpEnrolment {
            secret: dancu_eid::authn::totp::base32(&credential.secret),
            uri: credential.provisioning_uri("dancu", &key),
        };
        let rec = TotpRecord {
            credential,
            confirmed: false,
            created_at: self.now(),
        };
        let version = existing.map_or(0, |(_, v)| v);
        self.docs
            .commit_docs(&[store::put(kind::TOTP, &key, version, &rec, None)?])?;
        Ok(enrolment)
    }

    /// Confirms a pending authenticator app with its first code.
    pub fn confirm_totp(&self, id: &PersonalId, code: &str, source: &str) -> Result<(), IdpError> {
        let key = id.to_string();
        let (mut rec, version) = store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &key)?
            .ok_or_else(totp_not_started)?;
        if rec.confirmed {
            return Err(totp_exists());
        }
        let throttle_key = format!("totp:{key}");
        let throttles = self.throttle_pair(&throttle_key, source)?;
        let result = rec.credential.verify(code, self.now());
        let ok = result.is_ok();
        let mut writes = self.attempt_writes(
            *id,
            &throttle_key,
            throttles,
            source,
            None,
            vec![Amr::Totp],
            ok,
        )?;
        if ok {
            rec.confirmed = true;
            writes.push(store::put(kind::TOTP, &key, version, &rec, None)?);
            writes.push(self.usage_write(
                *id,
                UsageKind::Authenticator {
                    method: Amr::Totp,
                    change: AuthenticatorChange::Added,
                },
            )?);
        }
        self.docs.commit_docs(&writes)?;
        result
            .map(|_| ())
            .map_err(|e| IdpError::from_problem(401, &e))
    }

    /// Checks a code of the person's confirmed authenticator app (a login's second factor).
    pub fn verify_totp(
        &self,
        id: &PersonalId,
        code: &str,
        source: &str,
        client_id: Option<&str>,
    ) -> Result<(), IdpError> {
        let key = id.to_string();
        let (mut rec, version) = store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &key)?
            .filter(|(r, _)| r.confirmed)
            .ok_or_else(totp_not_started)?;
        let throttle_key = format!("totp:{key}");
        let throttles = self.throttle_pair(&throttle_key, source)?;
        let result = rec.credential.verify(code, self.now());
        let ok = result.is_ok();
        let mut writes = self.attempt_writes(
            *id,
            &throttle_key,
            throttles,
            source,
            client_id,
            vec![Amr::Totp],
            ok,
        )?;
        if ok {
            // The step just used is remembered, so the same code cannot be replayed.
            writes.push(store::put(kind::TOTP, &key, version, &rec, None)?);
        }
        self.docs.commit_docs(&writes)?;
        result
            .map(|_| ())
            .map_err(|e| IdpError::from_problem(401, &e))
    }

    // ----- passkeys ------------------------------------------------------------------------

    fn new_challenge(&self, purpose: ChallengePurpose) -> Result<(String, Vec<u8>), IdpError> {
        let (id, challenge) = {
            let mut rng = self.rng();
            let mut c = vec![0u8; 32];
            rand::Rng::fill_bytes(&mut *rng, &mut c);
            (new_token(&mut *rng), c)
        };
        let expires_at = self.now() + CHALLENGE_LIFETIME;
        let rec = Challenge {
            purpose,
            challenge: challenge.clone(),
            expires_at,
        };
        self.docs.commit_docs(&[store::put(
            kind::WEBAUTHN_CHALLENGE,
            &id,
            0,
            &rec,
            Some(expires_at),
        )?])?;
        Ok((id, challenge))
    }

    /// Reads a challenge for `purpose` and returns it with the write that deletes it (commit
    /// that write whatever the ceremony's outcome).
    fn take_challenge(
        &self,
        id: &str,
        purpose: &ChallengePurpose,
    ) -> Result<(Vec<u8>, DocWrite), IdpError> {
        if id.is_empty() || id.len() > 64 {
            return Err(challenge_unknown());
        }
        let (c, version) =
            store::load::<Challenge>(self.docs.as_ref(), kind::WEBAUTHN_CHALLENGE, id)?
                .ok_or_else(challenge_unknown)?;
        if c.purpose != *purpose || c.expires_at <= self.now() {
            return Err(challenge_unknown());
        }
        Ok((
            c.challenge,
            DocWrite::Delete {
                kind: kind::WEBAUTHN_CHALLENGE.to_owned(),
                key: id.to_owned(),
                expected_version: version,
            },
        ))
    }

    pub(crate) fn passkeys(&self, id: &PersonalId) -> Result<(PasskeyList, u64), IdpError> {
        Ok(
            store::load::<PasskeyList>(self.docs.as_ref(), kind::PASSKEYS, &id.to_string())?
                .unwrap_or_default(),
        )
    }

    /// Options of a passkey registration for the holder (`PublicKeyCredentialCreationOptions`
    /// in the JSON form of WebAuthn Level 3), with the ID of its one-time challenge.
    pub fn passkey_registration_options(&self, id: &PersonalId) -> Result<Value, IdpError> {
        let account = self.sync_with_register(id)?.ok_or_else(no_account)?;
        account.ensure_unlocked()?;
        let (list, _) = self.passkeys(id)?;
        let (challenge_id, challenge) =
            self.new_challenge(ChallengePurpose::Register { person: *id })?;
        let user_handle = dancu_eid::oidc::grants::token_hash(&format!("passkey-user:{id}"));
        let exclude: Vec<Value> = list
            .passkeys
            .iter()
            .map(|p| json!({"type": "public-key", "id": b64::encode(&p.credential_id)}))
            .collect();
        Ok(json!({
            "challenge_id": challenge_id,
            "publicKey": {
                "challenge": b64::encode(&challenge),
                "rp": {"id": self.cfg.webauthn.id, "name": "dancu e-ID"},
                "user": {"id": b64::encode(&user_handle), "name": id.to_string(), "displayName": id.to_string()},
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "timeout": CHALLENGE_LIFETIME.num_milliseconds(),
                "attestation": "none",
                "excludeCredentials": exclude,
                "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
            }
        }))
    }

    /// Finishes a passkey registration: checks the challenge (one use), the origin, the RP ID,
    /// user verification and the key, and stores the passkey. Returns its credential ID.
    pub fn register_passkey(
        &self,
        id: &PersonalId,
        challenge_id: &str,
        client_data_json: &[u8],
        attestation_object: &[u8],
    ) -> Result<Vec<u8>, IdpError> {
        let (challenge, consume) =
            self.take_challenge(challenge_id, &ChallengePurpose::Register { person: *id })?;
        let verified = webauthn::verify_registration(
            &self.cfg.webauthn,
            &challenge,
            client_data_json,
            attestation_object,
        );
        let passkey = match verified {
            Ok(p) => p,
            Err(e) => {
                self.docs.commit_docs(&[consume])?;
                return Err(IdpError::from_problem(422, &e));
            }
        };
        let owner_key = hex(&passkey.credential_id);
        let (mut list, version) = self.passkeys(id)?;
        let refusal = if self.docs.get(kind::PASSKEY_OWNER, &owner_key)?.is_some() {
            Some(IdpError::new(
                409,
                "eid_passkey_exists",
                "Khóa truy cập này đã được đăng ký",
                "This passkey is already registered",
            ))
        } else if list.passkeys.len() >= MAX_PASSKEYS {
            Some(IdpError::new(
                409,
                "eid_passkey_limit",
                "Tài khoản đã có số khóa truy cập tối đa",
                "The account already has the most passkeys allowed",
            ))
        } else {
            None
        };
        if let Some(e) = refusal {
            self.docs.commit_docs(&[consume])?;
            return Err(e);
        }
        let credential_id = passkey.credential_id.clone();
        list.passkeys.push(passkey);
        self.docs.commit_docs(&[
            consume,
            store::put(kind::PASSKEYS, &id.to_string(), version, &list, None)?,
            store::put(kind::PASSKEY_OWNER, &owner_key, 0, id, None)?,
            self.usage_write(
                *id,
                UsageKind::Authenticator {
                    method: Amr::Passkey,
                    change: AuthenticatorChange::Added,
                },
            )?,
        ])?;
        Ok(credential_id)
    }

    /// Options of a passkey login within a pending authorization
    /// (`PublicKeyCredentialRequestOptions`; discoverable credentials, so no list of IDs).
    pub fn passkey_login_options(&self, tx: &str) -> Result<Value, IdpError> {
        self.load_pending(tx)?;
        let (challenge_id, challenge) =
            self.new_challenge(ChallengePurpose::Login { tx: tx.to_owned() })?;
        Ok(json!({
            "challenge_id": challenge_id,
            "publicKey": {
                "challenge": b64::encode(&challenge),
                "rpId": self.cfg.webauthn.id,
                "timeout": CHALLENGE_LIFETIME.num_milliseconds(),
                "userVerification": "required",
            }
        }))
    }

    /// Login with a passkey within a pending authorization: the challenge (one use), the
    /// throttles, the signature and the counter; on success a new session (passkey with user
    /// verification counts as two factors) and the next step, as for a passcode login.
    pub fn authorize_passkey(
        &self,
        tx: &str,
        a: &PasskeyAssertion,
        source: &str,
    ) -> Result<(AuthorizeStep, Option<String>), IdpError> {
        let (challenge, consume) = self.take_challenge(
            &a.challenge_id,
            &ChallengePurpose::Login { tx: tx.to_owned() },
        )?;
        let (mut pending, pending_v) = self.load_pending(tx)?;
        let client_id = pending.params.get("client_id").cloned();
        let owner = store::load::<PersonalId>(
            self.docs.as_ref(),
            kind::PASSKEY_OWNER,
            &hex(&a.credential_id),
        )?;
        let Some((person, _)) = owner else {
            self.docs.commit_docs(&[consume])?;
            return Err(passkey_unknown());
        };
        let account = self
            .sync_with_register(&person)?
            .ok_or_else(bad_credentials)?;
        if let Err(e) = account.holder_may_authenticate() {
            self.docs.commit_docs(&[consume])?;
            return Err(e.into());
        }
        let acct_key = format!("acct:{person}");
        let throttles = match self.throttle_pair(&acct_key, source) {
            Ok(t) => t,
            Err(e) => {
                self.docs.commit_docs(&[consume])?;
                return Err(e);
            }
        };
        let (mut list, list_v) = self.passkeys(&person)?;
        let Some(passkey) = list
            .passkeys
            .iter_mut()
            .find(|p| p.credential_id == a.credential_id)
        else {
            self.docs.commit_docs(&[consume])?;
            return Err(passkey_unknown());
        };
        let verified = webauthn::verify_assertion(
            &self.cfg.webauthn,
            passkey,
            &challenge,
            &a.credential_id,
            &a.client_data_json,
            &a.authenticator_data,
            &a.signature,
        );
        let mut methods = vec![Amr::Passkey];
        if let Ok(o) = &verified
            && o.user_verified
        {
            methods.push(Amr::UserVerification);
        }
        let mut writes = self.attempt_writes(
            person,
            &acct_key,
            throttles,
            source,
            client_id.as_deref(),
            methods.clone(),
            verified.is_ok(),
        )?;
        writes.push(consume);
        if let Err(e) = verified {
            self.docs.commit_docs(&writes)?;
            return Err(IdpError::from_problem(401, &e));
        }
        let now = self.now();
        writes.push(store::put(
            kind::PASSKEYS,
            &person.to_string(),
            list_v,
            &list,
            None,
        )?);
        let rec = SessionRec {
            person,
            actor: None,
            amr: methods,
            auth_time: now,
            expires_at: now + self.cfg.session_lifetime,
        };
        let (cookie, w) = self.put_session(None, &rec)?;
        writes.push(w);
        pending.authenticated = true;
        pending.person = Some(person);
        writes.push(store::put(
            kind::AUTHZ,
            tx,
            pending_v,
            &pending,
            Some(now + PENDING_LIFETIME),
        )?);
        self.docs.commit_docs(&writes)?;
        let step = self.advance(tx, Some(&cookie))?;
        Ok((step, Some(cookie)))
    }

    /// The sign counters of the person's passkeys (for tests and the holder's pages).
    pub fn passkey_counters(&self, id: &PersonalId) -> Result<Vec<u32>, IdpError> {
        Ok(self
            .passkeys(id)?
            .0
            .passkeys
            .iter()
            .map(|p| p.sign_count)
            .collect())
    }
}
