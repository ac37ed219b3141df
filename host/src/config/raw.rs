//! The config file exactly as written: serde structs that reject unknown keys.
//!
//! Nothing here is validated beyond its TOML type; `super::validate` turns a [`RawConfig`] into
//! a [`super::Config`]. Every reference and address is kept [`Spanned`] so that errors found
//! after parsing can still name the line they came from.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub stats: RawStats,
    #[serde(default)]
    pub admin: Option<Spanned<RawAdmin>>,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub pools: BTreeMap<Spanned<String>, RawPool>,
    #[serde(default)]
    pub routes: BTreeMap<Spanned<String>, RawRoute>,
    #[serde(default)]
    pub tenants: BTreeMap<Spanned<String>, RawTenant>,
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub experiments: BTreeMap<Spanned<String>, RawExperiment>,
}

/// `[experiments.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub kind: Spanned<String>,
    pub node: Spanned<String>,
    pub candidate: Spanned<String>,
    pub sample: Option<Spanned<f64>>,
    pub key_range: Option<Spanned<Vec<f64>>>,
    pub enabled: Option<Spanned<bool>>,
    pub keep_mismatches: Option<Spanned<i64>>,
    pub steps: Option<Spanned<Vec<f64>>>,
    pub step_seconds: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub max_error_rate_increase: Option<Spanned<f64>>,
    pub max_p99_ratio: Option<Spanned<f64>>,
}

/// A tenant's own file (`[tenants.NAME] include`): its route tables only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInclude {
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "parsed for its errors alone: the routes are read with the config they join"
    )]
    pub routes: BTreeMap<Spanned<String>, RawRoute>,
}

/// `[auth]`: ASCII authentication's users.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub credentials: Spanned<String>,
}

/// `[tenants.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub route: Spanned<String>,
    pub include: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub identities: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    pub commands: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub read_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    pub write_prefixes: Vec<Spanned<String>>,
    pub requests_per_second: Option<Spanned<i64>>,
    pub requests_burst: Option<Spanned<i64>>,
    pub bytes_per_second: Option<Spanned<i64>>,
    pub bytes_burst: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    pub max_value_bytes: Option<Spanned<i64>>,
    pub max_outstanding: Option<Spanned<i64>>,
    pub over_limit: Option<Spanned<String>>,
    pub call_timeout_ms: Option<Spanned<i64>>,
    pub memory_limit_mb: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub workers: Option<Spanned<i64>>,
    pub watch: Option<bool>,
    pub max_value_bytes: Option<Spanned<i64>>,
    pub max_background: Option<Spanned<i64>>,
    pub stream_from_bytes: Option<Spanned<i64>>,
    pub max_client_reply_bytes: Option<Spanned<i64>>,
    pub max_background_bytes: Option<Spanned<i64>>,
    pub drain_timeout_ms: Option<Spanned<i64>>,
}

/// `[stats]`: what the router measures beyond its counters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    pub timings: Option<bool>,
    pub hotkeys: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub call_timeout_ms: Option<Spanned<i64>>,
    pub init_timeout_ms: Option<Spanned<i64>>,
    pub memory_limit_mb: Option<Spanned<i64>>,
    pub rollback_faults: Option<Spanned<i64>>,
    pub breaker_faults: Option<Spanned<i64>>,
    pub breaker_backoff_ms: Option<Spanned<i64>>,
    pub breaker_max_backoff_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Option<Spanned<String>>,
    pub http: Option<Spanned<RawAdminHttp>>,
}

/// `[admin.http]`: the admin HTTP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminHttp {
    pub address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: Spanned<String>,
    pub route: Option<Spanned<String>>,
    pub tenant: Option<Spanned<String>>,
    pub tenant_by: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub tls: Option<Spanned<RawListenerTls>>,
}

/// `[listeners.tls]`: the listener speaks TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    pub client_ca: Option<Spanned<String>>,
}

/// `[pools.NAME.tls]`: the pool reaches its servers over TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolTls {
    pub ca: Spanned<String>,
    pub server_name: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub servers: Spanned<Vec<Spanned<String>>>,
    pub hash: Option<RawPluginRef>,
    pub connect_timeout_ms: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub failure_limit: Option<Spanned<i64>>,
    pub probe_floor_ms: Option<Spanned<i64>>,
    pub probe_ceiling_ms: Option<Spanned<i64>>,
    pub max_outstanding_bytes: Option<Spanned<i64>>,
    pub max_reply_bytes: Option<Spanned<i64>>,
    pub on_fault: Option<Spanned<String>>,
    pub delete_spool: Option<Spanned<String>>,
    pub delete_spool_max_bytes: Option<Spanned<i64>>,
    pub delete_spool_replay_rate: Option<Spanned<i64>>,
    pub tls: Option<Spanned<RawPoolTls>>,
    /// Replaced by `max_outstanding_bytes`; kept to say so.
    pub max_outstanding: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRef {
    pub plugin: Spanned<String>,
    pub sha256: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    #[serde(default)]
    pub config: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub plugin: Spanned<String>,
    pub sha256: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    #[serde(default)]
    pub children: Vec<Spanned<String>>,
    #[serde(default)]
    pub config: toml::Table,
    pub on_fault: Option<Spanned<String>>,
    pub call_timeout_ms: Option<Spanned<i64>>,
    pub memory_limit_mb: Option<Spanned<i64>>,
}
