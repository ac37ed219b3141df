//! `switchyard top --admin HOST:PORT`: a live view of a running router in the terminal. It polls
//! the admin HTTP listener's `/stats/<group>` pages (memcached's `STAT name value` lines) once
//! per interval and shows rates over the last interval: requests, the hit ratio, errors, each
//! server's state, load and latency, the route nodes by requests with their latency, errors
//! and plugin calls, and the hot keys (with tenants, each with its tenant). With `--tenant
//! NAME`, the view is of one tenant's share: its requests in the header, its traffic to each
//! server (`stats backends`' tenant lines; `failures` is then its requests that got no reply),
//! the route nodes its requests reached with its requests, latency, errors, plugin calls and
//! faults there (`stats routes`' and `stats plugins`' tenant lines), its hot keys among the
//! router's, and its row of the tenants table.
//!
//! Plain HTTP/1.1 GETs over a blocking socket: the view needs nothing of the router's runtime.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
use ratatui::crossterm::terminal;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};

/// How `top` was asked to run.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// The admin HTTP listener.
    pub admin: String,
    /// Time between polls.
    pub interval: Duration,
    /// Print one view as text after the first interval, then exit (for scripts).
    pub once: bool,
    /// Show one tenant's share: its requests in the header, its traffic to each server, its
    /// own plugin nodes, its row of the tenants table.
    pub tenant: Option<String>,
}

/// Usage of `switchyard top`.
pub const USAGE: &str = "switchyard top --admin HOST:PORT [--interval MS] [--tenant NAME] [--once]";

/// Parses `top`'s arguments.
pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<TopOptions> {
    let mut options = TopOptions {
        admin: String::new(),
        interval: Duration::from_secs(1),
        once: false,
        tenant: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--admin" => options.admin = args.next().context("--admin needs HOST:PORT")?,
            "--interval" => {
                let ms = args.next().context("--interval needs milliseconds")?;
                let ms: u64 = ms
                    .parse()
                    .ok()
                    .filter(|ms| (100..=60_000).contains(ms))
                    .with_context(|| format!("--interval: `{ms}` is not 100 to 60000 ms"))?;
                options.interval = Duration::from_millis(ms);
            }
            "--once" => options.once = true,
            "--tenant" => options.tenant = Some(args.next().context("--tenant needs a NAME")?),
            other => bail!("top: unknown argument `{other}` (usage: {USAGE})"),
        }
    }
    if options.admin.is_empty() {
        bail!("top needs the admin HTTP listener: {USAGE}");
    }
    Ok(options)
}

/// One poll of every group.
#[derive(Debug, Default)]
struct Poll {
    at: Option<Instant>,
    stats: BTreeMap<String, String>,
    backends: BTreeMap<String, String>,
    plugins: BTreeMap<String, String>,
    routes: BTreeMap<String, String>,
    hotkeys: Vec<(String, String)>,
    tenants: BTreeMap<String, String>,
    experiments: BTreeMap<String, String>,
}

impl Poll {
    fn take(address: SocketAddr) -> anyhow::Result<Poll> {
        let group = |name: &str| -> anyhow::Result<Vec<(String, String)>> {
            let body = get(address, &format!("/stats/{name}"))?;
            Ok(body
                .lines()
                .filter_map(|l| {
                    let (name, value) = l.strip_prefix("STAT ")?.split_once(' ')?;
                    Some((name.to_string(), value.to_string()))
                })
                .collect())
        };
        Ok(Poll {
            at: Some(Instant::now()),
            stats: group("general")?.into_iter().collect(),
            backends: group("backends")?.into_iter().collect(),
            plugins: group("plugins")?.into_iter().collect(),
            routes: group("routes")?.into_iter().collect(),
            hotkeys: group("hotkeys")?,
            tenants: group("tenants")?.into_iter().collect(),
            experiments: group("experiments")?.into_iter().collect(),
        })
    }

