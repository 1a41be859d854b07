//! `publish [--to JID]... [--public N] [--wait-joiners K]`: multicast standard input.
//!
//! Create a stream (with `maxpublic` N when `--public`), say its public JID on stderr
//! (`public stream: <jid>`, from the create result's `public`, our documented
//! extension), invite every `--to` as a slave, wait until all of them and K public
//! joiners are connected (presence pushes), stream standard input until EOF, leave.
//! Invitees that leave early make the run fail (exit 6); public joiners come and go.

use dsps::client::session::{invite_slaves, Seat};
use dsps::proto::query::CreateRequest;

use crate::cli::PublishArgs;
use crate::failure::{fail, Context, Exit, Result};
use crate::master::{self, Audience};
use crate::progress::{plural, timing};
use crate::session::Session;

/// Checks the arguments that need no connection.
pub fn check(args: &PublishArgs) -> Result<()> {
    crate::send::full_jids(&args.to)?;
    if args.to.is_empty() && args.public.is_none() {
        return fail(
            Exit::Usage,
            "publish",
            "nobody to publish to: give --to JID or --public N",
        );
    }
    if let (Some(k), n) = (args.wait_joiners, args.public.unwrap_or(0)) {
        if k > n {
            return fail(
                Exit::Usage,
                format!("--wait-joiners {k}"),
                format!("at most --public N joiners can join (N = {n})"),
            );
        }
    }
    Ok(())
}

/// Runs `publish`; returns the summary line.
pub async fn run(s: &mut Session, args: &PublishArgs) -> Result<String> {
    let create = CreateRequest {
        maxpublic: args.public.unwrap_or(0),
        ..CreateRequest::default()
    };
    let seat = s
        .dsps
        .create(&create)
        .await
        .context(format!("creating a stream on {}", s.dsps.service()))?;
    if args.public.is_some() {
        match &seat.info.public {
            // Printed even with --quiet: joiners need it.
            Some(jid) => s.out.always(&format!("public stream: {jid}")),
            None => s
                .out
                .always("the DSPS did not name the stream's public JID; see `dsps-client streams`"),
        }
    }
    let audience = Audience {
        invited: args.to.clone(),
        joiners: args.wait_joiners.unwrap_or(args.public.unwrap_or(0)),
    };
    let outcome = transfer(s, args, &seat, &audience).await;
    let left = s.dsps.leave(&seat).await;
    let streamed = outcome?;
    left.context("leaving the stream")?;
    master::check_left(&streamed)?;
    let mut to = Vec::new();
    if !args.to.is_empty() {
        to.push(plural(args.to.len(), "invited reader"));
    }
    if audience.joiners > 0 {
        to.push(format!(
            "at least {}",
            plural(audience.joiners as usize, "public reader")
        ));
    }
    let to = if to.is_empty() {
        "the public".to_string()
    } else {
        to.join(" and ")
    };
    Ok(format!(
        "published {} bytes to {to} in {}, sha256 {}",
        streamed.bytes,
        timing(streamed.bytes, streamed.elapsed),
        streamed.sha256
    ))
}

/// Invites, connects, waits for the audience and streams standard input.
async fn transfer(
    s: &mut Session,
    args: &PublishArgs,
    seat: &Seat,
    audience: &Audience,
) -> Result<master::Streamed> {
    if !args.to.is_empty() {
        s.dsps
            .admin(seat, &invite_slaves(args.to.iter().map(String::as_str)))
            .await
            .context("inviting the readers")?;
    }
    let conn = s.connect_relay(seat).await?;
    master::wait_for_audience(s, seat, audience).await?;
    let progress = s.out.progress("publish", None);
    master::stream(
        s,
        seat,
        conn,
        tokio::io::stdin(),
        progress,
        audience,
        args.status,
    )
    .await
}
