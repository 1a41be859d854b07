//! `dsps-client`: send and receive files, publish and join streams, and look at them,
//! through an XEP-0037 Data Stream Proxy Service.
//!
//! Modules, one job each:
//! - `cli`: the command line (clap) and its help texts.
//! - `failure`: exit codes and the one-line failure; library errors are classified
//!   there only.
//! - `login`: the account, the password and the XMPP login.
//! - `session`: one logged-in run: XMPP and DSPS clients, event pump, output, bounds.
//! - `events`: the task that reads the DSPS's pushes (and answers pings).
//! - `progress`: informational lines and progress bars or plain progress lines.
//! - `master`: the master's side shared by `send` and `publish`.
//! - `invite`: the invitee's side shared by `recv` and `join`.
//! - `send`, `recv`, `publish`, `join`, `info` (`streams`, `stats`, `who`): the
//!   subcommands.
//!
//! Library logging (tracing) is off unless `RUST_LOG` is set, so that a failure
//! stays one line.

mod cli;
mod events;
mod failure;
mod info;
mod invite;
mod join;
mod login;
mod master;
mod progress;
mod publish;
mod recv;
mod send;
mod session;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use failure::{Exit, Failure, Result};
use session::{Login, Session};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}: {f}", progress::PROGRAM);
            ExitCode::from(f.exit as u8)
        }
    }
}

/// Completes on SIGINT or SIGTERM with the exit code for it.
async fn stopped() -> Exit {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return Exit::Interrupted;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Exit::Interrupted,
        _ = term.recv() => Exit::Terminated,
    }
}

/// Checks what needs no network, resolves the login, then runs the subcommand.
fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Send(a) => send::check(a)?,
        Command::Recv(a) => recv::check(a)?,
        Command::Publish(a) => publish::check(a)?,
        Command::Join(_) | Command::Streams(_) | Command::Stats(_) | Command::Who(_) => {}
    }
    let login = Login::resolve(&cli.global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Other, "starting the async runtime", e.to_string()))?;
    let outcome = runtime.block_on(async {
        let work = async {
            let mut s = Session::open(&cli.global, &login).await?;
            let outcome = dispatch(&mut s, &cli.command).await;
            s.close().await;
            outcome
        };
        // A signal drops the work, and with it any partial file (its guard removes it).
        tokio::select! {
            outcome = work => outcome,
            exit = stopped() => Err(Failure::new(exit, cli.command.name(), "interrupted")),
        }
    });
    // Reading standard input runs on a blocking thread that cannot be cancelled; do
    // not wait for it (it would wait for the user's next line).
    runtime.shutdown_background();
    outcome
}

async fn dispatch(s: &mut Session, command: &Command) -> Result<()> {
    match command {
        Command::Send(a) => println!("{}", send::run(s, a).await?),
        Command::Recv(a) => recv::run(s, a).await?,
        Command::Publish(a) => println!("{}", publish::run(s, a).await?),
        Command::Join(a) => {
            let summary = join::run(s, a).await?;
            s.out.info(&summary);
        }
        Command::Streams(a) => info::streams(s, a).await?,
        Command::Stats(a) => info::stats(s, a).await?,
        Command::Who(a) => info::who(s, a).await?,
    }
    Ok(())
}
