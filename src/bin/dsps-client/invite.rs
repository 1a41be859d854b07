//! The invitee's side of an invitation, shared by `recv` and `join`: wait (bounded by
//! `--timeout`) for an invitation the command wants, rejecting the others with a
//! line, and keep invitations that arrive while we are busy until they expire.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dsps::client::session::{DspsEvent, InvitationRequest};

use crate::failure::{fail, Exit, Result};
use crate::master::bare;
use crate::session::{closed, Session};

/// An invitation and when it arrived (its `expire` counts from then).
#[derive(Debug)]
pub struct Offer {
    /// The invitation.
    pub request: InvitationRequest,
    arrived: Instant,
}

impl Offer {
    /// An invitation that arrived just now.
    pub fn new(request: InvitationRequest) -> Offer {
        Offer {
            request,
            arrived: Instant::now(),
        }
    }

    /// Whether its `expire` has passed (the DSPS no longer takes an answer).
    fn expired(&self) -> bool {
        let expire = self.request.invitation.expire;
        expire > 0 && self.arrived.elapsed() >= Duration::from_millis(expire)
    }

    /// Who invited us, for messages.
    pub fn inviters(&self) -> String {
        self.request.invitation.inviters.join(", ")
    }
}

/// The next invitation `judge` takes (`Ok`), from `queued` first, then from the
/// DSPS. Each one it turns down (`Err(why)`) is rejected with a line naming why.
pub async fn next_offer<T>(
    s: &mut Session,
    queued: &mut VecDeque<Offer>,
    mut judge: impl FnMut(&InvitationRequest) -> std::result::Result<T, String>,
) -> Result<(Offer, T)> {
    const WHAT: &str = "waiting for an invitation";
    let deadline = tokio::time::Instant::now() + s.timeout;
    loop {
        let offer = match queued.pop_front() {
            Some(offer) if offer.expired() => continue,
            Some(offer) => offer,
            None => match tokio::time::timeout_at(deadline, s.pump.next()).await {
                Err(_) => {
                    return fail(
                        Exit::TimedOut,
                        WHAT,
                        format!("none arrived within {} s", s.timeout.as_secs()),
                    )
                }
                Ok(None) => return Err(closed(WHAT)),
                Ok(Some(DspsEvent::Invitation(request))) => Offer::new(request),
                // Pushes about streams we have left.
                Ok(Some(_)) => continue,
            },
        };
        match judge(&offer.request) {
            Ok(t) => return Ok((offer, t)),
            Err(why) => {
                let _ = s.dsps.answer(&offer.request, false).await;
                s.out.info(&format!(
                    "rejected an invitation from {}: {why}",
                    offer.inviters()
                ));
            }
        }
    }
}

/// `Ok` when `from` is unset or one of the inviters is that account (bare JIDs
/// compared; a full `from` counts as its bare part).
pub fn from_allowed(
    inv: &InvitationRequest,
    from: Option<&str>,
) -> std::result::Result<(), String> {
    let Some(from) = from else {
        return Ok(());
    };
    let wanted = bare(from);
    if inv
        .invitation
        .inviters
        .iter()
        .any(|i| bare(i).eq_ignore_ascii_case(wanted))
    {
        Ok(())
    } else {
        Err(format!("not from {wanted}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsps::proto::query::{Invitation, Role};
    use minidom::Element;

    fn invitation(inviters: &[&str], expire: u64) -> InvitationRequest {
        InvitationRequest {
            iq: Element::bare("iq", "jabber:client"),
            from: "dsps.x/inv".into(),
            invitation: Invitation {
                role: Role::Slave,
                expire,
                inviters: inviters.iter().map(|s| s.to_string()).collect(),
                comments: vec![],
            },
        }
    }

    #[test]
    fn from_matches_any_inviter_by_bare_jid() {
        let inv = invitation(&["alice@x/send", "carol@x/a"], 0);
        assert!(from_allowed(&inv, None).is_ok());
        assert!(from_allowed(&inv, Some("Alice@x")).is_ok());
        assert!(from_allowed(&inv, Some("carol@x/other")).is_ok());
        assert!(from_allowed(&inv, Some("eve@x")).is_err());
    }

    #[test]
    fn offers_expire_only_with_a_limit() {
        let mut old = Offer::new(invitation(&["a@x/y"], 1));
        old.arrived = Instant::now() - Duration::from_millis(5);
        assert!(old.expired());
        let mut unlimited = Offer::new(invitation(&["a@x/y"], 0));
        unlimited.arrived = Instant::now() - Duration::from_secs(3600);
        assert!(!unlimited.expired());
    }
}
