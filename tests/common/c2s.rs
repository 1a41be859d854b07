//! c2s helpers for tests: log a fixture account in, and bound every wait.

use std::future::Future;
use std::time::Duration;

use dsps::client::c2s::{ConnectOptions, Incoming, Security, XmppClient};

use super::prosody::Prosody;

/// Default bound for one step of a test (a login, a request, a push).
pub const STEP: Duration = Duration::from_secs(10);

/// Logs `user` in on `prosody` as `user@localhost/test` over STARTTLS (trusting the
/// server's certificate), or panics with the reason.
pub async fn login(prosody: &Prosody, user: &str, password: &str) -> (XmppClient, Incoming) {
    let jid = format!("{user}@{}/test", prosody.domain);
    within(XmppClient::connect_with(&jid, password, &tls_to(prosody)))
        .await
        .unwrap_or_else(|e| panic!("login as {jid} failed: {e}"))
}

/// Options that reach `prosody` over STARTTLS, trusting its certificate.
pub fn tls_to(prosody: &Prosody) -> ConnectOptions {
    ConnectOptions {
        server: Some(prosody.c2s_addr.clone()),
        security: Security::Tls(
            dsps::client::tls::trust_pem(&prosody.cert).expect("the test certificate loads"),
        ),
    }
}

/// Awaits `fut` for at most [`STEP`], panicking on timeout so a hung test fails fast.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("test step took longer than {STEP:?}"))
}
