//! The effective configuration as TOML, for `dsps --check-config`: every key with the
//! value dsps will use (defaults and derived defaults filled in, relative paths
//! resolved), and the component secret masked whatever its source.

use std::num::NonZeroU16;

use super::file::File;
use super::model::Config;
use super::secret::SecretSource;

/// What the secret is shown as.
pub const MASK: &str = "********";

/// `file` as it is in effect once `config` was built from it.
pub(super) fn render(file: &File, config: &Config, source: &SecretSource) -> String {
    let mut shown = file.clone();
    let c = &mut shown.component;
    c.secret = Some(MASK.to_owned());
    c.secret_file = None;
    c.secret_env = None;
    let r = &mut shown.relay;
    r.host = Some(config.relay.host.clone());
    // Port 0 (listen on port 0 without `port`) has no value to show: the listener's.
    r.port = NonZeroU16::new(config.relay.port);
    let mut out = format!("# component.secret is masked; it comes from {source}.\n");
    match toml::to_string(&shown) {
        Ok(text) => out.push_str(&text),
        // Only a path that is not UTF-8 gets here; say so rather than print half a file.
        Err(e) => out.push_str(&format!("# cannot show the configuration as TOML: {e}\n")),
    }
    if shown.http.is_none() {
        out.push_str("\n# [http] is not set: the HTTP method is off.\n");
    }
    if shown.tls.is_none() {
        out.push_str("# [tls] is not set: starttls is refused.\n");
    }
    if shown.metrics.is_none() {
        out.push_str("# [metrics] is not set: no metrics endpoint.\n");
    }
    out
}
