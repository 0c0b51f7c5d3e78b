//! What a provider's vouched-for identity means here: which account it is, whether it may
//! sign in, with which role, and the session it gets. Runs in one IMMEDIATE transaction, so
//! the checks and the writes (link, account, role, session, audit) stand or fall together.
//!
//! The rules (issue 16, and the peers' failures in the research notes):
//! - an identity is (issuer, subject); e-mail and usernames never identify anyone;
//! - group and domain requirements are checked before anything is written, so a refused
//!   user never gets an account (audiobookshelf#4563);
//! - an existing account is linked by e-mail only when the provider says the address is
//!   verified, exactly one enabled account has it, and that account is not an admin;
//! - the role follows the admin groups at every sign-in, so a demotion takes effect.

use crate::config::OidcProvider;
use crate::db::audit::{self, AuditEvent};
use crate::db::{DbError, oidc, sessions, users};
use crate::domain::{Role, UserId, Username};

use super::throttle::Keys;
use super::{Auth, AuthError, browser, start_session};

/// What the provider vouched for, after the ID token (and userinfo) checks.
#[derive(Clone, Debug)]
pub struct VouchedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub preferred_username: Option<String>,
}

/// How a provider sign-in ended.
#[derive(Debug)]
pub enum ProviderOutcome {
    /// A new browser session: the cookie secret of `__Host-coffer_session`, and how long the
    /// session lasts (seconds).
    SignedIn { cookie: String, lifetime: i64 },
    /// The identity is now linked to the signed-in user who asked for it.
    Linked,
    /// Refused, with a sentence for the person (already audited).
    Refused(String),
}

/// The refusals people see; the audit keeps the same words.
enum Refusal {
    NotInGroup,
    DomainNotAllowed,
    NoAccount,
    Disabled,
    LinkedElsewhere,
}

impl Refusal {
    fn message(&self) -> &'static str {
        match self {
            Refusal::NotInGroup => "your account at the provider is not in a group allowed to use Coffer",
            Refusal::DomainNotAllowed => "your provider account's verified e-mail address is not in an allowed domain",
            Refusal::NoAccount => {
                "no Coffer account is linked to this provider account: sign in with your password and link it on your account page, or ask an admin"
            }
            Refusal::Disabled => "this Coffer account is disabled",
            Refusal::LinkedElsewhere => "this provider account is already linked to another Coffer account",
        }
    }
}

fn email_domain(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(_, domain)| domain)
}

/// The role the groups give, or `None` when this provider does not manage roles.
fn role_from_groups(provider: &OidcProvider, groups: &[String]) -> Option<Role> {
    if provider.admin_groups.is_empty() {
        return None;
    }
    let admin = groups.iter().any(|group| provider.admin_groups.contains(group));
    Some(if admin { Role::Admin } else { Role::User })
}

fn admission(provider: &OidcProvider, identity: &VouchedIdentity) -> Result<(), Refusal> {
    if !provider.required_groups.is_empty() {
        let allowed = provider.required_groups.iter().chain(&provider.admin_groups).collect::<Vec<_>>();
        if !identity.groups.iter().any(|group| allowed.contains(&group)) {
            return Err(Refusal::NotInGroup);
        }
    }
    if !provider.allowed_domains.is_empty() {
        let domain = identity.email.as_deref().filter(|_| identity.email_verified).and_then(email_domain);
        let allowed = domain
            .is_some_and(|domain| provider.allowed_domains.iter().any(|allowed| allowed.eq_ignore_ascii_case(domain)));
        if !allowed {
            return Err(Refusal::DomainNotAllowed);
        }
    }
    Ok(())
}

/// A free username from what the provider suggests: its allowed characters, then `-2`, `-3`...
fn free_username(tx: &rusqlite::Connection, identity: &VouchedIdentity) -> Result<Username, DbError> {
    let suggested = identity
        .preferred_username
        .clone()
        .or_else(|| identity.email.as_deref().and_then(|email| email.split('@').next()).map(str::to_owned))
        .unwrap_or_default();
    let mut base: String = suggested
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(48)
        .collect();
    if base.is_empty() {
        base = "user".into();
    }
    for attempt in 1..1000 {
        let candidate = if attempt == 1 { base.clone() } else { format!("{base}-{attempt}") };
        let Ok(username) = Username::parse(&candidate) else { continue };
        if users::by_username(tx, &username)?.is_none() {
            return Ok(username);
        }
    }
    Err(DbError::Task("no free username for a new account".into()))
}

