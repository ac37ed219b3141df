//! `switchyard plugin inspect FILE.wasm|NAME [--children N] [--config TOML]`: what a plugin
//! module is before a config names it. The module is compiled and vetted as the router vets it
//! (imports from the host only, every required export), then instantiated and `init`ed in the
//! real runtime with `N` children (`child0`, `child1`, ..., weight 1) and the given config
//! table; the report gives its size, SHA-256 (what a config's `sha256` pins), ABI version,
//! imports, exports and how `init` went.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::{ChildInfo, NodeContext, PluginEngine, PluginInstance, PluginModule};
use crate::config::PluginSettings;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str = "switchyard plugin inspect FILE.wasm|NAME [--children N] [--config TOML]";

/// A `switchyard plugin` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCommand {
    /// A `.wasm` file, or the name of a bundled plugin.
    pub module: String,
    /// Children to `init` the plugin with.
    pub children: u32,
    /// The `config` table to `init` it with, as TOML text.
    pub config: String,
}

/// Parses what follows `switchyard plugin`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<PluginCommand> {
    let usage = || format!("usage: {USAGE}");
    match args.next().as_deref() {
        Some("inspect") => {}
        Some(other) => bail!("plugin: no subcommand `{other}`; {}", usage()),
        None => bail!("plugin needs a subcommand; {}", usage()),
    }
    let mut command = PluginCommand {
        module: String::new(),
        children: 3,
        config: String::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("plugin inspect: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--children" => {
                let text = value()?;
                command.children = text
                    .parse()
                    .ok()
                    .filter(|n| (1..=4096).contains(n))
                    .with_context(|| format!("--children: `{text}` is not 1 to 4096"))?;
            }
            "--config" => command.config = value()?,
            flag if flag.starts_with('-') => {
                bail!("plugin inspect: unknown flag `{flag}`; {}", usage())
            }
            _ if command.module.is_empty() => command.module = arg,
            _ => bail!("plugin inspect: one module at a time; {}", usage()),
        }
    }
    if command.module.is_empty() {
        bail!("plugin inspect needs a module; {}", usage());
    }
    Ok(command)
}

/// Runs the command: prints the report; fails when the module would be refused.
pub fn run(command: &PluginCommand) -> anyhow::Result<()> {
    let (report, ok) = inspect(command)?;
    print!("{report}");
    if !ok {
        bail!("{}: the router would refuse this plugin", command.module);
    }
    Ok(())
}

/// The report, and whether the module passed (vetted, right ABI version, `init` succeeded).
pub fn inspect(command: &PluginCommand) -> anyhow::Result<(String, bool)> {
    let bytes: Vec<u8> = match super::bundled::get(&command.module) {
        Some(bytes) if !command.module.contains('/') && !command.module.ends_with(".wasm") => {
            bytes.to_vec()
        }
        _ => {
            let path = PathBuf::from(&command.module);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "plugin   {}", command.module);
    let _ = writeln!(out, "size     {} bytes", bytes.len());
    let _ = writeln!(out, "sha256   {}", super::module::sha256_hex(&bytes));
    let engine = PluginEngine::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let module = match PluginModule::compile(&engine, &command.module, &bytes) {
        Ok(module) => module,
        Err(e) => {
            let _ = writeln!(out, "refused  {}", e.message);
            return Ok((out, false));
        }
    };
    let wasm = module.pre().module();
    let imports: Vec<String> = wasm.imports().map(|i| i.name().to_string()).collect();
    let exports: Vec<String> = wasm.exports().map(|e| e.name().to_string()).collect();
    let _ = writeln!(
        out,
        "imports  {}",
        if imports.is_empty() {
            "(none)".to_string()
        } else {
            imports.join(", ")
        }
    );
    let _ = writeln!(out, "exports  {}", exports.join(", "));
    let node = Arc::new(NodeContext {
        label: "inspect".into(),
        children: (0..command.children)
            .map(|i| ChildInfo {
                name: format!("child{i}"),
                weight: 1,
            })
            .collect(),
        config_toml: command.config.clone(),
        health: (0..command.children).map(|_| None).collect(),
        log_budget: Default::default(),
        log_level: switchyard_sdk::abi::log_level::DEBUG,
        module: command.module.clone(),
    });
    let settings = PluginSettings {
        call_timeout: crate::config::DEFAULT_CALL_TIMEOUT,
        init_timeout: crate::config::DEFAULT_INIT_TIMEOUT,
        memory_limit_bytes: crate::config::DEFAULT_MEMORY_LIMIT_BYTES,
        rollback_faults: crate::config::DEFAULT_ROLLBACK_FAULTS,
        breaker_faults: crate::config::DEFAULT_BREAKER_FAULTS,
        breaker_backoff: crate::config::DEFAULT_BREAKER_BACKOFF,
        breaker_max_backoff: crate::config::DEFAULT_BREAKER_MAX_BACKOFF,
    };
    let abi = switchyard_sdk::abi::ABI_VERSION;
    let children = command.children;
    match PluginInstance::new(&module, node, &settings, 1) {
        Ok(instance) => {
            let _ = writeln!(out, "abi      version {abi} (this router loads {abi})");
            let _ = writeln!(
                out,
                "init     ok with {children} children and config `{}` ({} bytes of memory)",
                command.config,
                instance.memory_size().unwrap_or(0)
            );
            Ok((out, true))
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "init     failed with {children} children: {}",
                e.message
            );
            Ok((out, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> impl Iterator<Item = String> {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn parses_the_command_line() {
        let c = parse(args("inspect plugins/x.wasm --children 5")).expect("parses");
        assert_eq!(
            c,
            PluginCommand {
                module: "plugins/x.wasm".into(),
                children: 5,
                config: String::new(),
            }
        );
        assert!(parse(args("inspect")).is_err());
        assert!(parse(args("build x")).is_err());
        assert!(parse(args("inspect a.wasm --children 0")).is_err());
        assert!(parse(args("inspect a.wasm b.wasm")).is_err());
    }

    #[test]
    fn a_bundled_plugin_inspects_clean() {
        let (report, ok) = inspect(&PluginCommand {
            module: "ketama".into(),
            children: 3,
            config: String::new(),
        })
        .expect("inspects");
        assert!(ok, "{report}");
        assert!(report.contains("sha256   "), "{report}");
        assert!(report.contains("init     ok with 3 children"), "{report}");
        assert!(report.contains("switchyard_route"), "{report}");
    }

    #[test]
    fn a_failing_init_is_reported() {
        let (report, ok) = inspect(&PluginCommand {
            module: "ketama".into(),
            children: 3,
            config: "points = 1".into(),
        })
        .expect("inspects");
        assert!(!ok);
        assert!(report.contains("init     failed"), "{report}");
        assert!(report.contains("points"), "{report}");
    }
}
