//! SASL authentication for the c2s client (RFC 6120 §6): pick a mechanism from the
//! server's offer, run the challenge/response exchange, check the outcome.
//!
//! SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN: with SCRAM the password never crosses
//! the link and a server that does not know it cannot fake a success. PLAIN sends the
//! password itself, so it is used only inside TLS. All three come from the `sasl`
//! crate. Channel binding is not used (the `-PLUS` variants are not offered by us).

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use minidom::rxml::xml_ncname;
use minidom::Element;
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::ChannelBinding;

use super::login::{read_element, Stream};
use super::C2sError;

/// Namespace of the SASL negotiation elements.
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// A boxed client mechanism; boxed so SCRAM and PLAIN share one code path.
type BoxedMechanism = Box<dyn Mechanism + Send>;

/// Picks the best mechanism we support from `offered`: SCRAM-SHA-256, SCRAM-SHA-1,
/// then PLAIN if the stream is encrypted (`tls`).
pub(super) fn choose_mechanism(
    offered: &BTreeSet<String>,
    username: &str,
    password: &str,
    tls: bool,
) -> Result<BoxedMechanism, C2sError> {
    if offered.contains("SCRAM-SHA-256") {
        let scram = Scram::<Sha256>::new(username, password, ChannelBinding::None)
            .map_err(|e| C2sError::Auth(format!("SCRAM-SHA-256 setup failed: {e:?}")))?;
        return Ok(Box::new(scram));
    }
    if offered.contains("SCRAM-SHA-1") {
        let scram = Scram::<Sha1>::new(username, password, ChannelBinding::None)
            .map_err(|e| C2sError::Auth(format!("SCRAM-SHA-1 setup failed: {e:?}")))?;
        return Ok(Box::new(scram));
    }
    if offered.contains("PLAIN") && tls {
        return Ok(Box::new(Plain::new(username, password)));
    }
    if offered.contains("PLAIN") {
        return Err(C2sError::Auth(
            "the server offers only PLAIN, which would send the password unencrypted; \
             log in over TLS"
                .into(),
        ));
    }
    if offered.is_empty() && !tls {
        return Err(C2sError::Auth(
            "the server offers no way to log in on an unencrypted stream (it requires TLS)".into(),
        ));
    }
    Err(C2sError::Auth(format!(
        "no supported SASL mechanism offered (server offers {offered:?})"
    )))
}

/// Runs SASL on `stream` until `<success/>`; the caller then restarts the stream.
pub(super) async fn authenticate(
    stream: &mut Stream,
    offered: &BTreeSet<String>,
    username: &str,
    password: &str,
) -> Result<(), C2sError> {
    let tls = stream.get_ref().is_tls();
    let mut mechanism = choose_mechanism(offered, username, password, tls)?;
    let auth = Element::builder("auth", NS_SASL)
        .attr(xml_ncname!("mechanism").into(), mechanism.name())
        .append(encode(&mechanism.initial()))
        .build();
    stream.send(&auth).await.map_err(C2sError::Connect)?;

    loop {
        let elem = read_element(stream).await?;
        if elem.is("challenge", NS_SASL) {
            let challenge = decode(&elem)?;
            let answer = mechanism
                .response(&challenge)
                .map_err(|e| C2sError::Auth(format!("bad SASL challenge: {e}")))?;
            let response = Element::builder("response", NS_SASL)
                .append(encode(&answer))
                .build();
            stream.send(&response).await.map_err(C2sError::Connect)?;
        } else if elem.is("success", NS_SASL) {
            // For SCRAM this checks the server signature: a server that does not know
            // the password cannot fake a success.
            return mechanism
                .success(&decode(&elem)?)
                .map_err(|e| C2sError::Auth(format!("server not verified: {e}")));
        } else if elem.is("failure", NS_SASL) {
            return Err(C2sError::Auth(failure_reason(&elem)));
        } else {
            return Err(C2sError::Protocol(format!(
                "unexpected <{}/> during SASL",
                elem.name()
            )));
        }
    }
}

/// Base64 for the element text; RFC 6120 §6.4.2 writes an empty payload as `=`.
fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        BASE64.encode(data)
    }
}

/// Decodes the base64 text of a `<challenge/>` or `<success/>`; empty or `=` is no data.
fn decode(elem: &Element) -> Result<Vec<u8>, C2sError> {
    let text = elem.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    BASE64
        .decode(text)
        .map_err(|e| C2sError::Protocol(format!("bad base64 in <{}/>: {e}", elem.name())))
}

/// One line from a `<failure/>`: the condition name, plus the server's text if any.
fn failure_reason(failure: &Element) -> String {
    let condition = failure
        .children()
        .find(|c| c.name() != "text")
        .map_or("unknown-condition", |c| c.name());
    match failure.get_child("text", NS_SASL).map(|t| t.text()) {
        Some(text) if !text.is_empty() => format!("{condition}: {text}"),
        _ => condition.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scram_is_preferred_over_plain() {
        let mut mech = choose_mechanism(&offer(&["PLAIN", "SCRAM-SHA-1"]), "alice", "pw", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mech.name(), "SCRAM-SHA-1");
        assert!(mech.initial().starts_with(b"n,,n=alice,r="));
        let mech = choose_mechanism(
            &offer(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]),
            "alice",
            "pw",
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mech.name(), "SCRAM-SHA-256");
    }

    #[test]
    fn plain_is_used_only_inside_tls() {
        let err = choose_mechanism(&offer(&["PLAIN"]), "alice", "pw", false).err();
        assert!(
            matches!(&err, Some(C2sError::Auth(why)) if why.contains("unencrypted")),
            "{err:?}"
        );
    }

    #[test]
    fn plain_payload_is_nul_user_nul_password() {
        let mut mech = choose_mechanism(&offer(&["PLAIN"]), "alice", "pw", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mech.name(), "PLAIN");
        assert_eq!(mech.initial(), b"\0alice\0pw");
        assert_eq!(encode(&mech.initial()), "AGFsaWNlAHB3");
    }

    #[test]
    fn unknown_mechanisms_are_an_auth_error() {
        let err = choose_mechanism(&offer(&["DIGEST-MD5"]), "alice", "pw", true).err();
        assert!(matches!(err, Some(C2sError::Auth(_))));
    }

    #[test]
    fn empty_payloads_use_the_equals_sign() {
        assert_eq!(encode(b""), "=");
        let success: Element = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</success>"
            .parse()
            .expect("test XML");
        assert_eq!(decode(&success).ok(), Some(Vec::new()));
    }

    #[test]
    fn failure_reason_names_condition_and_text() {
        let failure: Element = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <not-authorized/><text>Unable to authorize you</text></failure>"
            .parse()
            .expect("test XML");
        assert_eq!(
            failure_reason(&failure),
            "not-authorized: Unable to authorize you"
        );
    }
}
