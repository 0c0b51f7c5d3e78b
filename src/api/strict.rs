//! Request-body field types that accept exactly what the OpenAPI document says.
//!
//! poem-openapi turns a JSON number or boolean into a `String` field (`{"name": 5}` becomes
//! `"5"`) and takes `null` for an optional field, while the document says the field is a
//! string and not nullable. Request bodies use [`Text`] for strings and [`Given`] for optional
//! fields, so anything else is refused with 400.

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;

    // Validators (`max_length`, `pattern`, ...) see the inner string.
    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An optional field: left out is `None`; `null` is refused (the document does not allow it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given<T>(pub Option<T>);

impl<T: Type> Type for Given<T> {
    const IS_REQUIRED: bool = false;

    type RawValueType = T::RawValueType;

    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("optional_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }

    fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Given<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Ok(Self(None)),
            Some(Value::Null) => Err(ParseError::custom("null is not allowed here; leave the field out")),
            Some(value) => Ok(Self(Some(T::parse_from_json(Some(value)).map_err(ParseError::propagate)?))),
        }
    }
}

impl<T: ToJSON> ToJSON for Given<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().and_then(ToJSON::to_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_strings_parse() {
        assert_eq!(Text::parse_from_json(Some(Value::String("a".into()))).ok(), Some(Text("a".into())));
        for other in [serde_json::json!(5), serde_json::json!(true), serde_json::json!([]), serde_json::json!({})] {
            assert!(Text::parse_from_json(Some(other)).is_err());
        }
    }

    #[test]
    fn given_fields_may_be_left_out_but_not_null() {
        assert_eq!(Given::<i64>::parse_from_json(None).ok(), Some(Given(None)));
        assert_eq!(Given::<i64>::parse_from_json(Some(serde_json::json!(3))).ok(), Some(Given(Some(3))));
        assert!(Given::<i64>::parse_from_json(Some(Value::Null)).is_err());
        assert!(Given::<Text>::parse_from_json(Some(serde_json::json!(3))).is_err());
    }
}
