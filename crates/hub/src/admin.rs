//! The rights administration: members, their subsystems, the subsystems' keys and the access
//! rights, listed, added and revoked while the hub runs.
//!
//! Every change goes through [`Hub::update_config`]: it is checked whole, written to the
//! configuration file when the hub has one, and then seen by the very next call. So a revoked
//! key stops both its client assertions and the access tokens it obtained, and a revoked right
//! refuses the next call (`no_right` / `wrong_purpose`); nothing waits for a restart.
//! Revoking a member or a subsystem takes its rights and change-event subscriptions with it.

use crate::members::{ClientKey, HubConfig, Member, Subsystem};
use crate::service::{Hub, HubError};
use chrono::{DateTime, Utc};
use dancu_eid::oidc::jws::Jwk;
use dancu_exchange::rights::AccessRight;
use serde::{Deserialize, Serialize};

/// A member to add.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Identifier, e.g. `bank-vcb`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Class: `ministry`, `province`, `bank`, `telecom`, ...
    pub class: String,
}

/// A key to register for a subsystem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Member.
    pub org: String,
    /// Subsystem.
    pub subsystem: String,
    /// The public key (ES256 P-256 or RS256).
    pub jwk: Jwk,
    /// The key may not authenticate calls from this instant on.
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
}

/// A registered key as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// RFC 7638 thumbprint, the key's identifier in this API.
    pub kid: String,
    /// The public key.
    pub jwk: Jwk,
    /// Its expiry, if any.
    pub not_after: Option<DateTime<Utc>>,
}

/// A subsystem as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SubsystemView {
    /// Identifier.
    pub id: String,
    /// Its keys.
    pub keys: Vec<KeyView>,
}

/// A member as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Class.
    pub class: String,
    /// Its subsystems.
    pub subsystems: Vec<SubsystemView>,
}

/// Members and rights as the admin API lists them.
#[derive(Debug, Clone, Serialize)]
pub struct RightsView {
    /// Members with subsystems and keys.
    pub members: Vec<MemberView>,
    /// Access rights.
    pub rights: Vec<AccessRight>,
}

fn invalid(code: &'static str, vi: String, en: String) -> HubError {
    HubError::Invalid { code, vi, en }
}

fn not_found(code: &'static str, what_vi: &str, what_en: &str, id: &str) -> HubError {
    HubError::NotFound {
        code,
        vi: format!("Không có {what_vi} {id}"),
        en: format!("No {what_en} {id}"),
    }
}

fn exists(code: &'static str, what_vi: &str, what_en: &str, id: &str) -> HubError {
    HubError::Conflict {
        code,
        vi: format!("Đã có {what_vi} {id}"),
        en: format!("The {what_en} {id} exists already"),
    }
}

/// Identifiers: 1 to 64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
fn check_id(what: &'static str, id: &str) -> Result<(), HubError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_identifier",
            format!(
                "Mã {what} không hợp lệ: cần 1–64 ký tự a-z, 0-9, '.', '_', '-' (đã gửi {id:?})"
            ),
            format!(
                "Invalid {what} identifier: 1-64 characters of a-z, 0-9, '.', '_', '-' (got {id:?})"
            ),
        ))
    }
}

fn check_text(field: &'static str, s: &str) -> Result<(), HubError> {
    if s.trim().is_empty() || s.len() > 500 {
        return Err(invalid(
            "invalid_field",
            format!("Trường {field} không được để trống và tối đa 500 ký tự"),
            format!("{field} must be non-empty and at most 500 characters"),
        ));
    }
    Ok(())
}

fn subsystem_mut<'a>(
    c: &'a mut HubConfig,
    org: &str,
    sub: &str,
) -> Result<&'a mut Subsystem, HubError> {
    let m = c
        .members
        .iter_mut()
        .find(|m| m.id == org)
        .ok_or_else(|| not_found("member_not_found", "thành viên", "member", org))?;
    m.subsystems
        .iter_mut()
        .find(|s| s.id == sub)
        .ok_or_else(|| {
            not_found(
                "subsystem_not_found",
                "hệ thống kết nối",
                "subsystem",
                &format!("{org}/{sub}"),
            )
        })
}