    fn number(map: &BTreeMap<String, String>, name: &str) -> u64 {
        map.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// A GET of `path` on `address`: the body of a 200 answer.
fn get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to the admin listener {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    // The pages are small; a bound keeps a wrong address from filling memory.
    stream.take(16 << 20).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{address}{path}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("{address}{path}: {status}");
    }
    Ok(body.to_string())
}

/// What the view shows, computed from two polls.
/// The header lines and the rows of the servers, plugin nodes and hot keys tables.
struct View {
    header: Vec<String>,
    backends: Vec<Vec<String>>,
    plugins: Vec<Vec<String>>,
    hot: Vec<Vec<String>>,
    /// Whether the hot keys' rows have a tenant column: the router has tenants.
    hot_tenants: bool,
    /// One row per tenant (none without tenants).
    tenants: Vec<Vec<String>>,
    /// One row per experiment (none without experiments).
    experiments: Vec<Vec<String>>,
}

/// The experiments table's columns: what differs is a dry run's moved share, a shadow's
/// mismatch share, a canary candidate's error share; the p99s are both sides' replies.
const EXPERIMENT_COLUMNS: [&str; 8] = [
    "experiment",
    "kind",
    "state",
    "compared/s",
    "differing",
    "node p99",
    "cand. p99",
    "keys on cand.",
];

/// The tenants table's columns.
const TENANT_COLUMNS: [&str; 9] = [
    "tenant",
    "connections",
    "in flight",
    "requests/s",
    "denied/s",
    "limited/s",
    "throttled/s",
    "hits",
    "p99 µs",
];

/// The view of the whole router, or of `tenant`'s share of it.
fn view(before: &Poll, now: &Poll, tenant: Option<&str>) -> View {
    let seconds = match (before.at, now.at) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(0.001),
        _ => 1.0,
    };
    let rate = |map_now: &BTreeMap<String, String>,
                map_before: &BTreeMap<String, String>,
                name: &str| {
        Poll::number(map_now, name).saturating_sub(Poll::number(map_before, name)) as f64 / seconds
    };
    // The header's numbers: the router's (plain `stats`), or the tenant's (`stats tenants`,
    // its names under `<tenant>:`).
    let (general_now, general_before, own) = match tenant {
        None => (&now.stats, &before.stats, String::new()),
        Some(t) => (&now.tenants, &before.tenants, format!("{t}:")),
    };
    let sum_rates = |wanted: &dyn Fn(&str) -> bool| -> f64 {
        general_now
            .keys()
            .filter_map(|k| {
                k.strip_prefix(own.as_str())
                    .filter(|k| wanted(k))
                    .map(|_| k)
            })
            .map(|k| rate(general_now, general_before, k))
            .sum()
    };
    let stat = |name: &str| format!("{own}{name}");
    let requests = sum_rates(&|k| k.starts_with("cmd_") && !k.ends_with("_errors"));
    // Error replies clients got, and malformed requests (which have no command).
    let errors = sum_rates(&|k| k.starts_with("cmd_") && k.ends_with("_errors"));
    let hits = rate(general_now, general_before, &stat("get_hits"));
    let misses = rate(general_now, general_before, &stat("get_misses"));
    // A tenant's keys read are its hits and misses (the router counts keys looked up apart).
    let keys = match tenant {
        None => rate(&now.stats, &before.stats, "get_keys"),
        Some(_) => hits + misses,
    };
    let hit_ratio = if hits + misses > 0.0 {
        format!("{:.1}%", 100.0 * hits / (hits + misses))
    } else {
        "-".to_string()
    };
    let whose = tenant.map_or_else(String::new, |t| format!("tenant {t}  "));
    let header = vec![
        format!(
            "{whose}generation {}  uptime {} s  connections {}  (q quits)",
            Poll::number(&now.stats, "generation"),
            Poll::number(&now.stats, "uptime"),
            Poll::number(general_now, &stat("curr_connections")),
        ),
        format!(
            "requests/s {requests:.0}   keys read/s {keys:.0}   hit ratio {hit_ratio}   errors/s {errors:.0}",
        ),
        format!(
            "bytes read/s {:.0}   bytes written/s {:.0}",
            rate(general_now, general_before, &stat("bytes_read")),
            rate(general_now, general_before, &stat("bytes_written")),
        ),
    ];

