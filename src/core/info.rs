//! Answers about the service itself on the bare DSPS JID: XEP-0030 disco#info
//! (without a node; nodes and disco#items are `registry::discovery`'s), XEP-0199
//! ping and XEP-0092 version (PROFILE 22).

use minidom::Element;

use super::registry::Settings;
use crate::proto::adhoc::NS_COMMANDS;
use crate::proto::iq::{Iq, IqKind};
use crate::proto::xml::{attr, NS_DSPS};

/// XEP-0030 info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 items namespace.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0199 namespace.
pub const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0092 namespace.
pub const NS_VERSION: &str = "jabber:iq:version";
/// The name in disco identity and version answers.
pub const SERVICE_NAME: &str = "Data Stream Proxy Service";

/// The reply to a disco/ping/version get, or `None` if `payload` is none of them.
pub fn answer(iq: &Iq, payload: &Element, settings: &Settings) -> Option<Iq> {
    if iq.kind != IqKind::Get {
        return None;
    }
    if payload.is("query", NS_DISCO_INFO) {
        // Category 'component'/'generic', not 'proxy'/'bytestreams': that registry
        // entry means XEP-0065 and would mislead clients (PROFILE 22).
        let identity = attr(
            attr(
                attr(
                    Element::builder("identity", NS_DISCO_INFO),
                    "category",
                    "component",
                ),
                "type",
                "generic",
            ),
            "name",
            SERVICE_NAME,
        )
        .build();
        // Commands are advertised only when someone may run them ([admin] jids).
        let commands = (!settings.admins.is_empty()).then_some(NS_COMMANDS);
        let features = [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_DSPS, NS_PING, NS_VERSION]
            .into_iter()
            .chain(commands)
            .map(|v| attr(Element::builder("feature", NS_DISCO_INFO), "var", v).build());
        let q = Element::builder("query", NS_DISCO_INFO)
            .append(identity)
            .append_all(features)
            .build();
        return Some(iq.result(Some(q)));
    }
    if payload.is("ping", NS_PING) {
        return Some(iq.result(None));
    }
    if payload.is("query", NS_VERSION) {
        let mut q = Element::builder("query", NS_VERSION)
            .append(Element::builder("name", NS_VERSION).append("dsps").build())
            .append(
                Element::builder("version", NS_VERSION)
                    .append(env!("CARGO_PKG_VERSION"))
                    .build(),
            );
        if settings.show_os {
            q = q.append(
                Element::builder("os", NS_VERSION)
                    .append(std::env::consts::OS)
                    .build(),
            );
        }
        return Some(iq.result(Some(q.build())));
    }
    None
}
