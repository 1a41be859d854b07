//! Unit tests of the configuration, one file per concern. Fixtures are TOML text,
//! as an operator writes it.

use super::*;

mod effective;
mod errors;
mod reading;
mod secret;
mod shipped;

const FULL: &str = r#"
[component]
jid = "dsps.localhost"        # component domain (required)
server = "127.0.0.1:5347"     # the XMPP server's component port (required, host:port)
secret = "s3cret"             # XEP-0114 shared secret (required)
[relay]
listen = "0.0.0.0:5290"       # TCP data port (required SocketAddr; [::]:5290 must also parse)
host = "dsps.example.org"     # advertised 'host' in create results (default: component jid)
port = 5290                   # advertised 'port' (default: the listen port)
[http]                        # optional section: HTTP preamble listener
listen = "0.0.0.0:80"
[tls]                         # optional: starttls on the relay port
cert = "cert.pem"
key = "key.pem"
[metrics]                     # optional: the Prometheus endpoint
listen = "127.0.0.1:9090"
[timeouts]                    # optional section, milliseconds
wait = 60000                  # waitdefault
expire = 120000               # expiredefault
handshake = 10000             # relay handshake must finish within this
"#;

const MINIMAL: &str = r#"
[component]
jid = "dsps.localhost"
server = "127.0.0.1:5347"
secret = "s3cret"
[relay]
listen = "[::]:6000"
"#;

/// The one-line message of the error `text` is refused with.
fn err(text: &str) -> String {
    match Config::parse(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "not one line: {message}");
            message
        }
    }
}

/// Parses `text` with `env` as the only environment variables, so that tests of
/// `component.secret_env` never touch the process environment.
fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
    };
    Loaded::from_text(text, None, &lookup).map(|l| l.config)
}

/// `text` with `lines` added at the top of `[component]`.
fn with_component(text: &str, lines: &str) -> String {
    text.replace("[component]\n", &format!("[component]\n{lines}\n"))
}
