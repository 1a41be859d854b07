//! dsps: an XEP-0037 Data Stream Proxy Service, run as an XMPP external component.
//!
//! Users send `jabber:iq:dsps` queries to the component over XMPP (create, admin,
//! acknowledge, auth, who, stats), then connect to its TCP relay port and stream.
//! Data from a *master* goes to every other peer, data from a *slave* to the
//! masters, framed as `0<size>\n<id>\n<data>`, at the pace of the slowest peer.
//!
//! Glossary: a *stream* is one relay session; a *peer* (or *seat*) is one member's
//! place in it, named by its *peer resource* `dsps.example.org/<resource>`; a
//! *block* is one framed unit of data.
//!
//! Module map:
//! - [`config`]: the operator's TOML file — `file` (serde structs), `validate`
//!   (what serde cannot check), `secret` (its three sources), `effective` (what
//!   `dsps --check-config` prints, secret masked).
//! - [`proto`]: sans-IO wire formats — `block` codec, `handshake` lines, the `iq`
//!   envelope, the `query` model, `error` mapping, `units`, `limits` (what a request
//!   may carry), `outbound` (the size guard on every stanza we send),
//!   `http_preamble` (the HTTP method's request and replies), `adhoc` (XEP-0050
//!   commands) and `forms` (XEP-0004 data forms).
//! - [`core`]: the sans-IO state machine — `registry` (streams, seats, keys,
//!   timers; one file per XEP area: create, admin, handshake, listing, lifecycle;
//!   and for operators: discovery, operator, commands),
//!   `timers`, `info` (disco/ping/version), `throughput` (who figures and the
//!   minthroughput measure), `ids` (resources and keys), `admission` (the relay
//!   port's limits per source address and the refusal tally), `reply_budget`
//!   (bytes of replies per account and in all), `command_sessions` (open XEP-0050
//!   forms), `link_status` (the component link's state, for "Server info" and
//!   systemd's status and readiness) and
//!   `log_filter` (which log filters an operator may switch to).
//! - [`xmpp`]: XML streams — `reader` (pure: bytes to stanzas within depth, size
//!   and element bounds, nothing built past them), `stream` (one XML stream over
//!   any transport, used by the link and the c2s client), `dial` (resolve
//!   `component.server` and connect), `link` (the component link: login,
//!   keepalive, reconnect, answers to refused stanzas; it publishes
//!   `core::link_status`).
//! - [`relay`]: the async relay port — `listener` (the relay port and the `[http]`
//!   listener), `gate` (admission shared with the connections), `preamble` (the
//!   HTTP request and `starttls` before the handshake), `tls` (`[tls]` loading),
//!   `tls_reload` (the certificate SIGHUP replaces), `advertise` (the start-up
//!   check of `relay.host`), `ledger` (each stream's bytes for its "stream ended"
//!   line),
//!   `conn` (handshake + data phase + drain), `plane` (who receives whose blocks),
//!   `dispatch` (carries out the registry's relay actions in the right order).
//! - [`service`]: wiring and the graceful drain; `service::run(config, shutdown)`
//!   is the entry point (`prepare` then `run_prepared` for the binary, which also
//!   keeps the TLS reloader and hands over `Hooks` such as the log filter),
//!   `service::run_with_link` runs it with channels in place of the component link
//!   (relay tests without an XMPP server).
//! - [`client`]: the client library (XMPP c2s client, DSPS session helpers, the
//!   connection methods in `transport`, requests by stream JID, file metadata),
//!   used by the `dsps-client` binary (`src/bin/dsps-client/`).
//! - [`maybe_tls`]: a TCP connection that may have been upgraded to TLS.
//! - [`logging`]: the log's format (`[log]`), the hiding of IP addresses
//!   (`logging::redact`) and the running process's filter, changed by an admin
//!   command (`logging::control`).
//! - [`systemd`]: `Type=notify` readiness, status and watchdog notifications.
//! - [`certgen`]: `dsps gen-cert`, a self-signed pair for `[tls]`.
//! - [`memory`]: gives the memory of closed connections back to the system, and
//!   (`memory::tuning`) starts the server with glibc settings that let it.
//! - [`metrics`]: the counters of the `[metrics]` Prometheus endpoint, and
//!   `metrics::endpoint`, the HTTP responder that serves them.
//!
//! The only `unsafe` blocks are in [`memory`]: the `malloc_trim` call, and setting
//! SIGPIPE back to ignored if the allocator restart (`memory::tuning`) fails.
#![deny(unsafe_code)]

pub mod certgen;
pub mod client;
pub mod config;
pub mod core;
pub mod logging;
pub mod maybe_tls;
pub mod memory;
pub mod metrics;
pub mod proto;
pub mod relay;
pub mod service;
pub mod systemd;
pub mod xmpp;

pub use service::run;
