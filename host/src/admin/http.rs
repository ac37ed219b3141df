//! The admin HTTP listener (`[admin.http] address`), served by hyper (HTTP/1.1) on the admin
//! thread's runtime beside the command listener:
//!
//! - `GET /metrics`: 200, every stat in the Prometheus text format ([`super::metrics`]).
//! - `GET /healthz`: 200 `ok` while the process serves.
//! - `GET /readyz`: 200 `ready` when every pool has a server up; 503 naming each pool that
//!   has none, and its servers.
//! - `GET /config`: 200, the text of the running configuration; its generation in
//!   `X-Switchyard-Generation`.
//! - `POST /reload`: as `SIGHUP`: 200 with the new generation; 409 (the file or a plugin was
//!   refused) or 500 (the router could not carry it out) with the reason, the running
//!   generation staying.
//! - `GET /route`: 501, route introspection is not served over HTTP yet.
//!
//! Anything else is 404, a known path with another method 405 (with `Allow`). `HEAD` is
//! answered as `GET`, without the body.
//!
//! Bounds: a request's head (line and headers) at most [`MAX_HEAD_BYTES`] and
//! [`MAX_HEADERS`] headers (hyper answers 431 past them), read within [`HEAD_TIMEOUT`]; a
//! body at most [`MAX_BODY_BYTES`] (413 past it; bodies are read only by `POST /reload`,
//! which ignores its body); a connection lives at most [`MAX_CONNECTION_LIFETIME`], then is
//! closed after the request in progress (a keep-alive scraper reconnects), or cut
//! [`CLOSE_GRACE`] later if that request does not finish. Connections count against the admin
//! listeners' [`super::MAX_CONNECTIONS`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::metrics;
use crate::reload::{Control, ReloadError};
use crate::stats::RouterStats;

/// Longest request head: hyper's read buffer, which a request line and its headers must fit
/// in (hyper's smallest allowed).
pub const MAX_HEAD_BYTES: usize = 8 << 10;
/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 32;
/// How long a client may take to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request body read (`POST /reload` reads and ignores one).
pub const MAX_BODY_BYTES: usize = 4 << 10;
/// How long one connection is served: a scraper that keeps its connection reconnects after
/// it, a client that stops reading a reply is cut after it.
pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long the request in progress at [`MAX_CONNECTION_LIFETIME`] has to finish.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The generation a reply speaks of: the running one, or the one a reload published.
const GENERATION_HEADER: &str = "x-switchyard-generation";

/// What every HTTP connection serves from.
#[derive(Debug)]
pub struct Shared {
    control: Arc<Control>,
    stats: Arc<RouterStats>,
    registry: prometheus_client::registry::Registry,
}

impl Shared {
    /// The state behind the endpoints.
    pub fn new(control: Arc<Control>, stats: Arc<RouterStats>) -> Shared {
        Shared {
            control,
            registry: metrics::registry(stats.clone()),
            stats,
        }
    }
}

/// Serves one connection until the client closes it, it breaks a bound, or its lifetime ends.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let peer = stream.peer_addr().ok();
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(respond(request, &shared).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = tokio::time::sleep(MAX_CONNECTION_LIFETIME) => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, connection.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = ended {
        tracing::debug!(peer = ?peer, error = %e, "admin HTTP connection ended with an error");
    }
}

/// The answer to a connection past the admin listeners' bound: `503`, then closed.
pub fn refuse(stream: std::net::TcpStream) {
    use std::io::Write as _;
    let body = "too many admin connections\n";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write(reply.as_bytes());
}

/// The endpoints, with the methods each accepts.
const ENDPOINTS: &[(&str, &str)] = &[
    ("/metrics", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
    ("/readyz", "GET, HEAD"),
    ("/config", "GET, HEAD"),
    ("/route", "GET, HEAD"),
    ("/reload", "POST"),
    ("/stats/<group>", "GET, HEAD"),
    ("/hotkeys", "GET, HEAD"),
    ("/experiments", "GET, HEAD"),
    ("/experiments/<name>/report", "GET, HEAD"),
];

async fn respond(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let read = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/metrics" if read => match metrics::render(&shared.registry) {
            Ok(body) => reply(StatusCode::OK, metrics::CONTENT_TYPE, body),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            ),
        },
        "/healthz" if read => text(StatusCode::OK, "ok\n"),
        "/readyz" if read => {
            let generation = shared.control.current().load_full();
            match metrics::readiness(&generation) {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", why.replace('\n', "\nnot ready: ")),
                ),
            }
        }
        "/config" if read => {
            let generation = shared.control.current().load_full();
            let mut response = reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                generation.config.text.to_string(),
            );
            with_generation(&mut response, generation.number);
            if let Ok(file) = HeaderValue::from_str(&generation.config.origin.display().to_string())
            {
                response
                    .headers_mut()
                    .insert("x-switchyard-config-file", file);
            }
            response
        }
        "/route" if read => route(request.uri().query().unwrap_or(""), shared),
        "/experiments" if read => {
            let generation = shared.control.current().load_full();
            let mut response = reply(
                StatusCode::OK,
                "application/json",
                crate::experiment::json(&generation),
            );
            with_generation(&mut response, generation.number);
            response
        }
        report
            if read
                && let Some(name) = report
                    .strip_prefix("/experiments/")
                    .and_then(|r| r.strip_suffix("/report")) =>
        {
            let generation = shared.control.current().load_full();
            match generation
                .experiments
                .iter()
                .find(|e| e.config.name == name)
            {
                Some(e) => {
                    let mut response = reply(
                        StatusCode::OK,
                        "text/html; charset=utf-8",
                        crate::experiment::html(e, &generation),
                    );
                    with_generation(&mut response, generation.number);
                    response
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    format!("no experiment is named `{name}`\n"),
                ),
            }
        }
        "/reload" if method == Method::POST => reload(request, shared).await,
        // `stats` groups as memcached prints them (what `switchyard top` reads).
        "/hotkeys" if read => stats_text(shared, "hotkeys"),
        group if read && group.starts_with("/stats/") => {
            stats_text(shared, &group["/stats/".len()..])
        }
        _ => match ENDPOINTS.iter().find(|(known, _)| *known == path) {
            Some((_, allow)) => {
                let mut response = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{path} accepts {allow}, not {method}\n"),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
            None => text(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint; there are {}\n",
                    ENDPOINTS
                        .iter()
                        .map(|(path, _)| *path)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        },
    }
}

