//! XEP-0050 ad-hoc commands for the operators named in `[admin] jids`: list
//! streams, drop a peer, end a stream, server info, set the log level.
//!
//! The thin adapter between the wire (`proto::adhoc`, `proto::forms`) and the
//! registry's operator operations (`operator`): it checks who asks, walks a
//! command through its stages and turns the outcome into the reply.
//!
//! Rights: the XMPP server stamps `from` on everything it routes to a component,
//! so the bare part of `from` is who asks. Anyone not listed gets `forbidden`
//! (type `auth`) for every command, known or not, before the request is even
//! read, and an empty command list. An admin's malformed request gets
//! `bad-request` (with XEP-0050's `malformed-action`, `bad-action` or
//! `bad-payload`), an unknown node `item-not-found`, a session that is not open
//! `not-allowed` with `session-expired`.
//!
//! Stages: "List streams" and "Server info" complete at once. The others answer
//! `execute` with a form (status `executing`, one action: `complete`) and act on
//! its submission; a request that already carries the submitted form, with no
//! session, is acted on at once (scripts need one round trip).

use minidom::Element;
use tracing::info;

use super::command_forms::{self as views, ServerInfo, STREAM_COLUMNS};
use super::{Action, Now, Out, Registry};
use crate::core::log_filter;
use crate::proto::adhoc::{Action as Step, CommandError, Note, Reply, Request, Status};
use crate::proto::forms::{Submitted, Table};
use crate::proto::iq::{bare, Iq, IqKind};
use crate::proto::limits::size_within;
use crate::proto::xml::{NS_COMPONENT, NS_DSPS};

/// Bytes of a "List streams" reply kept for its instructions line, on top of the
/// reply measured without rows.
const INSTRUCTIONS_ROOM: usize = 256;

/// The commands, in the order they are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    ListStreams,
    DropPeer,
    DropStream,
    ServerInfo,
    SetLogLevel,
}

impl Command {
    pub(super) const ALL: [Command; 5] = [
        Command::ListStreams,
        Command::DropPeer,
        Command::DropStream,
        Command::ServerInfo,
        Command::SetLogLevel,
    ];

    /// Its node (XEP-0050: unique for our JID, equal in disco and `<command/>`).
    pub(super) fn node(self) -> &'static str {
        match self {
            Command::ListStreams => "list-streams",
            Command::DropPeer => "drop-peer",
            Command::DropStream => "drop-stream",
            Command::ServerInfo => "server-info",
            Command::SetLogLevel => "set-log-level",
        }
    }

    /// Its label in command lists.
    pub(super) fn name(self) -> &'static str {
        match self {
            Command::ListStreams => "List streams",
            Command::DropPeer => "Drop a peer",
            Command::DropStream => "End a stream",
            Command::ServerInfo => "Server info",
            Command::SetLogLevel => "Set log level",
        }
    }

    fn has_form(self) -> bool {
        matches!(
            self,
            Command::DropPeer | Command::DropStream | Command::SetLogLevel
        )
    }
}

/// What a command stage produced: the reply's `<command/>` and what else to do.
type Outcome = (Reply, Vec<Action>);

