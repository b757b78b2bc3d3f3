//! What an authorization request needs from the user before a code can be issued: a login, a
//! step-up to a higher level, consent, or nothing — from the session, `acr_values`, `max_age`
//! and `prompt` (OpenID Connect Core §3.1.2.1).

use super::OidcError;
use super::claims::level_for_acr;
use crate::account::Level;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A browser session with the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The level the session's authentication reached
    /// (see [`super::claims::achieved_level`]).
    pub level: Level,
    /// When the user last authenticated.
    pub auth_time: DateTime<Utc>,
}

/// `prompt` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// No interaction allowed.
    None,
    /// Force a fresh login.
    Login,
    /// Ask for consent again.
    Consent,
    /// Let the user choose an account (treated as login: one account per person).
    SelectAccount,
}

/// Parses a space-separated `prompt`; `none` must stand alone.
pub fn parse_prompt(s: Option<&str>) -> Result<Vec<Prompt>, OidcError> {
    let mut out = Vec::new();
    for word in s.unwrap_or("").split(' ').filter(|w| !w.is_empty()) {
        let p = match word {
            "none" => Prompt::None,
            "login" => Prompt::Login,
            "consent" => Prompt::Consent,
            "select_account" => Prompt::SelectAccount,
            _ => return Err(OidcError::InvalidRequest("unknown prompt value")),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.contains(&Prompt::None) && out.len() > 1 {
        return Err(OidcError::InvalidRequest("prompt=none with other values"));
    }
    Ok(out)
}

/// What the request asks about authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRequirements {
    /// `acr_values`, in order of preference; empty for any.
    pub acr_values: Vec<String>,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// `prompt`.
    pub prompt: Vec<Prompt>,
    /// Whether the user already (re)authenticated while handling this very request, which
    /// satisfies `prompt=login` and `max_age`.
    pub authenticated_in_this_request: bool,
    /// Whether the user already consented while handling this request.
    pub consented_in_this_request: bool,
}

/// The next step of an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// Issue the code at this level.
    Proceed {
        /// The level to state in `acr`.
        level: Level,
    },
    /// Show the login page (no session, `prompt=login`, or `max_age` passed).
    Login,
    /// Authenticate again with level-2 factors.
    StepUp {
        /// The level to reach.
        to: Level,
    },
    /// Show the consent page.
    Consent,
}

