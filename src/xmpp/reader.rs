//! The component link's reader: bytes from the XMPP server in, whole stanzas out,
//! with bounds no stanza can get past (issue: hostile input).
//!
//! Why we own this instead of using tokio-xmpp's `XmlStream`: tokio-xmpp 6 builds
//! its rxml parser with the default options (8 KiB tokens) and does not let us set
//! them, so one 16 KB attribute from any user made the parser fail and cut the whole
//! link; and it builds a tree of whatever depth arrives, which minidom then drops
//! (and clones, and writes) recursively, so 5 000 nested elements overflowed a worker
//! stack. Here the rxml parser gets our token limit (at least the server's own
//! stanza limit, so anything the server forwards is readable), and a depth, size
//! and element counter runs *before* any element is built: a stanza past a bound
//! is skipped event by event (no tree, no recursion) and reported as
//! [`Inbound::Rejected`] with the header attributes needed to answer it.
//!
//! Pure: no sockets and no tokio. The link feeds it what it reads.

use minidom::rxml::{
    self, error::EndOrError, Namespace, NcName, Parse, RawEvent, RawParser, WithOptions,
};
use minidom::Element;

/// The streams namespace (`stream:stream`, `stream:error`).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// What the reader accepts in one stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Deepest element nesting in a stanza; the stanza element itself is level 1.
    pub max_depth: usize,
    /// Most bytes of XML in one stanza. Also the longest name, attribute value or
    /// text chunk the parser takes (rxml's `max_token_length`, at least
    /// [`MIN_TOKEN_LIMIT`]): a token longer than that cannot be recovered from,
    /// so it ends the stream.
    pub max_stanza_bytes: usize,
    /// Most elements in one stanza (bounds the tree's memory next to its bytes:
    /// `<a/>` is 4 bytes on the wire and a hundred in memory).
    pub max_elements: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_depth: 64,
            max_stanza_bytes: 1 << 20,
            max_elements: 8192,
        }
    }
}

/// Which bound a rejected stanza passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Nested deeper than `max_depth`.
    Depth(usize),
    /// More than `max_stanza_bytes` bytes.
    Bytes(usize),
    /// More than `max_elements` elements.
    Elements(usize),
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Depth(n) => write!(f, "stanza nests deeper than component.max_depth ({n})"),
            Bound::Bytes(n) => write!(
                f,
                "stanza larger than component.max_inbound_stanza_size ({n} bytes)"
            ),
            Bound::Elements(n) => write!(f, "stanza has more than {n} elements"),
        }
    }
}

/// The top element of a rejected stanza: enough to answer it or log it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StanzaHead {
    /// `iq`, `message`, `presence`, or whatever it was.
    pub name: String,
    /// Its `type` attribute.
    pub kind: Option<String>,
    /// Its `id` attribute.
    pub id: Option<String>,
    /// Its `from` attribute.
    pub from: Option<String>,
    /// Its `to` attribute.
    pub to: Option<String>,
}

/// One thing read off the link.
#[derive(Debug)]
pub enum Inbound {
    /// The server's stream header, with its stream id (needed for the handshake).
    Header {
        /// The `id` attribute.
        id: Option<String>,
    },
    /// A stanza (or nonza such as `<handshake/>`), within every bound.
    Stanza(Element),
    /// A `<stream:error/>`: the server is about to close the stream.
    StreamError(Element),
    /// A stanza that passed a bound; nothing of it beyond `head` was kept.
    Rejected {
        /// The stanza's top element.
        head: StanzaHead,
        /// The bound it passed.
        bound: Bound,
    },
    /// `</stream:stream>`.
    Footer,
}

/// The stream cannot be read any further (not well-formed, a token over the
/// limit, or data after the footer); the link must be reconnected.
#[derive(Debug)]
pub struct ReadFailure(pub String);

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stanza being read.
enum Current {
    /// Between stanzas.
    Idle,
    /// Building: the open elements, outermost first (at most `max_depth` of
    /// them, so nothing here is deep).
    Building {
        open: Vec<Element>,
        bytes: usize,
        elements: usize,
    },
    /// Past a bound: counting depth until the stanza closes, keeping nothing.
    Skipping {
        head: StanzaHead,
        bound: Bound,
        depth: usize,
    },
}

/// An element whose start tag is being read (its attributes come one by one).
struct OpenTag {
    prefix: Option<String>,
    name: String,
    attrs: Vec<(Option<String>, NcName, String)>,
    scope: Scope,
}

/// Namespace declarations made on one element.
#[derive(Default)]
struct Scope {
    default: Option<String>,
    prefixed: Vec<(String, String)>,
}

/// Turns the server's bytes into [`Inbound`] items.
///
/// rxml's namespace-resolving `Parser` looks every name up through all enclosing
/// elements, which is quadratic in depth (40 000 levels took 8 s); so this reads
/// rxml's raw events and resolves names itself, through at most `max_depth`
/// scopes, and not at all while skipping.
pub struct StanzaReader {
    parser: RawParser,
    limits: ReaderLimits,
    /// The stream root's scope, then one per open element of the stanza.
    scopes: Vec<Scope>,
    tag: Option<OpenTag>,
    in_stream: bool,
    ended: bool,
    current: Current,
}

