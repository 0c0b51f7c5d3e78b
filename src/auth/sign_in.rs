//! Sessions by password: sign-in (throttled, the same cost and answer for unknown accounts and
//! wrong passwords), refresh (each token spent once; a spent one presented again ends the
//! session) and sign-out.

use super::*;

enum RefreshOutcome {
    Issued(Tokens),
    Refused,
}

impl Auth {
    /// Signs in with a password. A malformed username is refused at once (no account can have
    /// it) and counted against the client's network only; otherwise the attempt is counted
    /// under the device's own key when it presents a genuine device token for this account,
    /// else under the account and network keys (see `throttle.rs`). Unknown accounts and wrong
    /// passwords cost the same hash and get the same answer.
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<Tokens, AuthError> {
        let outcome = self.check_password_login(attempt).await;
        let result = match &outcome {
            Ok(_) => "success",
            Err(AuthError::InvalidCredentials) => "failure",
            Err(AuthError::Throttled(_)) => "throttled",
            Err(AuthError::Busy) => "busy",
            Err(AuthError::PasswordLoginDisabled) => "disabled",
            Err(_) => "error",
        };
        crate::metrics::get().sign_ins.with([result]).inc();
        outcome
    }

    async fn check_password_login(&self, attempt: LoginAttempt<'_>) -> Result<Tokens, AuthError> {
        let free = self.throttle.policy().free_failures;
        let Ok(username) = Username::parse(attempt.username) else {
            let keys = Keys::for_network(attempt.ip, free);
            self.throttle.check(&keys).map_err(AuthError::Throttled)?;
            self.record_failed_login(&keys, None, attempt.ip, "malformed username").await?;
            return Err(AuthError::InvalidCredentials);
        };
        // Decided from the settings alone, before any lookup: the answer tells nothing of
        // which accounts exist.
        let break_glass = self.password_login.break_glass.contains(&username.key());
        if !self.password_login.enabled && !break_glass {
            self.record_password_login_refusal(attempt.ip).await?;
            return Err(AuthError::PasswordLoginDisabled);
        }
        let lookup = username.clone();
        let user = self.db.read(move |conn| users::by_username(conn, &lookup)).await?;
        let now = self.now();
        let device = match (&user, attempt.device_token) {
            (Some(user), Some(token)) => self.devices.device_of(token, &user.id, now),
            _ => None,
        };
        let keys = match &device {
            Some(device) => Keys::for_device(device, free),
            None => Keys::for_account(username.as_str(), attempt.ip, free),
        };
        self.throttle.check(&keys).map_err(AuthError::Throttled)?;
        let verdict =
            self.hasher.verify(attempt.password, user.as_ref().map(|user| user.password_hash.clone())).await?;
        let accepted = match (&user, &verdict) {
            // With password sign-in off, a break-glass name signs in only as an admin.
            (Some(user), Verdict::Match | Verdict::MatchRehashed(_))
                if !user.disabled && (self.password_login.enabled || user.role == Role::Admin) =>
            {
                Some(user.clone())
            }
            _ => None,
        };
        let Some(user) = accepted else {
            let actor = user.as_ref().map(|user| user.id.0.clone());
            let detail = if actor.is_some() { "" } else { "unknown account" };
            self.record_failed_login(&keys, actor, attempt.ip, detail).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.throttle.record_success(&keys);
        self.throttle.clear_account(username.as_str());
        let lifetime = self.lifetimes.refresh_absolute;
        let cookie = attempt.browser.then(browser::new_cookie_secret);
        let cookie_hash = cookie.as_ref().map(|(_, hash)| hash.clone());
        let (user_id, role, ip) = (user.id.clone(), user.role, attempt.ip.to_owned());
        let mailer = self.mailer.clone();
        let (session, refresh_token, expires_at) = self
            .db
            .write(move |tx| {
                if let Verdict::MatchRehashed(rehashed) = &verdict {
                    users::set_password_hash(tx, &user.id, rehashed)?;
                }
                users::record_login(tx, &user.id, now)?;
                let (signed_in_before, from_here_before) = sessions::address_history(tx, &user.id, &ip)?;
                if signed_in_before && !from_here_before {
                    queue_notice(&mailer, tx, now, &user.id, &Notice::NewSignIn { address: &ip })?;
                }
                let started = start_session(tx, &user.id, &ip, now, lifetime, cookie_hash.as_deref())?;
                let event = AuditEvent {
                    event: "login_ok",
                    actor_id: Some(&user.id.0),
                    subject: Some(&started.0.0),
                    ip: &ip,
                    detail: "",
                };
                audit::record(tx, now, &event)?;
                Ok(started)
            })
            .await?;
        let mut tokens = self.tokens(&user_id, &session, role, refresh_token, now, expires_at);
        tokens.device_token = Some(self.devices.issue(&user_id, now));
        tokens.session_cookie = cookie.map(|(secret, _)| secret);
        Ok(tokens)
    }

    /// Counts a failed sign-in and audits it. The audit names the account when it exists and
    /// never what was typed as a username: that is sometimes a password.
    async fn record_failed_login(
        &self,
        keys: &Keys,
        account: Option<String>,
        ip: &str,
        detail: &'static str,
    ) -> Result<(), AuthError> {
        let started_wait = self.throttle.record_failure(keys);
        let (now, ip) = (self.now(), ip.to_owned());
        self.db
            .write(move |tx| {
                let mut event = AuditEvent {
                    event: "login_failed",
                    actor_id: account.as_deref(),
                    subject: account.as_deref(),
                    ip: &ip,
                    detail,
                };
                audit::record(tx, now, &event)?;
                if let Some(wait) = started_wait {
                    let detail = format!("further sign-ins wait {} s", wait.as_secs().max(1));
                    event.event = "login_throttled";
                    event.detail = &detail;
                    audit::record(tx, now, &event)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    pub async fn refresh(self: &Arc<Self>, refresh_token: &str, ip: &str) -> Result<Tokens, AuthError> {
        let hash = token_hash(refresh_token);
        let now = self.now();
        let ip = ip.to_owned();
        let auth = Arc::clone(self);
        let mailer = self.mailer.clone();
        let outcome = self
            .db
            .write(move |tx| {
                let Some(found) = sessions::find_refresh_token(tx, &hash, now)? else {
                    return Ok(RefreshOutcome::Refused);
                };
                let actor = Some(found.user_id.0.as_str());
                let subject = Some(found.session_id.0.as_str());
                if found.spent {
                    sessions::revoke(tx, &found.session_id, now, "refresh_token_reuse")?;
                    tracing::warn!(session = %found.session_id, user = %found.user_id, %ip, "a spent refresh token was used again; the session is revoked");
                    audit::record(tx, now, &AuditEvent { event: "refresh_token_reuse", actor_id: actor, subject, ip: &ip, detail: "session revoked" })?;
                    queue_notice(&mailer, tx, now, &found.user_id, &Notice::RefreshTokenReuse { address: &ip })?;
                    return Ok(RefreshOutcome::Refused);
                }
                if !found.session_usable {
                    return Ok(RefreshOutcome::Refused);
                }
                if now - found.last_used_at > auth.lifetimes.refresh_idle {
                    sessions::revoke(tx, &found.session_id, now, "idle_timeout")?;
                    return Ok(RefreshOutcome::Refused);
                }
                let next = new_refresh_token();
                sessions::spend_refresh_token(tx, &hash, &found.session_id, now)?;
                sessions::add_refresh_token(tx, &token_hash(&next), &found.session_id, now)?;
                let expires_at: i64 = tx.query_row("SELECT expires_at FROM sessions WHERE id = ?1", [&found.session_id.0], |row| row.get(0))?;
                Ok(RefreshOutcome::Issued(auth.tokens(&found.user_id, &found.session_id, found.role, next, now, expires_at)))
            })
            .await?;
        match outcome {
            RefreshOutcome::Issued(tokens) => Ok(tokens),
            RefreshOutcome::Refused => Err(AuthError::InvalidToken),
        }
    }

    /// Ends the caller's session. `false` when the caller used an API token (no session).
    pub async fn logout(&self, principal: &Principal, ip: &str) -> Result<bool, AuthError> {
        let Some(session) = principal.session().cloned() else { return Ok(false) };
        let user = principal.user_id.clone();
        let ip = ip.to_owned();
        let now = self.now();
        self.db
            .write(move |tx| {
                sessions::revoke(tx, &session, now, "logout")?;
                let event = AuditEvent {
                    event: "logout",
                    actor_id: Some(&user.0),
                    subject: Some(&session.0),
                    ip: &ip,
                    detail: "",
                };
                audit::record(tx, now, &event)
            })
            .await?;
        Ok(true)
    }
}
