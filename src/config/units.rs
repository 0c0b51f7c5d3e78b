//! Human-friendly units for settings: durations like `"30s"` and sizes like `"64 MiB"`.
//!
//! Settings files are edited by people, so both types parse the forms an admin would write and
//! serialize back to the same form; they never accept a bare number whose unit would be a guess.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written with a unit: `500ms`, `30s`, `15m`, `2h`, `7d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// A byte count written with an optional binary unit: `0`, `512`, `16 KiB`, `64MiB`, `1 GiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

const SIZE_UNITS: &[(&str, u64)] = &[("B", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)];

/// Splits `"64 MiB"` into `(64, "MiB")`; the number must be a whole, non-negative integer.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim()))
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = || format!("`{text}` is not a duration; write it like 500ms, 30s, 15m, 2h or 7d");
        let (number, unit) = split_number(text).ok_or_else(problem)?;
        let (_, millis) = DURATION_UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(problem)?;
        let total = number.checked_mul(*millis).ok_or_else(problem)?;
        Ok(Self(Duration::from_millis(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis() as u64;
        let (name, size) = DURATION_UNITS
            .iter()
            .rev()
            .find(|(_, size)| millis.is_multiple_of(*size) && millis >= *size)
            .unwrap_or(&("s", 1_000));
        if millis == 0 {
            return f.write_str("0s");
        }
        write!(f, "{}{name}", millis / size)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = || format!("`{text}` is not a size; write it like 512, 16 KiB, 64 MiB or 1 GiB");
        let (number, unit) = split_number(text).ok_or_else(problem)?;
        if unit.is_empty() {
            return Ok(Self(number));
        }
        let (_, scale) = SIZE_UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(problem)?;
        number.checked_mul(*scale).map(Self).ok_or_else(problem)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, size) = SIZE_UNITS
            .iter()
            .rev()
            .find(|(_, size)| self.0.is_multiple_of(*size) && self.0 >= *size)
            .unwrap_or(&("B", 1));
        if *name == "B" { write!(f, "{}", self.0) } else { write!(f, "{} {name}", self.0 / size) }
    }
}

/// Sizes may also be written as plain integers in TOML; durations may not (a unit is required).
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeForm {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match SizeForm::deserialize(deserializer)? {
            SizeForm::Number(number) => Ok(Self(number)),
            SizeForm::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_every_unit_and_round_trip() {
        for (text, millis) in
            [("500ms", 500), ("30s", 30_000), ("15m", 900_000), ("2h", 7_200_000), ("7d", 604_800_000)]
        {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.0, Duration::from_millis(millis), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!("90s".parse::<HumanDuration>().unwrap().to_string(), "90s");
        assert_eq!("120s".parse::<HumanDuration>().unwrap().to_string(), "2m");
    }

    #[test]
    fn durations_without_a_known_unit_are_rejected() {
        for text in ["30", "30x", "s", "-5s", "1.5s", "", "99999999999999999999d"] {
            assert!(text.parse::<HumanDuration>().is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn sizes_parse_plain_and_binary_units_and_round_trip() {
        assert_eq!("0".parse::<ByteSize>().unwrap().0, 0);
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert_eq!("16 KiB".parse::<ByteSize>().unwrap().0, 16 * 1024);
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!(ByteSize(1 << 30).to_string(), "1 GiB");
        assert_eq!(ByteSize(1536).to_string(), "1536");
        for text in ["1 GB", "1.5 MiB", "MiB", "-1", "99999999999 TiB"] {
            assert!(text.parse::<ByteSize>().is_err(), "{text} should be rejected");
        }
    }
}