/// Decides the next step. `account_level` is the level of the account the session belongs to
/// (what a step-up can reach); `consent_remembered` whether the person's consent to this client
/// for the requested claims is on record.
pub fn next_interaction(
    session: Option<&Session>,
    account_level: Option<Level>,
    req: &AuthRequirements,
    consent_remembered: bool,
    now: DateTime<Utc>,
) -> Result<Interaction, OidcError> {
    let no_prompt = req.prompt.contains(&Prompt::None);
    let must_login = |e| {
        if no_prompt {
            Err(e)
        } else {
            Ok(Interaction::Login)
        }
    };
    let Some(session) = session else {
        return must_login(OidcError::LoginRequired);
    };
    let fresh = req.authenticated_in_this_request;
    let forced = req
        .prompt
        .iter()
        .any(|p| matches!(p, Prompt::Login | Prompt::SelectAccount));
    if forced && !fresh {
        return Ok(Interaction::Login);
    }
    if let Some(max_age) = req.max_age
        && !fresh
        && (now - session.auth_time).num_seconds() > max_age.max(0)
    {
        return must_login(OidcError::LoginRequired);
    }
    // acr_values: levels acceptable to the client; unknown values are ignored (they are
    // voluntary claims), but if only unknown values are given nothing can satisfy them.
    let wanted: Vec<Level> = req
        .acr_values
        .iter()
        .filter_map(|a| level_for_acr(a))
        .collect();
    if !req.acr_values.is_empty() && wanted.is_empty() {
        return Err(OidcError::UnmetAuthenticationRequirements);
    }
    let level = if wanted.is_empty() || wanted.contains(&session.level) {
        session.level
    } else {
        let reachable = account_level.unwrap_or(session.level);
        let Some(target) = wanted
            .iter()
            .copied()
            .filter(|l| *l > session.level && *l <= reachable)
            .min()
        else {
            return Err(OidcError::UnmetAuthenticationRequirements);
        };
        if no_prompt {
            return Err(OidcError::InteractionRequired);
        }
        return Ok(Interaction::StepUp { to: target });
    };
    let ask_consent = (req.prompt.contains(&Prompt::Consent) || !consent_remembered)
        && !req.consented_in_this_request;
    if ask_consent {
        if no_prompt {
            return Err(OidcError::ConsentRequired);
        }
        return Ok(Interaction::Consent);
    }
    Ok(Interaction::Proceed { level })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::claims::{ACR_LEVEL_1, ACR_LEVEL_2};
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 3, 0, 0).unwrap()
    }

    fn session(level: Level, ago: i64) -> Session {
        Session {
            level,
            auth_time: now() - Duration::seconds(ago),
        }
    }

    fn req(acr: &[&str]) -> AuthRequirements {
        AuthRequirements {
            acr_values: acr.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn level2_requested_with_level1_session_steps_up() {
        let s = session(Level::One, 10);
        assert_eq!(
            next_interaction(
                Some(&s),
                Some(Level::Two),
                &req(&[ACR_LEVEL_2]),
                true,
                now()
            ),
            Ok(Interaction::StepUp { to: Level::Two })
        );
        // A level-1 account cannot step up to level 2.
        assert_eq!(
            next_interaction(
                Some(&s),
                Some(Level::One),
                &req(&[ACR_LEVEL_2]),
                true,
                now()
            ),
            Err(OidcError::UnmetAuthenticationRequirements)
        );
        // Either level acceptable: proceed at the session's.
        assert_eq!(
            next_interaction(
                Some(&s),
                Some(Level::Two),
                &req(&[ACR_LEVEL_2, ACR_LEVEL_1]),
                true,
                now()
            ),
            Ok(Interaction::Proceed { level: Level::One })
        );
        // prompt=none cannot step up.
        let mut r = req(&[ACR_LEVEL_2]);
        r.prompt = vec![Prompt::None];
        assert_eq!(
            next_interaction(Some(&s), Some(Level::Two), &r, true, now()),
            Err(OidcError::InteractionRequired)
        );
        // Level-2 session satisfies a level-1 request? Only if level 1 is among the values:
        // here both are, and the stronger session's level is stated.
        let s2 = session(Level::Two, 10);
        assert_eq!(
            next_interaction(
                Some(&s2),
                Some(Level::Two),
                &req(&[ACR_LEVEL_1, ACR_LEVEL_2]),
                true,
                now()
            ),
            Ok(Interaction::Proceed { level: Level::Two })
        );
        assert_eq!(
            next_interaction(
                Some(&s2),
                Some(Level::Two),
                &req(&["urn:other"]),
                true,
                now()
            ),
            Err(OidcError::UnmetAuthenticationRequirements)
        );
    }

    #[test]
    fn max_age_and_prompt_login() {
        let s = session(Level::One, 600);
        let mut r = req(&[]);
        r.max_age = Some(300);
        assert_eq!(
            next_interaction(Some(&s), None, &r, true, now()),
            Ok(Interaction::Login)
        );
        r.authenticated_in_this_request = true;
        assert_eq!(
            next_interaction(Some(&s), None, &r, true, now()),
            Ok(Interaction::Proceed { level: Level::One })
        );
        let mut r = req(&[]);
        r.prompt = vec![Prompt::Login];
        let fresh = session(Level::One, 1);
        assert_eq!(
            next_interaction(Some(&fresh), None, &r, true, now()),
            Ok(Interaction::Login)
        );
        r.authenticated_in_this_request = true;
        assert!(matches!(
            next_interaction(Some(&fresh), None, &r, true, now()),
            Ok(Interaction::Proceed { .. })
        ));
        // max_age=0 means always re-authenticate.
        let mut r = req(&[]);
        r.max_age = Some(0);
        assert_eq!(
            next_interaction(Some(&fresh), None, &r, true, now()),
            Ok(Interaction::Login)
        );
    }

    #[test]
    fn prompt_none_errors() {
        let mut r = req(&[]);
        r.prompt = vec![Prompt::None];
        assert_eq!(
            next_interaction(None, None, &r, true, now()),
            Err(OidcError::LoginRequired)
        );
        let s = session(Level::One, 10);
        assert_eq!(
            next_interaction(Some(&s), None, &r, false, now()),
            Err(OidcError::ConsentRequired)
        );
        assert_eq!(
            next_interaction(Some(&s), None, &r, true, now()),
            Ok(Interaction::Proceed { level: Level::One })
        );
        r.max_age = Some(5);
        assert_eq!(
            next_interaction(Some(&s), None, &r, true, now()),
            Err(OidcError::LoginRequired)
        );
    }

    #[test]
    fn consent() {
        let s = session(Level::One, 10);
        assert_eq!(
            next_interaction(Some(&s), None, &req(&[]), false, now()),
            Ok(Interaction::Consent)
        );
        let mut r = req(&[]);
        r.prompt = vec![Prompt::Consent];
        assert_eq!(
            next_interaction(Some(&s), None, &r, true, now()),
            Ok(Interaction::Consent)
        );
        r.consented_in_this_request = true;
        assert!(matches!(
            next_interaction(Some(&s), None, &r, true, now()),
            Ok(Interaction::Proceed { .. })
        ));
    }

    #[test]
    fn prompt_parsing() {
        assert_eq!(parse_prompt(None).unwrap(), vec![]);
        assert_eq!(
            parse_prompt(Some("login consent")).unwrap(),
            vec![Prompt::Login, Prompt::Consent]
        );
        assert!(parse_prompt(Some("none login")).is_err());
        assert!(parse_prompt(Some("bogus")).is_err());
    }
}
