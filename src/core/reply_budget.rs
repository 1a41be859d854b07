//! How many bytes of replies dsps sends each account, and all accounts together,
//! per second: a token bucket per bare JID and one for everyone.
//!
//! Why: a `stats` to the bare JID is 112 bytes and its answer can be a whole
//! `max_stanza_size` (256 KiB) listing of public streams. Thousands of them in one
//! write queued hundreds of megabytes for the component link, which the XMPP server
//! then parsed for a minute while every other user's requests waited behind them
//! (found by an outside hostile test). Replies are the only stanzas a user can make
//! dsps send at will, so they are what is metered. Small replies (up to
//! [`FREE_REPLY_BYTES`]) are free: they cost no more than the request that asked
//! for them, and the XMPP server's own limits cover floods of those.
//!
//! Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use minidom::Element;

use crate::core::sparse::ShrinkWhenSparse;
use crate::proto::iq::bare;
use crate::proto::limits::size_within;
use crate::proto::outbound::{is_result, resource_constraint_instead};

/// Replies up to this size are never metered.
pub const FREE_REPLY_BYTES: usize = 2048;
/// Accounts remembered at once before full (idle) buckets are forgotten.
const PRUNE_AT: usize = 4096;
/// Refused replies are logged at most this often, with their count.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Bytes per second and the burst one bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Refill per second.
    pub per_second: usize,
    /// Most bytes the bucket holds (what may go out at once after a quiet spell).
    pub burst: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst as f64,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * rate.per_second as f64).min(rate.burst as f64);
        self.at = now;
    }
}

/// Whether a reply may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// The account is over its own rate.
    AccountOver,
    /// Everyone together is over the total rate.
    TotalOver,
}

/// The buckets.
#[derive(Debug)]
pub struct ReplyBudget {
    account: Rate,
    total: Rate,
    accounts: HashMap<String, Bucket>,
    all: Option<Bucket>,
    refused: u64,
    logged_at: Option<Instant>,
}

impl ReplyBudget {
    /// Budgets of `account` for each bare JID and `total` for all of them.
    pub fn new(account: Rate, total: Rate) -> ReplyBudget {
        ReplyBudget {
            account,
            total,
            accounts: HashMap::new(),
            all: None,
            refused: 0,
            logged_at: None,
        }
    }