    let servers: Vec<String> = now
        .backends
        .keys()
        .filter_map(|k| k.strip_suffix(":state").map(str::to_string))
        .collect();
    let backend_rows = servers
        .iter()
        .map(|s| {
            // The tenant's lines at the server (`<server>:tenant:<tenant>:...`), its state
            // aside; a failure is then one of the tenant's requests that got no reply.
            let field = |f: &str| match tenant {
                None => format!("{s}:{f}"),
                Some(t) => format!(
                    "{s}:tenant:{t}:{}",
                    if f == "failures" { "failed" } else { f }
                ),
            };
            vec![
                s.clone(),
                now.backends
                    .get(&format!("{s}:state"))
                    .cloned()
                    .unwrap_or_default(),
                format!(
                    "{:.0}",
                    rate(&now.backends, &before.backends, &field("replies"))
                ),
                format!(
                    "{} us",
                    Poll::number(&now.backends, &field("latency_p50_us"))
                ),
                format!(
                    "{} us",
                    Poll::number(&now.backends, &field("latency_p99_us"))
                ),
                Poll::number(&now.backends, &field("outstanding")).to_string(),
                Poll::number(&now.backends, &field("failures")).to_string(),
            ]
        })
        .collect();

    // A tenant's nodes are those its requests reached (`stats routes`' tenant lines), with
    // its requests, latency, errors, calls and faults there.
    let nodes: Vec<String> = now
        .plugins
        .keys()
        .filter(|k| !k.contains(":tenant:"))
        .filter_map(|k| k.strip_suffix(":calls").map(str::to_string))
        .filter(|n| {
            tenant.is_none_or(|t| now.routes.contains_key(&format!("{n}:tenant:{t}:requests")))
        })
        .collect();
    let mut plugin_rows: Vec<(f64, Vec<String>)> = nodes
        .iter()
        .map(|n| {
            // The node's lines, or the tenant's share of them.
            let prefix = match tenant {
                None => n.clone(),
                Some(t) => format!("{n}:tenant:{t}"),
            };
            let field = |f: &str| format!("{prefix}:{f}");
            let route = field;
            let requests = rate(&now.routes, &before.routes, &route("requests"));
            let errors: f64 = ["error", "client_error", "server_error"]
                .iter()
                .map(|k| rate(&now.routes, &before.routes, &route(&format!("replies_{k}"))))
                .sum();
            let calls = rate(&now.plugins, &before.plugins, &field("calls"));
            let faults: u64 = [
                "trap",
                "timeout",
                "bad_plan",
                "out_of_memory",
                "unavailable",
            ]
            .iter()
            .map(|k| Poll::number(&now.plugins, &field(&format!("faults_{k}"))))
            .sum();
            (
                requests,
                vec![
                    n.clone(),
                    format!("{requests:.0}"),
                    format!("{} us", Poll::number(&now.routes, &route("latency_p99_us"))),
                    format!("{errors:.0}"),
                    format!("{calls:.0}"),
                    format!("{} us", Poll::number(&now.plugins, &field("call_p99_us"))),
                    faults.to_string(),
                ],
            )
        })
        .collect();
    plugin_rows.sort_by(|a, b| b.0.total_cmp(&a.0));

