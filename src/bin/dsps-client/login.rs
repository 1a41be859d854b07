//! The XMPP login: which full JID, which password, how to reach the server.
//!
//! [`connect`] is the one function that logs in, with
//! `XmppClient::connect_with`: `--server`, or the domain's SRV records (then the
//! domain on 5222), and STARTTLS unless `--plaintext`, trusting the system roots,
//! only `--ca FILE`, or (`--insecure`) anyone (`dsps::client::tls`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use dsps::client::c2s::{self, ConnectOptions, Incoming, XmppClient};
use dsps::client::tls;
use xmpp_parsers::jid::Jid;

use crate::cli::Global;
use crate::failure::{fail, Exit, Failure, Result};

/// The account to log in with.
#[derive(Debug, Clone)]
pub struct Account {
    /// The full JID, resource included.
    pub jid: String,
    /// Its domain (the default server and the default DSPS parent domain).
    pub domain: String,
}

/// How to secure the c2s connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// TLS, trusting the system roots, or only the CA file given.
    Tls {
        /// `--ca FILE`.
        ca: Option<PathBuf>,
    },
    /// `--insecure`: TLS that accepts any certificate.
    Insecure,
    /// `--plaintext`: no TLS at all.
    Plaintext,
}

/// Where and how to connect (from the global options).
#[derive(Debug, Clone)]
pub struct ConnectChoice {
    /// `--server HOST:PORT`; `None` means "the account's domain" (SRV once TLS lands).
    pub server: Option<String>,
    /// TLS or not.
    pub security: Security,
}

impl ConnectChoice {
    /// The choice the global options make. clap's own `conflicts_with` misses
    /// global options given after the subcommand, hence the check here.
    pub fn from_global(g: &Global) -> Result<ConnectChoice> {
        if g.plaintext && (g.insecure || g.ca.is_some()) {
            return fail(
                Exit::Usage,
                "--plaintext",
                "cannot be combined with --ca or --insecure (those are TLS options)",
            );
        }
        if g.insecure && g.ca.is_some() {
            return fail(Exit::Usage, "--insecure", "cannot be combined with --ca");
        }
        let security = if g.plaintext {
            Security::Plaintext
        } else if g.insecure {
            Security::Insecure
        } else {
            Security::Tls { ca: g.ca.clone() }
        };
        Ok(ConnectChoice {
            server: g.server.clone(),
            security,
        })
    }
}

/// The account named by `--jid`/`DSPS_JID`, with a random resource added when it has
/// none.
pub fn account(g: &Global) -> Result<Account> {
    let Some(given) = g.jid.as_deref() else {
        return fail(
            Exit::Usage,
            "--jid",
            "no account given: pass --jid user@domain[/resource] or set DSPS_JID",
        );
    };
    let jid = Jid::new(given.trim())
        .map_err(|e| Failure::new(Exit::Usage, format!("--jid {given}"), e.to_string()))?;
    if jid.node().is_none() {
        return fail(
            Exit::Usage,
            format!("--jid {given}"),
            "need an account JID, user@domain[/resource]",
        );
    }
    let domain = jid.domain().to_string();
    let full = match jid.resource() {
        Some(_) => jid.to_string(),
        None => format!("{jid}/dsps-client-{:08x}", rand::random::<u32>()),
    };
    Ok(Account { jid: full, domain })
}

/// The password: `--password-file`, else `DSPS_PASSWORD`, else a prompt when standard
/// input is a terminal. Never a command-line value.
pub fn password(g: &Global, account: &Account) -> Result<String> {
    if let Some(path) = &g.password_file {
        return password_from_file(path);
    }
    if let Ok(pw) = std::env::var("DSPS_PASSWORD") {
        if pw.is_empty() {
            return fail(Exit::Usage, "DSPS_PASSWORD", "is set but empty");
        }
        return Ok(pw);
    }
    if std::io::stdin().is_terminal() {
        let bare = account.jid.split('/').next().unwrap_or_default();
        return rpassword::prompt_password(format!("password for {bare}: "))
            .map_err(|e| Failure::new(Exit::Other, "reading the password", e.to_string()));
    }
    fail(
        Exit::Usage,
        "password",
        "none available: set DSPS_PASSWORD, pass --password-file FILE, or run on a terminal to be asked",
    )
}