    /// `stanza` if it is not a reply over its budget, else the small error that goes
    /// instead (`500 resource-constraint` naming the limit). `max` bounds the
    /// measuring (the stanza already passed the size guard). Logs refusals at most
    /// every [`LOG_EVERY`], with their count.
    pub fn meter(&mut self, stanza: Element, max: usize, now: Instant) -> Element {
        // Measuring stops at the bound, so the common small reply costs little.
        if !is_result(&stanza) || size_within(&stanza, FREE_REPLY_BYTES).is_some() {
            return stanza;
        }
        let Some(bytes) = size_within(&stanza, max) else {
            return stanza;
        };
        let to = stanza.attr("to").unwrap_or("");
        let (key, per_second) = match self.charge(bare(to), bytes, now) {
            Verdict::Send => return stanza,
            Verdict::AccountOver => ("limits.reply_bytes_per_second", self.account.per_second),
            Verdict::TotalOver => ("limits.reply_bytes_per_second_total", self.total.per_second),
        };
        self.refused += 1;
        if self
            .logged_at
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(
                refused = self.refused,
                last_to = %to,
                limit = key,
                "replies over their byte rate refused with 500 resource-constraint"
            );
            self.refused = 0;
            self.logged_at = Some(now);
        }
        resource_constraint_instead(
            &stanza,
            &format!("replies past {key} ({per_second} bytes per second); try again later"),
        )
    }

    /// Charges a reply of `bytes` to `account` (a bare JID) if both buckets hold
    /// it; otherwise charges nothing and says which one is short.
    pub fn charge(&mut self, account: &str, bytes: usize, now: Instant) -> Verdict {
        if bytes <= FREE_REPLY_BYTES {
            return Verdict::Send;
        }
        let (arate, trate) = (self.account, self.total);
        let all = self.all.get_or_insert_with(|| Bucket::full(trate, now));
        all.refill(trate, now);
        let mine = self
            .accounts
            .entry(account.to_string())
            .or_insert_with(|| Bucket::full(arate, now));
        mine.refill(arate, now);
        let cost = bytes as f64;
        let verdict = if mine.tokens < cost {
            Verdict::AccountOver
        } else if all.tokens < cost {
            Verdict::TotalOver
        } else {
            mine.tokens -= cost;
            all.tokens -= cost;
            Verdict::Send
        };
        if self.accounts.len() > PRUNE_AT {
            self.prune(now);
        }
        verdict
    }

    /// Forgets accounts whose bucket has refilled: they would start full anyway.
    fn prune(&mut self, now: Instant) {
        let rate = self.account;
        self.accounts.retain(|_, b| {
            b.refill(rate, now);
            b.tokens < rate.burst as f64
        });
        self.accounts.shrink_when_sparse();
    }

    /// Accounts remembered (for tests and figures).
    pub fn tracked(&self) -> usize {
        self.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KB: usize = 1024;

    fn budget() -> ReplyBudget {
        ReplyBudget::new(
            Rate {
                per_second: 100 * KB,
                burst: 300 * KB,
            },
            Rate {
                per_second: 250 * KB,
                burst: 500 * KB,
            },
        )
    }

    #[test]
    fn small_replies_are_free() {
        let mut b = budget();
        let t = Instant::now();
        for _ in 0..100_000 {
            assert_eq!(b.charge("eve@x", FREE_REPLY_BYTES, t), Verdict::Send);
        }
        assert_eq!(b.tracked(), 0);
    }

    #[test]
    fn an_account_gets_its_burst_then_its_rate() {
        let mut b = budget();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.charge("eve@x", 100 * KB, t), Verdict::Send);
        }
        assert_eq!(b.charge("eve@x", 100 * KB, t), Verdict::AccountOver);
        // A refused reply costs nothing; a second later one more fits.
        let t1 = t + Duration::from_secs(1);
        assert_eq!(b.charge("eve@x", 100 * KB, t1), Verdict::Send);
        assert_eq!(b.charge("eve@x", 100 * KB, t1), Verdict::AccountOver);
    }

    #[test]
    fn one_account_over_its_rate_leaves_others_alone_until_the_total_runs_out() {
        let mut b = budget();
        let t = Instant::now();
        while b.charge("eve@x", 50 * KB, t) == Verdict::Send {}
        assert_eq!(b.charge("alice@x", 100 * KB, t), Verdict::Send);
        // Many accounts together hit the total.
        let mut verdicts = Vec::new();
        for n in 0..10 {
            verdicts.push(b.charge(&format!("u{n}@x"), 100 * KB, t));
        }
        assert!(verdicts.contains(&Verdict::TotalOver), "{verdicts:?}");
    }

    fn result(to: &str, bytes: usize) -> Element {
        format!(
            "<iq xmlns='jabber:component:accept' type='result' id='s' from='dsps.localhost' \
             to='{to}'><query xmlns='jabber:iq:dsps' type='stats'><comment>{}</comment></query></iq>",
            "x".repeat(bytes)
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn a_reply_past_the_budget_becomes_a_500_naming_the_limit() {
        let mut b = budget();
        let t = Instant::now();
        let sent = (0..10)
            .map(|_| b.meter(result("eve@x/r", 99 * KB), 1 << 20, t))
            .filter(|e| e.attr("type") == Some("result"))
            .count();
        assert_eq!(sent, 3);
        let refused = b.meter(result("eve@x/other", 100 * KB), 1 << 20, t);
        assert_eq!(refused.attr("type"), Some("error"));
        assert_eq!(refused.attr("id"), Some("s"));
        assert_eq!(refused.attr("to"), Some("eve@x/other"));
        let text = String::from(&refused);
        assert!(text.contains("code='500'"), "{text}");
        assert!(
            text.contains("limits.reply_bytes_per_second (102400"),
            "{text}"
        );
        // Pushes and requests of ours are never metered.
        let push: Element = "<iq xmlns='jabber:component:accept' type='set' id='p' to='eve@x/r'/>"
            .parse()
            .unwrap();
        assert_eq!(b.meter(push, 1 << 20, t).attr("type"), Some("set"));
    }

    #[test]
    fn idle_accounts_are_forgotten() {
        let rate = Rate {
            per_second: 100 * KB,
            burst: 300 * KB,
        };
        let everyone = Rate {
            per_second: usize::MAX / 4,
            burst: usize::MAX / 4,
        };
        let mut b = ReplyBudget::new(rate, everyone);
        let t = Instant::now();
        for n in 0..=PRUNE_AT {
            b.charge(&format!("u{n}@x"), 3 * KB, t);
        }
        let later = t + Duration::from_secs(60);
        b.charge("last@x", 3 * KB, later);
        assert_eq!(b.tracked(), 1);
    }
}
