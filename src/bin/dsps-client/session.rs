//! One logged-in run of a subcommand: the XMPP client, the DSPS client for the chosen
//! component, the event pump, the output settings and the bounds from the global
//! options. Also the steps every data command shares: connecting to the relay and
//! leaving a stream.

use std::time::Duration;

use dsps::client::c2s::XmppClient;
use dsps::client::session::{ClientError, DspsClient, DspsEvent, Seat, REQUEST_TIMEOUT};
use dsps::client::transport::{self, RelayConn};

use crate::cli::Global;
use crate::events::Pump;
use crate::failure::{fail, Exit, Failure, Result};
use crate::login::{self, Account, ConnectChoice};
use crate::progress::Output;

/// Everything `main` resolves before the runtime starts (so a password prompt or a
/// missing password happens before any connection).
pub struct Login {
    /// The account, resource included.
    pub account: Account,
    /// Its password.
    pub password: String,
    /// Where and how to connect.
    pub choice: ConnectChoice,
}

impl Login {
    /// Resolves the account and the password from the global options.
    pub fn resolve(g: &Global) -> Result<Login> {
        let account = login::account(g)?;
        let password = login::password(g, &account)?;
        Ok(Login {
            account,
            password,
            choice: ConnectChoice::from_global(g)?,
        })
    }
}

/// A logged-in session; see the module doc.
pub struct Session {
    /// The XMPP client.
    pub xmpp: XmppClient,
    /// Requests to the DSPS.
    pub dsps: DspsClient,
    /// Its pushes.
    pub pump: Pump,
    /// Where lines and progress go.
    pub out: Output,
    /// `--timeout`: bound on each wait for a peer.
    pub timeout: Duration,
    relay: transport::ConnectOptions,
}

impl Session {
    /// Logs in and picks the DSPS (`--dsps`, else `dsps.<account domain>`).
    pub async fn open(g: &Global, login: &Login) -> Result<Session> {
        let (xmpp, incoming) =
            login::connect(&login.account, &login.password, &login.choice).await?;
        let service = g
            .dsps
            .clone()
            .unwrap_or_else(|| format!("dsps.{}", login.account.domain));
        Ok(Session {
            dsps: DspsClient::new(xmpp.clone(), &service),
            pump: Pump::start(xmpp.clone(), incoming),
            xmpp,
            out: Output::new(g.quiet),
            timeout: Duration::from_secs(g.timeout),
            relay: relay_options(g)?,
        })
    }

    /// Our full JID as the server bound it.
    pub fn jid(&self) -> &str {
        self.xmpp.jid()
    }

    /// Runs the relay handshake for `seat` by the `--via` method (at `--relay-addr`
    /// if given).
    pub async fn connect_relay(&self, seat: &Seat) -> Result<RelayConn> {
        let target = match &self.relay.addr {
            Some(a) => a.clone(),
            None if self.relay.via.http() => {
                transport::host_port(&seat.info.host, transport::DEFAULT_HTTP_PORT)
            }
            None => transport::host_port(&seat.info.host, seat.info.port),
        };
        self.dsps
            .connect_via(seat, &self.relay)
            .await
            .map_err(|e| Failure::relay_connect(format!("connecting to the relay at {target}"), e))
    }

    /// Drops our own seat (bounded); errors are ignored: this is the way out after a
    /// failure, or after a stream that already ended.
    pub async fn leave_quietly(&self, seat: &Seat) {
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.dsps.leave(seat)).await;
    }

    /// Waits (bounded by [`REQUEST_TIMEOUT`]) for the "Connection waiting" push after
    /// an accept or a join. Invitations that arrive meanwhile go to `busy`.
    pub async fn wait_for_seat(
        &mut self,
        what: &str,
        mut busy: impl FnMut(DspsEvent),
    ) -> Result<Seat> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.pump.next()).await {
                Err(_) => {
                    return fail(
                        Exit::TimedOut,
                        what,
                        format!(
                            "the DSPS sent no seat within {} s",
                            REQUEST_TIMEOUT.as_secs()
                        ),
                    )
                }
                Ok(None) => return Err(closed(what)),
                Ok(Some(DspsEvent::Waiting(seat))) => return Ok(seat),
                Ok(Some(other)) => busy(other),
            }
        }
    }

    /// Closes the XMPP stream politely (bounded).
    pub async fn close(self) {
        self.xmpp.close().await;
    }
}

/// The failure for an XMPP connection that ended under us.
pub fn closed(what: &str) -> Failure {
    Failure::new(
        Exit::Unreachable,
        what,
        "the XMPP connection closed".to_string(),
    )
}

/// The DSPS error code of `e`, if it is a DSPS error with one.
pub fn dsps_code(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::Dsps(Some(code), _) => Some(code.code()),
        _ => None,
    }
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch that is off
/// until a deadline is set).
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The relay connection method from `--via`, `--relay-addr`, `--relay-ca` and
/// `--relay-tls-name`.
fn relay_options(g: &Global) -> Result<transport::ConnectOptions> {
    let tls = match (&g.relay_ca, g.via.tls()) {
        (Some(ca), true) => Some(
            transport::trust_pem(ca)
                .map_err(|e| Failure::new(Exit::Usage, "--relay-ca", e.to_string()))?,
        ),
        (None, true) => Some(
            dsps::client::tls::system_roots()
                .map_err(|e| Failure::new(Exit::Untrusted, "--via tls", e))?,
        ),
        (Some(_), false) => {
            return Err(Failure::new(
                Exit::Usage,
                "--relay-ca",
                "only applies with --via tls or --via http+tls",
            ))
        }
        (None, false) => None,
    };
    Ok(transport::ConnectOptions {
        via: g.via,
        addr: g.relay_addr.clone(),
        tls,
        server_name: g.relay_tls_name.clone(),
        ..transport::ConnectOptions::default()
    })
}
