//! What Coffer sends: plain text and a simple HTML version of the same words; no images, no
//! remote content, no tracking. Everything a user typed is escaped in the HTML version and
//! stripped of control characters in both.

/// A rendered message, ready for the outbox.
pub struct Message {
    /// What it is, in the outbox and the log: `share_link`, `password_reset`, ...
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Seconds after queueing when delivering it is pointless.
    pub lifetime: i64,
}

/// Notices are still worth delivering this long after the event.
const NOTICE_LIFETIME: i64 = 7 * 86_400;
/// Longest note an owner may add to a share they send.
pub const MAX_NOTE_CHARS: usize = 2000;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text a user typed, safe for a mail: control characters (a header injection's line
/// breaks among them) become spaces, except line breaks inside a note.
fn clean(text: &str, keep_lines: bool) -> String {
    text.chars().map(|c| if c.is_control() && !(keep_lines && c == '\n') { ' ' } else { c }).collect()
}

/// The HTML version: paragraphs of escaped text, links as plain `<a>` to the same URL.
fn html(title: &str, paragraphs: &[Paragraph<'_>]) -> String {
    let mut body = String::new();
    for paragraph in paragraphs {
        match paragraph {
            Paragraph::Text(text) => {
                body.push_str(&format!("<p>{}</p>\n", escape(text).replace('\n', "<br>\n")));
            }
            Paragraph::Link(url) => {
                let url = escape(url);
                body.push_str(&format!("<p><a href=\"{url}\">{url}</a></p>\n"));
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family: sans-serif\">\n{body}</body></html>\n",
        escape(title)
    )
}

enum Paragraph<'a> {
    Text(&'a str),
    Link(&'a str),
}

fn render(kind: &'static str, subject: String, paragraphs: &[Paragraph<'_>], lifetime: i64) -> Message {
    let text = paragraphs
        .iter()
        .map(|paragraph| match paragraph {
            Paragraph::Text(text) | Paragraph::Link(text) => *text,
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let html = html(&subject, paragraphs);
    Message { kind, subject, text: format!("{text}\n"), html, lifetime }
}

/// `coffer mail test`.
pub fn test_message(server_url: &str) -> Message {
    let line = format!("This is a test message from the Coffer server at {server_url}. Mail works.");
    render("test", "Coffer test message".to_owned(), &[Paragraph::Text(&line)], NOTICE_LIFETIME)
}

/// A share link sent to someone its owner named. Never the password: a protected link's mail
/// says a password is needed and that it comes separately.
pub struct ShareMail<'a> {
    pub owner: &'a str,
    pub file_name: &'a str,
    pub url: &'a str,
    pub note: &'a str,
    /// RFC 3339.
    pub expires_at: &'a str,
    pub has_password: bool,
    /// Seconds until the link expires (the mail is pointless after).
    pub lifetime: i64,
}

pub fn share_link(mail: &ShareMail<'_>) -> Message {
    let (owner, file_name) = (clean(mail.owner, false), clean(mail.file_name, false));
    let intro = format!("{owner} shared \"{file_name}\" with you on Coffer:");
    let note = clean(mail.note, true);
    let note = note.trim();
    let note_line = format!("Note from {owner}:\n{note}");
    let expiry = format!("The link works until {}.", mail.expires_at);
    let mut paragraphs = vec![Paragraph::Text(&intro), Paragraph::Link(mail.url)];
    if !note.is_empty() {
        paragraphs.push(Paragraph::Text(&note_line));
    }
    paragraphs.push(Paragraph::Text(&expiry));
    if mail.has_password {
        paragraphs.push(Paragraph::Text("The link needs a password; ask the sender for it (it is not in this mail)."));
    }
    render("share_link", format!("{owner} shared \"{file_name}\" with you"), &paragraphs, mail.lifetime)
}

/// A password-reset link; `lifetime` is the token's.
pub fn password_reset(username: &str, url: &str, lifetime: i64) -> Message {
    let intro = format!(
        "Someone asked to reset the password of the Coffer account \"{}\". To choose a new password, open this link within {} minutes:",
        clean(username, false),
        lifetime / 60
    );
    let outro = "The link works once. Setting a new password signs the account out everywhere. If you did not ask for this, ignore this mail: the password stays as it is.";
    render(
        "password_reset",
        "Reset your Coffer password".to_owned(),
        &[Paragraph::Text(&intro), Paragraph::Link(url), Paragraph::Text(outro)],
        lifetime,
    )
}

/// What a security notice is about.
pub enum Notice<'a> {
    NewSignIn { address: &'a str },
    RefreshTokenReuse { address: &'a str },
    PasswordChanged { how: &'a str },
}

/// A security notice to the account's owner; `settings_url` is where they can act.
pub fn security_notice(username: &str, notice: &Notice<'_>, settings_url: &str) -> Message {
    let username = clean(username, false);
    let (kind, subject, what) = match notice {
        Notice::NewSignIn { address } => (
            "new_sign_in",
            "New sign-in to your Coffer account".to_owned(),
            format!("The account \"{username}\" was signed in to from an address it had not used before: {address}."),
        ),
        Notice::RefreshTokenReuse { address } => (
            "refresh_token_reuse",
            "A Coffer session of yours was ended".to_owned(),
            format!(
                "A sign-in token of the account \"{username}\" that had already been used was presented again from {address}. This can mean the token was copied, so that session was ended."
            ),
        ),
        Notice::PasswordChanged { how } => (
            "password_changed",
            "Your Coffer password was changed".to_owned(),
            format!(
                "The password of the account \"{username}\" was changed ({how}). Every session of the account was ended."
            ),
        ),
    };
    let advice = "If this was not you, change your password and look at your sessions:";
    let optout = "You get these notices because your account has an e-mail address; you can turn them off in your account settings.";
    render(
        kind,
        subject,
        &[Paragraph::Text(&what), Paragraph::Text(advice), Paragraph::Link(settings_url), Paragraph::Text(optout)],
        NOTICE_LIFETIME,
    )
}

/// To a share's owner who asked to hear of downloads.
pub fn share_downloaded(file_name: &str, count: &str, address: &str, settings_url: &str) -> Message {
    let file_name = clean(file_name, false);
    let what = format!("Your share link to \"{file_name}\" was downloaded from {address} ({count}).");
    let how = "You get this because you asked to hear of this link's downloads; turn it off in the link's settings:";
    render(
        "share_downloaded",
        format!("\"{file_name}\" was downloaded"),
        &[Paragraph::Text(&what), Paragraph::Text(how), Paragraph::Link(settings_url)],
        NOTICE_LIFETIME,
    )
}

/// To an upload link's owner who asked to hear of files received.
pub fn upload_received(file_name: &str, size: i64, folder: &str, address: &str, app_url: &str) -> Message {
    let (file_name, folder) = (clean(file_name, false), clean(folder, false));
    let what = format!("Your upload link received \"{file_name}\" ({size} bytes) from {address}, stored in {folder}.");
    let how = "You get this because you asked to hear of this link's uploads; turn it off in the link's settings:";
    render(
        "upload_received",
        format!("\"{file_name}\" was uploaded through your link"),
        &[Paragraph::Text(&what), Paragraph::Text(how), Paragraph::Link(app_url)],
        NOTICE_LIFETIME,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_is_escaped_in_html_and_cannot_break_lines_where_it_must_not() {
        let message = share_link(&ShareMail {
            owner: "eve\r\nBcc: x@example.org",
            file_name: "<script>alert(1)</script>.txt",
            url: "https://files.example.org/s/abc",
            note: "line one\nline <b>two</b>",
            expires_at: "2027-01-01T00:00:00Z",
            has_password: true,
            lifetime: 60,
        });
        assert!(!message.subject.contains(['\r', '\n']), "{}", message.subject);
        assert!(!message.html.contains("<script>") && message.html.contains("&lt;script&gt;"));
        assert!(message.html.contains("line one<br>"));
        assert!(message.html.contains("&lt;b&gt;two&lt;/b&gt;"));
        assert!(message.text.contains("line one\nline <b>two</b>"));
        assert!(message.text.contains("needs a password"));
        assert!(message.html.contains("<a href=\"https://files.example.org/s/abc\">"));
        assert!(!message.html.contains("<img"), "no remote content");
    }
}
