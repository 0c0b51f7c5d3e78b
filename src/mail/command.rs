//! `coffer mail test ADDRESS`: sends one message straight to the mail server (not through the
//! outbox) and says exactly what happened: the server's reply, or which step failed and why.

use anyhow::{Context, bail};
use clap::Subcommand;

use super::transport::Envelope;
use super::{Transport, messages, parse_address};
use crate::config::Settings;

#[derive(Subcommand)]
pub enum MailCommand {
    /// Send a test message to ADDRESS with the `[mail]` settings and report the result.
    Test { address: String },
}

pub fn run(settings: Settings, command: MailCommand) -> anyhow::Result<()> {
    let MailCommand::Test { address } = command;
    let address = parse_address(&address).map_err(|problem| anyhow::anyhow!(problem))?;
    if settings.mail.host.is_none() {
        bail!("mail is off: set mail.host (and mail.from, server.public_url) in the settings");
    }
    let public_url = settings.server.public_url.clone().unwrap_or_default();
    let transport = Transport::from_settings(&settings.mail, &public_url)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let message = messages::test_message(&public_url);
    let id = super::hex(&rand::random::<[u8; 16]>());
    let envelope =
        Envelope { id: &id, recipient: &address, subject: &message.subject, text: &message.text, html: &message.html };
    let reply = runtime
        .block_on(transport.send(&envelope))
        .map_err(|failure| anyhow::anyhow!(failure.message))
        .context("the test message was not sent")?;
    println!("sent a test message to {address}; the mail server answered: {reply}");
    Ok(())
}
