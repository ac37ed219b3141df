//! `[tenants.NAME]` and `[auth]`, and the listeners that bind connections to tenants.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{RawConfig, RawInclude, RawListener, RawTenant};
use super::validate::Ctx;
use super::{AuthConfig, ConfigError, ListenerRoute, Rate, TenantConfig, TenantLimits};
use crate::tenant::CommandSet;

/// The config `text` of `origin` with each tenant's `include` file appended (its text from
/// `kept` when there, else read), and where each begins. An include holds `[routes.NAME]`
/// tables only; an error in one names its file and line.
pub(super) fn read_includes(
    text: &str,
    origin: &Path,
    kept: &std::collections::BTreeMap<PathBuf, String>,
) -> Result<(String, Vec<super::Include>), ConfigError> {
    // The tenants' `include` keys, read before the whole file is (which needs the includes).
    let Ok(table) = text.parse::<toml::Table>() else {
        // Not TOML: the full validation says where.
        return Ok((text.to_string(), Vec::new()));
    };
    let Some(tenants) = table.get("tenants").and_then(toml::Value::as_table) else {
        return Ok((text.to_string(), Vec::new()));
    };
    let base = origin.parent().unwrap_or(Path::new(""));
    let mut combined = text.to_string();
    let mut includes = Vec::new();
    for (tenant, value) in tenants {
        let Some(name) = value.get("include").and_then(toml::Value::as_str) else {
            continue;
        };
        let path = base.join(name);
        let fail = |line: Option<usize>, key: String, message: String| ConfigError {
            file: path.clone(),
            line,
            key,
            message,
        };
        let own = match kept.get(&path) {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(&path).map_err(|e| ConfigError {
                file: origin.to_path_buf(),
                line: None,
                key: format!("tenants.{tenant}.include"),
                message: format!("cannot read {}: {e}", path.display()),
            })?,
        };
        let line_of = |offset: usize| own[..offset.min(own.len())].matches('\n').count() + 1;
        toml::from_str::<RawInclude>(&own).map_err(|e| {
            let key = e
                .span()
                .and_then(|s| own.get(s))
                .map(|t| t.trim().trim_matches('"').to_string())
                .unwrap_or_default();
            fail(
                e.span().map(|s| line_of(s.start)),
                key,
                format!(
                    "{} (a tenant's file holds [routes.NAME] tables only)",
                    e.message().trim()
                ),
            )
        })?;
        if !combined.ends_with('\n') {
            combined.push('\n');
        }
        let first_line = combined.matches('\n').count() + 1;
        combined.push_str(&own);
        includes.push(super::Include {
            tenant: tenant.clone(),
            path,
            text: own,
            first_line,
        });
    }
    Ok((combined, includes))
}

/// Longest namespace: keys are at most 250 bytes on the servers, and a tenant should keep most
/// of them.
const MAX_NAMESPACE: usize = 64;