/// `GET /route?op=OP&key=KEY[&listener=N]`: where that request would go, as `get
/// __switchyard__.route(OP,KEY)` answers it (a dry run: the plugins are called, nothing is
/// sent). `KEY` is percent-decoded.
fn route(query: &str, shared: &Shared) -> Response<Full<Bytes>> {
    let mut op = None;
    let mut key = None;
    let mut listener = 0usize;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(value) = percent_decode(value) else {
            return text(
                StatusCode::BAD_REQUEST,
                format!("`{name}`: bad percent-encoding\n"),
            );
        };
        match name {
            "op" => op = Some(value),
            "key" => key = Some(value),
            "listener" => match std::str::from_utf8(&value)
                .ok()
                .and_then(|n| n.parse().ok())
            {
                Some(n) => listener = n,
                None => return text(StatusCode::BAD_REQUEST, "`listener`: not a number\n"),
            },
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter `{other}`: op, key, listener\n"),
                );
            }
        }
    }
    let (Some(op), Some(key)) = (op, key) else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage: /route?op=get&key=KEY[&listener=N]\n",
        );
    };
    let Some(op) = std::str::from_utf8(&op)
        .ok()
        .and_then(crate::introspect::op_named)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("`op`: one of {}\n", crate::introspect::op_names().join(" ")),
        );
    };
    if key.is_empty() || key.len() > switchyard_sdk::abi::KEY_CAPACITY {
        return text(StatusCode::BAD_REQUEST, "`key`: 1 to 1024 bytes\n");
    }
    let generation = shared.control.current().load_full();
    let Some(&root) = generation.roots.get(listener) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "`listener`: the router has {} listener(s), from 0\n",
                generation.roots.len()
            ),
        );
    };
    let Some(root) = root else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "`listener`: listener {listener} serves tenants, each with its own route; ask a \
                 listener with a `route`, or through a tenant's connection (`get \
                 __switchyard__.route(OP,KEY)`)\n"
            ),
        );
    };
    let local = crate::worker::LocalGeneration::beside(generation);
    let input = crate::plugin::RouteInput {
        op: op.code(),
        key: &key,
        flags: 0,
        exptime: 0,
        value_len: 0,
        listener: listener as u32,
        identity: None,
    };
    reply(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        local.dry_run(root, &input),
    )
}

/// `%XX` and `+` decoded; `None` for a `%` not followed by two hex digits.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `GET /stats/<group>`: the `STAT` lines of `stats <group>` (`general` for plain `stats`).
fn stats_text(shared: &Shared, group: &str) -> Response<Full<Bytes>> {
    let stats = &shared.stats;
    let generation = shared.control.current().load_full();
    let body = match group {
        "general" => stats.render(),
        "backends" => crate::stats::render_backends(&generation),
        "plugins" => crate::stats::render_plugins(&generation),
        "routes" => crate::stats::render_routes(&generation),
        "tenants" => crate::stats::render_tenants(&generation),
        "experiments" => crate::experiment::render(&generation),
        "config" => stats.render_config(),
        "hotkeys" => stats.hotkeys.render(),
        "tls" => stats.identities.render(),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "no such stats group; there are general, backends, routes, plugins, config, hotkeys, tls, tenants, experiments\n",
            );
        }
    };
    reply(StatusCode::OK, "text/plain; charset=utf-8", body)
}

/// `POST /reload`: what `SIGHUP` does, on the admin runtime's blocking thread.
async fn reload(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .is_err()
    {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a reload takes no body (at most {MAX_BODY_BYTES} bytes are read)\n"),
        );
    }
    let control = shared.control.clone();
    let (status, body) = match tokio::task::spawn_blocking(move || control.reload()).await {
        Ok(Ok(generation)) => {
            let mut response = text(StatusCode::OK, format!("{generation}\n"));
            with_generation(&mut response, generation);
            return response;
        }
        Ok(Err(e)) => {
            let status = match e {
                ReloadError::Config(_) | ReloadError::Build(_) => StatusCode::CONFLICT,
                ReloadError::Spool(_) | ReloadError::Bind { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            (status, format!("reload refused: {e}\n"))
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}\n"),
        ),
    };
    // The generation that still serves.
    let mut response = text(status, body);
    with_generation(&mut response, shared.control.current().load().number);
    response
}

fn with_generation(response: &mut Response<Full<Bytes>>, generation: u64) {
    response
        .headers_mut()
        .insert(GENERATION_HEADER, HeaderValue::from(generation));
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body.into())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
