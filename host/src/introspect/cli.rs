//! `switchyard route --config FILE [--listener N] OP KEY...`: where requests would go, without a
//! running router. The configuration is built as `--check-config` builds it (every plugin
//! compiled and `init`ed; no socket bound, no spool opened, no server contacted), and each key
//! gets the dry run a `get __switchyard__.route(OP,KEY)` on listener N answers with (every
//! server counts as up, and the request has no client identity).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use switchyard_sdk::Op;

use crate::config::Config;
use crate::generation::Generation;
use crate::plugin::{ModuleCache, PluginEngine, RouteInput};
use crate::worker::LocalGeneration;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str = "switchyard route --config FILE [--listener N] OP KEY...";

/// A `switchyard route` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCommand {
    /// The configuration file.
    pub config: PathBuf,
    /// The listener whose route is asked (its index, in file order).
    pub listener: usize,
    /// The operation.
    pub op: Op,
    /// The keys, each asked on its own.
    pub keys: Vec<String>,
}

/// Parses what follows `switchyard route`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<RouteCommand> {
    let usage = || format!("usage: {USAGE}");
    let (mut config, mut listener, mut words) = (None, 0, Vec::new());
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("route: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value()?)),
            "--listener" => {
                let text = value()?;
                listener = text.parse().ok().with_context(|| {
                    format!("route --listener: `{text}` is not a listener index (0, 1, ...)")
                })?;
            }
            flag if flag.starts_with('-') && words.is_empty() => {
                bail!("route: unknown flag `{flag}`; {}", usage())
            }
            _ => words.push(arg),
        }
    }
    let config = config.with_context(|| format!("route needs --config FILE; {}", usage()))?;
    let mut words = words.into_iter();
    let name = words
        .next()
        .with_context(|| format!("route needs an operation; {}", usage()))?;
    let op = super::op_named(&name).with_context(|| {
        format!(
            "route: unknown operation `{name}` (one of {})",
            super::op_names().join(" ")
        )
    })?;
    let keys: Vec<String> = words.collect();
    if keys.is_empty() {
        bail!("route needs at least one key; {}", usage());
    }
    for key in &keys {
        check_key(key)?;
    }
    Ok(RouteCommand {
        config,
        listener,
        op,
        keys,
    })
}

/// A key a client could send: 1 to 250 bytes, no space or control character.
fn check_key(key: &str) -> anyhow::Result<()> {
    let max = switchyard_protocol::limits::DEFAULT_MAX_KEY_LEN;
    if key.is_empty() || key.len() > max {
        bail!(
            "route: key `{key}` is {} bytes; keys are 1 to {max}",
            key.len()
        );
    }
    if key.bytes().any(|b| b <= b' ' || b == 0x7f) {
        bail!("route: key `{key}` holds a space or a control character");
    }
    Ok(())
}

/// Builds the configuration and prints each key's dry run.
pub fn run(command: RouteCommand) -> anyhow::Result<()> {
    let mut config = Config::load(&command.config)?;
    // One worker's instances are all a dry run calls.
    config.server.workers = 1;
    let engine = PluginEngine::new()?;
    let generation = Generation::build(config, &engine, &ModuleCache::default(), 0, None)?;
    let Some(&root) = generation.roots.get(command.listener) else {
        bail!(
            "route --listener {}: {} has {} listener(s), numbered from 0",
            command.listener,
            command.config.display(),
            generation.roots.len()
        );
    };
    let Some(root) = root else {
        bail!(
            "route --listener {}: that listener serves tenants, each with its own route; name a \
             listener with a `route`",
            command.listener
        );
    };
    let local = LocalGeneration::offline(Arc::new(generation));
    let mut out = String::new();
    for key in &command.keys {
        let input = RouteInput {
            op: command.op.code(),
            key: key.as_bytes(),
            flags: 0,
            exptime: 0,
            value_len: 0,
            listener: command.listener as u32,
            identity: None,
        };
        out.push_str(&local.dry_run(root, &input));
    }
    crate::cli::out(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> anyhow::Result<RouteCommand> {
        parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn reads_a_command_line() {
        let command = args("--config r.toml --listener 1 set a b").expect("valid");
        assert_eq!(
            command,
            RouteCommand {
                config: PathBuf::from("r.toml"),
                listener: 1,
                op: Op::Set,
                keys: vec!["a".into(), "b".into()],
            }
        );
        let command = args("get k -c r.toml").expect("flags after the words");
        assert_eq!((command.op, command.listener), (Op::Get, 0));
    }

    #[test]
    fn refuses_what_it_cannot_ask() {
        for (line, why) in [
            ("get k", "needs --config"),
            ("--config r.toml", "needs an operation"),
            ("--config r.toml get", "at least one key"),
            ("--config r.toml fetch k", "unknown operation `fetch`"),
            ("--config r.toml --listener x get k", "not a listener index"),
            ("--frob --config r.toml get k", "unknown flag `--frob`"),
        ] {
            let error = args(line).expect_err(line).to_string();
            assert!(error.contains(why), "{line}: {error}");
        }
        let long = format!("--config r.toml get {}", "k".repeat(251));
        assert!(args(&long).is_err(), "a key of 251 bytes");
    }
}