/// A tenant with `namespace = ""` keeps its keys as its clients send them (and may have
/// `flush_all`): that is only isolation when no other tenant, and no listener without tenants,
/// reaches any server its route reaches. `reach` gives the pool and route names a root leads to.
pub(super) fn unprefixed_tenants_own_their_servers(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    tenants: &[TenantConfig],
    listeners: &[super::ListenerConfig],
    pools: &[super::PoolConfig],
    reach: impl Fn(&str) -> Vec<String>,
) -> Result<(), ConfigError> {
    let servers = |root: &str| -> Vec<std::net::SocketAddr> {
        let names = reach(root);
        pools
            .iter()
            .filter(|p| names.contains(&p.name))
            .flat_map(|p| p.servers.iter().map(|s| s.address))
            .collect()
    };
    for t in tenants.iter().filter(|t| t.namespace.is_empty()) {
        let own = servers(&t.route);
        let others = tenants
            .iter()
            .filter(|u| u.name != t.name)
            .map(|u| (format!("tenant {}", u.name), u.route.as_str()))
            .chain(
                listeners
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| match &l.route {
                        ListenerRoute::Route(route) => {
                            Some((format!("listeners[{i}]"), route.as_str()))
                        }
                        _ => None,
                    }),
            );
        for (other, root) in others {
            if let Some(shared) = servers(root).into_iter().find(|a| own.contains(a)) {
                let span = raw
                    .tenants
                    .iter()
                    .find(|(name, _)| name.get_ref() == &t.name)
                    .and_then(|(_, raw)| raw.namespace.as_ref().map(Spanned::span));
                return Err(cx.err(
                    span,
                    format!("tenants.{}.namespace", t.name),
                    format!(
                        "namespace = \"\" leaves tenant {}'s keys as sent, but server {shared} is \
                         also reached by {other}: each could read, overwrite and flush the \
                         other's keys. Give it a namespace, or pools no one else reaches",
                        t.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The tenants, each checked: its route exists, its identities and users are no other
/// tenant's, its namespace is unique and fits in a key, its numbers are in range.
pub(super) fn tenants(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    names: &HashMap<&str, Range<usize>>,
) -> Result<Vec<TenantConfig>, ConfigError> {
    let mut out: Vec<TenantConfig> = Vec::with_capacity(raw.tenants.len());
    let mut identities: HashMap<&str, &str> = HashMap::new();
    let mut users: HashMap<&str, &str> = HashMap::new();
    let mut namespaces: HashMap<String, &str> = HashMap::new();
    for (name, t) in &raw.tenants {
        cx.name("tenants", name)?;
        let key = format!("tenants.{}", name.get_ref());
        let tenant = tenant(cx, name, t, &key, names)?;
        for (list, seen, what) in [
            (&t.identities, &mut identities, "identities"),
            (&t.users, &mut users, "users"),
        ] {
            for value in list {
                if let Some(other) = seen.insert(value.get_ref(), name.get_ref()) {
                    return Err(cx.at(
                        value,
                        format!("{key}.{what}"),
                        format!("`{}` is tenant {other}'s already", value.get_ref()),
                    ));
                }
            }
        }
        if !tenant.namespace.is_empty() {
            // One namespace a prefix of another would let one tenant's keys reach the
            // other's: `a:` and `a:b:` overlap.
            if let Some((other_ns, other)) = namespaces.iter().find(|(ns, _)| {
                ns.starts_with(&tenant.namespace) || tenant.namespace.starts_with(ns.as_str())
            }) {
                return Err(cx.err(
                    t.namespace.as_ref().map(Spanned::span),
                    format!("{key}.namespace"),
                    format!(
                        "`{}` overlaps tenant {other}'s namespace `{other_ns}`: a key of one could be the other's",
                        tenant.namespace
                    ),
                ));
            }
            namespaces.insert(tenant.namespace.clone(), name.get_ref());
        }
        out.push(tenant);
    }
    Ok(out)
}

fn tenant(
    cx: &Ctx<'_>,
    name: &Spanned<String>,
    t: &RawTenant,
    key: &str,
    names: &HashMap<&str, Range<usize>>,
) -> Result<TenantConfig, ConfigError> {
    if let Some(include) = &t.include
        && include.get_ref().trim().is_empty()
    {
        return Err(cx.at(
            include,
            format!("{key}.include"),
            "empty path: name the tenant's file",
        ));
    }
    if !names.contains_key(t.route.get_ref().as_str()) {
        return Err(cx.at(
            &t.route,
            format!("{key}.route"),
            format!("no pool or route is named `{}`", t.route.get_ref()),
        ));
    }
    let namespace = match &t.namespace {
        None => format!("{}:", name.get_ref()),
        Some(ns) => ns.get_ref().clone(),
    };
    if namespace.len() > MAX_NAMESPACE
        || namespace
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || !b.is_ascii())
    {
        return Err(cx.err(
            t.namespace.as_ref().map(Spanned::span).or(Some(name.span())),
            format!("{key}.namespace"),
            format!(
                "`{namespace}` is not a namespace: at most {MAX_NAMESPACE} printable ASCII bytes, no spaces"
            ),
        ));
    }
    let commands = match &t.commands {
        None => CommandSet::DEFAULT,
        Some(list) => {
            let mut set = CommandSet::empty();
            for class in list.get_ref() {
                let Some((_, found)) = CommandSet::NAMES
                    .iter()
                    .find(|(n, _)| *n == class.get_ref())
                else {
                    let known: Vec<&str> = CommandSet::NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(cx.at(
                        class,
                        format!("{key}.commands"),
                        format!(
                            "`{}` is no class of commands (one of {})",
                            class.get_ref(),
                            known.join(", ")
                        ),
                    ));
                };
                set = set.with(*found);
            }
            set
        }
    };
    if commands.contains(CommandSet::FLUSH) && !namespace.is_empty() {
        return Err(cx.err(
            t.commands.as_ref().map(Spanned::span),
            format!("{key}.commands"),
            "flush_all would flush every tenant's keys on the shared servers: only a tenant \
             with namespace = \"\" (its own pools) may have it",
        ));
    }
    let strings = |list: &[Spanned<String>], what: &str| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .map(|v| {
                if v.get_ref().is_empty() {
                    Err(cx.at(v, format!("{key}.{what}"), "an empty entry"))
                } else {
                    Ok(v.get_ref().clone())
                }
            })
            .collect()
    };
    let rate = |per: &Option<Spanned<i64>>, burst: &Option<Spanned<i64>>, what: &str| {
        let per_second = cx.int_in(per, &format!("{key}.{what}_per_second"), 1..=i64::MAX)?;
        let burst = cx.int_in(burst, &format!("{key}.{what}_burst"), 1..=i64::MAX)?;
        match (per_second, burst) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(cx.err(
                burst_span(what, t),
                format!("{key}.{what}_burst"),
                format!("a burst without {what}_per_second"),
            )),
            (Some(per), burst) => Ok(Some(Rate {
                per_second: per.unsigned_abs(),
                // A second's worth by default.
                burst: burst.unwrap_or(per).unsigned_abs(),
            })),
        }
    };
    let limits = TenantLimits {
        requests: rate(&t.requests_per_second, &t.requests_burst, "requests")?,
        bytes: rate(&t.bytes_per_second, &t.bytes_burst, "bytes")?,
        max_connections: cx
            .int_in(
                &t.max_connections,
                &format!("{key}.max_connections"),
                1..=super::MAX_CONNECTIONS_CEILING as i64,
            )?
            .map(|n| n.unsigned_abs() as usize),
        max_value_bytes: cx
            .int_in(
                &t.max_value_bytes,
                &format!("{key}.max_value_bytes"),
                1..=super::MAX_VALUE_BYTES_CEILING as i64,
            )?
            .map(|n| n.unsigned_abs() as usize),
        max_outstanding: cx
            .int_in(
                &t.max_outstanding,
                &format!("{key}.max_outstanding"),
                1..=i64::from(u32::MAX),
            )?
            .map(|n| n.unsigned_abs() as usize),
        wait: match t.over_limit.as_ref().map(|o| (o, o.get_ref().as_str())) {
            None | Some((_, "error")) => false,
            Some((_, "wait")) => true,
            Some((o, other)) => {
                return Err(cx.at(
                    o,
                    format!("{key}.over_limit"),
                    format!("`{other}` is neither \"error\" nor \"wait\""),
                ));
            }
        },
    };
    Ok(TenantConfig {
        name: name.get_ref().clone(),
        line: cx.line_of(name.span().start),
        route: t.route.get_ref().clone(),
        namespace,
        identities: strings(&t.identities, "identities")?,
        users: strings(&t.users, "users")?,
        commands,
        read_prefixes: strings(&t.read_prefixes, "read_prefixes")?,
        write_prefixes: strings(&t.write_prefixes, "write_prefixes")?,
        limits,
        budget: super::validate::budget(cx, &t.call_timeout_ms, &t.memory_limit_mb, key)?,
    })
}

/// Gives each route a tenant reaches the tenant's sandbox budget where the route sets none of
/// its own. A route that something else reaches too (another tenant with a different budget,
/// or none; a listener's route) must set its own: one tenant's budget would otherwise be
/// another's.
pub(super) fn apply_budgets(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    tenants: &[TenantConfig],
    routes: &mut [super::RouteConfig],
) -> Result<(), ConfigError> {
    if tenants
        .iter()
        .all(|t| t.budget == crate::plugin::NodeBudget::default())
    {
        return Ok(());
    }
    let index: HashMap<String, usize> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    let reached_from = |root: &str| {
        let mut reached = Vec::new();
        let mut stack = vec![root.to_string()];
        while let Some(name) = stack.pop() {
            let Some(&i) = index.get(&name) else {
                continue; // a pool: no plugin
            };
            if !reached.contains(&i) {
                reached.push(i);
                stack.extend(routes[i].children.iter().cloned());
            }
        }
        reached
    };
    // Who reaches each route, with the budget it brings.
    let mut reachers: Vec<Vec<(String, crate::plugin::NodeBudget)>> =
        vec![Vec::new(); routes.len()];
    for tenant in tenants {
        for i in reached_from(&tenant.route) {
            reachers[i].push((format!("tenant {}", tenant.name), tenant.budget));
        }
    }
    for (n, listener) in raw.listeners.iter().enumerate() {
        if let Some(route) = &listener.route {
            for i in reached_from(route.get_ref()) {
                reachers[i].push((format!("listeners[{n}]"), Default::default()));
            }
        }
    }
    for (i, by) in reachers.iter().enumerate() {
        let own = raw
            .routes
            .iter()
            .find(|(n, _)| *n.get_ref() == routes[i].name)
            .map_or([false, false], |(_, r)| {
                [r.call_timeout_ms.is_some(), r.memory_limit_mb.is_some()]
            });
        for (field, what) in ["call_timeout_ms", "memory_limit_mb"]
            .into_iter()
            .enumerate()
        {
            if own[field] {
                continue;
            }
            let value = |b: &crate::plugin::NodeBudget| {
                if field == 0 {
                    b.call_timeout.map(|d| d.as_millis() as u64)
                } else {
                    b.memory_limit_bytes.map(|m| m as u64)
                }
            };
            let Some((giver, budget)) = by.iter().find(|(_, b)| value(b).is_some()) else {
                continue;
            };
            if let Some((other, _)) = by.iter().find(|(_, b)| value(b) != value(budget)) {
                let name = giver.strip_prefix("tenant ").unwrap_or(giver);
                let span = raw
                    .tenants
                    .iter()
                    .find(|(n, _)| n.get_ref() == name)
                    .and_then(|(_, t)| match field {
                        0 => t.call_timeout_ms.as_ref().map(Spanned::span),
                        _ => t.memory_limit_mb.as_ref().map(Spanned::span),
                    });
                return Err(cx.err(
                    span,
                    format!("tenants.{name}.{what}"),
                    format!(
                        "route `{}` is reached by {giver} and by {other}, whose {what} differ: \
                         give [routes.{}] its own",
                        routes[i].name, routes[i].name
                    ),
                ));
            }
            let route = &mut routes[i];
            if field == 0 {
                route.budget.call_timeout = budget.call_timeout;
            } else {
                route.budget.memory_limit_bytes = budget.memory_limit_bytes;
            }
        }
    }
    Ok(())
}

fn burst_span(what: &str, t: &RawTenant) -> Option<Range<usize>> {
    let burst = if what == "requests" {
        &t.requests_burst
    } else {
        &t.bytes_burst
    };
    burst.as_ref().map(Spanned::span)
}

/// `[auth]`, if any.
pub(super) fn auth(cx: &Ctx<'_>, raw: &RawConfig) -> Result<Option<AuthConfig>, ConfigError> {
    let Some(auth) = &raw.auth else {
        return Ok(None);
    };
    Ok(Some(AuthConfig {
        credentials: cx.path(&auth.credentials, "auth.credentials", "credentials file")?,
        line: cx.line_of(auth.credentials.span().start),
    }))
}

/// Where listener `l` (the `i`th) sends its requests: exactly one of `route`, `tenant` and
/// `tenant_by`.
pub(super) fn listener_route(
    cx: &Ctx<'_>,
    l: &RawListener,
    key: &str,
    names: &HashMap<&str, Range<usize>>,
    raw: &RawConfig,
    tenants: &[TenantConfig],
) -> Result<ListenerRoute, ConfigError> {
    let given = [
        l.route.as_ref().map(|r| ("route", r)),
        l.tenant.as_ref().map(|t| ("tenant", t)),
        l.tenant_by.as_ref().map(|t| ("tenant_by", t)),
    ];
    let set: Vec<(&str, &Spanned<String>)> = given.into_iter().flatten().collect();
    let (what, value) = match set.as_slice() {
        [one] => *one,
        [] => {
            return Err(cx.at(
                &l.address,
                key,
                "needs `route` (a pool or route), `tenant` (a tenant's name) or `tenant_by` \
                 (\"identity\" or \"auth\")",
            ));
        }
        [_, (second, v), ..] => {
            return Err(cx.at(
                v,
                format!("{key}.{second}"),
                "a listener has one of `route`, `tenant` and `tenant_by`",
            ));
        }
    };
    let text = value.get_ref().as_str();
    match what {
        "route" if names.contains_key(text) => Ok(ListenerRoute::Route(text.to_string())),
        "route" => Err(cx.at(
            value,
            format!("{key}.route"),
            format!("no pool or route is named `{text}`"),
        )),
        "tenant" if tenants.iter().any(|t| t.name == text) => {
            Ok(ListenerRoute::Tenant(text.to_string()))
        }
        "tenant" => Err(cx.at(
            value,
            format!("{key}.tenant"),
            format!("no tenant is named `{text}`"),
        )),
        _ => match text {
            "identity"
                if l.tls
                    .as_ref()
                    .is_some_and(|t| t.get_ref().client_ca.is_some()) =>
            {
                Ok(ListenerRoute::ByIdentity)
            }
            "identity" => Err(cx.at(
                value,
                format!("{key}.tenant_by"),
                "\"identity\" needs a mutual-TLS listener ([listeners.tls] with client_ca): \
                 identities come from client certificates",
            )),
            "auth" if raw.auth.is_some() => Ok(ListenerRoute::ByAuth),
            "auth" => Err(cx.at(
                value,
                format!("{key}.tenant_by"),
                "\"auth\" needs an [auth] table naming the credentials file",
            )),
            other => Err(cx.at(
                value,
                format!("{key}.tenant_by"),
                format!("`{other}` is neither \"identity\" nor \"auth\""),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, ListenerRoute};

    const BASE: &str = "[pools.shared]\nservers = [\"127.0.0.1:21211\"]\n\n\
        [auth]\ncredentials = \"users\"\n\n\
        [tenants.alpha]\nroute = \"shared\"\nidentities = [\"alpha\"]\n\n\
        [tenants.beta]\nroute = \"shared\"\nusers = [\"beta\"]\nrequests_per_second = 100\n";

    fn check(listeners: &str, extra: &str) -> Result<Config, ConfigError> {
        let text = format!("{listeners}\n{BASE}{extra}");
        Config::from_toml(&text, std::path::Path::new("/etc/switchyard/t.toml"))
    }

    fn error(listeners: &str, extra: &str) -> (usize, String, String) {
        let e = check(listeners, extra).expect_err("refused");
        (e.line.unwrap_or(0), e.key, e.message)
    }

    /// A tenant's sandbox budget reaches the routes its tree reaches that set none; a route
    /// two tenants with different budgets reach must set its own.
    #[test]
    fn a_tenants_plugin_budget_is_its_routes_own() {
        let listener = "[[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"gamma\"\n";
        let routes = "[routes.front]\nplugin = \"prefix\"\nchildren = [\"inner\", \"fixed\"]\n\
                      config = { default = \"inner\" }\n\n\
                      [routes.inner]\nplugin = \"ketama\"\nchildren = [\"shared\"]\n\n\
                      [routes.fixed]\nplugin = \"ketama\"\nchildren = [\"shared\"]\n\
                      call_timeout_ms = 7\n\n";
        let gamma = "[tenants.gamma]\nroute = \"front\"\ncall_timeout_ms = 3\n\
                     memory_limit_mb = 2\nmax_outstanding = 10\n";
        let config = check(listener, &format!("{routes}{gamma}")).expect("valid");
        let budget = |name: &str| {
            config
                .routes
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.budget)
                .expect(name)
        };
        let ms = std::time::Duration::from_millis;
        assert_eq!(budget("front").call_timeout, Some(ms(3)));
        assert_eq!(budget("inner").memory_limit_bytes, Some(2 << 20));
        // Its own call_timeout_ms stays; the memory it does not set is the tenant's.
        assert_eq!(budget("fixed").call_timeout, Some(ms(7)));
        assert_eq!(budget("fixed").memory_limit_bytes, Some(2 << 20));
        let gamma_limits = config
            .tenants
            .iter()
            .find(|t| t.name == "gamma")
            .expect("gamma");
        assert_eq!(gamma_limits.limits.max_outstanding, Some(10));

        let delta = "[tenants.delta]\nroute = \"inner\"\ncall_timeout_ms = 9\n";
        let (line, key, message) = error(listener, &format!("{routes}{gamma}{delta}"));
        // Tenants are taken in name order: delta's budget is the first found.
        assert_eq!(key, "tenants.delta.call_timeout_ms");
        assert!(line > 0);
        assert!(
            message.contains("route `inner` is reached by tenant delta and by tenant gamma"),
            "{message}"
        );
        // A tenant without a budget, or a listener, reaching a route is one too.
        let epsilon = "[tenants.epsilon]\nroute = \"inner\"\n";
        let (_, _, message) = error(listener, &format!("{routes}{gamma}{epsilon}"));
        assert!(message.contains("by tenant epsilon"), "{message}");
        let direct = "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"inner\"\n";
        let (_, _, message) = error(&format!("{listener}{direct}"), &format!("{routes}{gamma}"));
        assert!(message.contains("by listeners[1]"), "{message}");
    }

    #[test]
    fn tenants_and_their_listeners_are_read() {
        let c = check(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntenant_by = \"auth\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"alpha\"\n",
            "",
        )
        .expect("valid");
        assert_eq!(c.listeners[0].route, ListenerRoute::ByAuth);
        assert_eq!(c.listeners[1].route, ListenerRoute::Tenant("alpha".into()));
        let beta = &c.tenants[1];
        assert_eq!(
            (beta.name.as_str(), beta.namespace.as_str()),
            ("beta", "beta:")
        );
        let rate = beta.limits.requests.expect("a rate");
        assert_eq!((rate.per_second, rate.burst), (100, 100));
        assert_eq!(
            c.auth.map(|a| a.credentials),
            Some("/etc/switchyard/users".into())
        );
    }

    #[test]
    fn a_tenants_file_joins_the_config_and_its_mistakes_name_it() {
        let dir = std::env::temp_dir().join(format!("switchyard-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let main = dir.join("main.toml");
        let text = format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"beta\"\n\n{BASE}\
             include = \"beta.toml\"\n"
        )
        .replace("route = \"shared\"\nusers", "route = \"own\"\nusers");
        std::fs::write(&main, &text).expect("write");
        let include = dir.join("beta.toml");
        std::fs::write(&include, "# beta\n[routes.own]\nplugin = \"null\"\n").expect("write");
        std::fs::write(dir.join("users"), "beta:x\n").expect("write");
        let c = Config::load(&main).expect("valid");
        assert_eq!(c.routes[0].name, "own");
        assert_eq!(c.includes[0].tenant, "beta");
        let (file, line, tenant) = c.locate(c.routes[0].line);
        assert_eq!((file, line, tenant), (include.clone(), 3, Some("beta")));

        std::fs::write(&include, "# beta\n\n[pools.stolen]\nservers = []\n").expect("write");
        let e = Config::load(&main).expect_err("a pool in a tenant's file");
        assert_eq!((e.file.clone(), e.line), (include.clone(), Some(3)), "{e}");
        assert!(e.message.contains("[routes.NAME] tables only"), "{e}");
        std::fs::write(
            &include,
            "[routes.own]\nplugin = \"null\"\nchildren = [\"gone\"]\n",
        )
        .expect("write");
        let e = Config::load(&main).expect_err("an unknown child");
        assert_eq!((e.file.clone(), e.line), (include, Some(3)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `namespace = ""` (and so `flush_all`) only on servers no one else reaches: through
    /// another tenant's route, a pool behind a route, or a listener without tenants.
    #[test]
    fn a_tenant_without_a_namespace_must_own_its_servers() {
        let listener = "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"shared\"\n";
        let own = "[pools.own]\nservers = [\"127.0.0.1:21212\"]\n\n\
                   [tenants.gamma]\nroute = \"own\"\nnamespace = \"\"\n\
                   commands = [\"read\", \"write\", \"flush_all\"]\n";
        let c = check(listener, own).expect("its own pool");
        assert!(
            c.tenants
                .iter()
                .any(|t| t.name == "gamma" && t.namespace.is_empty())
        );

        // The same server through another pool and a route, reached by alpha.
        let behind = own.replace("route = \"own\"", "route = \"front\"")
            + "\n[pools.twin]\nservers = [\"127.0.0.1:21211\"]\n\n\
               [routes.front]\nplugin = \"ketama\"\nchildren = [\"own\", \"twin\"]\n";
        let (line, key, message) = error(listener, &behind);
        assert_eq!(key, "tenants.gamma.namespace");
        assert!(line > 0);
        assert!(
            message.contains("server 127.0.0.1:21211 is also reached by tenant alpha"),
            "{message}"
        );

        // A shadow on the shared pool whose candidate (a pool of its own) has gamma's
        // server: alpha's copies land there. A dry run, which sends nothing, is allowed.
        let shadow = format!(
            "{own}\n[pools.spy]\nservers = [\"127.0.0.1:21212\"]\n\n\
             [experiments.copy]\nkind = \"shadow\"\nnode = \"shared\"\ncandidate = \"spy\"\n"
        );
        let (_, key, message) = error(listener, &shadow);
        assert_eq!(key, "tenants.gamma.namespace");
        assert!(
            message.contains("127.0.0.1:21212 is also reached by tenant alpha"),
            "{message}"
        );
        check(listener, &shadow.replace("\"shadow\"", "\"dry-run\"")).expect("a dry run");

        // A listener without tenants reaching its pool.
        let listeners =
            format!("{listener}\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"own\"\n");
        let (_, key, message) = error(&listeners, own);
        assert_eq!(key, "tenants.gamma.namespace");
        assert!(message.contains("listeners[1]"), "{message}");
    }

    #[test]
    fn mistakes_name_their_line_and_key() {
        let listener = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";
        let (line, key, message) = error(&format!("{listener}tenant = \"gamma\"\n"), "");
        assert_eq!((line, key.as_str()), (3, "listeners[0].tenant"));
        assert!(message.contains("no tenant is named `gamma`"), "{message}");

        let (_, key, message) = error(&format!("{listener}tenant_by = \"identity\"\n"), "");
        assert_eq!(key, "listeners[0].tenant_by");
        assert!(message.contains("mutual-TLS"), "{message}");

        let (_, key, message) = error(
            &format!("{listener}route = \"shared\"\ntenant = \"alpha\"\n"),
            "",
        );
        assert_eq!(key, "listeners[0].tenant");
        assert!(
            message.contains("one of `route`, `tenant` and `tenant_by`"),
            "{message}"
        );

        let (_, key, message) = error(listener, "");
        assert_eq!(key, "listeners[0]");
        assert!(message.contains("needs `route`"), "{message}");

        let route = format!("{listener}route = \"shared\"\n");
        let (_, key, message) = error(
            &route,
            "\n[tenants.gamma]\nroute = \"shared\"\nidentities = [\"alpha\"]\n",
        );
        assert_eq!(key, "tenants.gamma.identities");
        assert!(
            message.contains("`alpha` is tenant alpha's already"),
            "{message}"
        );

        let (_, key, message) = error(
            &route,
            "\n[tenants.gamma]\nroute = \"shared\"\nnamespace = \"alpha:x\"\n",
        );
        assert_eq!(key, "tenants.gamma.namespace");
        assert!(
            message.contains("overlaps tenant alpha's namespace"),
            "{message}"
        );

        let (_, key, message) = error(
            &route,
            "\n[tenants.gamma]\nroute = \"shared\"\ncommands = [\"read\", \"flush_all\"]\n",
        );
        assert_eq!(key, "tenants.gamma.commands");
        assert!(message.contains("namespace = \"\""), "{message}");

        let (_, key, message) = error(
            &route,
            "\n[tenants.gamma]\nroute = \"shared\"\ncommands = [\"reads\"]\n",
        );
        assert_eq!(key, "tenants.gamma.commands");
        assert!(
            message.contains("`reads` is no class of commands"),
            "{message}"
        );

        let (line, key, message) = error(&route, "\n[tenants.\"a b\"]\nroute = \"shared\"\n");
        assert_eq!(key, "tenants.a b");
        assert!(line > 0);
        assert!(message.contains("`a b` is not a name"), "{message}");

        let (_, key, _) = error(
            &route,
            "\n[tenants.gamma]\nroute = \"shared\"\nrequests_burst = 5\n",
        );
        assert_eq!(key, "tenants.gamma.requests_burst");

        let (_, key, message) = error(&route, "\n[tenants.gamma]\nroute = \"nowhere\"\n");
        assert_eq!(key, "tenants.gamma.route");
        assert!(
            message.contains("no pool or route is named `nowhere`"),
            "{message}"
        );
    }
}