impl Auth {
    /// Signs in (or, with `link_user`, links) the identity a provider vouched for.
    pub async fn provider_sign_in(
        &self,
        provider: &OidcProvider,
        identity: VouchedIdentity,
        link_user: Option<UserId>,
        ip: &str,
    ) -> Result<ProviderOutcome, AuthError> {
        let now = self.now();
        let lifetime = self.lifetimes.refresh_absolute.min(provider.reauth_after.0.as_secs() as i64);
        let (provider, ip) = (provider.clone(), ip.to_owned());
        let (secret, hash) = browser::new_cookie_secret();
        let outcome = self
            .db
            .write(move |tx| {
                let method = format!("oidc:{}", provider.id);
                let audit_event = |event: &str, actor: Option<&UserId>, detail: &str| {
                    let actor = actor.map(|user| user.0.as_str());
                    let event = AuditEvent { event, actor_id: actor, subject: actor, ip: &ip, detail };
                    audit::record(tx, now, &event)
                };
                let refuse = |refusal: Refusal, actor: Option<&UserId>| -> Result<ProviderOutcome, DbError> {
                    audit_event("oidc_refused", actor, &format!("{method}: {}", refusal.message()))?;
                    Ok(ProviderOutcome::Refused(refusal.message().to_owned()))
                };
                let linked = oidc::user_of(tx, &identity.issuer, &identity.subject)?;
                if let Err(refusal) = admission(&provider, &identity) {
                    return refuse(refusal, linked.as_ref().or(link_user.as_ref()));
                }
                let new_link = |user: &UserId, how: &str| -> Result<(), DbError> {
                    let email = identity.email.as_deref().filter(|_| identity.email_verified);
                    let new = oidc::NewIdentity {
                        issuer: &identity.issuer,
                        subject: &identity.subject,
                        provider: &provider.id,
                        user,
                        email,
                        now,
                    };
                    oidc::link(tx, &new)?;
                    audit_event("oidc_linked", Some(user), &format!("{method} {how}"))
                };
                if let Some(user) = &link_user {
                    return match &linked {
                        Some(owner) if owner != user => refuse(Refusal::LinkedElsewhere, Some(user)),
                        Some(_) => Ok(ProviderOutcome::Linked),
                        None => {
                            new_link(user, "by the signed-in user")?;
                            Ok(ProviderOutcome::Linked)
                        }
                    };
                }
                let role_wanted = role_from_groups(&provider, &identity.groups);
                let user_id = match linked {
                    Some(user) => user,
                    None => {
                        let verified = identity.email.as_deref().filter(|_| identity.email_verified);
                        let by_email = match verified {
                            Some(email) if provider.link_by_verified_email => {
                                let mut matches = users::enabled_by_email(tx, email)?;
                                // Exactly one, and never an admin: an address is a weak proof.
                                if matches.len() == 1 && matches[0].role != Role::Admin {
                                    matches.pop().map(|row| row.id)
                                } else {
                                    None
                                }
                            }
                            _ => None,
                        };
                        match by_email {
                            Some(user) => {
                                new_link(&user, "by verified e-mail")?;
                                user
                            }
                            None if provider.auto_create => {
                                let username = free_username(tx, &identity)?;
                                // An address another account has stays with it: resets and
                                // notices must never reach two accounts.
                                let verified = match verified {
                                    Some(email) if users::enabled_by_email(tx, email)?.is_empty() => Some(email),
                                    _ => None,
                                };
                                // No password: this account signs in through its provider only.
                                let new = users::NewUser {
                                    username: &username,
                                    email: verified,
                                    password_hash: "",
                                    role: role_wanted.unwrap_or(Role::User),
                                    quota_bytes: None,
                                    now,
                                };
                                let user = users::insert(tx, &new)?
                                    .ok_or_else(|| DbError::Task("the new username was taken".into()))?;
                                audit_event("user_created", Some(&user), &format!("{method} at first sign-in"))?;
                                new_link(&user, "at account creation")?;
                                user
                            }
                            None => return refuse(Refusal::NoAccount, None),
                        }
                    }
                };
                let Some(account) = users::by_id(tx, &user_id)? else {
                    return refuse(Refusal::NoAccount, None);
                };
                if account.disabled {
                    return refuse(Refusal::Disabled, Some(&user_id));
                }
                if let Some(role) = role_wanted
                    && role != account.role
                {
                    // The last enabled admin stays one, as for every other role change.
                    if role == Role::User && users::other_enabled_admins(tx, &user_id)? == 0 {
                        audit_event("oidc_role_kept", Some(&user_id), "the last enabled admin is not demoted")?;
                    } else {
                        users::set_role(tx, &user_id, role)?;
                        let detail = format!("{method}: role {} from the provider's groups", role.as_str());
                        audit_event("user_updated", Some(&user_id), &detail)?;
                    }
                }
                let email = identity.email.as_deref().filter(|_| identity.email_verified);
                oidc::record_login(tx, &identity.issuer, &identity.subject, email, now)?;
                users::record_login(tx, &user_id, now)?;
                let (session, _, _) = start_session(tx, &user_id, &ip, now, lifetime, Some(&hash))?;
                sessions::set_method(tx, &session, &method)?;
                let event = AuditEvent {
                    event: "login_ok",
                    actor_id: Some(&user_id.0),
                    subject: Some(&session.0),
                    ip: &ip,
                    detail: &method,
                };
                audit::record(tx, now, &event)?;
                Ok(ProviderOutcome::SignedIn { cookie: secret, lifetime })
            })
            .await?;
        Ok(outcome)
    }

