//! Conditional writes: `If-Match` and `If-None-Match: *` on uploads, renames and deletes.
//!
//! A file's ETag is its contents' SHA-256 in quotes (as downloads send it), so `If-Match`
//! makes a write happen only if nobody changed the contents since the client last saw them.
//! Weak tags never match (RFC 9110 13.1.1 compares strongly).

use poem::Request;

use super::failure::ApiFailure;
use crate::files::Precondition;
use crate::storage::is_sha256_hex;

pub fn precondition(req: &Request) -> Result<Precondition, ApiFailure> {
    match (req.header("if-match"), req.header("if-none-match")) {
        (None, None) => Ok(Precondition::None),
        (Some(_), Some(_)) => Err(ApiFailure::bad_request("invalid", "give If-Match or If-None-Match, not both")),
        (Some(value), None) if value.trim() == "*" => Ok(Precondition::Exists),
        (Some(value), None) => {
            let mut strong = Vec::new();
            for tag in value.split(',').map(str::trim) {
                if tag.starts_with("W/") {
                    continue;
                }
                let inner = tag.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).ok_or_else(|| {
                    ApiFailure::bad_request("invalid", "If-Match takes * or quoted ETags, like \"<sha256>\"")
                })?;
                if is_sha256_hex(inner) {
                    strong.push(inner.to_owned());
                }
            }
            Ok(Precondition::ContentsAre(strong))
        }
        (None, Some(value)) if value.trim() == "*" => Ok(Precondition::Absent),
        (None, Some(_)) => Err(ApiFailure::bad_request("invalid", "on a write, If-None-Match only takes *")),
    }
}
