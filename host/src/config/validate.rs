//! From [`RawConfig`] to [`Config`]: defaults, ranges, addresses, references, cycles.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawAdmin, RawConfig, RawPluginRef, RawPool};
use super::{
    Config, ConfigError, DeleteSpool, ListenerConfig, ListenerRoute, ListenerTls, MAX_WORKERS,
    OnFault, PluginSettings, PluginSource, PoolConfig, PoolTls, RouteConfig, ServerSettings,
};

/// The longest name of a pool, route, tenant or experiment.
pub const MAX_NAME_BYTES: usize = 64;

/// Builds errors that point into one file.
pub(super) struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub(super) fn err(
        &self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A pool's, route's, tenant's or experiment's name (`table` is its table, `pools`, ...):
    /// what stats lines, `/metrics` labels and log lines carry as one token, so 1 to
    /// [`MAX_NAME_BYTES`] ASCII letters, digits, `_` and `-`.
    pub(super) fn name(&self, table: &str, name: &Spanned<String>) -> Result<(), ConfigError> {
        let text = name.get_ref();
        let fits = !text.is_empty()
            && text.len() <= MAX_NAME_BYTES
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if fits {
            return Ok(());
        }
        Err(self.at(
            name,
            format!("{table}.{text}"),
            format!(
                "`{text}` is not a name: 1 to {MAX_NAME_BYTES} ASCII letters, digits, `_` and `-` \
                 (stats lines and `/metrics` carry it as one token)"
            ),
        ))
    }

    pub(super) fn at<T>(
        &self,
        spanned: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.err(Some(spanned.span()), key, message)
    }

    /// A file or directory the config names: not empty, and relative to the config file's
    /// directory unless absolute.
    pub(super) fn path(
        &self,
        value: &Spanned<String>,
        key: &str,
        what: &str,
    ) -> Result<PathBuf, ConfigError> {
        if value.get_ref().trim().is_empty() {
            return Err(self.at(value, key, format!("empty path: name the {what}")));
        }
        let path = PathBuf::from(value.get_ref());
        Ok(if path.is_absolute() {
            path
        } else {
            self.file.parent().unwrap_or(Path::new("")).join(path)
        })
    }

    pub(super) fn int_in(
        &self,
        value: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        match value {
            None => Ok(None),
            Some(v) if range.contains(v.get_ref()) => Ok(Some(*v.get_ref())),
            Some(v) => Err(self.at(
                v,
                key,
                format!(
                    "{} is out of range ({}..={})",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    fn millis(
        &self,
        value: &Option<Spanned<i64>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self
            .int_in(value, key, 1..=3_600_000)?
            .map_or(default, |ms| Duration::from_millis(ms.unsigned_abs())))
    }
}

/// A sandbox budget (`call_timeout_ms`, `memory_limit_mb`) of the table `key`.
pub(super) fn budget(
    cx: &Ctx<'_>,
    call_timeout_ms: &Option<Spanned<i64>>,
    memory_limit_mb: &Option<Spanned<i64>>,
    key: &str,
) -> Result<crate::plugin::NodeBudget, ConfigError> {
    Ok(crate::plugin::NodeBudget {
        call_timeout: cx
            .int_in(
                call_timeout_ms,
                &format!("{key}.call_timeout_ms"),
                1..=60_000,
            )?
            .map(|ms| Duration::from_millis(ms.unsigned_abs())),
        memory_limit_bytes: cx
            .int_in(memory_limit_mb, &format!("{key}.memory_limit_mb"), 1..=4096)?
            .map(|mb| (mb.unsigned_abs() as usize) << 20),
    })
}

pub(super) fn validate(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let cx = Ctx { text, file: origin };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let key = e
            .span()
            .and_then(|s| text.get(s))
            .map(|t| t.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        cx.err(e.span(), key, e.message().trim().to_string())
    })?;

    let server = ServerSettings {
        workers: cx
            .int_in(
                &raw.server.workers,
                "server.workers",
                1..=MAX_WORKERS as i64,
            )?
            .map_or_else(default_workers, |w| w.unsigned_abs() as usize),
        watch: raw.server.watch.unwrap_or(true),
        max_value_bytes: cx
            .int_in(
                &raw.server.max_value_bytes,
                "server.max_value_bytes",
                1..=super::MAX_VALUE_BYTES_CEILING as i64,
            )?
            .map_or(super::DEFAULT_MAX_VALUE_BYTES, |v| {
                v.unsigned_abs() as usize
            }),
        max_background: cx
            .int_in(
                &raw.server.max_background,
                "server.max_background",
                0..=1 << 20,
            )?
            .map_or(super::DEFAULT_MAX_BACKGROUND, |v| v.unsigned_abs() as usize),
        stream_from_bytes: cx
            .int_in(
                &raw.server.stream_from_bytes,
                "server.stream_from_bytes",
                super::MIN_STREAM_FROM_BYTES as i64..=super::MAX_VALUE_BYTES_CEILING as i64,
            )?
            .map_or(super::DEFAULT_STREAM_FROM_BYTES, |v| {
                v.unsigned_abs() as usize
            }),
        max_background_bytes: cx
            .int_in(
                &raw.server.max_background_bytes,
                "server.max_background_bytes",
                0..=1 << 40,
            )?
            .map_or(super::DEFAULT_MAX_BACKGROUND_BYTES, |v| {
                v.unsigned_abs() as usize
            }),
        max_client_reply_bytes: cx
            .int_in(
                &raw.server.max_client_reply_bytes,
                "server.max_client_reply_bytes",
                super::MIN_CLIENT_REPLY_BYTES as i64..=u32::MAX as i64,
            )?
            .map_or(super::DEFAULT_MAX_CLIENT_REPLY_BYTES, |v| {
                v.unsigned_abs() as usize
            }),
        drain_timeout: cx
            .int_in(
                &raw.server.drain_timeout_ms,
                "server.drain_timeout_ms",
                0..=3_600_000,
            )?
            .map_or(super::DEFAULT_DRAIN_TIMEOUT, |ms| {
                Duration::from_millis(ms.unsigned_abs())
            }),
    };
    let stats = super::StatsSettings {
        timings: raw.stats.timings.unwrap_or(true),
        hotkeys: raw.stats.hotkeys.unwrap_or(true),
    };
    let plugins = PluginSettings {
        call_timeout: cx.millis(
            &raw.plugins.call_timeout_ms,
            "plugins.call_timeout_ms",
            super::DEFAULT_CALL_TIMEOUT,
        )?,
        init_timeout: cx.millis(
            &raw.plugins.init_timeout_ms,
            "plugins.init_timeout_ms",
            super::DEFAULT_INIT_TIMEOUT,
        )?,
        memory_limit_bytes: cx
            .int_in(
                &raw.plugins.memory_limit_mb,
                "plugins.memory_limit_mb",
                1..=4096,
            )?
            .map_or(super::DEFAULT_MEMORY_LIMIT_BYTES, |mb| {
                (mb.unsigned_abs() as usize) << 20
            }),
        rollback_faults: cx
            .int_in(
                &raw.plugins.rollback_faults,
                "plugins.rollback_faults",
                0..=1 << 40,
            )?
            .map_or(super::DEFAULT_ROLLBACK_FAULTS, i64::unsigned_abs),
        breaker_faults: cx
            .int_in(
                &raw.plugins.breaker_faults,
                "plugins.breaker_faults",
                0..=1_000_000,
            )?
            .map_or(super::DEFAULT_BREAKER_FAULTS, |n| n.unsigned_abs() as u32),
        breaker_backoff: cx.millis(
            &raw.plugins.breaker_backoff_ms,
            "plugins.breaker_backoff_ms",
            super::DEFAULT_BREAKER_BACKOFF,
        )?,
        breaker_max_backoff: cx.millis(
            &raw.plugins.breaker_max_backoff_ms,
            "plugins.breaker_max_backoff_ms",
            super::DEFAULT_BREAKER_MAX_BACKOFF,
        )?,
    };
    if plugins.breaker_max_backoff < plugins.breaker_backoff {
        let at = raw
            .plugins
            .breaker_max_backoff_ms
            .as_ref()
            .map(|s| s.span());
        return Err(cx.err(
            at,
            "plugins.breaker_max_backoff_ms",
            "must not be below breaker_backoff_ms",
        ));
    }

    // Pools and routes share one namespace: a reference is a bare name.
    let mut names: HashMap<&str, Range<usize>> = HashMap::new();
    let tables =
        (raw.pools.keys().map(|n| ("pools", n))).chain(raw.routes.keys().map(|n| ("routes", n)));
    for (table, name) in tables {
        cx.name(table, name)?;
        if let Some(first) = names.insert(name.get_ref(), name.span()) {
            return Err(cx.at(
                name,
                name.get_ref().clone(),
                format!(
                    "`{}` is defined twice (first at line {}); pools and routes share one namespace",
                    name.get_ref(),
                    cx.line_of(first.start)
                ),
            ));
        }
    }

    let mut pools = Vec::with_capacity(raw.pools.len());
    for (name, pool) in &raw.pools {
        let key = format!("pools.{}", name.get_ref());
        if let Some(old) = &pool.max_outstanding {
            return Err(cx.at(
                old,
                format!("{key}.max_outstanding"),
                "a request count no longer bounds a server's queue: use `max_outstanding_bytes` \
                 (bytes of requests one worker may have queued or in flight at one server; \
                 default 33554432)",
            ));
        }
        if pool.servers.get_ref().is_empty() {
            return Err(cx.at(
                &pool.servers,
                format!("{key}.servers"),
                "a pool needs at least one server",
            ));
        }
        let mut servers = Vec::with_capacity(pool.servers.get_ref().len());
        for s in pool.servers.get_ref() {
            let spec = super::server_spec::parse(s.get_ref())
                .map_err(|m| cx.at(s, format!("{key}.servers"), m))?;
            if servers
                .iter()
                .any(|o: &super::ServerSpec| o.address == spec.address)
            {
                return Err(cx.at(
                    s,
                    format!("{key}.servers"),
                    format!("{} is listed twice", spec.address),
                ));
            }
            servers.push(spec);
        }
        let (hash, hash_config, hash_sha256, hash_log_level) = match &pool.hash {
            Some(RawPluginRef {
                plugin,
                config,
                sha256,
                log_level,
            }) => (
                plugin_source(&cx, plugin, &format!("{key}.hash.plugin"))?,
                config.clone(),
                pin(&cx, sha256.as_ref(), &format!("{key}.hash.sha256"))?,
                level(&cx, log_level.as_ref(), &format!("{key}.hash.log_level"))?,
            ),
            None => (
                PluginSource::Bundled(super::DEFAULT_HASH_PLUGIN.to_string()),
                toml::Table::new(),
                None,
                None,
            ),
        };
        let probe_floor = cx.millis(
            &pool.probe_floor_ms,
            &format!("{key}.probe_floor_ms"),
            super::DEFAULT_PROBE_FLOOR,
        )?;
        let probe_ceiling = cx.millis(
            &pool.probe_ceiling_ms,
            &format!("{key}.probe_ceiling_ms"),
            super::DEFAULT_PROBE_CEILING.max(probe_floor),
        )?;
        if probe_ceiling < probe_floor {
            let at = pool.probe_ceiling_ms.as_ref().map(|s| s.span());
            return Err(cx.err(
                at,
                format!("{key}.probe_ceiling_ms"),
                "must not be below probe_floor_ms",
            ));
        }
        let server_names: Vec<String> = pool
            .servers
            .get_ref()
            .iter()
            .map(|s| server_address_text(s.get_ref()))
            .collect();
        let on_fault = on_fault(
            &cx,
            &pool.on_fault,
            &format!("{key}.on_fault"),
            &server_names,
        )?;
        let delete_spool = delete_spool(&cx, pool, &key)?;
        let tls = pool_tls(&cx, pool, &key)?;
        pools.push(PoolConfig {
            name: name.get_ref().clone(),
            on_fault,
            delete_spool,
            tls,
            line: cx.line_of(name.span().start),
            servers,
            hash,
            hash_config,
            hash_sha256,
            hash_log_level,
            connect_timeout: cx.millis(
                &pool.connect_timeout_ms,
                &format!("{key}.connect_timeout_ms"),
                super::DEFAULT_CONNECT_TIMEOUT,
            )?,
            timeout: cx.millis(
                &pool.timeout_ms,
                &format!("{key}.timeout_ms"),
                super::DEFAULT_REQUEST_TIMEOUT,
            )?,
            failure_limit: cx
                .int_in(
                    &pool.failure_limit,
                    &format!("{key}.failure_limit"),
                    1..=1_000_000,
                )?
                .map_or(super::DEFAULT_FAILURE_LIMIT, |n| n.unsigned_abs() as u32),
            probe_floor,
            probe_ceiling,
            max_outstanding_bytes: cx
                .int_in(
                    &pool.max_outstanding_bytes,
                    &format!("{key}.max_outstanding_bytes"),
                    super::MIN_OUTSTANDING_BYTES as i64..=1 << 40,
                )?
                .map_or(super::DEFAULT_MAX_OUTSTANDING_BYTES, |n| {
                    n.unsigned_abs() as usize
                }),
            max_reply_bytes: cx
                .int_in(
                    &pool.max_reply_bytes,
                    &format!("{key}.max_reply_bytes"),
                    super::MIN_REPLY_BYTES as i64..=1 << 40,
                )?
                .map_or(super::DEFAULT_MAX_REPLY_BYTES, |n| {
                    n.unsigned_abs() as usize
                }),
        });
    }

    same_spool_per_server(&cx, &pools, &raw.pools)?;

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (name, route) in &raw.routes {
        let key = format!("routes.{}", name.get_ref());
        for child in &route.children {
            if !names.contains_key(child.get_ref().as_str()) {
                return Err(cx.at(
                    child,
                    format!("{key}.children"),
                    format!("no pool or route is named `{}`", child.get_ref()),
                ));
            }
        }
        let children: Vec<String> = route.children.iter().map(|c| c.get_ref().clone()).collect();
        let on_fault = on_fault(&cx, &route.on_fault, &format!("{key}.on_fault"), &children)?;
        routes.push(RouteConfig {
            name: name.get_ref().clone(),
            on_fault,
            line: cx.line_of(route.plugin.span().start),
            plugin: plugin_source(&cx, &route.plugin, &format!("{key}.plugin"))?,
            sha256: pin(&cx, route.sha256.as_ref(), &format!("{key}.sha256"))?,
            log_level: level(&cx, route.log_level.as_ref(), &format!("{key}.log_level"))?,
            children,
            config: route.config.clone(),
            budget: budget(&cx, &route.call_timeout_ms, &route.memory_limit_mb, &key)?,
        });
    }
    check_acyclic(&cx, &raw.routes)?;

    if raw.listeners.is_empty() {
        return Err(cx.err(
            None,
            "listeners",
            "at least one [[listeners]] entry is required",
        ));
    }
    let tenants = super::tenants::tenants(&cx, &raw, &names)?;
    super::tenants::apply_budgets(&cx, &raw, &tenants, &mut routes)?;
    let auth = super::tenants::auth(&cx, &raw)?;
    let mut listeners = Vec::with_capacity(raw.listeners.len());
    for (i, l) in raw.listeners.iter().enumerate() {
        let key = format!("listeners[{i}]");
        let address = resolve_listen(l.address.get_ref())
            .map_err(|m| cx.at(&l.address, format!("{key}.address"), m))?;
        let route = super::tenants::listener_route(&cx, l, &key, &names, &raw, &tenants)?;
        let max_connections = cx
            .int_in(
                &l.max_connections,
                &format!("{key}.max_connections"),
                1..=super::MAX_CONNECTIONS_CEILING as i64,
            )?
            .map(|n| n.unsigned_abs() as usize);
        let tls = match &l.tls {
            None => None,
            Some(t) => {
                let key = format!("{key}.tls");
                let line = cx.line_of(t.span().start);
                let t = t.get_ref();
                Some(ListenerTls {
                    cert: cx.path(&t.cert, &format!("{key}.cert"), "certificate chain file")?,
                    key: cx.path(&t.key, &format!("{key}.key"), "private key file")?,
                    client_ca: t
                        .client_ca
                        .as_ref()
                        .map(|ca| cx.path(ca, &format!("{key}.client_ca"), "CA bundle file"))
                        .transpose()?,
                    line,
                })
            }
        };
        listeners.push(ListenerConfig {
            address,
            route,
            max_connections,
            tls,
        });
    }

    let (admin, admin_http) = admin(&cx, raw.admin.as_ref(), &listeners)?;
    let experiments = super::experiments::experiments(&cx, &raw, &names)?;
    // What a root's requests reach: its tree, and the candidate of an experiment on a node of
    // it (a dry run sends nothing, but a shadow's copies and a canary's keys go there).
    let reach = |root: &str| {
        let mut names = reachable(std::iter::once(root.to_string()), &routes);
        while let Some(e) = experiments.iter().find(|e| {
            e.kind != super::ExperimentKind::DryRun
                && names.contains(&e.node)
                && !names.contains(&e.candidate)
        }) {
            names.extend(reachable(std::iter::once(e.candidate.clone()), &routes));
        }
        names
    };
    super::tenants::unprefixed_tenants_own_their_servers(
        &cx, &raw, &tenants, &listeners, &pools, reach,
    )?;
    if !experiments.is_empty() {
        let roots = listeners
            .iter()
            .filter_map(|l| match &l.route {
                ListenerRoute::Route(route) => Some(route.clone()),
                _ => None,
            })
            .chain(tenants.iter().map(|t| t.route.clone()));
        let live = reachable(roots, &routes);
        super::experiments::candidates_are_not_live(&cx, &raw, &experiments, &live)?;
        super::experiments::candidates_lead_to_no_node(&cx, &raw, &experiments, |from| {
            reachable(std::iter::once(from.to_string()), &routes)
        })?;
    }

    Ok(Config {
        origin: origin.to_path_buf(),
        text: text.into(),
        server,
        plugins,
        stats,
        admin,
        admin_http,
        listeners,
        pools,
        routes,
        tenants,
        auth,
        experiments,
        includes: Vec::new(),
    })
}

/// Every pool and route name reachable from `roots` through the routes' children.
pub(super) fn reachable(
    roots: impl Iterator<Item = String>,
    routes: &[RouteConfig],
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut stack: Vec<String> = roots.collect();
    while let Some(name) = stack.pop() {
        if seen.contains(&name) {
            continue;
        }
        if let Some(route) = routes.iter().find(|r| r.name == name) {
            stack.extend(route.children.iter().cloned());
        }
        seen.push(name);
    }
    seen
}

/// `[admin]`: the command listener (`address`) and the HTTP listener (`[admin.http]
/// address`), at least one of them, on addresses no other listener of the file names. The HTTP
/// listener's address may be a port alone, which binds loopback.
fn admin(
    cx: &Ctx<'_>,
    raw: Option<&Spanned<RawAdmin>>,
    listeners: &[ListenerConfig],
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), ConfigError> {
    let Some(table) = raw else {
        return Ok((None, None));
    };
    let a = table.get_ref();
    let http_value = a.http.as_ref().map(|h| &h.get_ref().address);
    if a.address.is_none() && http_value.is_none() {
        return Err(cx.at(
            table,
            "admin",
            "set `address` (the admin command listener), `[admin.http]` (the admin HTTP \
             listener), or both",
        ));
    }
    let address = a
        .address
        .as_ref()
        .map(|v| resolve_listen(v.get_ref()).map_err(|m| cx.at(v, "admin.address", m)))
        .transpose()?;
    let http = http_value
        .map(|v| {
            let text = v.get_ref().trim();
            match text.parse::<u16>() {
                Ok(port) => Ok(SocketAddr::new(super::DEFAULT_ADMIN_HTTP_HOST, port)),
                Err(_) => resolve_listen(text),
            }
            .map_err(|m| cx.at(v, "admin.http.address", m))
        })
        .transpose()?;
    let taken = |addr: SocketAddr| addr.port() != 0 && listeners.iter().any(|l| l.address == addr);
    for (value, addr, key) in [
        (a.address.as_ref(), address, "admin.address"),
        (http_value, http, "admin.http.address"),
    ] {
        if let (Some(value), Some(addr)) = (value, addr)
            && taken(addr)
        {
            return Err(cx.at(
                value,
                key,
                format!(
                    "{addr} is also a [[listeners]] address; the admin listeners need their own"
                ),
            ));
        }
    }
    if let (Some(value), Some(addr)) = (http_value, http)
        && addr.port() != 0
        && address == Some(addr)
    {
        return Err(cx.at(
            value,
            "admin.http.address",
            format!(
                "{addr} is also `admin.address`; the HTTP listener needs an address of its own"
            ),
        ));
    }
    Ok((address, http))
}

/// `on_fault`: `error` (the default), `pass` (child 0) or `fallback:NAME`, NAME being one of
/// `children` (a route's children as listed; a pool's servers as `host:port`, as written).
fn on_fault(
    cx: &Ctx<'_>,
    value: &Option<Spanned<String>>,
    key: &str,
    children: &[String],
) -> Result<OnFault, ConfigError> {
    let Some(value) = value else {
        return Ok(OnFault::Error);
    };
    match value.get_ref().as_str() {
        "error" => Ok(OnFault::Error),
        "pass" if children.is_empty() => Err(cx.at(value, key, "`pass` needs a child to pass to")),
        "pass" => Ok(OnFault::Forward(0)),
        other => match other.strip_prefix("fallback:") {
            Some(name) => children
                .iter()
                .position(|c| c == name.trim())
                .map(OnFault::Forward)
                .ok_or_else(|| {
                    cx.at(
                        value,
                        key,
                        format!(
                            "`{}` is not a child of this node (its children: {})",
                            name.trim(),
                            children.join(", ")
                        ),
                    )
                }),
            None => Err(cx.at(
                value,
                key,
                format!("`{other}`: expected \"error\", \"pass\" or \"fallback:<child>\""),
            )),
        },
    }
}

/// `delete_spool` (a directory, relative to the config file) and the keys that only mean
/// something with it.
fn delete_spool(
    cx: &Ctx<'_>,
    pool: &RawPool,
    key: &str,
) -> Result<Option<DeleteSpool>, ConfigError> {
    let max_bytes = cx.int_in(
        &pool.delete_spool_max_bytes,
        &format!("{key}.delete_spool_max_bytes"),
        1..=1 << 40,
    )?;
    let replay_rate = cx.int_in(
        &pool.delete_spool_replay_rate,
        &format!("{key}.delete_spool_replay_rate"),
        1..=1_000_000,
    )?;
    let Some(dir) = &pool.delete_spool else {
        for (value, name) in [
            (&pool.delete_spool_max_bytes, "delete_spool_max_bytes"),
            (&pool.delete_spool_replay_rate, "delete_spool_replay_rate"),
        ] {
            if let Some(value) = value {
                return Err(cx.at(
                    value,
                    format!("{key}.{name}"),
                    "has no effect without `delete_spool` (the directory deletes are spooled to)",
                ));
            }
        }
        return Ok(None);
    };
    let path = cx.path(
        dir,
        &format!("{key}.delete_spool"),
        "directory failed deletes are spooled to",
    )?;
    Ok(Some(DeleteSpool {
        dir: path,
        max_bytes: max_bytes.map_or(super::DEFAULT_DELETE_SPOOL_MAX_BYTES, i64::unsigned_abs),
        replay_rate: replay_rate.map_or(super::DEFAULT_DELETE_SPOOL_REPLAY_RATE, |n| {
            n.unsigned_abs() as u32
        }),
    }))
}

/// `[pools.NAME.tls]`: the CA bundle, the name to verify, and a client certificate and key
/// (both or neither).
fn pool_tls(cx: &Ctx<'_>, pool: &RawPool, key: &str) -> Result<Option<PoolTls>, ConfigError> {
    let Some(t) = &pool.tls else {
        return Ok(None);
    };
    let key = format!("{key}.tls");
    let line = cx.line_of(t.span().start);
    let t = t.get_ref();
    let server_name = match &t.server_name {
        None => None,
        Some(name) => {
            if rustls::pki_types::ServerName::try_from(name.get_ref().as_str()).is_err() {
                return Err(cx.at(
                    name,
                    format!("{key}.server_name"),
                    format!("`{}` is not a DNS name or an IP address", name.get_ref()),
                ));
            }
            Some(name.get_ref().clone())
        }
    };
    let client_cert = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(cert), Some(k)) => Some((
            cx.path(
                cert,
                &format!("{key}.cert"),
                "client certificate chain file",
            )?,
            cx.path(k, &format!("{key}.key"), "client private key file")?,
        )),
        (Some(given), None) | (None, Some(given)) => {
            return Err(cx.at(
                given,
                key,
                "a client certificate needs both `cert` and `key`",
            ));
        }
    };
    Ok(Some(PoolTls {
        ca: cx.path(&t.ca, &format!("{key}.ca"), "CA bundle file")?,
        server_name,
        client_cert,
        line,
    }))
}

/// A server has one delete spool (its file is per address): pools that share a server must
/// give it the same `delete_spool` settings, or none in both.
fn same_spool_per_server(
    cx: &Ctx<'_>,
    pools: &[PoolConfig],
    raw: &BTreeMap<Spanned<String>, RawPool>,
) -> Result<(), ConfigError> {
    let mut first: HashMap<SocketAddr, &PoolConfig> = HashMap::new();
    for (pool, (name, raw_pool)) in pools.iter().zip(raw) {
        for server in &pool.servers {
            let earlier = *first.entry(server.address).or_insert(pool);
            if earlier.delete_spool != pool.delete_spool {
                let span = raw_pool
                    .delete_spool
                    .as_ref()
                    .map_or_else(|| name.span(), Spanned::span);
                return Err(cx.err(
                    Some(span),
                    format!("pools.{}.delete_spool", pool.name),
                    format!(
                        "{} is also in pool `{}`, whose delete_spool settings differ; a server \
                         has one spool, so pools sharing it must configure it alike",
                        server.address, earlier.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A server string's `host:port`, as written (weight and name left out): how `fallback:`
/// names a pool's server.
fn server_address_text(spec: &str) -> String {
    let addr = spec.trim().split(char::is_whitespace).next().unwrap_or("");
    match addr.rsplit_once(':') {
        // `host:port:weight` (or `[v6]:port:weight`): drop the weight.
        Some((head, tail))
            if tail.chars().all(|c| c.is_ascii_digit())
                && head.rsplit_once(':').is_some_and(|(_, port)| {
                    !port.is_empty() && port.chars().all(|c| c.is_ascii_digit())
                })
                && !head.ends_with(']') =>
        {
            head.to_string()
        }
        _ => addr.to_string(),
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn resolve_listen(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("`{addr}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{addr}` resolves to no address"))
}

/// A plugin's pinned SHA-256: 64 hex digits, optionally after `sha256:` (as `stats plugins`
/// prints it), kept in lowercase.
fn pin(
    cx: &Ctx<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let hex = value.get_ref().trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(cx.at(
            value,
            key,
            format!(
                "`{}` is not a SHA-256: 64 hex digits (optionally after `sha256:`), as \
                 `stats plugins` and `switchyard plugin inspect` print it",
                value.get_ref()
            ),
        ));
    }
    Ok(Some(hex.to_ascii_lowercase()))
}

/// A plugin node's `log_level`: `error`, `warn`, `info` or `debug`.
fn level(
    cx: &Ctx<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<switchyard_sdk::Level>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    switchyard_sdk::Level::from_name(value.get_ref())
        .map(Some)
        .ok_or_else(|| {
            cx.at(
                value,
                key,
                format!(
                    "`{}` is not a log level: `error`, `warn`, `info` or `debug`",
                    value.get_ref()
                ),
            )
        })
}

/// A value naming a file (a `/` or a `.wasm` ending) is a path; anything else is the name of a
/// bundled plugin, which must exist.
fn plugin_source(
    cx: &Ctx<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Result<PluginSource, ConfigError> {
    let v = value.get_ref();
    if v.contains('/') || v.ends_with(".wasm") {
        let path = PathBuf::from(v);
        let path = if path.is_absolute() {
            path
        } else {
            cx.file.parent().unwrap_or(Path::new("")).join(path)
        };
        return Ok(PluginSource::File(path));
    }
    if crate::plugin::bundled::get(v).is_none() {
        return Err(cx.at(
            value,
            key,
            format!(
                "no bundled plugin is named `{v}` (bundled: {}); a path to a .wasm file must contain `/` or end in `.wasm`",
                crate::plugin::bundled::names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(PluginSource::Bundled(v.clone()))
}

/// Routes form a tree (a DAG, children may be shared): a route that reaches itself would route
/// forever.
fn check_acyclic(
    cx: &Ctx<'_>,
    routes: &BTreeMap<Spanned<String>, super::raw::RawRoute>,
) -> Result<(), ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let by_name: HashMap<&str, &super::raw::RawRoute> = routes
        .iter()
        .map(|(k, v)| (k.get_ref().as_str(), v))
        .collect();
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    // Iterative DFS: (route, index of next child to visit).
    for start in by_name.keys() {
        if marks.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Visiting);
        while let Some((name, next)) = stack.pop() {
            let route = by_name[name];
            if let Some(child) = route.children.get(next) {
                stack.push((name, next + 1));
                let child_name = child.get_ref().as_str();
                if !by_name.contains_key(child_name) {
                    continue; // a pool: a leaf
                }
                match marks.get(child_name) {
                    Some(Mark::Visiting) => {
                        return Err(cx.at(
                            child,
                            format!("routes.{name}.children"),
                            format!("`{child_name}` leads back to `{name}`: routes must not form a cycle"),
                        ));
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child_name, Mark::Visiting);
                        stack.push((child_name, 0));
                    }
                }
            } else {
                marks.insert(name, Mark::Done);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        validate(text, Path::new("test.toml"))
    }

    const POOL: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n[pools.main]\nservers = [\"127.0.0.1:21211\"]\n";

    #[test]
    fn minimal_config_gets_named_defaults() {
        let c = check(POOL).expect("valid");
        assert_eq!(c.pools[0].timeout, super::super::DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(c.pools[0].hash, PluginSource::Bundled("ketama".into()));
        assert_eq!(c.server.max_value_bytes, 1 << 20);
        assert_eq!(
            c.server.max_background,
            super::super::DEFAULT_MAX_BACKGROUND
        );
        assert_eq!(
            c.server.stream_from_bytes,
            super::super::DEFAULT_STREAM_FROM_BYTES
        );
        assert_eq!(c.server.drain_timeout, super::super::DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(c.listeners[0].max_connections, None);
    }

    #[test]
    fn connection_caps_and_the_drain_timeout_are_read_and_checked() {
        let text = format!(
            "[server]\ndrain_timeout_ms = 0\n{}",
            POOL.replace(
                "route = \"main\"\n",
                "route = \"main\"\nmax_connections = 10\n"
            )
        );
        let c = check(&text).expect("valid");
        assert_eq!(c.server.drain_timeout, Duration::ZERO);
        assert_eq!(c.listeners[0].max_connections, Some(10));
        let zero = POOL.replace(
            "route = \"main\"\n",
            "route = \"main\"\nmax_connections = 0\n",
        );
        let e = check(&zero).expect_err("range");
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(4), "listeners[0].max_connections")
        );
        let e = check(&format!("[server]\ndrain_timeout_ms = -1\n{POOL}")).expect_err("range");
        assert_eq!(e.key, "server.drain_timeout_ms");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = check(&format!("{POOL}colour = \"blue\"\n")).expect_err("unknown key");
        assert_eq!(e.line, Some(7));
        assert_eq!(e.key, "colour");
        assert!(
            e.to_string()
                .starts_with("test.toml:7: colour: unknown field `colour`"),
            "{e}"
        );
    }

    #[test]
    fn bad_reference_names_line_and_key() {
        let text = POOL.replace("route = \"main\"", "route = \"nope\"");
        let e = check(&text).expect_err("bad ref");
        assert_eq!((e.line, e.key.as_str()), (Some(3), "listeners[0].route"));
        assert!(e.message.contains("`nope`"), "{e}");
    }

    #[test]
    fn a_name_stats_could_not_carry_as_one_token_is_refused_with_its_line() {
        for bad in ["a b", "a:b", "a\\r\\nEND", ""] {
            let text =
                format!("{POOL}[routes.\"{bad}\"]\nplugin = \"prefix\"\nchildren = [\"main\"]\n");
            let e = check(&text).expect_err(bad);
            assert_eq!(e.line, Some(7), "{bad:?}: {e}");
            assert!(e.message.contains("is not a name"), "{bad:?}: {e}");
        }
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let e = check(&format!(
            "{POOL}[pools.{long}]\nservers = [\"127.0.0.1:1\"]\n"
        ))
        .expect_err("too long");
        assert_eq!(e.key, format!("pools.{long}"));
        check(&format!(
            "{POOL}[routes.Front-2_b]\nplugin = \"prefix\"\nchildren = [\"main\"]\n"
        ))
        .expect("letters, digits, _ and -");
    }

    #[test]
    fn route_children_must_exist_and_not_cycle() {
        let e = check(&format!(
            "{POOL}[routes.r]\nplugin = \"prefix\"\nchildren = [\"main\", \"ghost\"]\n"
        ))
        .expect_err("ghost");
        assert_eq!((e.line, e.key.as_str()), (Some(9), "routes.r.children"));

        let e = check(&format!(
            "{POOL}[routes.a]\nplugin = \"prefix\"\nchildren = [\"b\"]\n[routes.b]\nplugin = \"prefix\"\nchildren = [\"a\"]\n"
        ))
        .expect_err("cycle");
        assert!(e.message.contains("cycle"), "{e}");
    }

    #[test]
    fn names_are_one_namespace() {
        let e = check(&format!("{POOL}[routes.main]\nplugin = \"prefix\"\n")).expect_err("dup");
        assert!(e.message.contains("defined twice"), "{e}");
    }

    #[test]
    fn unknown_bundled_plugin_and_bad_numbers() {
        let e = check(&format!("{POOL}[routes.r]\nplugin = \"ketamaa\"\n")).expect_err("unknown");
        assert_eq!(e.key, "routes.r.plugin");
        let e = check(&format!("{POOL}timeout_ms = 0\n")).expect_err("range");
        assert_eq!((e.line, e.key.as_str()), (Some(7), "pools.main.timeout_ms"));
        let e = check(&POOL.replace("21211", "21211:0")).expect_err("weight");
        assert_eq!(e.key, "pools.main.servers");
    }

    #[test]
    fn the_old_request_count_bound_is_refused_naming_its_replacement() {
        let e = check(&format!("{POOL}max_outstanding = 4096\n")).expect_err("replaced key");
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(7), "pools.main.max_outstanding")
        );
        assert!(e.to_string().contains("max_outstanding_bytes"), "{e}");
        let c = check(&format!("{POOL}max_outstanding_bytes = 65536\n")).expect("bytes bound");
        assert_eq!(c.pools[0].max_outstanding_bytes, 65536);
        let e = check(&format!("{POOL}max_outstanding_bytes = 10\n")).expect_err("range");
        assert_eq!(e.key, "pools.main.max_outstanding_bytes");
        let c = check(POOL).expect("defaults");
        assert_eq!(
            c.pools[0].max_reply_bytes,
            crate::config::DEFAULT_MAX_REPLY_BYTES
        );
        let e = check(&format!("{POOL}max_reply_bytes = 1000\n")).expect_err("range");
        assert_eq!(e.key, "pools.main.max_reply_bytes");
    }

    #[test]
    fn plugin_paths_are_relative_to_the_config_file() {
        let c = validate(
            &format!("{POOL}[routes.r]\nplugin = \"plugins/mine.wasm\"\n"),
            Path::new("/etc/switchyard/main.toml"),
        )
        .expect("valid");
        assert_eq!(
            c.routes[0].plugin,
            PluginSource::File("/etc/switchyard/plugins/mine.wasm".into())
        );
    }

    #[test]
    fn a_delete_spool_is_a_directory_beside_the_config_with_bounds() {
        let c = validate(
            &format!("{POOL}delete_spool = \"spool\"\n"),
            Path::new("/etc/switchyard/sy.toml"),
        )
        .expect("valid");
        let spool = c.pools[0].delete_spool.as_ref().expect("a spool");
        assert_eq!(spool.dir, Path::new("/etc/switchyard/spool"));
        assert_eq!(
            spool.max_bytes,
            super::super::DEFAULT_DELETE_SPOOL_MAX_BYTES
        );
        assert_eq!(
            spool.replay_rate,
            super::super::DEFAULT_DELETE_SPOOL_REPLAY_RATE
        );
        let c = check(&format!(
            "{POOL}delete_spool = \"/var/spool/sy\"\ndelete_spool_max_bytes = 100\n\
             delete_spool_replay_rate = 5\n"
        ))
        .expect("valid");
        let spool = c.pools[0].delete_spool.as_ref().expect("a spool");
        assert_eq!(
            (spool.dir.as_path(), spool.max_bytes, spool.replay_rate),
            (Path::new("/var/spool/sy"), 100, 5)
        );
        assert!(check(POOL).expect("valid").pools[0].delete_spool.is_none());

        let e = check(&format!("{POOL}delete_spool_max_bytes = 100\n")).expect_err("no spool");
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(7), "pools.main.delete_spool_max_bytes")
        );
        let e = check(&format!("{POOL}delete_spool = \"\"\n")).expect_err("empty");
        assert_eq!(e.key, "pools.main.delete_spool");
        let e = check(&format!(
            "{POOL}delete_spool = \"d\"\ndelete_spool_replay_rate = 0\n"
        ))
        .expect_err("range");
        assert_eq!(e.key, "pools.main.delete_spool_replay_rate");
    }

    #[test]
    fn the_admin_table_names_a_command_listener_an_http_listener_or_both() {
        let c = check(POOL).expect("valid");
        assert_eq!((c.admin, c.admin_http), (None, None));
        assert_eq!(&*c.text, POOL);
        let addr = |a: &str| Some(a.parse::<SocketAddr>().expect("address"));
        let c = check(&format!("{POOL}[admin]\naddress = \"127.0.0.1:7000\"\n")).expect("text");
        assert_eq!((c.admin, c.admin_http), (addr("127.0.0.1:7000"), None));
        let c = check(&format!(
            "{POOL}[admin.http]\naddress = \"127.0.0.1:7001\"\n"
        ))
        .expect("http");
        assert_eq!((c.admin, c.admin_http), (None, addr("127.0.0.1:7001")));
        let c = check(&format!("{POOL}[admin.http]\naddress = \"11312\"\n")).expect("a port");
        assert_eq!(c.admin_http, addr("127.0.0.1:11312"));
        let c = check(&format!(
            "{POOL}[admin]\naddress = \"127.0.0.1:0\"\n[admin.http]\naddress = \"127.0.0.1:0\"\n"
        ))
        .expect("both on free ports");
        assert!(c.admin.is_some() && c.admin_http.is_some());

        let e = check(&format!("{POOL}[admin]\n")).expect_err("empty table");
        assert_eq!(e.key, "admin");
        let e = check(&format!("{POOL}[admin.http]\naddress = \"nowhere\"\n"))
            .expect_err("bad address");
        assert_eq!((e.line, e.key.as_str()), (Some(8), "admin.http.address"));
        assert!(
            e.to_string()
                .starts_with("test.toml:8: admin.http.address: "),
            "{e}"
        );
        let e = check(&format!(
            "{POOL}[admin]\naddress = \"127.0.0.1:7000\"\n\
             [admin.http]\naddress = \"127.0.0.1:7000\"\n"
        ))
        .expect_err("same address");
        assert_eq!((e.line, e.key.as_str()), (Some(10), "admin.http.address"));
        let listener = POOL.replace("127.0.0.1:0", "127.0.0.1:7002");
        let e = check(&format!(
            "{listener}[admin.http]\naddress = \"127.0.0.1:7002\"\n"
        ))
        .expect_err("a listener's address");
        assert_eq!(e.key, "admin.http.address");
        let e = check(&format!("{POOL}[admin]\nhttp = \"127.0.0.1:7003\"\n"))
            .expect_err("a string, not a table");
        assert_eq!(e.line, Some(8));
        let e = check(&format!("{POOL}[admin.http]\nport = 7003\n")).expect_err("unknown key");
        assert_eq!((e.line, e.key.as_str()), (Some(8), "port"));
    }

    #[test]
    fn pools_sharing_a_server_share_its_spool_settings() {
        let two = |a: &str, b: &str| {
            format!(
                "{POOL}{a}\n[pools.other]\nservers = [\"127.0.0.1:21211\", \"127.0.0.1:21212\"]\n{b}\n"
            )
        };
        let e = check(&two("delete_spool = \"d\"", "")).expect_err("differ");
        assert_eq!(e.key, "pools.other.delete_spool");
        assert!(e.message.contains("127.0.0.1:21211"), "{e}");
        check(&two("delete_spool = \"d\"", "delete_spool = \"d\"")).expect("alike");
        check(&two("", "")).expect("neither");
    }
}
