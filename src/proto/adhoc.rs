//! XEP-0050 ad-hoc commands on the wire: reading a `<command/>` request, writing
//! the `<command/>` of a reply, and the command errors (XEP-0050 "Possible
//! Errors").
//!
//! xmpp-parsers 0.23 has no XEP-0050 module, so the element is read and written
//! here; its payloads are `proto::forms` (xmpp-parsers' data forms). Which commands
//! exist and who may run them is the registry's (`core::registry::commands`).

use minidom::Element;

use super::error::DspsError;
use super::forms::{Submitted, NS_DATA_FORMS};
use super::xml::{attr, get_attr};

/// XEP-0050 namespace, also the disco node that lists the commands.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// What the requester asks of a command (`action`; `execute` when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run it, or go on with it.
    Execute,
    /// Stop; the session ends.
    Cancel,
    /// Back one stage.
    Prev,
    /// On to the next stage.
    Next,
    /// Finish with what was submitted.
    Complete,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "execute" => Action::Execute,
            "cancel" => Action::Cancel,
            "prev" => Action::Prev,
            "next" => Action::Next,
            "complete" => Action::Complete,
            _ => return None,
        })
    }
}

/// A `<command/>` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command's node.
    pub node: String,
    /// What to do.
    pub action: Action,
    /// The session of a later stage.
    pub session: Option<String>,
    /// The data form submitted with it, if any.
    pub form: Option<Submitted>,
}

/// Why a command request cannot be acted on; each maps to one error
/// ([`CommandError::dsps_error`], [`CommandError::specific`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The requester is not an admin.
    Forbidden,
    /// No such command.
    UnknownNode,
    /// The request does not say which command, or is not a `set`.
    BadRequest(String),
    /// An `action` XEP-0050 does not define.
    MalformedAction(String),
    /// An action this stage does not take (e.g. `prev` on the first).
    BadAction(String),
    /// The submitted form lacks a field or holds a wrong value.
    BadPayload(String),
    /// The session is not (or no longer) open for this requester and command.
    SessionExpired,
}

impl CommandError {
    /// The stanza error it is sent as.
    pub fn dsps_error(&self) -> DspsError {
        match self {
            CommandError::Forbidden => DspsError::Forbidden,
            CommandError::UnknownNode => DspsError::ItemNotFound,
            CommandError::SessionExpired => DspsError::NotAllowed,
            CommandError::BadRequest(_)
            | CommandError::MalformedAction(_)
            | CommandError::BadAction(_)
            | CommandError::BadPayload(_) => DspsError::BadRequest,
        }
    }

    /// The XEP-0050 application condition beside the stanza error, if any.
    pub fn specific(&self) -> Option<&'static str> {
        match self {
            CommandError::MalformedAction(_) => Some("malformed-action"),
            CommandError::BadAction(_) => Some("bad-action"),
            CommandError::BadPayload(_) => Some("bad-payload"),
            CommandError::SessionExpired => Some("session-expired"),
            _ => None,
        }
    }

    /// The `<text/>`.
    pub fn text(&self) -> String {
        match self {
            CommandError::Forbidden => "only the operators in [admin] jids may run commands".into(),
            CommandError::UnknownNode => "no such command".into(),
            CommandError::SessionExpired => {
                "this command session is not open (completed, canceled or expired)".into()
            }
            CommandError::BadRequest(t)
            | CommandError::MalformedAction(t)
            | CommandError::BadAction(t)
            | CommandError::BadPayload(t) => t.clone(),
        }
    }

    /// The `<error/>` child in namespace `ns`: code, condition, text and the
    /// XEP-0050 condition.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut e = self.dsps_error().to_element(ns, Some(&self.text()));
        if let Some(name) = self.specific() {
            e.append_child(Element::builder(name, NS_COMMANDS).build());
        }
        e
    }
}

impl Request {
    /// Reads a `<command xmlns='http://jabber.org/protocol/commands'/>`.
    pub fn parse(e: &Element) -> Result<Request, CommandError> {
        let node = get_attr(e, "node")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CommandError::BadRequest("a command needs a node".into()))?
            .to_string();
        let action = match get_attr(e, "action") {
            None => Action::Execute,
            Some(a) => Action::parse(a).ok_or_else(|| {
                CommandError::MalformedAction(format!("unknown command action {a:?}"))
            })?,
        };
        let session = get_attr(e, "sessionid")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        // XEP-0050: the requester's payload is a submitted data form; the first wins.
        let form = match e.get_child("x", NS_DATA_FORMS) {
            Some(x) => Some(Submitted::parse(x).map_err(CommandError::BadPayload)?),
            None => None,
        };
        Ok(Request {
            node,
            action,
            session,
            form,
        })
    }
}

/// Where a command stands after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// More stages follow (a form to fill).
    Executing,
    /// Done; the session is over.
    Completed,
    /// Canceled; the session is over.
    Canceled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Executing => "executing",
            Status::Completed => "completed",
            Status::Canceled => "canceled",
        }
    }
}

/// How serious a `<note/>` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Information.
    Info,
    /// Something odd but valid.
    Warn,
    /// The command completed but failed.
    Error,
}

impl Note {
    fn as_str(self) -> &'static str {
        match self {
            Note::Info => "info",
            Note::Warn => "warn",
            Note::Error => "error",
        }
    }
}

