//! Members (thành viên), their subsystems (hệ thống thông tin kết nối) with registered public
//! keys, and the access rights, as one JSON document the operator writes (`hub.json` in the
//! data directory, or the file the configuration names).
//!
//! A subsystem authenticates every call with a `private_key_jwt` client assertion signed by
//! one of its keys: `iss` = `sub` = `<member id>/<subsystem id>`, `aud` one of the hub's
//! audiences, a short lifetime and a `jti` never seen before.

use crate::events::Subscription;
use chrono::{DateTime, Utc};
use dancu_eid::oidc::jws::Jwk;
use dancu_exchange::rights::AccessRight;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The audience a client assertion must name unless the file says otherwise.
pub const DEFAULT_AUDIENCE: &str = "urn:dancu:hub";

/// A key registered for a subsystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    /// The public key (ES256 P-256, or RS256).
    pub jwk: Jwk,
    /// The key may not authenticate calls from this instant on.
    #[serde(default)]
    pub not_after: Option<DateTime<Utc>>,
}

/// A client system of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subsystem {
    /// Identifier, unique within the member.
    pub id: String,
    /// Registered keys.
    pub keys: Vec<ClientKey>,
}

/// A member organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Identifier, e.g. `bank-vcb`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Class: `ministry`, `province`, `bank`, `telecom`, ... (fees may exempt a class).
    pub class: String,
    /// Its subsystems.
    pub subsystems: Vec<Subsystem>,
}

/// The hub's members and rights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Audiences accepted in client assertions (default: [`DEFAULT_AUDIENCE`]).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Member classes exempt from fees.
    #[serde(default)]
    pub fee_exempt_classes: BTreeSet<String>,
    /// Members.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Access rights.
    #[serde(default)]
    pub rights: Vec<AccessRight>,
    /// Change-event subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

impl HubConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let c: Self =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// Writes the configuration to `path` as pretty JSON: to a temporary file beside it,
    /// synced, then renamed over the old one, so a crash leaves the old or the new file whole.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("replacing {}: {e}", path.display()))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Refuses duplicate identifiers and rights of unknown members or subsystems.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for m in &self.members {
            if m.id.is_empty() || m.id.contains('/') {
                return Err(format!(
                    "member id {:?} must be non-empty without '/'",
                    m.id
                ));
            }
            if !seen.insert(m.id.as_str()) {
                return Err(format!("member {} is listed twice", m.id));
            }
            let mut subs = BTreeSet::new();
            for s in &m.subsystems {
                if s.id.is_empty() || !subs.insert(s.id.as_str()) {
                    return Err(format!(
                        "member {}: subsystem {:?} empty or twice",
                        m.id, s.id
                    ));
                }
                if s.keys.iter().any(|k| k.jwk.d.is_some()) {
                    return Err(format!(
                        "member {}: subsystem {} lists a private key",
                        m.id, s.id
                    ));
                }
            }
        }
        let mut ids = BTreeSet::new();
        for r in &self.rights {
            if !ids.insert(r.id.as_str()) {
                return Err(format!("right {} is listed twice", r.id));
            }
            if self.subsystem(&r.org, &r.subsystem).is_none() {
                return Err(format!(
                    "right {} names an unknown subsystem {}/{}",
                    r.id, r.org, r.subsystem
                ));
            }
        }
        let mut subs = BTreeSet::new();
        for s in &self.subscriptions {
            if !subs.insert(s.id.as_str()) {
                return Err(format!("subscription {} is listed twice", s.id));
            }
            if self.subsystem(&s.org, &s.subsystem).is_none() || s.event_types.is_empty() {
                return Err(format!(
                    "subscription {} needs a known subsystem and event types",
                    s.id
                ));
            }
            if s.webhook.is_some() && s.nats.is_some() {
                return Err(format!(
                    "subscription {} names both a webhook and a NATS subject; choose one",
                    s.id
                ));
            }
            if let Some(n) = &s.nats
                && !crate::webhooks::valid_nats_subject(&n.subject)
            {
                return Err(format!(
                    "subscription {}: {:?} is not a NATS subject one can publish to",
                    s.id, n.subject
                ));
            }
        }
        Ok(())
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The subsystem `sub` of member `org`.
    pub fn subsystem(&self, org: &str, sub: &str) -> Option<&Subsystem> {
        self.member(org)?.subsystems.iter().find(|s| s.id == sub)
    }

    /// The audiences accepted.
    pub fn audiences(&self) -> Vec<&str> {
        if self.audiences.is_empty() {
            vec![DEFAULT_AUDIENCE]
        } else {
            self.audiences.iter().map(String::as_str).collect()
        }
    }
}
