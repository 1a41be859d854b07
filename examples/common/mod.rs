//! What `send_file` and `recv_file` share: the file metadata carried in the
//! invitation's `<comment>`, the progress bar, the one-line error type and the
//! throughput summary.
//!
//! The metadata travels as one child of the admin request's `<comment>`, which the
//! DSPS copies into every invitation (XEP-0037 "Stream administration": "comment
//! blocks … passed to the invitee"):
//!
//! ```xml
//! <comment xmlns='jabber:iq:dsps'>
//!   <file name='photo.jpg' size='1048576' sha256='9f86d0…'/>
//! </comment>
//! ```
//!
//! A child element rather than attributes on `<comment>` itself, because the XEP
//! leaves a comment's content free-form ("some long comment block or structure"):
//! a client that does not know `<file/>` still sees a well-formed comment, and other
//! comments can sit beside it. Both elements are in `jabber:iq:dsps`, the namespace of
//! the query that carries them. `size` is in bytes, `sha256` is lowercase hex.

// Each example uses part of this module.
#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsps::client::transport::{trust_pem, ConnectOptions, Via};
use dsps::proto::xml::{attr, get_attr, NS_DSPS};
use indicatif::{ProgressBar, ProgressStyle};
use minidom::Element;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Bytes read from or written to the file at a time.
pub const CHUNK: usize = 256 * 1024;

/// One line saying what failed; `main` prints it and exits 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of a step of the examples.
pub type Result<T> = std::result::Result<T, Failure>;

/// Prefixes an error with the step that failed ("creating the stream: …").
pub trait Context<T> {
    /// Turns the error into a [`Failure`] that names `step`.
    fn context(self, step: &str) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, step: &str) -> Result<T> {
        self.map_err(|e| Failure(format!("{step}: {e}")))
    }
}

/// The XMPP account an example logs in with (shared flags).
#[derive(clap::Args, Debug)]
pub struct Account {
    /// The XMPP server's client port (host:port).
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub server: String,
    /// Our full JID (user@domain/resource); invitations must name exactly this JID.
    #[arg(long)]
    pub jid: String,
    /// Our password.
    #[arg(long)]
    pub password: String,
    /// Connect to this host:port instead of the relay address the DSPS advertises
    /// (with --via http or http+tls: instead of the advertised host, port 80).
    #[arg(long, value_name = "HOST:PORT")]
    pub relay_addr: Option<String>,
    /// How to connect to the relay: default, http (the HTTP preamble, on the DSPS's
    /// [http] listener), tls (starttls) or http+tls.
    #[arg(long, value_name = "METHOD", default_value = "default")]
    pub via: Via,
    /// PEM file of the certificate (or CA) to trust for --via tls or http+tls, e.g.
    /// the cert.pem of `dsps gen-cert`.
    #[arg(long, value_name = "FILE")]
    pub relay_ca: Option<PathBuf>,
    /// The name the relay's certificate must carry (default: the advertised host).
    #[arg(long, value_name = "NAME")]
    pub relay_tls_name: Option<String>,
}

impl Account {
    /// The relay connection options these flags ask for.
    pub fn connect_options(&self) -> Result<ConnectOptions> {
        let tls = match (&self.relay_ca, self.via.tls()) {
            (Some(ca), true) => Some(trust_pem(ca).context("--relay-ca")?),
            (None, true) => {
                return fail(format!("--via {} needs --relay-ca FILE", self.via_name()))
            }
            (Some(_), false) => return fail("--relay-ca is only used with --via tls or http+tls"),
            (None, false) => None,
        };
        Ok(ConnectOptions {
            via: self.via,
            addr: self.relay_addr.clone(),
            tls,
            server_name: self.relay_tls_name.clone(),
            ..ConnectOptions::default()
        })
    }

    fn via_name(&self) -> &'static str {
        match self.via {
            Via::Default => "default",
            Via::Http => "http",
            Via::Tls => "tls",
            Via::HttpTls => "http+tls",
        }
    }
}

/// Ends an example: its one summary line on stdout and exit 0, or one line naming the
/// failure on stderr and exit 1.
pub fn finish(program: &str, outcome: Result<String>) -> std::process::ExitCode {
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Fails with `message`.
pub fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure(message.into()))
}

/// What the receiver needs to know about the file before accepting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The sender's file name (no directories).
    pub name: String,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

impl FileMeta {
    /// Reads `path` once to get its size and digest.
    pub async fn of_file(path: &Path) -> Result<FileMeta> {
        let shown = path.display();
        let mut file = tokio::fs::File::open(path)
            .await
            .context(&format!("opening {shown}"))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .context(&format!("reading {shown}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_string());
        Ok(FileMeta {
            name,
            size,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// The `<comment><file …/></comment>` carried in the invitation.
    pub fn to_comment(&self) -> Element {
        let file = attr(
            attr(
                attr(
                    Element::builder("file", NS_DSPS),
                    "name",
                    self.name.as_str(),
                ),
                "size",
                self.size.to_string(),
            ),
            "sha256",
            self.sha256.as_str(),
        )
        .build();
        Element::builder("comment", NS_DSPS).append(file).build()
    }

    /// Finds the metadata among an invitation's comments.
    pub fn from_comments(comments: &[Element]) -> Option<FileMeta> {
        comments
            .iter()
            .flat_map(|c| c.children())
            .find(|f| f.is("file", NS_DSPS))
            .and_then(|f| {
                let sha256 = get_attr(f, "sha256")?.trim().to_ascii_lowercase();
                let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
                Some(FileMeta {
                    name: get_attr(f, "name").unwrap_or("file").to_string(),
                    size: get_attr(f, "size")?.trim().parse().ok()?,
                    sha256: valid.then_some(sha256)?,
                })
            })
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte-count progress bar on stderr (bytes, rate, ETA). indicatif draws nothing when
/// stderr is not a terminal, so logs of background runs stay clean.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .expect("the template is a literal")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// "N bytes in T s (X MiB/s)", the common part of both summary lines.
pub fn throughput(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let mib_s = bytes as f64 / (1024.0 * 1024.0) / secs;
    format!("{bytes} bytes in {secs:.2} s ({mib_s:.1} MiB/s)")
}

/// The bare part of a JID (`user@host` of `user@host/res`).
pub fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_a_comment() {
        let meta = FileMeta {
            name: "a 'quoted' <name>.bin".into(),
            size: 67_108_864,
            sha256: "ab".repeat(32),
        };
        let text = String::from(&meta.to_comment());
        let back: Element = text.parse().unwrap();
        assert_eq!(FileMeta::from_comments(&[back]), Some(meta));
    }

    #[test]
    fn comments_without_valid_metadata_are_ignored() {
        let plain: Element = "<comment xmlns='jabber:iq:dsps'>hi</comment>"
            .parse()
            .unwrap();
        assert_eq!(FileMeta::from_comments(&[plain]), None);
        let bad: Element =
            "<comment xmlns='jabber:iq:dsps'><file name='x' size='1' sha256='zz'/></comment>"
                .parse()
                .unwrap();
        assert_eq!(FileMeta::from_comments(&[bad]), None);
    }
}
