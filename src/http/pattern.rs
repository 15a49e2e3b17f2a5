//! Parameters that must match a pattern, checked with a regex compiled once.
//!
//! poem-openapi's `#[oai(validator(pattern = ...))]` compiles its regex again for every request
//! that carries the parameter: about 50 µs for the date-time pattern of `since`, so a list with
//! `since` and `until` cost three times the cheapest request (BENCHMARKS.md). A parameter typed
//! [`Matching<P>`] says the same pattern in the document and checks it with [`Pattern::regex`].
//!
//! Contact points: every route declares its patterned path and query parameters as
//! `Matching<...>`; a new pattern is one line of [`patterns!`]. (A body field keeps poem's
//! validator: this type reads parameters only.)

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};
use regex::Regex;

/// A named pattern: its text, as the document shows it, and its compiled regex.
pub trait Pattern: Send + Sync + 'static {
    const TEXT: &'static str;
    fn regex() -> &'static Regex;
}

macro_rules! patterns {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl Pattern for $name {
            const TEXT: &'static str = $text;
            fn regex() -> &'static Regex {
                static COMPILED: std::sync::LazyLock<Regex> =
                    std::sync::LazyLock::new(|| Regex::new($text).expect("a valid pattern"));
                &COMPILED
            }
        }
    )*};
}

patterns! {
    /// A date or date-time of the list's `since` and `until`: only real calendar days.
    CalendarTime = r"^ *(([0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29)([Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?)? *$";
    /// A date or date-time of a digest's or activity's range (checked as a date by the handler).
    RangeTime = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?\s*$";
    /// A page cursor or change cursor: URL-safe base64 and its prefix.
    CursorText = r"^[A-Za-z0-9_-]{1,64}$";
    /// `refType`.
    RefType = r"^(branch|tag)$";
    /// `sort`.
    SortOrder = r"^(newest|relevance)$";
    /// A push id: a UUID as the API writes it.
    PushId = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
    /// A project name (`domain::ProjectName`'s rule).
    ProjectNameText = r"^[a-z0-9_-]{1,64}$";
    /// An API key by its id or its prefix, as the key list shows them.
    KeyRef = r"^([0-9]{1,19}|gpt_[A-Za-z0-9]{8})$";
}

/// A string parameter that matched `P`.
pub struct Matching<P>(pub String, PhantomData<P>);

impl<P> Matching<P> {
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<P> AsRef<str> for Matching<P> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<P> std::ops::Deref for Matching<P> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<P: Pattern> Type for Matching<P> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(P::TEXT.to_owned()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<P: Pattern> ParseFromParameter for Matching<P> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        if P::regex().is_match(value) {
            Ok(Matching(value.to_owned(), PhantomData))
        } else {
            Err(ParseError::custom(format!("must match {}", P::TEXT)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_parameter_is_taken_and_anything_else_refused_naming_the_pattern() {
        assert_eq!(
            Matching::<RefType>::parse_from_parameter("tag")
                .ok()
                .map(Matching::into_inner),
            Some("tag".to_owned())
        );
        let refused = Matching::<RefType>::parse_from_parameter("tags")
            .err()
            .unwrap();
        assert!(
            refused.message().contains(RefType::TEXT),
            "{}",
            refused.message()
        );
        assert!(Matching::<CalendarTime>::parse_from_parameter("2024-02-29").is_ok());
        assert!(Matching::<CalendarTime>::parse_from_parameter("2023-02-29").is_err());
    }

    #[test]
    fn every_pattern_compiles() {
        for regex in [
            CalendarTime::regex(),
            RangeTime::regex(),
            CursorText::regex(),
            RefType::regex(),
            SortOrder::regex(),
            PushId::regex(),
            ProjectNameText::regex(),
            KeyRef::regex(),
        ] {
            assert!(!regex.as_str().is_empty());
        }
    }
}
