//! A XEP-0065 (SOCKS5 Bytestreams) client for Prosody's mod_proxy65, the baseline a
//! user of XMPP file transfer gets today. The full mediated flow: the initiator asks
//! the proxy for its streamhost, offers it to the target, the target SOCKS5-connects
//! and answers `streamhost-used`, the initiator SOCKS5-connects and activates. The
//! DST.ADDR both send is hex SHA-1(SID + initiator full JID + target full JID).

use std::net::TcpStream as StdTcpStream;

use dsps::client::session::DspsEvent;
use dsps::proto::xml::{attr, get_attr};
use minidom::Element;
use rand::RngCore;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::xmpp::{iq, step, Account};
use crate::R;

const NS: &str = "http://jabber.org/protocol/bytestreams";

fn query(sid: &str) -> minidom::ElementBuilder {
    attr(Element::builder("query", NS), "sid", sid)
}

/// SOCKS5 "no authentication" greeting, then CONNECT to domain `dst`, port 0.
async fn socks5(addr: &str, dst: &str) -> R<TcpStream> {
    let io = |e: std::io::Error| format!("SOCKS5 to {addr}: {e}");
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    s.write_all(&[5, 1, 0]).await.map_err(io)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply != [5, 0] {
        return Err(format!("SOCKS5 greeting refused: {reply:?}"));
    }
    let mut req = vec![5, 1, 0, 3, dst.len() as u8];
    req.extend_from_slice(dst.as_bytes());
    req.extend_from_slice(&[0, 0]);
    s.write_all(&req).await.map_err(io)?;
    let mut reply = vec![0u8; 5 + dst.len() + 2];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply[1] != 0 {
        return Err(format!(
            "SOCKS5 CONNECT refused with reply code {}",
            reply[1]
        ));
    }
    Ok(s)
}

fn into_std(s: TcpStream) -> R<StdTcpStream> {
    let s = s.into_std().map_err(|e| e.to_string())?;
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(s)
}

/// An activated bytestream from `init` to `target` through the proxy component
/// `proxy`: (initiator's socket, target's socket).
pub async fn bytestream(
    init: &mut Account,
    target: &mut Account,
    proxy: &str,
) -> R<(StdTcpStream, StdTcpStream)> {
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    let sid: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let dst: String = Sha1::digest(format!("{sid}{}{}", init.jid, target.jid))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let answer = iq(init, "get", proxy, query(&sid).build()).await?;
    let host = answer
        .get_child("query", NS)
        .and_then(|q| q.get_child("streamhost", NS))
        .ok_or("the proxy's answer has no streamhost")?;
    let addr = format!(
        "{}:{}",
        get_attr(host, "host").unwrap_or_default(),
        get_attr(host, "port").unwrap_or_default()
    );
    let offer = attr(query(&sid), "mode", "tcp")
        .append(host.clone())
        .build();

    let target_jid = target.jid.clone();
    let target_side = async {
        let offer_iq = target
            .wait("the bytestream offer", |e| match e {
                DspsEvent::Other(el)
                    if el.get_child("query", NS).and_then(|q| q.attr("sid"))
                        == Some(sid.as_str()) =>
                {
                    Some(el)
                }
                _ => None,
            })
            .await?;
        let sock = socks5(&addr, &dst).await?;
        let used = query(&sid)
            .append(attr(Element::builder("streamhost-used", NS), "jid", proxy))
            .build();
        step(
            "streamhost-used",
            target.dsps.xmpp().reply_result(&offer_iq, Some(used)),
        )
        .await?;
        Ok::<_, String>(sock)
    };
    let (offered, target_sock) = tokio::join!(iq(init, "set", &target_jid, offer), target_side);
    offered?;
    let target_sock = target_sock?;
    // The proxy takes the first connection for a hash as the target's, so the
    // initiator connects only after the target's streamhost-used.
    let init_sock = socks5(&addr, &dst).await?;
    let activate = query(&sid)
        .append(Element::builder("activate", NS).append(target_jid.as_str()))
        .build();
    iq(init, "set", proxy, activate).await?;
    Ok((into_std(init_sock)?, into_std(target_sock)?))
}
