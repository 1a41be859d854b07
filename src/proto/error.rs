//! Errors a DSPS client can see, and their one mapping to `<error/>`.
//!
//! PROFILE.md item 10: every error carries the legacy XEP-0037 `code` *and* the
//! RFC 6120 condition with a text, e.g.
//! `<error code='405' type='cancel'><not-allowed/><text>Method Not Allowed</text></error>`.
//! xmpp-parsers' `StanzaError` cannot write `code`, so the element is built by hand.
//!
//! The error `type` is a function of the condition alone ([`Condition::error_type`]),
//! the one RFC 6120 §8.3.3 recommends for it, so no error dsps sends (the service's,
//! the link's, the reply guards' or the c2s client's) can carry another.

use minidom::Element;

use super::xml::{attr, NS_STANZAS};

/// An RFC 6120 §8.3.3 defined condition that dsps sends (the service or its c2s
/// client). Each has exactly one error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `bad-request`.
    BadRequest,
    /// `conflict`.
    Conflict,
    /// `forbidden`.
    Forbidden,
    /// `item-not-found`.
    ItemNotFound,
    /// `not-allowed`.
    NotAllowed,
    /// `not-authorized`.
    NotAuthorized,
    /// `policy-violation`.
    PolicyViolation,
    /// `remote-server-timeout`.
    RemoteServerTimeout,
    /// `resource-constraint`.
    ResourceConstraint,
    /// `service-unavailable`.
    ServiceUnavailable,
}

impl Condition {
    /// Every condition, for tests and tables.
    pub const ALL: [Condition; 10] = [
        Condition::BadRequest,
        Condition::Conflict,
        Condition::Forbidden,
        Condition::ItemNotFound,
        Condition::NotAllowed,
        Condition::NotAuthorized,
        Condition::PolicyViolation,
        Condition::RemoteServerTimeout,
        Condition::ResourceConstraint,
        Condition::ServiceUnavailable,
    ];

    /// The element name, in `urn:ietf:params:xml:ns:xmpp-stanzas`.
    pub fn name(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::Conflict => "conflict",
            Condition::Forbidden => "forbidden",
            Condition::ItemNotFound => "item-not-found",
            Condition::NotAllowed => "not-allowed",
            Condition::NotAuthorized => "not-authorized",
            Condition::PolicyViolation => "policy-violation",
            Condition::RemoteServerTimeout => "remote-server-timeout",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::ServiceUnavailable => "service-unavailable",
        }
    }

    /// The error `type` RFC 6120 §8.3.3 recommends for this condition. Where it
    /// allows two, the one that fits every use in dsps: `policy-violation` is only
    /// sent for a stanza too large to take, which the sender can fix (`modify`).
    pub fn error_type(self) -> &'static str {
        match self {
            Condition::BadRequest | Condition::PolicyViolation => "modify",
            Condition::Conflict
            | Condition::ItemNotFound
            | Condition::NotAllowed
            | Condition::ServiceUnavailable => "cancel",
            Condition::Forbidden | Condition::NotAuthorized => "auth",
            Condition::RemoteServerTimeout | Condition::ResourceConstraint => "wait",
        }
    }
}

/// A DSPS error as seen by the requesting client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DspsError {
    /// 400: malformed or unknown request.
    BadRequest,
    /// 401: no such handshake, or a wrong key.
    NotAuthorized,
    /// 403: a slave used master rights.
    Forbidden,
    /// 404: no such resource, or not the owner of it (PROFILE 11).
    ItemNotFound,
    /// 405: method not allowed here (relay reconnect without credentials, unsupported feature).
    NotAllowed,
    /// 409: the client+DSPS pair is already connected.
    Conflict,
    /// 500: the answer would be larger than dsps may send (`component.max_stanza_size`).
    ResourceConstraint,
    /// 503: service unavailable (unknown iq, public stream full).
    ServiceUnavailable,
    /// 504: all relay destinations unreachable.
    RemoteServerTimeout,
}

impl DspsError {
    /// Every variant, for tests and tables.
    pub const ALL: [DspsError; 9] = [
        DspsError::BadRequest,
        DspsError::NotAuthorized,
        DspsError::Forbidden,
        DspsError::ItemNotFound,
        DspsError::NotAllowed,
        DspsError::Conflict,
        DspsError::ResourceConstraint,
        DspsError::ServiceUnavailable,
        DspsError::RemoteServerTimeout,
    ];

    /// The legacy XEP-0037 error code.
    pub fn code(self) -> u16 {
        match self {
            DspsError::BadRequest => 400,
            DspsError::NotAuthorized => 401,
            DspsError::Forbidden => 403,
            DspsError::ItemNotFound => 404,
            DspsError::NotAllowed => 405,
            DspsError::Conflict => 409,
            DspsError::ResourceConstraint => 500,
            DspsError::ServiceUnavailable => 503,
            DspsError::RemoteServerTimeout => 504,
        }
    }

    /// The RFC 6120 defined condition.
    pub fn condition(self) -> Condition {
        match self {
            DspsError::BadRequest => Condition::BadRequest,
            DspsError::NotAuthorized => Condition::NotAuthorized,
            DspsError::Forbidden => Condition::Forbidden,
            DspsError::ItemNotFound => Condition::ItemNotFound,
            DspsError::NotAllowed => Condition::NotAllowed,
            DspsError::Conflict => Condition::Conflict,
            DspsError::ResourceConstraint => Condition::ResourceConstraint,
            DspsError::ServiceUnavailable => Condition::ServiceUnavailable,
            DspsError::RemoteServerTimeout => Condition::RemoteServerTimeout,
        }
    }