    let hot_tenants = !now.tenants.is_empty();
    let hot_rows = hot_keys(&now.hotkeys, hot_tenants, tenant);
    let tenant_rows = now
        .tenants
        .keys()
        .filter_map(|k| k.strip_suffix(":requests"))
        .filter(|t| tenant.is_none_or(|only| only == *t))
        .map(|t| {
            let per_second = |f: &str| {
                let name = format!("{t}:{f}");
                format!("{:.0}", rate(&now.tenants, &before.tenants, &name))
            };
            let limited: f64 = [
                "limited_requests",
                "limited_bytes",
                "limited_values",
                "limited_outstanding",
            ]
            .iter()
            .map(|f| rate(&now.tenants, &before.tenants, &format!("{t}:{f}")))
            .sum();
            let (hits, misses) = (
                rate(&now.tenants, &before.tenants, &format!("{t}:get_hits")),
                rate(&now.tenants, &before.tenants, &format!("{t}:get_misses")),
            );
            let number = |f: &str| Poll::number(&now.tenants, &format!("{t}:{f}")).to_string();
            vec![
                t.to_string(),
                number("curr_connections"),
                number("outstanding"),
                per_second("requests"),
                per_second("denied"),
                format!("{limited:.0}"),
                per_second("throttled"),
                if hits + misses > 0.0 {
                    format!("{:.0}%", 100.0 * hits / (hits + misses))
                } else {
                    "-".into()
                },
                number("latency_p99_us"),
            ]
        })
        .collect();
    let experiment_rows = now
        .experiments
        .iter()
        .filter_map(|(k, kind)| Some((k.strip_suffix(":kind")?, kind.as_str())))
        .map(|(e, kind)| {
            let stat = |f: &str| now.experiments.get(&format!("{e}:{f}")).cloned();
            let running = stat("enabled").as_deref() == Some("1");
            let canary = kind == "canary";
            let compared = if canary {
                "candidate_requests"
            } else {
                "compared"
            };
            let differing = match kind {
                "dry-run" => stat("moved_pct").map(|p| format!("{p}%")),
                "shadow" if stat("compared").as_deref() == Some("0") => None,
                "shadow" => stat("agreement_pct")
                    .and_then(|p| p.parse::<f64>().ok())
                    .map(|p| format!("{:.2}%", 100.0 - p)),
                _ => {
                    let (n, errors) = (
                        Poll::number(&now.experiments, &format!("{e}:candidate_requests")),
                        Poll::number(&now.experiments, &format!("{e}:candidate_errors")),
                    );
                    Some(if n == 0 {
                        "-".into()
                    } else {
                        format!("{:.2}%", 100.0 * errors as f64 / n as f64)
                    })
                }
            };
            let state = match (running, stat("stage")) {
                (false, _) => "stopped".to_string(),
                (true, Some(stage)) => format!(
                    "{stage} {}",
                    stat("step")
                        .map(|s| format!("step {s}"))
                        .unwrap_or_default()
                ),
                (true, None) => "running".to_string(),
            };
            let time = |f: &str| stat(f).map_or("-".into(), |v| format!("{v} µs"));
            vec![
                e.to_string(),
                kind.to_string(),
                state.trim().to_string(),
                format!(
                    "{:.0}",
                    rate(
                        &now.experiments,
                        &before.experiments,
                        &format!("{e}:{compared}")
                    )
                ),
                differing.unwrap_or_else(|| "-".into()),
                time(if kind == "dry-run" {
                    "-"
                } else {
                    "live_reply_p99_us"
                }),
                time(if kind == "dry-run" {
                    "candidate_time_p99_us"
                } else {
                    "candidate_reply_p99_us"
                }),
                stat("fraction")
                    .and_then(|f| f.parse::<f64>().ok())
                    .or_else(|| stat("sample").and_then(|f| f.parse::<f64>().ok()))
                    .map_or("-".into(), |f| {
                        if canary {
                            format!("{:.1}%", 100.0 * f)
                        } else {
                            "none".into()
                        }
                    }),
            ]
        })
        .collect();
    View {
        header,
        backends: backend_rows,
        plugins: plugin_rows.into_iter().map(|(_, r)| r).collect(),
        hot: hot_rows,
        hot_tenants,
        tenants: tenant_rows,
        experiments: experiment_rows,
    }
}

fn rows(cells: Vec<Vec<String>>) -> Vec<Row<'static>> {
    cells.into_iter().map(Row::new).collect()
}

