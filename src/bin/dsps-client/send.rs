//! `send FILE --to JID...`: one file to one or more receivers.
//!
//! Create a stream (we are its master), invite every `--to` as a slave with the
//! file's name, size and sha256 in the invitation's `<comment>`
//! (`dsps::client::file_meta`), connect, wait until every receiver has connected,
//! stream the file, and leave, which ends the stream once the receivers have it.

use dsps::client::file_meta::FileMeta;
use dsps::client::session::invite_slaves;
use dsps::proto::query::{AdminRequest, CreateRequest};

use crate::cli::SendArgs;
use crate::failure::{fail, Context, Exit, Result};
use crate::master::{self, Audience};
use crate::progress::{plural, timing};
use crate::session::Session;

/// Checks the arguments that need no connection.
pub fn check(args: &SendArgs) -> Result<()> {
    full_jids(&args.to)
}

/// Invitations are iqs, and an iq to a bare JID is answered by the server, not
/// delivered to any of the user's clients: receivers need full JIDs.
pub fn full_jids(to: &[String]) -> Result<()> {
    for jid in to {
        let valid = jid
            .split_once('/')
            .is_some_and(|(b, r)| b.contains('@') && !r.is_empty());
        if !valid {
            return fail(
                Exit::Usage,
                format!("--to {jid}"),
                "need a full JID (user@domain/resource) of a running receiver",
            );
        }
    }
    Ok(())
}

/// Runs `send`; returns the summary line.
pub async fn run(s: &mut Session, args: &SendArgs) -> Result<String> {
    let shown = args.file.display().to_string();
    // Hashing a large file takes a while; say so rather than sit silent.
    s.out.info(&format!("hashing {shown}"));
    let meta = FileMeta::of_file(&args.file)
        .await
        .context(format!("reading {shown}"))?;
    let create = CreateRequest {
        comments: vec![meta.to_comment()],
        ..CreateRequest::default()
    };
    let seat = s
        .dsps
        .create(&create)
        .await
        .context(format!("creating a stream on {}", s.dsps.service()))?;
    let outcome = transfer(s, args, &meta, &seat).await;
    // Leave whatever happened: after a transfer this ends the stream (the receivers
    // get what is queued, then their drop notice); after a failure it spares them a
    // stream that went quiet.
    let left = s.dsps.leave(&seat).await;
    let streamed = outcome?;
    left.context("leaving the stream")?;
    master::check_left(&streamed)?;
    if streamed.bytes != meta.size || streamed.sha256 != meta.sha256 {
        return fail(
            Exit::DataCheck,
            format!("sending {shown}"),
            format!(
                "the file changed while it was sent ({} bytes sent, {} announced)",
                streamed.bytes, meta.size
            ),
        );
    }
    Ok(format!(
        "sent {} bytes to {} in {}, sha256 {}",
        streamed.bytes,
        plural(args.to.len(), "receiver"),
        timing(streamed.bytes, streamed.elapsed),
        meta.sha256
    ))
}

/// Invites, connects, waits for the receivers and streams the file.
async fn transfer(
    s: &mut Session,
    args: &SendArgs,
    meta: &FileMeta,
    seat: &dsps::client::session::Seat,
) -> Result<master::Streamed> {
    let invite = AdminRequest {
        comments: vec![meta.to_comment()],
        ..invite_slaves(args.to.iter().map(String::as_str))
    };
    s.dsps
        .admin(seat, &invite)
        .await
        .context("inviting the receivers")?;
    // Connect before the receivers do: our seat's `wait` stops, and nothing is
    // written until every receiver is there.
    let conn = s.connect_relay(seat).await?;
    let audience = Audience {
        invited: args.to.clone(),
        joiners: 0,
    };
    s.out.info(&format!(
        "offering {:?} ({} bytes) to {}",
        meta.name,
        meta.size,
        args.to.join(", ")
    ));
    master::wait_for_audience(s, seat, &audience).await?;
    let file = tokio::fs::File::open(&args.file)
        .await
        .context(format!("opening {}", args.file.display()))?;
    let progress = s.out.progress("send", Some(meta.size));
    master::stream(s, seat, conn, file, progress, &audience, args.status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_need_full_jids() {
        assert!(full_jids(&["bob@x/recv".into()]).is_ok());
        for bad in ["bob@x", "x/recv", "bob@x/"] {
            let e = full_jids(&[bad.into()]).err();
            assert_eq!(e.map(|e| e.exit), Some(Exit::Usage), "{bad}");
        }
    }
}
