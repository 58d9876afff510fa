//! `[siem]`: where audit events are delivered, in which schema, and how hard
//! delivery tries.
//!
//! ```toml
//! [siem]
//! format = "ocsf"                  # or "gatehouse" (default); a sink may override it
//!
//! [[siem.sinks]]
//! name = "archive"
//! type = "file"
//! path = "siem/events.jsonl"       # relative to state_dir
//! rotate_bytes = 104857600         # rotate at 100 MiB, keep 10 old files
//! keep = 10
//!
//! [[siem.sinks]]
//! name = "soc-syslog"
//! type = "syslog"
//! address = "syslog.bank.internal:6514"
//! tls = true
//! ca_file = "/etc/gatehouse/syslog-ca.pem"   # else the system's roots
//!
//! [[siem.sinks]]
//! name = "splunk"
//! type = "splunk_hec"
//! url = "https://splunk.bank.internal:8088/services/collector/event"
//! token_env = "SPLUNK_HEC_TOKEN"
//! ```

use serde::Deserialize;
use std::path::PathBuf;

/// The schema events are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The audit event exactly as hashed (seq, ts, kind, …, prev_hash, hash),
    /// so a receiver can re-check the chain.
    #[default]
    Gatehouse,
    /// OCSF 1.3 classes where one fits (Authentication, Authorize Session,
    /// Datastore Activity), the base event otherwise; the original event is
    /// kept in `unmapped`.
    Ocsf,
}

/// `[siem]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiemConfig {
    /// Default schema for every sink.
    pub format: Format,
    /// How often to look for new events when caught up, milliseconds.
    pub poll_interval_ms: u64,
    /// Events read and delivered per batch.
    pub batch: usize,
    /// First retry delay after a failed delivery; doubles up to `max_backoff_secs`.
    pub initial_backoff_ms: u64,
    /// Longest delay between two attempts.
    pub max_backoff_secs: u64,
    /// Time allowed for one network attempt.
    pub timeout_secs: u64,
    /// Where the per-sink cursors are kept (relative to state_dir).
    pub cursor_dir: PathBuf,
    /// The sinks.
    pub sinks: Vec<SinkConfig>,
}

impl Default for SiemConfig {
    fn default() -> Self {
        SiemConfig {
            format: Format::Gatehouse,
            poll_interval_ms: 500,
            batch: 500,
            initial_backoff_ms: 500,
            max_backoff_secs: 60,
            timeout_secs: 10,
            cursor_dir: PathBuf::from("siem"),
            sinks: Vec::new(),
        }
    }
}

/// One destination.
#[derive(Debug, Clone, Deserialize)]
pub struct SinkConfig {
    /// Unique name: names the cursor file and the sink in logs.
    pub name: String,
    /// Schema override for this sink.
    #[serde(default)]
    pub format: Option<Format>,
    /// What kind of sink, and its settings.
    #[serde(flatten)]
    pub kind: SinkKind,
}

/// The kinds of sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkKind {
    /// JSON lines appended to a file, rotated by size.
    File {
        /// The file (relative to state_dir).
        path: PathBuf,
        /// Rotate when the file reaches this size (0: never).
        #[serde(default = "default_rotate_bytes")]
        rotate_bytes: u64,
        /// Rotated files kept (`path.1` newest … `path.N`).
        #[serde(default = "default_keep")]
        keep: u32,
    },
    /// RFC 5424 messages over TCP (RFC 6587 octet counting), optionally TLS
    /// (RFC 5425).
    Syslog {
        /// `host:port`.
        address: String,
        /// Use TLS.
        #[serde(default)]
        tls: bool,
        /// CA certificate(s) to trust (PEM); else the system's roots.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Name to check the server certificate against (default: the host
        /// part of `address`).
        #[serde(default)]
        server_name: Option<String>,
        /// RFC 5424 APP-NAME.
        #[serde(default = "default_app_name")]
        app_name: String,
        /// RFC 5424 facility number (default 13, log audit).
        #[serde(default = "default_facility")]
        facility: u8,
        /// HOSTNAME field (default: the machine's host name).
        #[serde(default)]
        hostname: Option<String>,
    },
    /// Splunk HTTP Event Collector (or anything that speaks its protocol).
    SplunkHec {
        /// The collector endpoint, e.g. `https://splunk:8088/services/collector/event`.
        url: String,
        /// Environment variable holding the HEC token.
        #[serde(default)]
        token_env: Option<String>,
        /// File holding the HEC token.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// CA certificate(s) to trust (PEM), in addition to the system's.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Splunk index.
        #[serde(default)]
        index: Option<String>,
        /// Splunk sourcetype.
        #[serde(default = "default_sourcetype")]
        sourcetype: String,
        /// Splunk source.
        #[serde(default = "default_app_name")]
        source: String,
    },
}

fn default_rotate_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_keep() -> u32 {
    10
}
fn default_app_name() -> String {
    "gatehouse".into()
}
fn default_facility() -> u8 {
    13
}
fn default_sourcetype() -> String {
    "gatehouse:audit".into()
}

impl SiemConfig {
    /// Whether any sink is configured.
    pub fn is_enabled(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Check names and values; the error says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for s in &self.sinks {
            let plain = !s.name.is_empty()
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plain {
                return Err(format!(
                    "[[siem.sinks]] name \"{}\": use letters, digits, - and _ (it names the sink's cursor file)",
                    s.name
                ));
            }
            if !names.insert(s.name.clone()) {
                return Err(format!("[[siem.sinks]] name \"{}\" is used twice", s.name));
            }
            match &s.kind {
                SinkKind::Syslog {
                    address, facility, ..
                } => {
                    if *facility > 23 {
                        return Err(format!(
                            "[[siem.sinks]] \"{}\": facility {facility} is not 0–23",
                            s.name
                        ));
                    }
                    if !address.contains(':') {
                        return Err(format!(
                            "[[siem.sinks]] \"{}\": address \"{address}\" needs a port (host:port)",
                            s.name
                        ));
                    }
                }
                SinkKind::SplunkHec {
                    url,
                    token_env,
                    token_file,
                    ..
                } => {
                    if reqwest::Url::parse(url).is_err() {
                        return Err(format!(
                            "[[siem.sinks]] \"{}\": url \"{url}\" is not a URL",
                            s.name
                        ));
                    }
                    if token_env.is_none() && token_file.is_none() {
                        return Err(format!(
                            "[[siem.sinks]] \"{}\": set token_env or token_file (the HEC token is never written inline)",
                            s.name
                        ));
                    }
                }
                SinkKind::File { .. } => {}
            }
        }
        if self.batch == 0 {
            return Err("[siem] batch must be at least 1".into());
        }
        Ok(())
    }
}