/// The hot keys table's rows, hottest first, from `stats hotkeys`: each key and its requests,
/// and on a router with tenants (`tenants`) whose key it is between them (`(none)`: no
/// tenant's, which no tenant's name can be); with `only`, that tenant's keys alone.
fn hot_keys(hotkeys: &[(String, String)], tenants: bool, only: Option<&str>) -> Vec<Vec<String>> {
    hotkeys
        .iter()
        .filter_map(|(name, value)| {
            let (owner, key) = match name.strip_prefix("tenant:") {
                Some(rest) => {
                    let (owner, rest) = rest.split_once(':')?;
                    (Some(owner), rest.strip_prefix("requests:")?)
                }
                None => (None, name.strip_prefix("requests:")?),
            };
            if only.is_some_and(|t| Some(t) != owner) {
                return None;
            }
            Some(if tenants {
                let owner = owner.unwrap_or("(none)");
                vec![key.to_string(), owner.to_string(), value.clone()]
            } else {
                vec![key.to_string(), value.clone()]
            })
        })
        .take(10)
        .collect()
}

/// The view as plain text: `--once`.
fn print(view: View) {
    for line in view.header {
        println!("{line}");
    }
    for (title, table) in [
        (
            "server state replies/s p50 p99 outstanding failures",
            view.backends,
        ),
        (
            "node requests/s p99 errors/s calls/s call_p99 faults",
            view.plugins,
        ),
        (
            if !view.hot_tenants {
                "hot_key requests"
            } else {
                "hot_key tenant requests"
            },
            view.hot,
        ),
        (
            &TENANT_COLUMNS.join(" ").replace("connections", "curr"),
            view.tenants,
        ),
        (
            &EXPERIMENT_COLUMNS
                .map(|c| c.replace(' ', "_").replace('.', ""))
                .join(" "),
            view.experiments,
        ),
    ] {
        if (title.starts_with("tenant") || title.starts_with("experiment")) && table.is_empty() {
            continue;
        }
        println!("{title}");
        for row in table {
            println!("  {}", row.join("  "));
        }
    }
}