    /// The RFC 6120 error type: the condition's ([`Condition::error_type`]).
    pub fn error_type(self) -> &'static str {
        self.condition().error_type()
    }

    /// The XEP-0037 message text for the code.
    pub fn default_text(self) -> &'static str {
        match self {
            DspsError::BadRequest => "Bad Request",
            DspsError::NotAuthorized => "Unauthorized",
            DspsError::Forbidden => "Forbidden",
            DspsError::ItemNotFound => "Not Found",
            DspsError::NotAllowed => "Method Not Allowed",
            DspsError::Conflict => "Conflict",
            DspsError::ResourceConstraint => "Internal Server Error",
            DspsError::ServiceUnavailable => "Service Unavailable",
            DspsError::RemoteServerTimeout => "Gateway Timeout",
        }
    }

    /// Parses a legacy code back (client side).
    pub fn from_code(code: u16) -> Option<DspsError> {
        DspsError::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Renders the `<error/>` child in namespace `ns` (the stanza's namespace), with
    /// `text` or the default message.
    pub fn to_element(self, ns: &str, text: Option<&str>) -> Element {
        let text = text.unwrap_or(self.default_text());
        attr(
            attr(
                Element::builder("error", ns),
                "code",
                self.code().to_string(),
            ),
            "type",
            self.error_type(),
        )
        .append(Element::builder(self.condition().name(), NS_STANZAS).build())
        .append(Element::builder("text", NS_STANZAS).append(text).build())
        .build()
    }
}

impl std::fmt::Display for DspsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.default_text())
    }
}

impl std::error::Error for DspsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xml::{get_attr, NS_COMPONENT};

    #[test]
    fn error_element_carries_code_and_condition() {
        let e = DspsError::NotAllowed.to_element(NS_COMPONENT, None);
        assert_eq!(get_attr(&e, "code"), Some("405"));
        assert_eq!(get_attr(&e, "type"), Some("cancel"));
        assert!(e.has_child("not-allowed", NS_STANZAS));
        assert_eq!(
            e.get_child("text", NS_STANZAS).map(|t| t.text()),
            Some("Method Not Allowed".to_string())
        );
    }

    /// RFC 6120 §8.3.3, condition by condition: the error types it recommends.
    /// Written out apart from [`Condition::error_type`] so that a change to either
    /// shows here; the match is exhaustive, so a new condition does not compile
    /// without its type.
    fn rfc6120_types(c: Condition) -> &'static [&'static str] {
        match c {
            Condition::BadRequest => &["modify"],
            Condition::Conflict => &["cancel"],
            Condition::Forbidden => &["auth"],
            Condition::ItemNotFound => &["cancel"],
            Condition::NotAllowed => &["cancel"],
            Condition::NotAuthorized => &["auth"],
            Condition::PolicyViolation => &["modify", "wait"],
            Condition::RemoteServerTimeout => &["wait"],
            Condition::ResourceConstraint => &["wait"],
            Condition::ServiceUnavailable => &["cancel"],
        }
    }

    #[test]
    fn every_condition_has_the_type_rfc_6120_recommends() {
        for c in Condition::ALL {
            assert!(
                rfc6120_types(c).contains(&c.error_type()),
                "{} is sent with type {}, RFC 6120 says {:?}",
                c.name(),
                c.error_type(),
                rfc6120_types(c)
            );
        }
    }

    /// What each error renders as: legacy code, condition and type (PROFILE 10).
    /// Exhaustive, like [`rfc6120_types`].
    fn rendered(e: DspsError) -> (&'static str, &'static str, &'static str) {
        match e {
            DspsError::BadRequest => ("400", "bad-request", "modify"),
            DspsError::NotAuthorized => ("401", "not-authorized", "auth"),
            DspsError::Forbidden => ("403", "forbidden", "auth"),
            DspsError::ItemNotFound => ("404", "item-not-found", "cancel"),
            DspsError::NotAllowed => ("405", "not-allowed", "cancel"),
            DspsError::Conflict => ("409", "conflict", "cancel"),
            DspsError::ResourceConstraint => ("500", "resource-constraint", "wait"),
            DspsError::ServiceUnavailable => ("503", "service-unavailable", "cancel"),
            DspsError::RemoteServerTimeout => ("504", "remote-server-timeout", "wait"),
        }
    }

    #[test]
    fn every_error_carries_its_code_condition_and_type() {
        for err in DspsError::ALL {
            let (code, condition, kind) = rendered(err);
            let e = err.to_element(NS_COMPONENT, None);
            assert_eq!(get_attr(&e, "code"), Some(code), "{err:?}");
            assert_eq!(get_attr(&e, "type"), Some(kind), "{err:?}");
            assert!(e.has_child(condition, NS_STANZAS), "{err:?}: {e:?}");
            assert!(Condition::ALL.contains(&err.condition()), "{err:?}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for code in [400, 401, 403, 404, 405, 409, 500, 503, 504] {
            assert_eq!(DspsError::from_code(code).map(|e| e.code()), Some(code));
        }
        assert_eq!(DspsError::from_code(418), None);
    }
}