impl StanzaReader {
    /// A reader for a new stream.
    pub fn new(limits: ReaderLimits) -> Self {
        let options = rxml::Options {
            max_token_length: token_limit(limits),
            ..Default::default()
        };
        StanzaReader {
            parser: RawParser::with_options(options),
            limits,
            scopes: Vec::new(),
            tag: None,
            in_stream: false,
            ended: false,
            current: Current::Idle,
        }
    }

    /// Parses what `buf` holds, appending complete items to `out`. Consumes all
    /// of `buf` (rxml keeps a partial token itself).
    pub fn feed(&mut self, mut buf: &[u8], out: &mut Vec<Inbound>) -> Result<(), ReadFailure> {
        loop {
            if self.ended {
                return if buf.iter().all(u8::is_ascii_whitespace) {
                    Ok(())
                } else {
                    Err(ReadFailure("data after the stream footer".into()))
                };
            }
            match self.parser.parse(&mut buf, false) {
                Ok(Some(ev)) => {
                    if let Some(item) = self.event(ev)? {
                        out.push(item);
                    }
                }
                Ok(None) => self.ended = true,
                Err(EndOrError::NeedMoreData) => return Ok(()),
                Err(EndOrError::Error(e)) => return Err(ReadFailure(format!("xml: {e}"))),
            }
        }
    }