/// Runs `top` until `q`, Esc or Ctrl-C (or, with `--once`, prints one view and exits).
pub fn run(options: &TopOptions) -> anyhow::Result<()> {
    let address = options
        .admin
        .to_socket_addrs()
        .with_context(|| format!("--admin: cannot resolve `{}`", options.admin))?
        .next()
        .with_context(|| format!("--admin: `{}` resolves to nothing", options.admin))?;
    let mut before = Poll::take(address)?;
    let tenant = options.tenant.as_deref();
    if let Some(t) = tenant
        && !before.tenants.contains_key(&format!("{t}:requests"))
    {
        let known: Vec<&str> = before
            .tenants
            .keys()
            .filter_map(|k| k.strip_suffix(":requests"))
            .collect();
        bail!(
            "--tenant: the router has no tenant `{t}` (its tenants: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    if options.once {
        std::thread::sleep(options.interval);
        let now = Poll::take(address)?;
        print(view(&before, &now, tenant));
        return Ok(());
    }
    terminal::enable_raw_mode()?;
    let mut out = std::io::stdout();
    ratatui::crossterm::execute!(out, terminal::EnterAlternateScreen)?;
    let mut screen = Terminal::new(CrosstermBackend::new(out))?;
    let result = (|| -> anyhow::Result<()> {
        let mut now = Poll::take(address)?;
        loop {
            let View {
                header,
                backends,
                plugins,
                hot,
                hot_tenants,
                tenants,
                experiments,
            } = view(&before, &now, tenant);
            let experiment_lines = experiments.len() as u16;
            let header: Vec<Line<'static>> = header.into_iter().map(Line::from).collect();
            let has_tenants = !tenants.is_empty();
            let (backends, plugins, hot, tenants, experiments) = (
                rows(backends),
                rows(plugins),
                rows(hot),
                rows(tenants),
                rows(experiments),
            );
            screen.draw(|frame| {
                let [top, servers, nodes, experiments_area, keys] = Layout::vertical([
                    Constraint::Length(5),
                    Constraint::Min(4),
                    Constraint::Min(4),
                    Constraint::Length(if experiment_lines > 0 {
                        experiment_lines + 3
                    } else {
                        0
                    }),
                    Constraint::Length(12),
                ])
                .areas(frame.area());
                frame.render_widget(
                    Paragraph::new(header)
                        .block(Block::bordered().title(format!(" switchyard top {address} "))),
                    top,
                );
                frame.render_widget(
                    Table::new(
                        backends,
                        [
                            Constraint::Length(24),
                            Constraint::Length(6),
                            Constraint::Length(12),
                            Constraint::Length(12),
                            Constraint::Length(12),
                            Constraint::Length(12),
                            Constraint::Length(10),
                        ],
                    )
                    .header(
                        Row::new([
                            "server",
                            "state",
                            "replies/s",
                            "p50",
                            "p99",
                            "outstanding",
                            "failures",
                        ])
                        .style(Style::default().add_modifier(Modifier::BOLD)),
                    )
                    .block(Block::bordered().title(" servers ")),
                    servers,
                );
                frame.render_widget(
                    Table::new(
                        plugins,
                        [
                            Constraint::Length(28),
                            Constraint::Length(12),
                            Constraint::Length(12),
                            Constraint::Length(10),
                            Constraint::Length(10),
                            Constraint::Length(10),
                            Constraint::Length(8),
                        ],
                    )
                    .header(
                        Row::new([
                            "node",
                            "requests/s",
                            "p99",
                            "errors/s",
                            "calls/s",
                            "call p99",
                            "faults",
                        ])
                        .style(Style::default().add_modifier(Modifier::BOLD)),
                    )
                    .block(Block::bordered().title(" routes and pools ")),
                    nodes,
                );
                if experiment_lines > 0 {
                    frame.render_widget(
                        Table::new(
                            experiments,
                            [
                                Constraint::Min(14),
                                Constraint::Length(8),
                                Constraint::Length(18),
                                Constraint::Length(11),
                                Constraint::Length(10),
                                Constraint::Length(10),
                                Constraint::Length(10),
                                Constraint::Length(13),
                            ],
                        )
                        .header(
                            Row::new(EXPERIMENT_COLUMNS)
                                .style(Style::default().add_modifier(Modifier::BOLD)),
                        )
                        .block(Block::bordered().title(" experiments ")),
                        experiments_area,
                    );
                }
                // With tenants, the bottom row is the hot keys beside them.
                let (keys, tenants_area) = if has_tenants {
                    let [keys, tenants_area] =
                        Layout::horizontal([Constraint::Min(34), Constraint::Min(70)]).areas(keys);
                    (keys, Some(tenants_area))
                } else {
                    (keys, None)
                };
                if let Some(area) = tenants_area {
                    frame.render_widget(
                        Table::new(
                            tenants,
                            [
                                Constraint::Min(12),
                                Constraint::Length(12),
                                Constraint::Length(10),
                                Constraint::Length(11),
                                Constraint::Length(9),
                                Constraint::Length(10),
                                Constraint::Length(12),
                                Constraint::Length(5),
                                Constraint::Length(8),
                            ],
                        )
                        .header(
                            Row::new(TENANT_COLUMNS)
                                .style(Style::default().add_modifier(Modifier::BOLD)),
                        )
                        .block(Block::bordered().title(" tenants ")),
                        area,
                    );
                }
                let (widths, columns) = if hot_tenants {
                    (
                        &[
                            Constraint::Min(20),
                            Constraint::Length(12),
                            Constraint::Length(14),
                        ][..],
                        &["key", "tenant", "requests"][..],
                    )
                } else {
                    (
                        &[Constraint::Min(20), Constraint::Length(14)][..],
                        &["key", "requests"][..],
                    )
                };
                frame.render_widget(
                    Table::new(hot, widths)
                        .header(
                            Row::new(columns.iter().copied())
                                .style(Style::default().add_modifier(Modifier::BOLD)),
                        )
                        .block(Block::bordered().title(" hot keys (sampled) ")),
                    keys,
                );
            })?;
            let deadline = Instant::now() + options.interval;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if event::poll(left)?
                    && let Event::Key(key) = event::read()?
                {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    if key.code == KeyCode::Char('q') || key.code == KeyCode::Esc || ctrl_c {
                        return Ok(());
                    }
                }
            }
            before = now;
            now = Poll::take(address)?;
        }
    })();
    terminal::disable_raw_mode()?;
    ratatui::crossterm::execute!(std::io::stdout(), terminal::LeaveAlternateScreen)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(at: Instant, tenants: &[(&str, &str)]) -> Poll {
        Poll {
            at: Some(at),
            stats: BTreeMap::new(),
            backends: BTreeMap::new(),
            plugins: BTreeMap::new(),
            routes: BTreeMap::new(),
            hotkeys: Vec::new(),
            tenants: tenants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            experiments: BTreeMap::new(),
        }
    }

    #[test]
    fn each_tenant_has_a_row_of_rates() {
        let start = Instant::now();
        let before = poll(
            start,
            &[
                ("beta:requests", "100"),
                ("beta:denied", "0"),
                ("beta:limited_requests", "10"),
            ],
        );
        let now = poll(
            start + std::time::Duration::from_secs(2),
            &[
                ("beta:curr_connections", "3"),
                ("beta:requests", "300"),
                ("beta:denied", "4"),
                ("beta:limited_requests", "50"),
                ("beta:limited_bytes", "10"),
                ("beta:throttled", "0"),
                ("beta:outstanding", "7"),
                ("beta:get_hits", "150"),
                ("beta:get_misses", "50"),
                ("beta:latency_p99_us", "900"),
            ],
        );
        assert_eq!(
            view(&before, &now, None).tenants,
            [["beta", "3", "7", "100", "2", "25", "0", "75%", "900"]]
        );
        assert!(view(&before, &poll(start, &[]), None).tenants.is_empty());
    }

    #[test]
    fn a_tenants_view_shows_its_own_requests_servers_and_nodes() {
        let start = Instant::now();
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut before = poll(
            start,
            &[
                ("alpha:requests", "0"),
                ("alpha:cmd_get", "0"),
                ("beta:requests", "0"),
                ("beta:cmd_get", "0"),
            ],
        );
        before.stats = map(&[("cmd_get", "0")]);
        before.backends = map(&[("s1:replies", "0"), ("s1:tenant:beta:replies", "0")]);
        let mut now = poll(
            start + Duration::from_secs(2),
            &[
                ("alpha:requests", "100"),
                ("alpha:cmd_get", "100"),
                ("alpha:curr_connections", "1"),
                ("beta:requests", "400"),
                ("beta:cmd_get", "400"),
                ("beta:cmd_get_errors", "20"),
                ("beta:curr_connections", "5"),
            ],
        );
        now.stats = map(&[("cmd_get", "500"), ("curr_connections", "6")]);
        now.backends = map(&[
            ("s1:state", "up"),
            ("s1:replies", "500"),
            ("s1:failures", "3"),
            ("s1:latency_p99_us", "300"),
            ("s1:tenant:beta:replies", "380"),
            ("s1:tenant:beta:failed", "1"),
            ("s1:tenant:beta:latency_p50_us", "90"),
            ("s1:tenant:beta:latency_p99_us", "900"),
            ("s1:tenant:beta:outstanding", "2"),
        ]);
        now.plugins = map(&[
            ("shared:calls", "10"),
            ("shared:tenant:beta:calls", "6"),
            ("shared:tenant:beta:faults_trap", "2"),
            ("shared:tenant:alpha:calls", "4"),
            ("beta-route:calls", "10"),
            ("beta-route:tenant", "beta"),
            ("alpha-route:calls", "10"),
            ("alpha-route:tenant", "alpha"),
            ("unused:calls", "0"),
        ]);
        now.routes = map(&[
            ("shared:requests", "500"),
            ("shared:tenant:alpha:requests", "100"),
            ("shared:tenant:beta:requests", "400"),
            ("shared:tenant:beta:replies_server_error", "20"),
            ("shared:tenant:beta:latency_p99_us", "700"),
            ("beta-route:requests", "400"),
            ("beta-route:tenant:beta:requests", "400"),
            ("alpha-route:requests", "100"),
            ("alpha-route:tenant:alpha:requests", "100"),
        ]);
        let all = view(&before, &now, None);
        assert!(
            all.header[1].starts_with("requests/s 250 "),
            "{:?}",
            all.header
        );
        assert_eq!(all.backends[0][2], "250");
        assert_eq!(all.plugins.len(), 4);
        assert_eq!(all.tenants.len(), 2);

        let beta = view(&before, &now, Some("beta"));
        assert!(
            beta.header[0].starts_with("tenant beta "),
            "{:?}",
            beta.header
        );
        assert!(
            beta.header[0].contains("connections 5 "),
            "{:?}",
            beta.header
        );
        assert!(
            beta.header[1].starts_with("requests/s 200 ")
                && beta.header[1].ends_with("errors/s 10"),
            "{:?}",
            beta.header
        );
        assert_eq!(
            beta.backends,
            [["s1", "up", "190", "90 us", "900 us", "2", "1"]]
        );
        // The nodes beta's requests reached, with its requests, p99 and errors there.
        let nodes: Vec<&str> = beta.plugins.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(nodes, ["beta-route", "shared"]);
        assert_eq!(beta.plugins[1][1..4], ["200", "700 us", "10"]);
        assert_eq!(beta.plugins[1][6], "2");
        assert_eq!(beta.tenants.len(), 1);
        assert_eq!(beta.tenants[0][0], "beta");
    }

    #[test]
    fn each_experiment_has_a_row_of_its_kind() {
        let start = Instant::now();
        let stats = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut before = poll(start, &[]);
        before.experiments = stats(&[("m:compared", "100"), ("r:candidate_requests", "0")]);
        let mut now = poll(start + Duration::from_secs(2), &[]);
        now.experiments = stats(&[
            ("m:kind", "shadow"),
            ("m:enabled", "1"),
            ("m:compared", "300"),
            ("m:agreement_pct", "97.50"),
            ("m:live_reply_p99_us", "640"),
            ("m:candidate_reply_p99_us", "900"),
            ("m:sample", "0.1"),
            ("r:kind", "canary"),
            ("r:enabled", "1"),
            ("r:stage", "ramping"),
            ("r:step", "2"),
            ("r:fraction", "0.25"),
            ("r:candidate_requests", "40"),
            ("r:candidate_errors", "1"),
            ("r:live_reply_p99_us", "500"),
            ("r:candidate_reply_p99_us", "510"),
        ]);
        assert_eq!(
            view(&before, &now, None).experiments,
            [
                [
                    "m", "shadow", "running", "100", "2.50%", "640 µs", "900 µs", "none"
                ],
                [
                    "r",
                    "canary",
                    "ramping step 2",
                    "20",
                    "2.50%",
                    "500 µs",
                    "510 µs",
                    "25.0%"
                ],
            ]
        );
    }

    #[test]
    fn hot_keys_are_each_their_tenants_and_a_tenants_view_shows_its_own() {
        let hotkeys: Vec<(String, String)> = [
            ("tenant:alpha:requests:user:1", "80"),
            ("requests:user:1", "40"),
            ("tenant:beta:requests:user:1", "16"),
            ("tenant:alpha:bytes:user:1", "800"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            hot_keys(&hotkeys, true, None),
            [
                ["user:1", "alpha", "80"],
                ["user:1", "(none)", "40"],
                ["user:1", "beta", "16"]
            ]
        );
        assert_eq!(
            hot_keys(&hotkeys, true, Some("beta")),
            [["user:1", "beta", "16"]]
        );
        let plain = [("requests:k".to_string(), "8".to_string())];
        assert_eq!(hot_keys(&plain, false, None), [["k", "8"]]);
    }
}