fn thumbprint(jwk: &Jwk) -> String {
    jwk.thumbprint().unwrap_or_default()
}

impl Hub {
    /// Members, subsystems, keys (with their thumbprints) and rights as they stand.
    pub fn admin_list(&self) -> RightsView {
        let c = self.config();
        RightsView {
            members: c
                .members
                .iter()
                .map(|m| MemberView {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    class: m.class.clone(),
                    subsystems: m
                        .subsystems
                        .iter()
                        .map(|s| SubsystemView {
                            id: s.id.clone(),
                            keys: s
                                .keys
                                .iter()
                                .map(|k| KeyView {
                                    kid: thumbprint(&k.jwk),
                                    jwk: k.jwk.clone(),
                                    not_after: k.not_after,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            rights: c.rights.clone(),
        }
    }

    /// Adds a member (without subsystems).
    pub fn admin_add_member(&self, m: NewMember) -> Result<(), HubError> {
        check_id("thành viên / member", &m.id)?;
        check_text("name", &m.name)?;
        check_id("loại thành viên / member class", &m.class)?;
        self.update_config(|c| {
            if c.member(&m.id).is_some() {
                return Err(exists("member_exists", "thành viên", "member", &m.id));
            }
            c.members.push(Member {
                id: m.id,
                name: m.name.trim().to_owned(),
                class: m.class,
                subsystems: Vec::new(),
            });
            Ok(())
        })
    }

    /// Revokes a member with its subsystems, keys, rights and subscriptions.
    pub fn admin_revoke_member(&self, org: &str) -> Result<(), HubError> {
        self.update_config(|c| {
            let before = c.members.len();
            c.members.retain(|m| m.id != org);
            if c.members.len() == before {
                return Err(not_found("member_not_found", "thành viên", "member", org));
            }
            c.rights.retain(|r| r.org != org);
            c.subscriptions.retain(|s| s.org != org);
            Ok(())
        })
    }

    /// Adds a subsystem (without keys) to a member.
    pub fn admin_add_subsystem(&self, org: &str, id: &str) -> Result<(), HubError> {
        check_id("hệ thống kết nối / subsystem", id)?;
        self.update_config(|c| {
            let m = c
                .members
                .iter_mut()
                .find(|m| m.id == org)
                .ok_or_else(|| not_found("member_not_found", "thành viên", "member", org))?;
            if m.subsystems.iter().any(|s| s.id == id) {
                return Err(exists(
                    "subsystem_exists",
                    "hệ thống kết nối",
                    "subsystem",
                    &format!("{org}/{id}"),
                ));
            }
            m.subsystems.push(Subsystem {
                id: id.to_owned(),
                keys: Vec::new(),
            });
            Ok(())
        })
    }

    /// Revokes a subsystem with its keys, rights and subscriptions.
    pub fn admin_revoke_subsystem(&self, org: &str, id: &str) -> Result<(), HubError> {
        self.update_config(|c| {
            subsystem_mut(c, org, id)?;
            if let Some(m) = c.members.iter_mut().find(|m| m.id == org) {
                m.subsystems.retain(|s| s.id != id);
            }
            c.rights.retain(|r| !(r.org == org && r.subsystem == id));
            c.subscriptions
                .retain(|s| !(s.org == org && s.subsystem == id));
            Ok(())
        })
    }

    /// Registers a public key for a subsystem; answers its thumbprint (its `kid` here).
    pub fn admin_add_key(&self, k: NewKey) -> Result<String, HubError> {
        if !k.jwk.is_usable_public_key() {
            return Err(invalid(
                "invalid_key",
                "Khóa không hợp lệ: cần khóa công khai P-256 (EC) hoặc RSA, không kèm phần bí mật"
                    .into(),
                "Invalid key: a P-256 (EC) or RSA public key without a private part is required"
                    .into(),
            ));
        }
        let kid = thumbprint(&k.jwk);
        self.update_config(|c| {
            let s = subsystem_mut(c, &k.org, &k.subsystem)?;
            if s.keys.iter().any(|x| thumbprint(&x.jwk) == kid) {
                return Err(exists("key_exists", "khóa", "key", &kid));
            }
            s.keys.push(ClientKey {
                jwk: k.jwk,
                not_after: k.not_after,
            });
            Ok(())
        })?;
        Ok(kid)
    }

    /// Revokes a subsystem's key by its thumbprint: its client assertions and the access
    /// tokens it obtained stop working at once.
    pub fn admin_revoke_key(&self, org: &str, sub: &str, kid: &str) -> Result<(), HubError> {
        self.update_config(|c| {
            let s = subsystem_mut(c, org, sub)?;
            let before = s.keys.len();
            s.keys.retain(|k| thumbprint(&k.jwk) != kid);
            if s.keys.len() == before {
                return Err(not_found("key_not_found", "khóa", "key", kid));
            }
            Ok(())
        })
    }

    /// Grants an access right to a subsystem.
    pub fn admin_add_right(&self, r: AccessRight) -> Result<(), HubError> {
        check_id("quyền / right", &r.id)?;
        check_id("dịch vụ / service", &r.service)?;
        check_id("mục đích / purpose", &r.purpose)?;
        check_text("legal_basis", &r.legal_basis)?;
        if r.fields.is_empty() || r.fields.iter().any(|f| check_id("field", f).is_err()) {
            return Err(invalid(
                "invalid_fields",
                "Cần nêu ít nhất một trường, mỗi trường là mã a-z, 0-9, '.', '_', '-'".into(),
                "Name at least one field, each an identifier of a-z, 0-9, '.', '_', '-'".into(),
            ));
        }
        if r.quota.is_some_and(|q| q.limit == 0)
            || r.rate.is_some_and(|x| x.per_second == 0 || x.burst == 0)
        {
            return Err(invalid(
                "invalid_limits",
                "Hạn mức và tốc độ phải lớn hơn 0 (bỏ trống nếu không giới hạn)".into(),
                "Quota limit, rate and burst must be above 0 (leave them out for no limit)".into(),
            ));
        }
        self.update_config(|c| {
            if c.rights.iter().any(|x| x.id == r.id) {
                return Err(exists("right_exists", "quyền", "right", &r.id));
            }
            subsystem_mut(c, &r.org, &r.subsystem)?;
            c.rights.push(r);
            Ok(())
        })
    }

    /// Revokes an access right: the next call it would have allowed is refused.
    pub fn admin_revoke_right(&self, id: &str) -> Result<(), HubError> {
        self.update_config(|c| {
            let before = c.rights.len();
            c.rights.retain(|r| r.id != id);
            if c.rights.len() == before {
                return Err(not_found("right_not_found", "quyền", "right", id));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::audit::AuditSettings;
    use dancu_domain::Problem;
    use dancu_domain::clock::{Clock, SystemClock};
    use std::sync::Arc;

    #[test]
    fn changes_are_written_to_the_configuration_file_and_refused_ones_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.json");
        HubConfig::default().save(&path).unwrap();
        let (store, docs) =
            dancu_store::docs::open_with_docs(dir.path().join("db.sqlite3").to_str().unwrap())
                .unwrap();
        let hub = Hub::open(
            HubConfig::load(&path).unwrap(),
            store,
            docs,
            Arc::new(SystemClock) as Arc<dyn Clock>,
            &dir.path().join("audit"),
            &dir.path().join("hub"),
            AuditSettings::default(),
        )
        .unwrap()
        .with_config_file(&path);
        hub.admin_add_member(NewMember {
            id: "bank-b".into(),
            name: "Ngân hàng B".into(),
            class: "bank".into(),
        })
        .unwrap();
        hub.admin_add_subsystem("bank-b", "app").unwrap();
        let saved = HubConfig::load(&path).unwrap();
        assert_eq!(
            saved.subsystem("bank-b", "app").map(|s| s.keys.len()),
            Some(0)
        );
        let before = std::fs::read(&path).unwrap();
        let e = hub.admin_add_subsystem("bank-b", "app").unwrap_err();
        assert_eq!((e.status(), e.code()), (409, "subsystem_exists"));
        let e = hub.admin_revoke_right("none").unwrap_err();
        assert_eq!((e.status(), e.code()), (404, "right_not_found"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(*hub.config(), saved);
    }
}
