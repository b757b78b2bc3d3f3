//! Account use-cases: phone proof by one-time code, level-1 self-registration with the face
//! check, the level-2 raise by an officer, passcode login with throttling, the one-time code of
//! a step-up, the locks that follow the register, and the holder's usage history.

use crate::store::{self, kind};
use crate::{Idp, IdpError};
use chrono::{DateTime, Utc};
use dancu_domain::PersonalId;
use dancu_domain::person::Person;
use dancu_eid::account::{
    Account, Actor, Applicant, GuardianBasis, InPersonCheck, Level, Level1Request, LockReason,
    RegistrationContext,
};
use dancu_eid::authn::otp::{self, OtpPurpose, OtpRecord};
use dancu_eid::authn::passcode::{PasscodeCheck, check_new_passcode};
use dancu_eid::authn::throttle::{ThrottleDecision, ThrottleState};
use dancu_eid::face::{DemoFaceVerifier, FaceCapture, FaceReference};
use dancu_eid::history::{UsageEntry, UsageKind};
use dancu_eid::oidc::claims::Amr;
use dancu_eid::oidc::grants::new_token;
use dancu_eid::phone::PhoneNumber;
use dancu_store::docs::DocWrite;

/// A level-1 self-registration as the applicant's device sends it.
#[derive(Debug, Clone)]
pub struct Level1Registration {
    /// The person's ID number.
    pub id: PersonalId,
    /// The mobile number.
    pub phone: String,
    /// The ID of the one-time code sent to it.
    pub otp_id: String,
    /// The code the applicant entered.
    pub code: String,
    /// The live face capture.
    pub face_image: Vec<u8>,
    /// The new six-digit passcode.
    pub passcode: String,
    /// A parent or guardian applying for a minor.
    pub guardian: Option<(PersonalId, GuardianBasis)>,
}

/// What the officer records when raising an account to level 2.
#[derive(Debug, Clone)]
pub struct Level2Raise {
    /// The holder.
    pub id: PersonalId,
    /// The police unit where the check took place.
    pub place: String,
    /// Face compared in person.
    pub face_checked: bool,
    /// Fingerprints taken and compared.
    pub fingerprints_checked: bool,
}

/// A successful passcode login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// Who.
    pub person: PersonalId,
    /// The account's level (what a step-up can reach).
    pub account_level: Level,
    /// Methods used so far.
    pub amr: Vec<Amr>,
}

fn not_in_register(id: &PersonalId) -> IdpError {
    IdpError::not_found(
        "eid_person_not_found",
        &format!("Không tìm thấy công dân {id} trong Cơ sở dữ liệu quốc gia về dân cư"),
        &format!("No person {id} in the national population database"),
    )
}

pub(crate) fn bad_credentials() -> IdpError {
    IdpError::new(
        401,
        "eid_bad_credentials",
        "Số định danh hoặc mật khẩu không đúng",
        "Wrong ID number or passcode",
    )
}

pub(crate) fn throttled(until: DateTime<Utc>) -> IdpError {
    IdpError::new(
        429,
        "eid_throttled",
        &format!(
            "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau {}",
            until.format("%H:%M:%S UTC")
        ),
        &format!(
            "Too many failed logins; try again after {}",
            until.format("%H:%M:%S UTC")
        ),
    )
}

impl Idp {
    pub(crate) fn person(&self, id: &PersonalId) -> Result<Person, IdpError> {
        self.registry
            .store()
            .person(id)?
            .ok_or_else(|| not_in_register(id))
    }

    /// The person's account, if any.
    pub fn account(&self, id: &PersonalId) -> Result<Option<Account>, IdpError> {
        Ok(
            store::load::<Account>(self.docs.as_ref(), kind::ACCOUNT, &id.to_string())?
                .map(|x| x.0),
        )
    }

    /// **Demo.** Records the register's reference image of a person for the demo face verifier
    /// (a real deployment reads it from the card database).
    pub fn set_face_reference(&self, id: &PersonalId, image: &[u8]) -> Result<(), IdpError> {
        self.person(id)?;
        let key = id.to_string();
        let version = self.docs.get(kind::FACE, &key)?.map_or(0, |d| d.version);
        let reference = DemoFaceVerifier::reference_for(image);
        self.docs
            .commit_docs(&[store::put(kind::FACE, &key, version, &reference, None)?])?;
        Ok(())
    }

