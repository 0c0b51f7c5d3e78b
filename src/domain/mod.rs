//! Validated value types. Input becomes one of these at the edge; inner code accepts only
//! these, so unchecked input cannot reach the database or the disk.

mod description;
mod names;
pub mod password;
mod username;

use std::fmt;
use std::str::FromStr;

pub use description::{Description, DescriptionError, MAX_DESCRIPTION_BYTES, MAX_DESCRIPTION_CHARS};
pub use names::{FileName, FolderPath, NameError};
pub use password::{Password, PasswordError};
pub use username::{Username, UsernameError};

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(format!("`{other}` is not a role; use admin or user")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Random identifiers: 128 bits from the OS CSPRNG, as 32 lowercase hex characters.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn generate() -> Self {
                Self(random_id())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// A login session: the family of refresh tokens from one login.
    SessionId
);
id_type!(
    /// A stored file (its metadata row; contents live in a blob named by hash).
    FileId
);
id_type!(
    /// A resumable (tus) upload in progress, or finished recently.
    UploadId
);