    fn event(&mut self, ev: RawEvent) -> Result<Option<Inbound>, ReadFailure> {
        let ev_len = ev.metrics().len();
        if let Current::Building { bytes, .. } = &mut self.current {
            *bytes += ev.metrics().len();
        }
        let skipping = matches!(self.current, Current::Skipping { .. });
        match ev {
            RawEvent::XmlDeclaration(..) if !self.in_stream => Ok(None),
            RawEvent::XmlDeclaration(..) => {
                Err(ReadFailure("xml declaration in the stream".into()))
            }
            RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                if let Current::Skipping { depth, .. } = &mut self.current {
                    *depth += 1;
                    return Ok(None);
                }
                match &mut self.current {
                    Current::Building { open, elements, .. } => {
                        *elements += 1;
                        if open.len() >= self.limits.max_depth {
                            self.skip(Bound::Depth(self.limits.max_depth), 1);
                            return Ok(None);
                        }
                    }
                    Current::Idle if self.in_stream => {
                        self.current = Current::Building {
                            open: Vec::new(),
                            bytes: ev_len,
                            elements: 1,
                        }
                    }
                    _ => {}
                }
                self.tag = Some(OpenTag {
                    prefix: prefix.map(|p| p.as_str().to_string()),
                    name: name.as_str().to_string(),
                    attrs: Vec::new(),
                    scope: Scope::default(),
                });
                self.check_bounds();
                Ok(None)
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                if skipping {
                    return Ok(None);
                }
                let Some(tag) = self.tag.as_mut() else {
                    return Err(ReadFailure("attribute outside a start tag".into()));
                };
                match (prefix, name) {
                    (None, n) if n.as_str() == "xmlns" => tag.scope.default = Some(value),
                    (Some(p), n) if p.as_str() == "xmlns" => {
                        tag.scope.prefixed.push((n.as_str().to_string(), value))
                    }
                    (p, n) => tag
                        .attrs
                        .push((p.map(|p| p.as_str().to_string()), n, value)),
                }
                self.check_bounds();
                Ok(None)
            }
            RawEvent::ElementHeadClose(_) => {
                if skipping {
                    return Ok(None);
                }
                let tag = self
                    .tag
                    .take()
                    .ok_or_else(|| ReadFailure("start tag end without a start".into()))?;
                self.scopes.push(tag.scope);
                let ns = self.resolve(tag.prefix.as_deref())?;
                let mut e = Element::bare(tag.name, ns);
                for (prefix, name, value) in tag.attrs {
                    let ns = match prefix.as_deref() {
                        None => Namespace::NONE,
                        Some("xml") => Namespace::xml().clone(),
                        Some(p) => Namespace::from(self.resolve(Some(p))?),
                    };
                    if e.attrs_mut().insert(ns, name, value).is_some() {
                        return Err(ReadFailure("duplicate attribute".into()));
                    }
                }
                if !self.in_stream {
                    if !e.is("stream", NS_STREAMS) {
                        return Err(ReadFailure(format!(
                            "unexpected stream root <{}>",
                            e.name()
                        )));
                    }
                    self.in_stream = true;
                    let id = e.attr("id").map(str::to_string);
                    return Ok(Some(Inbound::Header { id }));
                }
                match &mut self.current {
                    Current::Building { open, .. } => open.push(e),
                    _ => unreachable!("a start tag in the stream begins or continues a stanza"),
                }
                Ok(None)
            }
            RawEvent::Text(_, text) => {
                if let Current::Building { open, .. } = &mut self.current {
                    if let Some(top) = open.last_mut() {
                        top.append_text(text.as_str());
                    }
                    self.check_bounds();
                }
                // Whitespace keepalives between stanzas, and text while skipping.
                Ok(None)
            }
            RawEvent::ElementFoot(_) => self.end_element(),
        }
    }

    fn end_element(&mut self) -> Result<Option<Inbound>, ReadFailure> {
        match &mut self.current {
            Current::Idle => {
                self.ended = true;
                Ok(Some(Inbound::Footer))
            }
            Current::Skipping { depth, .. } => {
                *depth -= 1;
                if *depth > 0 {
                    return Ok(None);
                }
                let Current::Skipping { head, bound, .. } =
                    std::mem::replace(&mut self.current, Current::Idle)
                else {
                    unreachable!("matched Skipping above")
                };
                self.scopes.truncate(1);
                Ok(Some(Inbound::Rejected { head, bound }))
            }
            Current::Building { open, .. } => {
                self.scopes.pop();
                let done = open.pop().expect("a building stanza has an open element");
                if let Some(parent) = open.last_mut() {
                    parent.append_child(done);
                    return Ok(None);
                }
                self.current = Current::Idle;
                if done.is("error", NS_STREAMS) {
                    Ok(Some(Inbound::StreamError(done)))
                } else {
                    Ok(Some(Inbound::Stanza(done)))
                }
            }
        }
    }

    /// The namespace a prefix (or no prefix) stands for here. Walks at most
    /// `max_depth + 1` scopes.
    fn resolve(&self, prefix: Option<&str>) -> Result<String, ReadFailure> {
        for scope in self.scopes.iter().rev() {
            match prefix {
                None => {
                    if let Some(ns) = &scope.default {
                        return Ok(ns.clone());
                    }
                }
                Some(p) => {
                    if let Some((_, ns)) = scope.prefixed.iter().find(|(q, _)| q == p) {
                        return Ok(ns.clone());
                    }
                }
            }
        }
        match prefix {
            None => Ok(String::new()),
            Some(p) => Err(ReadFailure(format!("undeclared prefix {p}"))),
        }
    }

    /// Switches a building stanza to skipping when it has passed its byte or
    /// element bound.
    fn check_bounds(&mut self) {
        if let Current::Building {
            bytes, elements, ..
        } = &self.current
        {
            if *bytes > self.limits.max_stanza_bytes {
                self.skip(Bound::Bytes(self.limits.max_stanza_bytes), 0);
            } else if *elements > self.limits.max_elements {
                self.skip(Bound::Elements(self.limits.max_elements), 0);
            }
        }
    }

    /// Drops what was built of the current stanza, keeping its head, and counts
    /// `extra` open elements beyond those that were built (a start tag being
    /// read counts as open).
    fn skip(&mut self, bound: Bound, extra: usize) {
        let Current::Building { open, .. } = std::mem::replace(&mut self.current, Current::Idle)
        else {
            return;
        };
        let tag = self.tag.take();
        let depth = open.len() + extra + usize::from(tag.is_some());
        let head = match (open.first(), tag) {
            (Some(top), _) => head_of(top),
            // Still inside the stanza's own start tag.
            (None, Some(tag)) => head_of_tag(&tag),
            (None, None) => StanzaHead::default(),
        };
        // The open elements are not linked yet (a child joins its parent when it
        // closes) and each holds subtrees within `max_depth`: dropping is shallow.
        drop(open);
        self.current = Current::Skipping { head, bound, depth };
    }
}

/// Tokens no stream needs to be longer than, whatever the limits: enough for any
/// stream header (its namespace URIs, ids and domains), so a small stanza limit
/// never makes the header itself unreadable.
pub const MIN_TOKEN_LIMIT: usize = 4096;

/// The longest name, attribute value or text chunk the parser takes: the stanza
/// limit, or [`MIN_TOKEN_LIMIT`] if that is larger.
pub fn token_limit(limits: ReaderLimits) -> usize {
    limits.max_stanza_bytes.max(MIN_TOKEN_LIMIT)
}

fn head_of_tag(tag: &OpenTag) -> StanzaHead {
    let a = |n: &str| {
        tag.attrs
            .iter()
            .find(|(p, name, _)| p.is_none() && name.as_str() == n)
            .map(|(_, _, v)| v.clone())
    };
    StanzaHead {
        name: tag.name.clone(),
        kind: a("type"),
        id: a("id"),
        from: a("from"),
        to: a("to"),
    }
}

fn head_of(e: &Element) -> StanzaHead {
    let a = |n: &str| e.attr(n).map(str::to_string);
    StanzaHead {
        name: e.name().to_string(),
        kind: a("type"),
        id: a("id"),
        from: a("from"),
        to: a("to"),
    }
}

#[cfg(test)]
mod tests;
