//! Settings from systemd credentials (`LoadCredential=` / `SetCredential=`).
//!
//! systemd places each credential as a file in `$CREDENTIALS_DIRECTORY`; a file named after a
//! setting's dotted key (`tls.key_file`, later `acme.eab_hmac_key`) sets that key to the file's
//! contents. This is the highest layer, so a secret never has to sit in the TOML file or the
//! environment. Contents are taken verbatim as strings (less one trailing newline): a password
//! that happens to look like a number stays a string.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

pub struct CredentialsDir {
    dir: PathBuf,
}

impl CredentialsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn read_entries(dir: &Path) -> Result<Vec<(String, String)>, String> {
        let listing = std::fs::read_dir(dir)
            .map_err(|err| format!("cannot read credentials directory {}: {err}", dir.display()))?;
        let mut entries = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|err| err.to_string())?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !entry.file_type().map(|kind| kind.is_file()).unwrap_or(false) {
                continue;
            }
            let mut text = std::fs::read_to_string(entry.path())
                .map_err(|err| format!("cannot read credential {}: {err}", entry.path().display()))?;
            if text.ends_with('\n') {
                text.pop();
            }
            entries.push((name, text));
        }
        entries.sort();
        Ok(entries)
    }
}

impl Provider for CredentialsDir {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("credential file in {}", self.dir.display()))
            .interpolater(|_profile, keys| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut root = Dict::new();
        for (name, text) in Self::read_entries(&self.dir).map_err(Error::from)? {
            insert_dotted(&mut root, &name, Value::from(text));
        }
        Ok(Profile::Default.collect(root))
    }
}

/// `insert_dotted(d, "server.listen", v)` sets `d["server"]["listen"] = v`.
fn insert_dotted(root: &mut Dict, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut dict = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            dict.insert(part.to_owned(), value);
            return;
        }
        let entry = dict.entry(part.to_owned()).or_insert_with(|| Value::from(Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, inner) = entry else {
            return;
        };
        dict = inner;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_become_nested_keys() {
        let mut root = Dict::new();
        insert_dotted(&mut root, "log.level", Value::from("debug".to_owned()));
        insert_dotted(&mut root, "log.format", Value::from("json".to_owned()));
        let log = root["log"].as_dict().unwrap();
        assert_eq!(log["level"].as_str(), Some("debug"));
        assert_eq!(log["format"].as_str(), Some("json"));
    }
}
