//! The command line: global options, the subcommands and their flags, and the long
//! help texts (password sources, exit codes). Parsing only; nothing here runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shown after `--help`: where the password comes from and what the exit codes mean.
const AFTER_HELP: &str = "\
Password: the first of --password-file FILE (its first line), the DSPS_PASSWORD
environment variable, or a prompt when standard input is a terminal. It is never
taken from the command line.

Exit codes:
  0  ok
  1  other failure
  2  usage (bad or missing options, no password available)
  3  login refused (wrong password, not authorized)
  4  TLS for the login failed: certificate not trusted (or no STARTTLS)
  5  server unreachable (DNS, connection refused, connection lost)
  6  a peer said no or went away (invitation rejected, expired or timed out,
     a receiver left early, we were dropped)
  7  data check failed (size or sha256 mismatch)
  8  timed out waiting (for receivers, joiners, an invitation or data)
Every failure prints one line on stderr: `dsps-client: <what failed>: <why>`.";

/// A client for XEP-0037 Data Stream Proxy Services: send and receive files,
/// publish standard input to many readers, join streams, and look at them.
#[derive(Parser, Debug)]
#[command(name = "dsps-client", version, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Options for every subcommand.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand (accepted before or after its name).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Our XMPP account, user@domain/resource (a random resource
    /// `dsps-client-XXXXXXXX` is added when none is given). Invitations must name
    /// this full JID, so give receivers a fixed resource.
    #[arg(long, env = "DSPS_JID", value_name = "JID", global = true)]
    pub jid: Option<String>,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// The XMPP server's client address (default: the domain's SRV records, else the
    /// domain on port 5222).
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub server: Option<String>,
    /// Trust the CA certificates in this PEM file for the XMPP login (instead of the
    /// system's roots).
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Accept any certificate for the XMPP login (testing only: anyone on the path
    /// can read the password).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Log in without TLS (loopback or test servers only).
    #[arg(long, global = true, conflicts_with_all = ["ca", "insecure"])]
    pub plaintext: bool,
    /// The DSPS component's domain (default: dsps.<account domain>).
    #[arg(
        long = "dsps",
        env = "DSPS_SERVICE",
        value_name = "DOMAIN",
        global = true
    )]
    pub dsps: Option<String>,
    /// Connect to the relay here instead of the host:port the DSPS advertises (for
    /// --via http: the DSPS's HTTP listener; the default is port 80 of the host).
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub relay_addr: Option<String>,
    /// How to connect to the relay: default, http (the HTTP preamble, for networks
    /// that only let HTTP out), tls (starttls) or http+tls.
    #[arg(long, value_name = "METHOD", default_value = "default", global = true)]
    pub via: dsps::client::transport::Via,
    /// With --via tls/http+tls: trust only this PEM file (the relay's self-signed
    /// certificate or its CA) instead of the system roots.
    #[arg(long, value_name = "FILE", global = true)]
    pub relay_ca: Option<PathBuf>,
    /// With --via tls/http+tls: the name the relay's certificate must carry
    /// (default: the advertised relay host).
    #[arg(long, value_name = "NAME", global = true)]
    pub relay_tls_name: Option<String>,
    /// No progress and no informational lines (results, failures and --status lines
    /// still print).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Bound in seconds on each wait for a peer: receivers or joiners connecting, an
    /// invitation, a receiver's data going quiet.
    #[arg(long, value_name = "SECS", default_value_t = 120, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send a file to one or more receivers (start their `recv` first).
    Send(SendArgs),
    /// Receive files sent with `send`.
    Recv(RecvArgs),
    /// Multicast standard input to invited and/or public readers.
    Publish(PublishArgs),
    /// Join a stream (public, or by invitation) and write its data to standard output.
    Join(JoinArgs),
    /// List the DSPS's public streams.
    Streams(StreamsArgs),
    /// Show one stream's statistics (anyone may ask a public stream's JID).
    Stats(StatsArgs),
    /// Show the peers of a stream seat this account owns.
    #[command(long_about = WHO_LONG)]
    Who(WhoArgs),
}

