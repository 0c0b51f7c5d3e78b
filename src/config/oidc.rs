//! `[oidc]`: sign-in with OpenID Connect providers (Google, Entra ID, Keycloak, ...).
//!
//! A provider's client secret is never a setting: `client_secret_file` names a file (or a
//! systemd credential) holding it, read when the provider is set up, so it cannot reach
//! `coffer check-config` output or a log.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Signing algorithms Coffer can verify an ID token with.
pub const SUPPORTED_ALGS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// The providers offered on the sign-in page, one `[[oidc.providers]]` table each.
    pub providers: Vec<OidcProvider>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// Short name in URLs and the audit log: lowercase letters, digits and `-`.
    pub id: String,
    /// The button's text, like "Google".
    pub label: String,
    /// The issuer URL exactly as the provider states it (`https://accounts.google.com`).
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret; unset for a public client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// ID tokens signed otherwise are refused, whatever the provider advertises.
    #[serde(default = "default_algs")]
    pub allowed_algs: Vec<String>,
    /// Audiences besides `client_id` an ID token may also name (Zitadel adds its project).
    #[serde(default)]
    pub extra_audiences: Vec<String>,
    /// The claim listing the user's groups (any name, `groups`, `roles`, `urn:...:groups`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Members of any of these groups are admins; re-evaluated at every sign-in.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// When set, only members of one of these groups (or of `admin_groups`) may sign in.
    #[serde(default)]
    pub required_groups: Vec<String>,
    /// When set, only verified e-mail addresses in these domains may sign in.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Make an account at the first sign-in of an unknown identity (after the group and
    /// domain checks).
    #[serde(default)]
    pub auto_create: bool,
    /// Link an unknown identity to the one non-admin account with the same address, when the
    /// provider says the address is verified.
    #[serde(default)]
    pub link_by_verified_email: bool,
    /// Sessions from this provider end this long after sign-in: Coffer cannot see a user
    /// disabled at the provider until the next sign-in.
    #[serde(default = "default_reauth_after")]
    pub reauth_after: HumanDuration,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_algs() -> Vec<String> {
    ["RS256", "ES256"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_reauth_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(12 * 3600))
}

/// Whether `url` may be an issuer: HTTPS, or plain HTTP to a loopback address (tests, a
/// provider on the same machine).
pub fn acceptable_issuer(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(host, _)| host);
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl OidcSettings {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (index, provider) in self.providers.iter().enumerate() {
            let key = format!("oidc.providers[{index}]");
            let id_ok = !provider.id.is_empty()
                && provider.id.len() <= 32
                && provider.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                problems
                    .push(format!("key `{key}.id`: `{}` must be 1 to 32 lowercase letters, digits or -", provider.id));
            }
            if self.providers[..index].iter().any(|other| other.id == provider.id) {
                problems.push(format!("key `{key}.id`: `{}` is used by another provider", provider.id));
            }
            if !acceptable_issuer(&provider.issuer) {
                problems.push(format!(
                    "key `{key}.issuer`: `{}` must be an https:// URL (http:// only to a loopback address)",
                    provider.issuer
                ));
            }
            if provider.client_id.is_empty() || provider.label.is_empty() {
                problems.push(format!("key `{key}`: `client_id` and `label` must not be empty"));
            }
            if !provider.scopes.iter().any(|scope| scope == "openid") {
                problems.push(format!("key `{key}.scopes`: must include `openid`"));
            }
            if provider.allowed_algs.is_empty() {
                problems.push(format!("key `{key}.allowed_algs`: name at least one algorithm"));
            }
            for alg in &provider.allowed_algs {
                if !SUPPORTED_ALGS.contains(&alg.as_str()) {
                    problems.push(format!("key `{key}.allowed_algs`: `{alg}` is not one of {SUPPORTED_ALGS:?}"));
                }
            }
            if provider.reauth_after.0.as_secs() < 60 {
                problems.push(format!("key `{key}.reauth_after`: must be at least 1m"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::{OidcSettings, acceptable_issuer};

    #[test]
    fn provider_mistakes_are_named_with_their_key() {
        let settings: OidcSettings = toml::from_str(
            "[[providers]]\nid = \"Google\"\nlabel = \"G\"\nissuer = \"http://idp.example.org\"\nclient_id = \"c\"\n\
             allowed_algs = [\"HS256\"]\nscopes = [\"email\"]\n\
             [[providers]]\nid = \"Google\"\nlabel = \"G\"\nissuer = \"https://accounts.google.com\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        let problems = settings.problems().join("\n");
        for expected in [
            "oidc.providers[0].id`: `Google` must be 1 to 32 lowercase",
            "oidc.providers[0].issuer`: `http://idp.example.org` must be an https:// URL",
            "oidc.providers[0].allowed_algs`: `HS256` is not one of",
            "oidc.providers[0].scopes`: must include `openid`",
            "oidc.providers[1].id`: `Google` is used by another provider",
        ] {
            assert!(problems.contains(expected), "{expected} missing in:\n{problems}");
        }
        let defaults: OidcSettings = toml::from_str(
            "[[providers]]\nid = \"google\"\nlabel = \"Google\"\nissuer = \"https://accounts.google.com\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        assert!(defaults.problems().is_empty());
        let provider = &defaults.providers[0];
        assert!(!provider.auto_create && !provider.link_by_verified_email, "both off unless asked for");
        assert_eq!(provider.allowed_algs, ["RS256", "ES256"]);
    }

    #[test]
    fn issuers_are_https_or_loopback_http() {
        assert!(acceptable_issuer("https://accounts.google.com"));
        assert!(acceptable_issuer("http://127.0.0.1:9400"));
        assert!(acceptable_issuer("http://localhost:9400/realms/x"));
        assert!(acceptable_issuer("http://[::1]:9400"));
        assert!(!acceptable_issuer("http://idp.example.org"));
        assert!(!acceptable_issuer("http://127.0.0.1.example.org"));
        assert!(!acceptable_issuer("ftp://127.0.0.1"));
    }
}