    /// Audits a sign-in the OpenID checks refused (state, token, provider error).
    pub async fn record_provider_refusal(
        &self,
        provider: &str,
        reason: &str,
        user: Option<UserId>,
        ip: &str,
    ) -> Result<(), AuthError> {
        let (now, ip, detail) = (self.now(), ip.to_owned(), format!("oidc:{provider}: {reason}"));
        self.db
            .write(move |tx| {
                let actor = user.as_ref().map(|user| user.0.as_str());
                audit::record(
                    tx,
                    now,
                    &AuditEvent { event: "oidc_refused", actor_id: actor, subject: actor, ip: &ip, detail: &detail },
                )
            })
            .await?;
        Ok(())
    }

    /// Unlinks the caller's identity at `provider`; `false` if none was linked.
    pub async fn unlink_provider(&self, user: &UserId, provider: &str, ip: &str) -> Result<bool, AuthError> {
        let (now, user, provider, ip) = (self.now(), user.clone(), provider.to_owned(), ip.to_owned());
        Ok(self
            .db
            .write(move |tx| {
                if !oidc::unlink(tx, &user, &provider)? {
                    return Ok(false);
                }
                let detail = format!("oidc:{provider}");
                let event = AuditEvent {
                    event: "oidc_unlinked",
                    actor_id: Some(&user.0),
                    subject: Some(&user.0),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                Ok(true)
            })
            .await?)
    }

    /// Linked identities: the user's own, or everyone's (`None`, for admins).
    pub async fn identities(&self, user: Option<UserId>) -> Result<Vec<oidc::IdentityRow>, AuthError> {
        Ok(self.db.read(move |conn| oidc::list(conn, user.as_ref())).await?)
    }

    /// Checks the signed-in user's password before a link starts; `false` when wrong (or the
    /// account has none).
    pub async fn confirm_password(&self, user: &UserId, password: &str, ip: &str) -> Result<bool, AuthError> {
        let row = self.user(user).await?;
        let Some(row) = row.filter(|row| !row.password_hash.is_empty()) else { return Ok(false) };
        // Throttled like sign-in and password changes, on the same account's budget: a stolen
        // session must not make this an unlimited password oracle.
        let keys = Keys::for_account(&row.username, ip, self.throttle.policy().free_failures);
        self.throttle.check(&keys).map_err(AuthError::Throttled)?;
        let verdict = self.hasher.verify(password, Some(row.password_hash)).await?;
        if matches!(verdict, super::password::Verdict::Mismatch) {
            self.throttle.record_failure(&keys);
            return Ok(false);
        }
        self.throttle.record_success(&keys);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OidcProvider {
        toml::from_str(
            "id = \"idp\"\nlabel = \"IdP\"\nissuer = \"https://idp.test\"\nclient_id = \"coffer\"\n\
             admin_groups = [\"admins\"]\nrequired_groups = [\"staff\"]\nallowed_domains = [\"example.org\"]",
        )
        .unwrap()
    }

    fn identity(groups: &[&str], email: &str, verified: bool) -> VouchedIdentity {
        VouchedIdentity {
            issuer: "https://idp.test".into(),
            subject: "s".into(),
            email: Some(email.into()),
            email_verified: verified,
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            preferred_username: None,
        }
    }

    #[test]
    fn groups_and_verified_domains_decide_admission_and_role() {
        let provider = provider();
        assert!(admission(&provider, &identity(&["staff"], "a@example.org", true)).is_ok());
        assert!(admission(&provider, &identity(&["admins"], "a@EXAMPLE.org", true)).is_ok());
        assert!(matches!(
            admission(&provider, &identity(&["guests"], "a@example.org", true)),
            Err(Refusal::NotInGroup)
        ));
        assert!(matches!(
            admission(&provider, &identity(&["staff"], "a@example.org", false)),
            Err(Refusal::DomainNotAllowed)
        ));
        assert!(matches!(
            admission(&provider, &identity(&["staff"], "a@example.org.evil", true)),
            Err(Refusal::DomainNotAllowed)
        ));
        assert_eq!(role_from_groups(&provider, &["admins".into()]), Some(Role::Admin));
        assert_eq!(role_from_groups(&provider, &["staff".into()]), Some(Role::User));
    }
}
