//! The holder's own management of their authenticators: changing the passcode (the current
//! one is asked for, under the login throttles), removing the TOTP app, and listing and
//! removing passkeys. Every change goes to the usage history in the same transaction as the
//! change itself.

use crate::factors::{PasskeyList, TotpEnrolment, TotpRecord, no_account};
use crate::store::{self, hex, kind};
use crate::{Idp, IdpError};
use dancu_domain::PersonalId;
use dancu_eid::authn::passcode::{PasscodeCheck, check_new_passcode};
use dancu_eid::history::{AuthenticatorChange, UsageKind};
use dancu_eid::oidc::claims::Amr;
use dancu_store::docs::DocWrite;

/// A passkey as the holder sees it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySummary {
    /// The credential ID in lowercase hex: what a removal names.
    pub id: String,
    /// The authenticator's signature counter.
    pub sign_count: u32,
    /// The passkey is synced to a cloud backup.
    pub backed_up: bool,
}

fn wrong_current() -> IdpError {
    IdpError::new(
        401,
        "eid_passcode_wrong",
        "Mật khẩu hiện tại không đúng",
        "The current passcode is wrong",
    )
}

fn same_passcode() -> IdpError {
    IdpError::new(
        422,
        "eid_passcode_unchanged",
        "Mật khẩu mới phải khác mật khẩu hiện tại",
        "The new passcode must differ from the current one",
    )
}

fn passkey_not_found() -> IdpError {
    IdpError::not_found(
        "eid_passkey_not_found",
        "Không tìm thấy khóa truy cập này trong tài khoản",
        "This passkey is not on the account",
    )
}

impl Idp {
    /// Changes the holder's passcode. The new one is checked first (shape, not trivial, not
    /// the date of birth, not the current one), then the current one under the same throttles
    /// as a login (the attempt is recorded like a login's); only then is the new hash stored.
    pub fn change_passcode(
        &self,
        id: &PersonalId,
        current: &str,
        new: &str,
        source: &str,
    ) -> Result<(), IdpError> {
        let key = id.to_string();
        let account = self.sync_with_register(id)?.ok_or_else(no_account)?;
        account.holder_may_authenticate()?;
        let person = self.person(id)?;
        check_new_passcode(new, Some(&person.date_of_birth))?;
        if new == current {
            return Err(same_passcode());
        }
        let acct_key = format!("acct:{key}");
        let throttles = self.throttle_pair(&acct_key, source)?;
        let (phc, phc_v) = store::load::<String>(self.docs.as_ref(), kind::PASSCODE, &key)?
            .ok_or_else(no_account)?;
        let ok = matches!(
            self.hasher.verify(current, &phc)?,
            PasscodeCheck::Valid { .. }
        );
        let mut writes = self.attempt_writes(
            *id,
            &acct_key,
            throttles,
            source,
            None,
            vec![Amr::Passcode],
            ok,
        )?;
        if !ok {
            self.docs.commit_docs(&writes)?;
            return Err(wrong_current());
        }
        let fresh = self.hasher.hash(new, &mut *self.rng())?;
        writes.push(store::put(kind::PASSCODE, &key, phc_v, &fresh, None)?);
        writes.push(self.usage_write(
            *id,
            UsageKind::Authenticator {
                method: Amr::Passcode,
                change: AuthenticatorChange::Replaced,
            },
        )?);
        self.docs.commit_docs(&writes)?;
        Ok(())
    }

    /// Removes the holder's authenticator app (confirmed or still pending). Returns whether
    /// there was one.
    pub fn remove_totp(&self, id: &PersonalId) -> Result<bool, IdpError> {
        let key = id.to_string();
        let Some((rec, version)) = store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &key)?
        else {
            return Ok(false);
        };
        let mut writes = vec![DocWrite::Delete {
            kind: kind::TOTP.to_owned(),
            key,
            expected_version: version,
        }];
        if rec.confirmed {
            writes.push(self.usage_write(
                *id,
                UsageKind::Authenticator {
                    method: Amr::Totp,
                    change: AuthenticatorChange::Removed,
                },
            )?);
        }
        self.docs.commit_docs(&writes)?;
        Ok(true)
    }

    /// The authenticator app being enrolled, if one was started and not yet confirmed: its
    /// secret and `otpauth://` URI, so the holder can come back to the scan after a wrong code.
    pub fn pending_totp(&self, id: &PersonalId) -> Result<Option<TotpEnrolment>, IdpError> {
        let key = id.to_string();
        Ok(
            store::load::<TotpRecord>(self.docs.as_ref(), kind::TOTP, &key)?
                .filter(|(r, _)| !r.confirmed)
                .map(|(r, _)| TotpEnrolment {
                    secret: dancu_eid::authn::totp::base32(&r.credential.secret),
                    uri: r.credential.provisioning_uri("dancu", &key),
                }),
        )
    }

    /// The holder's passkeys, in the order they were registered.
    pub fn passkey_list(&self, id: &PersonalId) -> Result<Vec<PasskeySummary>, IdpError> {
        Ok(self
            .passkeys(id)?
            .0
            .passkeys
            .iter()
            .map(|p| PasskeySummary {
                id: hex(&p.credential_id),
                sign_count: p.sign_count,
                backed_up: p.backed_up,
            })
            .collect())
    }

    /// Removes one of the holder's passkeys, named by its credential ID in hex; it can no
    /// longer log in from that moment.
    pub fn remove_passkey(&self, id: &PersonalId, credential_hex: &str) -> Result<(), IdpError> {
        let (list, version) = self.passkeys(id)?;
        let before = list.passkeys.len();
        let kept: Vec<_> = list
            .passkeys
            .into_iter()
            .filter(|p| hex(&p.credential_id) != credential_hex)
            .collect();
        if kept.len() == before {
            return Err(passkey_not_found());
        }
        let owner =
            store::load::<PersonalId>(self.docs.as_ref(), kind::PASSKEY_OWNER, credential_hex)?;
        let mut writes = vec![store::put(
            kind::PASSKEYS,
            &id.to_string(),
            version,
            &PasskeyList { passkeys: kept },
            None,
        )?];
        if let Some((_, owner_v)) = owner {
            writes.push(DocWrite::Delete {
                kind: kind::PASSKEY_OWNER.to_owned(),
                key: credential_hex.to_owned(),
                expected_version: owner_v,
            });
        }
        writes.push(self.usage_write(
            *id,
            UsageKind::Authenticator {
                method: Amr::Passkey,
                change: AuthenticatorChange::Removed,
            },
        )?);
        self.docs.commit_docs(&writes)?;
        Ok(())
    }
}