    fn send_code(&self, purpose: OtpPurpose, phone: &PhoneNumber) -> Result<String, IdpError> {
        let now = self.now();
        let (record, code, id) = {
            let mut rng = self.rng();
            let (r, c) = otp::issue(
                &self.otp_key,
                &mut *rng,
                purpose,
                phone.as_str(),
                now,
                &self.cfg.otp,
            );
            (r, c, new_token(&mut *rng))
        };
        self.docs.commit_docs(&[store::put(
            kind::OTP,
            &id,
            0,
            &record,
            Some(record.expires_at),
        )?])?;
        let text = format!(
            "Ma xac thuc dancu: {} (het han sau {} phut). Khong chia se ma nay.",
            code.digits(),
            self.cfg.otp.lifetime.num_minutes()
        );
        self.sms.send(phone.as_str(), &text).map_err(|e| {
            IdpError::internal(&format!("SMS gateway: {e}"));
            IdpError::new(
                503,
                "eid_sms_unavailable",
                "Không gửi được tin nhắn; vui lòng thử lại sau",
                "The text message could not be sent; please try again later",
            )
        })?;
        Ok(id)
    }

    /// Sends a code proving ownership of `phone`; returns the code's ID for the registration.
    pub fn send_phone_code(&self, phone: &str) -> Result<String, IdpError> {
        let phone = PhoneNumber::parse(phone)?;
        self.send_code(OtpPurpose::PhoneOwnership, &phone)
    }

    fn load_otp(&self, otp_id: &str) -> Result<(OtpRecord, u64), IdpError> {
        store::load::<OtpRecord>(self.docs.as_ref(), kind::OTP, otp_id)?.ok_or_else(|| {
            IdpError::new(
                422,
                "eid_otp_unknown",
                "Mã xác thực không tồn tại hoặc đã hết hạn",
                "Unknown or expired one-time code",
            )
        })
    }

