//! `switchyard experiment`: start or stop a running router's experiment through its admin
//! listener, or save one's report (`/experiments/NAME/report` of the admin HTTP listener) as
//! an HTML file.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How it is used.
pub const USAGE: &str = "switchyard experiment start|stop NAME --admin HOST:PORT\n       \
                         switchyard experiment report NAME --http HOST:PORT --html FILE";

/// A `switchyard experiment` command line.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentCommand {
    /// Start (`true`) or stop an experiment through the admin listener.
    Switch {
        /// The admin listener (`[admin] address`).
        admin: String,
        /// The experiment.
        name: String,
        /// Start, or stop.
        on: bool,
    },
    /// Write an experiment's report.
    Report {
        /// The admin HTTP listener (`[admin.http] address`).
        http: String,
        /// The experiment.
        name: String,
        /// Where to write it.
        html: std::path::PathBuf,
    },
}

/// Parses what follows `switchyard experiment`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<ExperimentCommand> {
    let usage = || format!("usage: {USAGE}");
    let action = args
        .next()
        .with_context(|| format!("experiment needs start, stop or report; {}", usage()))?;
    let (mut name, mut admin, mut http, mut html) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("experiment: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--admin" => admin = Some(value()?),
            "--http" => http = Some(value()?),
            "--html" => html = Some(std::path::PathBuf::from(value()?)),
            flag if flag.starts_with('-') => {
                bail!("experiment: unknown flag `{flag}`; {}", usage())
            }
            _ if name.is_none() => name = Some(arg),
            _ => bail!("experiment takes one NAME; {}", usage()),
        }
    }
    let name = name.with_context(|| format!("experiment needs a NAME; {}", usage()))?;
    match action.as_str() {
        "start" | "stop" => Ok(ExperimentCommand::Switch {
            admin: admin
                .with_context(|| format!("experiment {action} needs --admin; {}", usage()))?,
            name,
            on: action == "start",
        }),
        "report" => Ok(ExperimentCommand::Report {
            http: http.with_context(|| format!("experiment report needs --http; {}", usage()))?,
            name,
            html: html.with_context(|| format!("experiment report needs --html; {}", usage()))?,
        }),
        other => bail!(
            "experiment: `{other}` is not start, stop or report; {}",
            usage()
        ),
    }
}

/// Carries out `command`.
pub fn run(command: &ExperimentCommand) -> anyhow::Result<()> {
    match command {
        ExperimentCommand::Switch { admin, name, on } => {
            let stream = TcpStream::connect(admin)
                .with_context(|| format!("experiment: cannot reach the admin listener {admin}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let verb = if *on { "start" } else { "stop" };
            (&stream).write_all(format!("experiment {verb} {name}\n").as_bytes())?;
            let mut reply = String::new();
            BufReader::new(&stream).read_line(&mut reply)?;
            let reply = reply.trim_end();
            if !reply.starts_with("OK ") {
                bail!("experiment: the router answered `{reply}`");
            }
            crate::cli::out(&format!("{}\n", &reply[3..]));
            Ok(())
        }
        ExperimentCommand::Report { http, name, html } => {
            let mut stream = TcpStream::connect(http).with_context(|| {
                format!("experiment report: cannot reach the admin HTTP listener {http}")
            })?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "GET /experiments/{name}/report HTTP/1.0\r\nhost: switchyard\r\n\r\n"
            )?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response)?;
            let text = String::from_utf8_lossy(&response);
            let (head, body) = text
                .split_once("\r\n\r\n")
                .context("experiment report: the router's answer has no body")?;
            let status = head.lines().next().unwrap_or_default();
            if !status.contains(" 200 ") {
                bail!(
                    "experiment report: the router answered `{status}`: {}",
                    body.trim()
                );
            }
            std::fs::write(html, body.as_bytes())
                .with_context(|| format!("experiment report: cannot write {}", html.display()))?;
            crate::cli::out(&format!(
                "{} bytes written to {}\n",
                body.len(),
                html.display()
            ));
            Ok(())
        }
    }
}
