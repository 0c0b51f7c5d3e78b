//! Parsing tus request headers: `Upload-Metadata` (what the upload becomes) and
//! `Upload-Checksum` (a chunk's SHA-256). Pure functions, tested here.

use std::collections::HashMap;

use base64::Engine;

use super::failure::ApiFailure;

/// The tus protocol version Coffer speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The tus extensions Coffer implements.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// `Upload-Metadata` may take at most this many bytes.
pub const MAX_METADATA_BYTES: usize = 16 << 10;

/// What `Upload-Metadata` says, decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UploadMetadata {
    /// `name`, or `filename` (what tus-js-client and others send).
    pub name: Option<String>,
    pub folder: Option<String>,
    pub on_conflict: Option<String>,
    pub description: Option<String>,
    /// The SHA-256 (hex) of the whole contents.
    pub sha256: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiFailure {
    ApiFailure::bad_request("invalid_metadata", message)
}

/// Parses `key base64value,key2 base64value2` (a key may come without a value). Keys other
/// than the ones Coffer uses are accepted and ignored (clients add `filetype` and the like).
pub fn parse_metadata(header: &str) -> Result<UploadMetadata, ApiFailure> {
    if header.len() > MAX_METADATA_BYTES {
        return Err(invalid(format!("Upload-Metadata may take at most {} KiB", MAX_METADATA_BYTES >> 10)));
    }
    let mut pairs = HashMap::new();
    for pair in header.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let mut parts = pair.split(' ').filter(|part| !part.is_empty());
        let key = parts.next().unwrap_or_default();
        let value = match parts.next() {
            Some(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| invalid(format!("the Upload-Metadata value of `{key}` is not base64")))?;
                String::from_utf8(bytes)
                    .map_err(|_| invalid(format!("the Upload-Metadata value of `{key}` is not UTF-8")))?
            }
            None => String::new(),
        };
        if parts.next().is_some() {
            return Err(invalid("Upload-Metadata pairs are `key base64value`, separated by commas"));
        }
        if pairs.insert(key.to_owned(), value).is_some() {
            return Err(invalid(format!("Upload-Metadata names `{key}` twice")));
        }
    }
    if pairs.contains_key("name") && pairs.contains_key("filename") {
        return Err(invalid("Upload-Metadata names the file twice (`name` and `filename`); send one"));
    }
    let sha256 = pairs.remove("sha256");
    if let Some(digest) = &sha256
        && !crate::storage::is_sha256_hex(&digest.to_ascii_lowercase())
    {
        return Err(invalid("the Upload-Metadata `sha256` is the contents' SHA-256 as 64 hex digits"));
    }
    Ok(UploadMetadata {
        name: pairs.remove("name").or_else(|| pairs.remove("filename")),
        folder: pairs.remove("folder"),
        on_conflict: pairs.remove("on_conflict"),
        description: pairs.remove("description"),
        sha256: sha256.map(|digest| digest.to_ascii_lowercase()),
    })
}

/// Parses `Upload-Checksum: sha256 <base64>`.
pub fn parse_checksum(header: &str) -> Result<[u8; 32], ApiFailure> {
    let (algorithm, encoded) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(ApiFailure::bad_request(
            "unsupported_checksum",
            format!("Upload-Checksum uses `{algorithm}`; Coffer checks sha256 only (see Tus-Checksum-Algorithm)"),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|digest| <[u8; 32]>::try_from(digest).ok())
        .ok_or_else(|| ApiFailure::bad_request("invalid", "Upload-Checksum must be `sha256 <base64 of 32 bytes>`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_and_unknown_keys_are_ignored() {
        let parsed = parse_metadata("filename cmVwb3J0LnBkZg==,folder d29yaw==, filetype YXBwbGljYXRpb24vcGRm,empty")
            .ok()
            .unwrap();
        assert_eq!(parsed.name.as_deref(), Some("report.pdf"));
        assert_eq!(parsed.folder.as_deref(), Some("work"));
        assert_eq!(parsed.on_conflict, None);
        assert_eq!(parse_metadata("").ok().unwrap(), UploadMetadata::default());
    }

    #[test]
    fn bad_metadata_is_refused_with_a_reason() {
        for bad in ["name !!!", "name YQ==,name Yg==", "name YQ==,filename Yg==", "name YQ== YQ==", "sha256 YQ=="] {
            assert!(parse_metadata(bad).is_err(), "{bad}");
        }
        assert!(parse_metadata(&"a".repeat(MAX_METADATA_BYTES + 1)).is_err());
    }

    #[test]
    fn checksums_are_sha256_only() {
        let digest = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_checksum(&format!("sha256 {digest}")).ok().unwrap(), [7u8; 32]);
        assert!(parse_checksum(&format!("sha1 {digest}")).is_err());
        assert!(parse_checksum("sha256 YQ==").is_err());
    }
}