    /// Level-1 self-registration: phone proof, register checks, age rules, face check and the
    /// new passcode, stored with the account in one transaction.
    pub fn register_level1(&self, req: &Level1Registration) -> Result<Account, IdpError> {
        let now = self.now();
        let phone = PhoneNumber::parse(&req.phone)?;
        let (mut rec, otp_version) = self.load_otp(&req.otp_id)?;
        let proof = rec.prove_phone(&self.otp_key, &phone, &req.code, now);
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                // The failed attempt counts: store it before refusing.
                self.docs.commit_docs(&[store::put(
                    kind::OTP,
                    &req.otp_id,
                    otp_version,
                    &rec,
                    Some(rec.expires_at),
                )?])?;
                return Err(e.into());
            }
        };
        let person = self.person(&req.id)?;
        let key = req.id.to_string();
        let existing = self.account(&req.id)?;
        let face: Option<FaceReference> =
            store::load(self.docs.as_ref(), kind::FACE, &key)?.map(|x| x.0);
        let (applicant, guardian_account) = match &req.guardian {
            None => (Applicant::Holder, None),
            Some((gid, basis)) => (
                Applicant::Guardian {
                    id: *gid,
                    basis: basis.clone(),
                },
                self.account(gid)?,
            ),
        };
        let account = Account::register_level1(
            RegistrationContext {
                person: &person,
                face_reference: face.as_ref(),
                existing: existing.as_ref(),
                guardian_account: guardian_account.as_ref(),
            },
            &Level1Request {
                applicant,
                phone: phone.clone(),
                phone_proof: proof,
                face: FaceCapture {
                    image: req.face_image.clone(),
                },
            },
            self.face.as_ref(),
            now,
        )?;
        check_new_passcode(&req.passcode, Some(&person.date_of_birth))?;
        let phc = self.hasher.hash(&req.passcode, &mut *self.rng())?;
        self.docs.commit_docs(&[
            store::put(
                kind::OTP,
                &req.otp_id,
                otp_version,
                &rec,
                Some(rec.expires_at),
            )?,
            store::put(kind::ACCOUNT, &key, 0, &account, None)?,
            store::put(kind::PASSCODE, &key, 0, &phc, None)?,
        ])?;
        Ok(account)
    }

    /// The level-2 raise after an officer's in-person check (officer, place and time recorded).
    pub fn raise_level2(&self, officer: &str, req: &Level2Raise) -> Result<Account, IdpError> {
        let now = self.now();
        let key = req.id.to_string();
        let (mut account, version) =
            store::load::<Account>(self.docs.as_ref(), kind::ACCOUNT, &key)?.ok_or_else(|| {
                IdpError::not_found(
                    "eid_account_not_found",
                    "Công dân chưa có tài khoản định danh điện tử",
                    "The person has no e-ID account",
                )
            })?;
        let person = self.person(&req.id)?;
        let applicant = match account.guardian {
            Some(g) if account.management != dancu_eid::account::Management::Holder => {
                Applicant::Guardian {
                    id: g,
                    basis: GuardianBasis::RecordedParent,
                }
            }
            _ => Applicant::Holder,
        };
        account.raise_to_level2(
            &person,
            &applicant,
            InPersonCheck {
                officer: officer.to_owned(),
                place: req.place.clone(),
                at: now,
                face_checked: req.face_checked,
                fingerprints_checked: req.fingerprints_checked,
            },
            now,
        )?;
        self.docs
            .commit_docs(&[store::put(kind::ACCOUNT, &key, version, &account, None)?])?;
        Ok(account)
    }

    /// Sets (`set`) or lifts a lock by hand, with a usage entry: the holder's own lock (by the
    /// holder, the guardian, or an officer at the holder's request; lifted at once), a terms
    /// breach or an authority's decision (officers; an authority's lock and its lifting need the
    /// decision's reference). Locks that follow the register (death, card revoked) are refused
    /// here: they come and go with the register. Setting a lock already in force changes nothing.
    pub fn change_lock(
        &self,
        id: &PersonalId,
        by: Actor,
        reason: LockReason,
        decision_ref: Option<&str>,
        set: bool,
    ) -> Result<Account, IdpError> {
        let key = id.to_string();
        let (mut account, version) =
            store::load::<Account>(self.docs.as_ref(), kind::ACCOUNT, &key)?.ok_or_else(|| {
                IdpError::not_found(
                    "eid_account_not_found",
                    "Công dân chưa có tài khoản định danh điện tử",
                    "The person has no e-ID account",
                )
            })?;
        let now = self.now();
        let changed = if set {
            account.lock(reason, by, decision_ref, now)?
        } else {
            !account.unlock(reason, &by, decision_ref)?.is_empty()
        };
        if changed {
            self.docs.commit_docs(&[
                store::put(kind::ACCOUNT, &key, version, &account, None)?,
                store::usage(&UsageEntry {
                    person: *id,
                    at: now,
                    kind: UsageKind::Lock { reason, set },
                })?,
            ])?;
        }
        Ok(account)
    }

    /// Brings the account's register-following locks in line with the register (death, card
    /// revoked) and stores what changed, with a usage entry per change.
    pub fn sync_with_register(&self, id: &PersonalId) -> Result<Option<Account>, IdpError> {
        let key = id.to_string();
        let Some((mut account, version)) =
            store::load::<Account>(self.docs.as_ref(), kind::ACCOUNT, &key)?
        else {
            return Ok(None);
        };
        let person = self.person(id)?;
        let now = self.now();
        let sync = account.follow_register(&person, now);
        if sync.locked.is_empty() && sync.unlocked.is_empty() {
            return Ok(Some(account));
        }
        let mut writes = vec![store::put(kind::ACCOUNT, &key, version, &account, None)?];
        for (reasons, set) in [(&sync.locked, true), (&sync.unlocked, false)] {
            for r in reasons {
                writes.push(store::usage(&UsageEntry {
                    person: *id,
                    at: now,
                    kind: UsageKind::Lock { reason: *r, set },
                })?);
            }
        }
        self.docs.commit_docs(&writes)?;
        Ok(Some(account))
    }

    fn throttle_state(&self, key: &str) -> Result<(ThrottleState, u64), IdpError> {
        Ok(store::load(self.docs.as_ref(), kind::THROTTLE, key)?.unwrap_or_default())
    }

    /// Passcode login: register locks first, then the throttles (per account and per source
    /// address), then the passcode; every attempt goes to the usage history.
    pub fn login_passcode(
        &self,
        id: &PersonalId,
        passcode: &str,
        source: &str,
        client_id: Option<&str>,
    ) -> Result<LoginOutcome, IdpError> {
        let now = self.now();
        let key = id.to_string();
        let account = self.sync_with_register(id)?.ok_or_else(bad_credentials)?;
        account.holder_may_authenticate()?;
        let acct_key = format!("acct:{key}");
        let src_key = format!("src:{source}");
        let (mut acct, acct_v) = self.throttle_state(&acct_key)?;
        let (mut src, src_v) = self.throttle_state(&src_key)?;
        match self.cfg.throttle.check(&acct, &src, now) {
            ThrottleDecision::Allow => {}
            ThrottleDecision::RetryAfter(t) | ThrottleDecision::LockedUntil(t) => {
                return Err(throttled(t));
            }
        }
        let (phc, phc_v) = store::load::<String>(self.docs.as_ref(), kind::PASSCODE, &key)?
            .ok_or_else(bad_credentials)?;
        let check = self.hasher.verify(passcode, &phc)?;
        let ok = matches!(check, PasscodeCheck::Valid { .. });
        let mut rehash = match check {
            PasscodeCheck::Valid { needs_rehash: true } => {
                Some(self.hasher.hash(passcode, &mut *self.rng())?)
            }
            _ => None,
        };
        let (mut acct_v, mut src_v) = (acct_v, src_v);
        // The throttle records are shared (a source's by everyone behind one address): when
        // another login updated one meanwhile, read them again and record this attempt on the
        // fresh state. The passcode is not checked twice.
        let mut retries = 0;
        loop {
            self.cfg.throttle.record(&mut acct, &mut src, ok, now);
            let mut writes = vec![
                store::put(kind::THROTTLE, &acct_key, acct_v, &acct, None)?,
                store::put(kind::THROTTLE, &src_key, src_v, &src, None)?,
                store::usage(&UsageEntry {
                    person: *id,
                    at: now,
                    kind: UsageKind::Authentication {
                        client_id: client_id.map(str::to_owned),
                        methods: vec![Amr::Passcode],
                        success: ok,
                        source: source.to_owned(),
                    },
                })?,
            ];
            if let Some(fresh) = &rehash {
                writes.push(store::put(kind::PASSCODE, &key, phc_v, fresh, None)?);
            }
            match self.docs.commit_docs(&writes) {
                Ok(_) => break,
                Err(
                    dancu_store::StoreError::Conflict { .. } | dancu_store::StoreError::Exists(_),
                ) if retries < 8 => {
                    retries += 1;
                    (acct, acct_v) = self.throttle_state(&acct_key)?;
                    (src, src_v) = self.throttle_state(&src_key)?;
                    // Another login may have stored a fresh hash already; it can wait.
                    rehash = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !ok {
            return Err(bad_credentials());
        }
        Ok(LoginOutcome {
            person: *id,
            account_level: account.level,
            amr: vec![Amr::Passcode],
        })
    }

    /// Sends a login code to the account's phone (the second factor of a level-2 login);
    /// returns the code's ID and the masked number to show.
    pub fn send_login_code(&self, id: &PersonalId) -> Result<(String, String), IdpError> {
        let account = self.account(id)?.ok_or_else(bad_credentials)?;
        let otp_id = self.send_code(OtpPurpose::Login, &account.phone)?;
        Ok((otp_id, account.phone.masked()))
    }

    /// Checks a login code sent by [`Idp::send_login_code`] to the account of `id`.
    pub fn verify_login_code(
        &self,
        id: &PersonalId,
        otp_id: &str,
        code: &str,
        source: &str,
        client_id: Option<&str>,
    ) -> Result<(), IdpError> {
        let now = self.now();
        let account = self.account(id)?.ok_or_else(bad_credentials)?;
        let (mut rec, v) = self.load_otp(otp_id)?;
        let result = if rec.target == account.phone.as_str() {
            rec.verify(&self.otp_key, OtpPurpose::Login, code, now)
                .map_err(IdpError::from)
        } else {
            Err(bad_credentials())
        };
        self.docs.commit_docs(&[
            store::put(kind::OTP, otp_id, v, &rec, Some(rec.expires_at))?,
            store::usage(&UsageEntry {
                person: *id,
                at: now,
                kind: UsageKind::Authentication {
                    client_id: client_id.map(str::to_owned),
                    methods: vec![Amr::Sms],
                    success: result.is_ok(),
                    source: source.to_owned(),
                },
            })?,
        ])?;
        result
    }

    /// The holder's usage history, newest first.
    pub fn usage_history(&self, id: &PersonalId, limit: u32) -> Result<Vec<UsageEntry>, IdpError> {
        self.docs
            .usage(&id.to_string(), None, None, limit)?
            .iter()
            .map(|r| serde_json::from_str(&r.json).map_err(|e| IdpError::internal(&e.to_string())))
            .collect()
    }

    pub(crate) fn usage_write(
        &self,
        person: PersonalId,
        kind: UsageKind,
    ) -> Result<DocWrite, IdpError> {
        store::usage(&UsageEntry {
            person,
            at: self.now(),
            kind,
        })
    }
}