impl Registry {
    /// Whether `from` (a full JID as the server stamped it) is an operator.
    pub(super) fn is_admin(&self, from: &str) -> bool {
        let who = bare(from);
        self.settings
            .admins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(who))
    }

    /// The commands this process offers: all of them, but the log level only when
    /// the binary handed over a way to change it.
    pub(super) fn offered(&self) -> impl Iterator<Item = Command> + '_ {
        Command::ALL
            .into_iter()
            .filter(|c| *c != Command::SetLogLevel || self.log_filter.is_some())
    }

    /// A `<command/>` to the bare JID: exactly one reply, then what the command did.
    pub(super) fn on_command(&mut self, iq: &Iq, payload: &Element, now: Now, out: &mut Out) {
        match self.run_command(iq, payload, now) {
            Ok((reply, actions)) => {
                Self::send(out, iq.result(Some(reply.to_element())));
                out.extend(actions);
            }
            Err(e) => {
                let mut reply = iq.error_reply(e.dsps_error(), None, NS_COMPONENT);
                reply.error = Some(e.to_element(NS_COMPONENT));
                Self::send(out, reply);
            }
        }
    }

    fn run_command(
        &mut self,
        iq: &Iq,
        payload: &Element,
        now: Now,
    ) -> Result<Outcome, CommandError> {
        if !self.is_admin(&iq.from) {
            return Err(CommandError::Forbidden);
        }
        if iq.kind != IqKind::Set {
            return Err(CommandError::BadRequest(
                "commands are run with an iq of type set".into(),
            ));
        }
        let req = Request::parse(payload)?;
        let cmd = self
            .offered()
            .find(|c| c.node() == req.node)
            .ok_or(CommandError::UnknownNode)?;
        let node = cmd.node();
        match req.action {
            Step::Cancel => {
                if let Some(id) = &req.session {
                    if !self.sessions.close(id, node, &iq.from, now.mono) {
                        return Err(CommandError::SessionExpired);
                    }
                }
                let session = req.session.unwrap_or_else(|| self.sessions.one_shot(node));
                return Ok((
                    reply(cmd, session, Status::Canceled, None, Vec::new()),
                    Vec::new(),
                ));
            }
            Step::Prev => {
                return Err(CommandError::BadAction(
                    "this command has no earlier stage".into(),
                ))
            }
            Step::Execute | Step::Next | Step::Complete => {}
        }
        if cmd.has_form() && req.session.is_some() && req.form.is_none() {
            return Err(CommandError::BadPayload(
                "submit the command's form to complete it".into(),
            ));
        }
        if let Some(id) = &req.session {
            if !self.sessions.is_open(id, node, &iq.from, now.mono) {
                return Err(CommandError::SessionExpired);
            }
        }
        let session = |me: &mut Registry| {
            req.session
                .clone()
                .unwrap_or_else(|| me.sessions.one_shot(node))
        };
        match (cmd, &req.form) {
            (Command::ListStreams, _) => {
                let s = session(self);
                Ok((self.list_streams(cmd, s, now), Vec::new()))
            }
            (Command::ServerInfo, _) => {
                let s = session(self);
                let form = self.server_info(now);
                Ok((
                    reply(cmd, s, Status::Completed, Some(form), Vec::new()),
                    Vec::new(),
                ))
            }
            (_, None) => {
                let s = self.sessions.open(node, &iq.from, now.mono);
                let form = self.form_of(cmd, now);
                Ok((
                    reply(cmd, s, Status::Executing, Some(form), Vec::new()),
                    Vec::new(),
                ))
            }
            (_, Some(form)) => {
                let s = session(self);
                let done = self.submit(cmd, s, form, &iq.from, now)?;
                // A form that was refused may be corrected and sent again in the
                // same session; one that was acted on ends it.
                if let Some(id) = &req.session {
                    self.sessions.close(id, node, &iq.from, now.mono);
                }
                Ok(done)
            }
        }
    }

    fn form_of(&self, cmd: Command, now: Now) -> Element {
        let choices = || -> Vec<_> {
            self.stream_ids()
                .into_iter()
                .take(views::STREAM_CHOICES + 1)
                .filter_map(|sid| {
                    self.stream_summary(sid, now)
                        .map(|s| (sid, views::stream_label(&s)))
                })
                .collect()
        };
        match cmd {
            Command::DropPeer => views::drop_peer_form(&choices()),
            Command::DropStream => views::drop_stream_form(&choices()),
            Command::SetLogLevel => views::log_form(self.log_filter.as_deref().unwrap_or("info")),
            Command::ListStreams | Command::ServerInfo => {
                unreachable!("single-stage commands have no form")
            }
        }
    }

    fn submit(
        &mut self,
        cmd: Command,
        session: String,
        form: &Submitted,
        from: &str,
        now: Now,
    ) -> Result<Outcome, CommandError> {
        let done = |notes: Vec<(Note, String)>, actions: Vec<Action>| {
            Ok((
                reply(cmd, session.clone(), Status::Completed, None, notes),
                actions,
            ))
        };
        match cmd {
            Command::DropPeer => {
                let sid = stream_of(form)?;
                let jid = form.need("jid").map_err(CommandError::BadPayload)?;
                if jid.len() > self.settings.limits.attribute_bytes
                    || xmpp_parsers::jid::Jid::new(jid).is_err()
                {
                    return Err(CommandError::BadPayload(format!(
                        "'jid' is not a JID: {jid:?}"
                    )));
                }
                let comments = reason_of(form)?;
                match self.operator_drop_peer(sid, jid, &comments, now) {
                    Ok((n, actions)) => {
                        info!(
                            by = from,
                            stream = sid,
                            peer = jid,
                            "admin command: drop a peer"
                        );
                        let seats = if n == 1 { "seat" } else { "seats" };
                        done(
                            vec![(
                                Note::Info,
                                format!("dropped {n} {seats} of {jid} from stream {sid}"),
                            )],
                            actions,
                        )
                    }
                    Err(e) => done(vec![(Note::Error, e.to_string())], Vec::new()),
                }
            }
            Command::DropStream => {
                let sid = stream_of(form)?;
                let comments = reason_of(form)?;
                match self.operator_end_stream(sid, &comments, now) {
                    Ok(actions) => {
                        info!(by = from, stream = sid, "admin command: end a stream");
                        done(vec![(Note::Info, format!("stream {sid} ended"))], actions)
                    }
                    Err(e) => done(vec![(Note::Error, e.to_string())], Vec::new()),
                }
            }
            Command::SetLogLevel => {
                let wanted = form.need("filter").map_err(CommandError::BadPayload)?;
                log_filter::check(wanted).map_err(CommandError::BadPayload)?;
                let wanted = wanted.trim().to_string();
                let old = self.log_filter.replace(wanted.clone()).unwrap_or_default();
                // Logged before it applies, so the line passes the filter it replaces.
                info!(by = from, from = %old, to = %wanted, "admin command: log filter changed");
                done(
                    vec![(
                        Note::Info,
                        format!("log filter is now {wanted} (was {old})"),
                    )],
                    vec![Action::SetLogFilter(wanted)],
                )
            }
            Command::ListStreams | Command::ServerInfo => {
                unreachable!("single-stage commands are answered before forms are read")
            }
        }
    }

    /// "List streams": one row per live stream, oldest first, as many as fit in
    /// `max_stanza_size`; the instructions say how many are shown.
    fn list_streams(&self, cmd: Command, session: String, now: Now) -> Reply {
        let ids = self.stream_ids();
        let mut table = Table::new("Streams", &STREAM_COLUMNS);
        // The reply without rows, measured as the client gets it.
        let empty = Table::new("Streams", &STREAM_COLUMNS).into_element(None);
        let shell = reply(
            cmd,
            session.clone(),
            Status::Completed,
            Some(empty),
            Vec::new(),
        );
        let probe = Iq::request(
            IqKind::Set,
            &"x".repeat(self.settings.limits.attribute_bytes),
            &self.settings.domain,
            &"x".repeat(self.settings.limits.attribute_bytes),
            shell.to_element(),
        )
        .to_element(NS_COMPONENT);
        let max = self.settings.max_stanza_size;
        let mut room = max
            .saturating_sub(size_within(&probe, max).unwrap_or(max))
            .saturating_sub(INSTRUCTIONS_ROOM);
        for sid in &ids {
            let Some(s) = self.stream_summary(*sid, now) else {
                continue;
            };
            match table.push_within(views::stream_row(&table, &s), room) {
                Some(used) => room -= used,
                None => break,
            }
        }
        let shown = table.len();
        let instructions = if shown == ids.len() {
            format!("{shown} stream{}", if shown == 1 { "" } else { "s" })
        } else {
            format!(
                "{shown} of {} streams shown, oldest first (the reply is limited to component.max_stanza_size)",
                ids.len()
            )
        };
        let form = table.into_element(Some(&instructions));
        reply(cmd, session, Status::Completed, Some(form), Vec::new())
    }

    fn server_info(&self, now: Now) -> Element {
        views::server_info(&ServerInfo {
            domain: &self.settings.domain,
            started_unix: self.settings.started.unix,
            uptime_secs: now
                .mono
                .saturating_duration_since(self.settings.started.mono)
                .as_secs(),
            counts: self.counts(),
            link: &self.link,
            log_filter: self.log_filter.as_deref(),
            draining: self.draining,
        })
    }
}

fn reply(
    cmd: Command,
    session: String,
    status: Status,
    form: Option<Element>,
    notes: Vec<(Note, String)>,
) -> Reply {
    Reply {
        node: cmd.node().to_string(),
        session,
        status,
        form,
        notes,
    }
}

fn stream_of(form: &Submitted) -> Result<u64, CommandError> {
    let v = form.need("stream").map_err(CommandError::BadPayload)?;
    v.parse().map_err(|_| {
        CommandError::BadPayload(format!(
            "'stream' must be a stream number as List streams shows it, not {v:?}"
        ))
    })
}

/// The optional reason, as the one `<comment/>` of the drop notices.
fn reason_of(form: &Submitted) -> Result<Vec<Element>, CommandError> {
    match form.value("reason") {
        None => Ok(Vec::new()),
        Some(r) if r.len() > views::MAX_REASON_BYTES => Err(CommandError::BadPayload(format!(
            "'reason' is longer than {} bytes",
            views::MAX_REASON_BYTES
        ))),
        Some(r) => Ok(vec![Element::builder("comment", NS_DSPS).append(r).build()]),
    }
}
