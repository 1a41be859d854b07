//! `dsps --config FILE`: runs the Data Stream Proxy Service until SIGINT/SIGTERM.
//! `dsps --check-config [FILE]`: checks the config, prints the effective one, exits 0 or 2.
//! `dsps gen-cert --out DIR --name HOST...`: writes a self-signed pair for `[tls]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dsps::logging::control::LogControl;
use dsps::relay::listener::Transports;
use dsps::relay::tls_reload::TlsReloader;

/// XEP-0037 Data Stream Proxy Service: an XMPP component that relays byte streams.
#[derive(Parser, Debug)]
#[command(
    name = "dsps",
    version,
    about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// The TOML configuration file.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "check_config"
    )]
    config: Option<PathBuf>,
    /// Check the configuration (FILE, or the --config file) without starting: print the
    /// effective configuration with the secret masked and exit 0, or print the key at
    /// fault and exit 2.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    check_config: Option<Option<PathBuf>>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write a self-signed certificate (cert.pem) and key (key.pem, mode 0600) for
    /// [tls], for local use and tests. Clients trust it by taking cert.pem as root.
    GenCert {
        /// Directory to write cert.pem and key.pem in (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A host name or IP address the certificate is for (the relay host clients
        /// connect to); repeat or list several.
        #[arg(long = "name", value_name = "HOST", required = true, num_args = 1..)]
        names: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Exit code for configuration problems (missing file, bad TOML, bad value).
const EXIT_CONFIG: u8 = 2;
/// Exit code for failures at run time (e.g. the relay port is taken).
const EXIT_RUNTIME: u8 = 1;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::GenCert { out, names, force }) = args.command {
        return gen_cert(&out, &names, force);
    }
    let path = match (args.check_config, args.config) {
        (Some(check), config) => return check_config(check, config),
        (None, Some(path)) => path,
        (None, None) => unreachable!("clap requires --config without a subcommand"),
    };
    // Before anything else: this may run the binary again with glibc's settings.
    let tuning = dsps::memory::tuning::apply();
    let config = match dsps::config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dsps: {}: {e}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // `None` only if a subscriber was installed already; then the admin
    // command "Set log level" is not offered.
    let log = dsps::logging::init(&config.log);
    dsps::memory::tuning::log(&tuning);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dsps: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        // Unusable [tls] files are a configuration problem, found before binding.
        Err(e @ dsps::service::RunError::Tls(_)) => {
            eprintln!("dsps: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("dsps: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `dsps --check-config`: the effective configuration on stdout and 0, or one line on
/// stderr and 2. The `[tls]` files are loaded and `relay.loopback_congestion` tried
/// too, since either could stop dsps at start.
fn check_config(check: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let path = match (check, config) {
        (Some(a), Some(b)) if a != b => {
            eprintln!(
                "dsps: --check-config {} and --config {} name different files; give one",
                a.display(),
                b.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        (Some(path), _) | (None, Some(path)) => path,
        (None, None) => {
            eprintln!("dsps: --check-config needs a FILE (or --config FILE)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let refused = |e: &dyn std::fmt::Display| {
        eprintln!("dsps: {}: {e}", path.display());
        ExitCode::from(EXIT_CONFIG)
    };
    let loaded = match dsps::config::Loaded::read(&path) {
        Ok(l) => l,
        Err(e) => return refused(&e),
    };
    if let Some(tls) = &loaded.config.tls {
        if let Err(e) = dsps::relay::tls::server_config(tls) {
            return refused(&e);
        }
    }
    if let Some(name) = &loaded.config.relay.loopback_congestion {
        if let Err(why) = dsps::relay::tcp_options::check(name) {
            return refused(&why);
        }
    }
    print!("{}", loaded.effective_toml());
    ExitCode::SUCCESS
}

/// `dsps gen-cert`: one line on stdout naming the files, or one on stderr and exit 1.
fn gen_cert(out: &std::path::Path, names: &[String], force: bool) -> ExitCode {
    match dsps::certgen::write_pair(out, names, force) {
        Ok((cert, key)) => {
            println!(
                "wrote {} and {} (mode 0600) for {}",
                cert.display(),
                key.display(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dsps: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Loads `[tls]` and binds the ports, then runs until signalled; SIGHUP reloads
/// the `[tls]` certificate meanwhile.
async fn serve(
    config: dsps::config::Config,
    log: Option<LogControl>,
) -> Result<(), dsps::service::RunError> {
    // Before anything else: SIGHUP's default action would end the process, and a
    // `systemctl reload` may come at any time.
    let hangups = Hangups::new();
    let (transports, reloader) = dsps::service::prepare(&config).await?;
    let metrics = dsps::service::bind_metrics(&config).await?;
    tokio::spawn(reload_on_hangup(hangups, reloader));
    run_until_signalled(config, transports, dsps::service::Hooks { log, metrics }).await;
    Ok(())
}

/// Each SIGHUP reloads the `[tls]` certificate and key for new connections
/// (established ones keep theirs); a broken file keeps the old pair and logs one
/// error line.
async fn reload_on_hangup(mut hangups: Hangups, reloader: Option<TlsReloader>) {
    while hangups.next().await {
        match &reloader {
            None => tracing::info!("SIGHUP: nothing to reload ([tls] is not configured)"),
            Some(r) => match r.reload() {
                Ok(()) => tracing::info!(
                    cert = %r.files().cert.display(),
                    "SIGHUP: TLS certificate reloaded; new connections get it"
                ),
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: TLS reload failed, keeping the previous certificate: {e}"
                    )
                }
            },
        }
    }
}

/// Runs the service; the first SIGINT/SIGTERM starts the graceful drain, a second
/// one exits at once with 128 + the signal's number (130 or 143).
async fn run_until_signalled(
    config: dsps::config::Config,
    transports: Transports,
    hooks: dsps::service::Hooks,
) {
    let mut signals = Signals::new();
    let drain = config.timeouts.drain;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let service = dsps::service::run_prepared(config, transports, hooks, async {
        let _ = first_rx.await;
    });
    tokio::pin!(service);
    let signo = tokio::select! {
        r = &mut service => return r,
        n = signals.next() => n,
    };
    tracing::info!(signal = signo, "stopping; a second signal exits at once");
    dsps::systemd::stopping(&format!(
        "stopping: draining the relay (at most {} ms)",
        drain.as_millis()
    ));
    let _ = first_tx.send(());
    tokio::select! {
        r = service => r,
        n = signals.next() => {
            tracing::warn!(signal = n, "second signal: exiting without finishing the drain");
            std::process::exit(128 + n)
        }
    }
}

/// SIGHUP, as a stream (never on other platforms).
struct Hangups {
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let hup = signal(SignalKind::hangup());
            if let Err(e) = &hup {
                tracing::warn!("cannot handle SIGHUP ({e}): a reload signal would stop dsps");
            }
            Hangups { hup: hup.ok() }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    /// Waits for the next SIGHUP; false if there will be none.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(h) = &mut self.hup {
            return h.recv().await.is_some();
        }
        false
    }
}

/// SIGINT and SIGTERM, as streams, so the second one is caught too.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // Without a handler the default action (exit) still stops the process.
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next signal's number.
    async fn next(&mut self) -> i32 {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.int) => SIGINT,
                _ = one(&mut self.term) => SIGTERM,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            SIGINT
        }
    }
}

/// Signal numbers, for the exit code of a second signal.
const SIGINT: i32 = 2;
#[cfg(unix)]
const SIGTERM: i32 = 15;