/// The `<command/>` of a reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The command's node.
    pub node: String,
    /// The session.
    pub session: String,
    /// Where it stands.
    pub status: Status,
    /// A form to fill or a result form.
    pub form: Option<Element>,
    /// Notes, in order.
    pub notes: Vec<(Note, String)>,
}

impl Reply {
    /// The element. A stage that waits for a form offers one action, `complete`
    /// (every multi-stage command here has two stages).
    pub fn to_element(&self) -> Element {
        let mut b = attr(
            Element::builder("command", NS_COMMANDS),
            "node",
            self.node.as_str(),
        );
        b = attr(b, "sessionid", self.session.as_str());
        b = attr(b, "status", self.status.as_str());
        if self.status == Status::Executing {
            b = b.append(
                attr(
                    Element::builder("actions", NS_COMMANDS),
                    "execute",
                    "complete",
                )
                .append(Element::builder("complete", NS_COMMANDS).build())
                .build(),
            );
        }
        for (kind, text) in &self.notes {
            b = b.append(
                attr(Element::builder("note", NS_COMMANDS), "type", kind.as_str())
                    .append(text.as_str())
                    .build(),
            );
        }
        if let Some(f) = &self.form {
            b = b.append(f.clone());
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xml::{NS_COMPONENT, NS_STANZAS};

    fn parse(xml: &str) -> Result<Request, CommandError> {
        Request::parse(&xml.parse::<Element>().unwrap())
    }

    #[test]
    fn reads_the_xep_examples() {
        // XEP-0050 Example 4, "Execute command request".
        let r = parse(
            "<command xmlns='http://jabber.org/protocol/commands' node='list' action='execute'/>",
        )
        .unwrap();
        assert_eq!((r.node.as_str(), r.action), ("list", Action::Execute));
        assert_eq!((r.session, r.form), (None, None));
        // Example 8, stage 2: the form submitted, no action (execute implied).
        let r = parse(
            "<command xmlns='http://jabber.org/protocol/commands' \
             sessionid='config:20020923T213616Z-700' node='config'>\
             <x xmlns='jabber:x:data' type='submit'><field var='service'>\
             <value>httpd</value></field></x></command>",
        )
        .unwrap();
        assert_eq!(r.action, Action::Execute);
        assert_eq!(r.session.as_deref(), Some("config:20020923T213616Z-700"));
        assert_eq!(r.form.unwrap().value("service"), Some("httpd"));
        let r = parse(
            "<command xmlns='http://jabber.org/protocol/commands' sessionid='s' \
             node='config' action='cancel'/>",
        )
        .unwrap();
        assert_eq!(r.action, Action::Cancel);
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let no_node = parse("<command xmlns='http://jabber.org/protocol/commands'/>");
        assert!(matches!(no_node, Err(CommandError::BadRequest(_))));
        let bad =
            parse("<command xmlns='http://jabber.org/protocol/commands' node='x' action='go'/>")
                .unwrap_err();
        assert_eq!(
            bad,
            CommandError::MalformedAction("unknown command action \"go\"".into())
        );
        let form = parse(
            "<command xmlns='http://jabber.org/protocol/commands' node='x'>\
             <x xmlns='jabber:x:data' type='result'/></command>",
        )
        .unwrap_err();
        assert!(matches!(form, CommandError::BadPayload(_)));
    }

    #[test]
    fn errors_carry_the_stanza_and_the_command_condition() {
        let e = CommandError::MalformedAction("nope".into()).to_element(NS_COMPONENT);
        assert_eq!(get_attr(&e, "code"), Some("400"));
        assert_eq!(get_attr(&e, "type"), Some("modify"));
        assert!(e.has_child("bad-request", NS_STANZAS));
        assert!(e.has_child("malformed-action", NS_COMMANDS));
        let f = CommandError::Forbidden.to_element(NS_COMPONENT);
        assert_eq!(get_attr(&f, "type"), Some("auth"));
        assert!(f.has_child("forbidden", NS_STANZAS));
        let s = CommandError::SessionExpired.to_element(NS_COMPONENT);
        assert!(s.has_child("not-allowed", NS_STANZAS));
        assert!(s.has_child("session-expired", NS_COMMANDS));
        let n = CommandError::UnknownNode.to_element(NS_COMPONENT);
        assert!(n.has_child("item-not-found", NS_STANZAS));
    }

    #[test]
    fn a_reply_waiting_for_a_form_offers_complete() {
        let r = Reply {
            node: "drop-stream".into(),
            session: "cmd7".into(),
            status: Status::Executing,
            form: Some(Element::builder("x", NS_DATA_FORMS).build()),
            notes: vec![(Note::Info, "pick one".into())],
        }
        .to_element();
        assert_eq!(get_attr(&r, "status"), Some("executing"));
        assert_eq!(get_attr(&r, "sessionid"), Some("cmd7"));
        let actions = r.get_child("actions", NS_COMMANDS).unwrap();
        assert_eq!(get_attr(actions, "execute"), Some("complete"));
        assert!(actions.has_child("complete", NS_COMMANDS));
        assert!(r.has_child("x", NS_DATA_FORMS));
        let done = Reply {
            status: Status::Completed,
            form: None,
            notes: vec![(Note::Error, "no such stream".into())],
            node: "drop-stream".into(),
            session: "cmd7".into(),
        }
        .to_element();
        assert!(done.get_child("actions", NS_COMMANDS).is_none());
        let note = done.get_child("note", NS_COMMANDS).unwrap();
        assert_eq!(
            (get_attr(note, "type"), note.text()),
            (Some("error"), "no such stream".into())
        );
    }
}