/// The first line of `path`, without its line ending.
fn password_from_file(path: &Path) -> Result<String> {
    let what = || format!("reading the password from {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(Exit::Usage, what(), e.to_string()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return fail(Exit::Usage, what(), "the first line is empty");
    }
    Ok(line.to_string())
}

/// Logs in as `account` the way `choice` says.
pub async fn connect(
    account: &Account,
    password: &str,
    choice: &ConnectChoice,
) -> Result<(XmppClient, Incoming)> {
    let server = choice.server.as_deref().unwrap_or(&account.domain);
    let what = format!("logging in to {server} as {}", account.jid);
    let security = match &choice.security {
        Security::Plaintext => c2s::Security::Plaintext,
        Security::Insecure => c2s::Security::Tls(tls::insecure()),
        Security::Tls { ca: Some(ca) } => c2s::Security::Tls(
            tls::trust_pem(ca).map_err(|e| Failure::new(Exit::Usage, "--ca", e.to_string()))?,
        ),
        Security::Tls { ca: None } => c2s::Security::Tls(
            tls::system_roots().map_err(|e| Failure::new(Exit::Untrusted, what.clone(), e))?,
        ),
    };
    let opts = ConnectOptions {
        server: choice.server.clone(),
        security,
    };
    XmppClient::connect_with(&account.jid, password, &opts)
        .await
        .map_err(|e| Failure::login(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn global(args: &[&str]) -> Global {
        let mut all = vec!["dsps-client"];
        all.extend_from_slice(args);
        all.push("streams");
        crate::cli::Cli::parse_from(all).global
    }

    #[test]
    fn a_bare_jid_gets_a_random_resource() {
        let a = account(&global(&["--jid", "bob@example.org"])).expect("valid JID");
        assert_eq!(a.domain, "example.org");
        let resource = a.jid.strip_prefix("bob@example.org/dsps-client-");
        assert!(resource.is_some_and(|r| r.len() == 8), "{}", a.jid);
    }

    #[test]
    fn a_full_jid_is_kept() {
        let a = account(&global(&["--jid", "bob@example.org/phone"])).expect("valid JID");
        assert_eq!(a.jid, "bob@example.org/phone");
    }

    #[test]
    fn a_domain_is_not_an_account() {
        let e = account(&global(&["--jid", "example.org"])).err();
        assert_eq!(e.map(|e| e.exit), Some(Exit::Usage));
    }

    #[test]
    fn the_password_file_gives_its_first_line() {
        let dir = std::env::temp_dir().join(format!("dsps-client-pw-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\r\nsecond line\n").expect("temp file");
        let pw = password_from_file(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(pw.ok().as_deref(), Some("s3cret"));
    }

    #[test]
    fn security_follows_the_flags() {
        let choice = |args: &[&str]| ConnectChoice::from_global(&global(args)).map(|c| c.security);
        assert_eq!(choice(&["--plaintext"]).ok(), Some(Security::Plaintext));
        assert_eq!(choice(&["--insecure"]).ok(), Some(Security::Insecure));
        assert_eq!(choice(&[]).ok(), Some(Security::Tls { ca: None }));
    }

    #[test]
    fn plaintext_and_tls_options_exclude_each_other() {
        // After the subcommand, where clap's conflicts do not look.
        let g =
            crate::cli::Cli::parse_from(["dsps-client", "--plaintext", "streams", "--insecure"])
                .global;
        let e = ConnectChoice::from_global(&g).err();
        assert_eq!(e.map(|e| e.exit), Some(Exit::Usage));
    }
}