impl Command {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Send(_) => "send",
            Command::Recv(_) => "recv",
            Command::Publish(_) => "publish",
            Command::Join(_) => "join",
            Command::Streams(_) => "streams",
            Command::Stats(_) => "stats",
            Command::Who(_) => "who",
        }
    }
}

const WHO_LONG: &str = "\
Show the peers of a stream seat this account owns: their JIDs, roles, ids, statuses
and throughput.

The DSPS answers `who` only to the seat's own full JID, so run it with the same
--jid, resource included, as the client that created or accepted the seat; any other
JID gets `no such seat`. Most servers let only one client use a full JID at a time
(Prosody disconnects the older one), so asking about a seat whose owner is still
running cuts that owner off: use `send --status SECS` or `publish --status SECS`
to watch a running transfer instead.";

/// `send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The file to send.
    pub file: PathBuf,
    /// A receiver's full JID (user@domain/resource); repeat for several.
    #[arg(long = "to", required = true, value_name = "JID")]
    pub to: Vec<String>,
    /// Print the peers' status and throughput on stderr every SECS seconds while
    /// streaming.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub status: Option<u64>,
}

/// `recv`.
#[derive(Args, Debug)]
pub struct RecvArgs {
    /// Directory to write the files into (never overwriting: `name (1)` etc.).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Exit after this many files.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Accept invitations only from this account (bare JID; a full JID counts as its
    /// bare part); others are rejected.
    #[arg(long, value_name = "JID")]
    pub from: Option<String>,
}

/// `publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// A reader to invite (full JID); repeat for several.
    #[arg(long = "to", value_name = "JID")]
    pub to: Vec<String>,
    /// Make the stream public for up to N readers without invitation; its public JID
    /// is printed on stderr as `public stream: <jid>`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub public: Option<u32>,
    /// Public readers to wait for before streaming (default: N with --public, else 0).
    #[arg(long, value_name = "K")]
    pub wait_joiners: Option<u32>,
    /// Print the peers' status and throughput on stderr every SECS seconds while
    /// streaming.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub status: Option<u64>,
}

/// `join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Join this public stream (its public JID, from `streams` or the publisher).
    #[arg(long, value_name = "JID", conflicts_with = "from")]
    pub public: Option<String>,
    /// Without --public: accept only an invitation from this account (bare JID).
    #[arg(long, value_name = "JID")]
    pub from: Option<String>,
}

/// `streams`.
#[derive(Args, Debug)]
pub struct StreamsArgs {
    /// Print JSON (an array of streams) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The stream's JID (dsps.example.org/resource): a public JID, or a seat of ours.
    #[arg(value_name = "JID")]
    pub stream: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `who`.
#[derive(Args, Debug)]
pub struct WhoArgs {
    /// The seat's JID (dsps.example.org/resource), owned by this --jid.
    pub seat: String,
    /// Print JSON (an array of peers) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn positionals_do_not_shadow_global_options() {
        // An argument id shared with a global option (e.g. a positional named `jid`)
        // silently overwrites it; debug_assert does not catch that.
        let cli = Cli::parse_from(["dsps-client", "--jid", "a@b/c", "stats", "dsps.b/s"]);
        assert_eq!(cli.global.jid.as_deref(), Some("a@b/c"));
        assert!(
            matches!(cli.command, Command::Stats(StatsArgs { ref stream, .. }) if stream == "dsps.b/s")
        );
        let cli = Cli::parse_from(["dsps-client", "who", "dsps.b/s", "--jid", "a@b/c"]);
        assert_eq!(cli.global.jid.as_deref(), Some("a@b/c"));
        assert!(
            matches!(cli.command, Command::Who(WhoArgs { ref seat, .. }) if seat == "dsps.b/s")
        );
    }
}
