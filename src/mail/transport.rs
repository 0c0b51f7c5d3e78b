//! The SMTP connection (lettre over rustls): STARTTLS required or implicit TLS, never
//! credentials over plain text; a private CA when configured; every attempt bounded in time
//! (lettre's own timeout does not cover a server that accepts and never greets).

use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{MailSecurity, MailSettings};

/// Why an attempt failed, worded for the admin, with whether trying again may help.
#[derive(Debug)]
pub struct SendFailure {
    pub permanent: bool,
    pub message: String,
}

/// A ready SMTP client for `[mail]`.
pub struct Transport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
    /// The right part of Message-IDs: the public URL's host.
    id_domain: String,
    timeout: Duration,
}

/// One message to deliver.
pub struct Envelope<'a> {
    pub id: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    if host.is_empty() { "coffer.invalid".to_owned() } else { host.trim_matches(['[', ']']).to_owned() }
}

impl Transport {
    /// Builds the client; reads `mail.password_file` and `mail.ca_file` (blocking).
    pub fn from_settings(mail: &MailSettings, public_url: &str) -> anyhow::Result<Self> {
        let host = mail.host.as_deref().context("mail is off: set mail.host")?;
        let port = mail.port.unwrap_or(match mail.security {
            MailSecurity::Starttls => 587,
            MailSecurity::Tls => 465,
        });
        let mut tls = TlsParameters::builder(host.to_owned());
        if let Some(path) = &mail.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("cannot read mail.ca_file {}", path.display()))?;
            let ca = Certificate::from_pem(&pem)
                .with_context(|| format!("mail.ca_file {}: not a PEM certificate", path.display()))?;
            tls = tls.add_root_certificate(ca);
        }
        let tls = tls.build_rustls().context("cannot set up TLS for the mail server")?;
        let tls = match mail.security {
            MailSecurity::Starttls => Tls::Required(tls),
            MailSecurity::Tls => Tls::Wrapper(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(mail.timeout.0));
        if let Some(username) = &mail.username {
            let password = match &mail.password_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read mail.password_file {}", path.display()))?;
                    text.trim_end_matches(['\r', '\n']).to_owned()
                }
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from: Mailbox = mail.from.parse().with_context(|| format!("mail.from `{}` is not a sender", mail.from))?;
        Ok(Self {
            smtp: builder.build(),
            from,
            server: format!("{host}:{port}"),
            id_domain: host_of(public_url),
            timeout: mail.timeout.0,
        })
    }

    /// Delivers one message; the server's reply when it took it.
    pub async fn send(&self, mail: &Envelope<'_>) -> Result<String, SendFailure> {
        let to: Mailbox = mail.recipient.parse().map_err(|_| SendFailure {
            permanent: true,
            message: format!("`{}` is not an e-mail address", mail.recipient),
        })?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{}@{}>", mail.id, self.id_domain)))
            .multipart(MultiPart::alternative_plain_html(mail.text.to_owned(), mail.html.to_owned()))
            .map_err(|err| SendFailure { permanent: true, message: format!("cannot build the message: {err}") })?;
        match tokio::time::timeout(self.timeout, self.smtp.send(message)).await {
            Ok(Ok(response)) => Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))),
            Ok(Err(err)) => Err(self.describe(&err)),
            Err(_) => Err(SendFailure {
                permanent: false,
                message: format!(
                    "the mail server {} did not finish within {} s (mail.timeout)",
                    self.server,
                    self.timeout.as_secs()
                ),
            }),
        }
    }

    fn describe(&self, err: &lettre::transport::smtp::Error) -> SendFailure {
        let server = &self.server;
        let mut chain = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        let detail = chain.join(": ");
        // lettre nests its own errors ("Connection error: Connection error: ..."): the
        // innermost cause is the one that says what happened.
        let root = chain.last().cloned().unwrap_or_else(|| err.to_string());
        let code = err.status().map(|code| code.to_string());
        let message = match code.as_deref() {
            Some(code @ ("530" | "534" | "535" | "538")) => format!(
                "the mail server {server} refused the sign-in: {code} {detail} (check mail.username and mail.password_file)"
            ),
            Some(code) if err.is_permanent() => {
                format!("the mail server {server} refused the message: {code} {detail}")
            }
            Some(code) => format!("the mail server {server} answered {code} {detail} (temporary)"),
            None if err.is_timeout() => format!("the mail server {server} did not answer in time: {root}"),
            None if err.is_tls() || root.contains("certificate") => format!(
                "TLS with the mail server {server} failed: {root} (is its certificate for mail.host, from a CA this machine or mail.ca_file trusts?)"
            ),
            None => format!("cannot talk to the mail server {server}: {root}"),
        };
        SendFailure { permanent: err.is_permanent(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn message_ids_use_the_public_host() {
        assert_eq!(host_of("https://files.example.org"), "files.example.org");
        assert_eq!(host_of("https://files.example.org:8443/coffer"), "files.example.org");
        assert_eq!(host_of("https://[2001:db8::1]:8443"), "2001:db8::1");
        assert_eq!(host_of(""), "coffer.invalid");
    }
}
