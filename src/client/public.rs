//! Requests about streams by JID rather than by a [`Seat`] we hold: the listing of
//! public streams, `stats` of any stream JID, `who` of a seat by its JID, and joining
//! a public stream (XEP-0037 "Stream statistics", "Accepting an invite"; PROFILE 19).
//!
//! Our reading (docs/protocol-notes.md): `stats` to the bare DSPS JID answers one
//! `<query type='stats'/>` per public stream, each naming its public JID in `<peer/>`;
//! anyone may ask a public JID for its stats; `who` is answered only to the seat's own
//! full JID (others get 404, PROFILE 11); a join is `acknowledge status='connect'` as a
//! `set` to the public JID, followed by the "Connection waiting" push.

use std::time::Duration;

use super::session::{check, payload, ClientError, DspsClient, DspsEvents, Seat};
use crate::proto::query::{self, StatsResult, WhoResult};

impl DspsClient {
    /// The public streams of this DSPS: every `<query type='stats'/>` of the bare-JID
    /// listing that names at least one public JID (its `peers`), in the DSPS's order.
    pub async fn public_streams(&self) -> Result<Vec<StatsResult>, ClientError> {
        let resp = self
            .xmpp()
            .request(
                "get",
                self.service(),
                query::empty("stats"),
                super::session::REQUEST_TIMEOUT,
            )
            .await?;
        // `check` reads only the first child; the listing has one query per stream.
        check(resp.clone())?;
        Ok(resp
            .children()
            .filter_map(|q| StatsResult::try_from(q).ok())
            .filter(|s| !s.peers.is_empty())
            .collect())
    }

    /// The `stats` of the stream at `jid` (a public JID, or one of our peer resources).
    pub async fn stats_at(&self, jid: &str) -> Result<StatsResult, ClientError> {
        let iq = self.request("get", jid, query::empty("stats")).await?;
        StatsResult::try_from(payload(&iq)?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The `who` of the seat at `jid`; only that seat's own full JID gets an answer.
    pub async fn who_at(&self, jid: &str) -> Result<WhoResult, ClientError> {
        let iq = self.request("get", jid, query::empty("who")).await?;
        WhoResult::try_from(payload(&iq)?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Asks to join the public stream at `public` (slave rights). The seat arrives
    /// later as [`super::session::DspsEvent::Waiting`]; a full stream answers 503.
    pub async fn request_join(&self, public: &str) -> Result<(), ClientError> {
        self.request("set", public, query::acknowledge("connect"))
            .await
            .map(|_| ())
    }

    /// Joins the public stream at `public` and waits (bounded by `timeout`) for the seat.
    pub async fn join_public(
        &self,
        public: &str,
        events: &mut DspsEvents,
        timeout: Duration,
    ) -> Result<Seat, ClientError> {
        self.request_join(public).await?;
        events.wait_for_seat(timeout).await
    }
}
