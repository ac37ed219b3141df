//! `switchyard plugin`: writing a plugin outside this repository.
//!
//! - `new NAME [--template hash|prefix|call] [--dir DIR] [--sdk PATH | --sdk-git URL[#REV]]`:
//!   a standalone crate depending on the SDK by path or from git (its
//!   own workspace, the toolchain and wasm target pinned, a release profile for small modules,
//!   a policy with tests against the SDK's harness, a README and an example config).
//! - `build [DIR]`: `cargo build --release --target wasm32-unknown-unknown` there, then the
//!   module inspected as below, its path, size and SHA-256 printed.
//! - `test FILE.wasm|NAME [--children N] [--config TOML] [--op OP] [--summary] (--keys FILE |
//!   --trace FILE | KEY...)`: the module `init`ed as `inspect` does, then asked to route each
//!   key (one per line of FILE, `-` for standard input), or each request of a trace (`trace`:
//!   memcached command lines, each with its own operation, flags, exptime and value length):
//!   each decision printed, or with `--summary` the share of requests per child and per other
//!   decision; then the counters and histograms the plugin defined, if any. Nothing is sent
//!   anywhere; every child counts as up.
//! - `inspect FILE.wasm|NAME [--children N] [--config TOML]`: what a plugin module is before a
//!   config names it. The module is compiled and vetted as the router vets it (imports from the
//!   host only, every required export), then instantiated and `init`ed in the real runtime with
//!   `N` children (`child0`, `child1`, ..., weight 1) and the given config table; the report
//!   gives its size, SHA-256 (what a config's `sha256` pins), ABI version, imports, exports and
//!   how `init` went.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::{ChildInfo, NodeContext, PluginEngine, PluginInstance, PluginModule};
use crate::config::PluginSettings;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str =
    "switchyard plugin new NAME [--template hash|prefix|call] [--dir DIR] [--sdk PATH | --sdk-git URL[#REV]]
       switchyard plugin build [DIR]
       switchyard plugin test FILE.wasm|NAME [--children N] [--config TOML] [--op OP] [--summary] (--keys FILE | --trace FILE | KEY...)
       switchyard plugin inspect FILE.wasm|NAME [--children N] [--config TOML]";

/// A `switchyard plugin` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginCommand {
    /// `new`: scaffold a crate.
    New(NewCommand),
    /// `build`: build a crate's module and inspect it.
    Build(PathBuf),
    /// `inspect`: vet and `init` a module.
    Inspect(InspectCommand),
    /// `test`: route keys through a module.
    Test(TestCommand),
    /// `--help` anywhere: the usage.
    Help,
}

/// `switchyard plugin test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCommand {
    /// The module and how to `init` it.
    pub module: InspectCommand,
    /// The operation the keys are routed for.
    pub op: switchyard_sdk::Op,
    /// Keys given on the command line.
    pub keys: Vec<String>,
    /// A file of keys, one per line (`-`: standard input).
    pub keys_file: Option<PathBuf>,
    /// A trace of requests (`trace`), each routed with its own operation.
    pub trace: Option<PathBuf>,
    /// Print the share of keys per decision instead of each decision.
    pub summary: bool,
}

/// `switchyard plugin new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// The crate's name (`my-hash`).
    pub name: String,
    /// Which starting policy.
    pub template: Template,
    /// Where the crate goes (default `./NAME`).
    pub dir: PathBuf,
    /// The `switchyard-sdk` crate it depends on (default: the one this router was built with).
    pub sdk: SdkSource,
}

/// Where a new plugin crate gets `switchyard-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A directory holding the crate (`--sdk PATH`).
    Path(PathBuf),
    /// A git repository holding it (`--sdk-git URL[#REV]`), at a commit, tag or branch.
    Git {
        /// The repository's URL.
        url: String,
        /// What to check out (`rev`); the default branch without one.
        rev: Option<String>,
    },
}

impl SdkSource {
    /// The dependency's table in `Cargo.toml`, and how it is described to the author.
    fn dependency(&self) -> anyhow::Result<(String, String)> {
        match self {
            SdkSource::Path(path) => {
                let sdk = std::fs::canonicalize(path).with_context(|| {
                    format!(
                        "plugin new: no switchyard-sdk at {} (--sdk PATH names one)",
                        path.display()
                    )
                })?;
                let shown = sdk.display().to_string();
                Ok((format!("{{ path = {shown:?} }}"), shown))
            }
            SdkSource::Git { url, rev: None } => Ok((format!("{{ git = {url:?} }}"), url.clone())),
            SdkSource::Git {
                url,
                rev: Some(rev),
            } => Ok((
                format!("{{ git = {url:?}, rev = {rev:?} }}"),
                format!("{url} at {rev}"),
            )),
        }
    }
}

/// The starting policies of `plugin new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A consistent hash over the children (the SDK's ketama ring).
    Hash,
    /// Keys by prefix, with a default child.
    Prefix,
    /// A `call` to the first child and, on a miss or error, the second (`on_reply`).
    Call,
}

impl Template {
    fn parse(name: &str) -> Option<Template> {
        match name {
            "hash" => Some(Template::Hash),
            "prefix" => Some(Template::Prefix),
            "call" => Some(Template::Call),
            _ => None,
        }
    }

    /// The policy's source and the example config's node table (children and config).
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Template::Hash => (
                include_str!("templates/hash.rs"),
                "children = [\"a\", \"b\"]\nconfig = { eject = false }\n",
            ),
            Template::Prefix => (
                include_str!("templates/prefix.rs"),
                "children = [\"a\", \"b\"]\nconfig = { prefixes = { \"user:\" = \"a\" }, default = \"b\" }\n",
            ),
            Template::Call => (
                include_str!("templates/call.rs"),
                "children = [\"a\", \"b\"]\nconfig = { retry_on = [\"miss\", \"server_error\"] }\n",
            ),
        }
    }
}

/// `switchyard plugin inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectCommand {
    /// A `.wasm` file, or the name of a bundled plugin.
    pub module: String,
    /// Children to `init` the plugin with.
    pub children: u32,
    /// The `config` table to `init` it with, as TOML text.
    pub config: String,
}

/// Parses what follows `switchyard plugin`.
pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<PluginCommand> {
    let usage = || format!("usage: {USAGE}");
    let args: Vec<String> = args.collect();
    if args.iter().any(|a| a == "--help" || a == "-h") || args.first().is_some_and(|a| a == "help")
    {
        return Ok(PluginCommand::Help);
    }
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("inspect") => parse_inspect(args).map(PluginCommand::Inspect),
        Some("test") => parse_test(args).map(PluginCommand::Test),
        Some("new") => parse_new(args).map(PluginCommand::New),
        Some("build") => {
            let dir = args
                .next()
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            if let Some(extra) = args.next() {
                bail!("plugin build: unexpected `{extra}`; {}", usage());
            }
            Ok(PluginCommand::Build(dir))
        }
        Some(other) => bail!("plugin: no subcommand `{other}`; {}", usage()),
        None => bail!("plugin needs a subcommand; {}", usage()),
    }
}

fn parse_new(mut args: impl Iterator<Item = String>) -> anyhow::Result<NewCommand> {
    let usage = || format!("usage: {USAGE}");
    let (mut name, mut template, mut dir, mut sdk) = (None, Template::Hash, None, None);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("plugin new: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--template" => {
                let text = value()?;
                template = Template::parse(&text).with_context(|| {
                    format!("--template: `{text}` is none of hash, prefix, call")
                })?;
            }
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--sdk" => sdk = Some(SdkSource::Path(PathBuf::from(value()?))),
            "--sdk-git" => {
                let text = value()?;
                let (url, rev) = match text.split_once('#') {
                    Some((url, rev)) => (url.to_string(), Some(rev.to_string())),
                    None => (text, None),
                };
                if url.is_empty() || rev.as_deref() == Some("") {
                    bail!("--sdk-git: `{url}` needs a URL, and a revision after `#` if any");
                }
                sdk = Some(SdkSource::Git { url, rev });
            }
            flag if flag.starts_with('-') => {
                bail!("plugin new: unknown flag `{flag}`; {}", usage())
            }
            _ if name.is_none() => name = Some(arg),
            _ => bail!("plugin new: one name; {}", usage()),
        }
    }
    let name = name.with_context(|| format!("plugin new needs a NAME; {}", usage()))?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= crate::config::MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "plugin new: `{name}` is not a crate name this command makes: up to {} lowercase \
             letters, digits, `-` and `_`, starting with a letter (its starter config names a \
             route after it)",
            crate::config::MAX_NAME_BYTES
        );
    }
    Ok(NewCommand {
        dir: dir.unwrap_or_else(|| PathBuf::from(&name)),
        sdk: sdk.unwrap_or_else(|| {
            SdkSource::Path(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../sdk"
            )))
        }),
        name,
        template,
    })
}

fn parse_test(args: impl Iterator<Item = String>) -> anyhow::Result<TestCommand> {
    let usage = || format!("usage: {USAGE}");
    // `test`'s own flags; the module and `--children`/`--config` are `inspect`'s, and every
    // word after the module is a key.
    let (mut op, mut keys_file, mut summary) = (switchyard_sdk::Op::Get, None, false);
    let mut trace = None;
    let (mut inspect, mut module, mut keys) = (Vec::new(), None, Vec::new());
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("plugin test: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--op" => {
                let name = value()?;
                op = crate::introspect::op_named(&name).with_context(|| {
                    format!(
                        "plugin test: unknown operation `{name}` (one of {})",
                        crate::introspect::op_names().join(" ")
                    )
                })?;
            }
            "--keys" => keys_file = Some(PathBuf::from(value()?)),
            "--trace" => trace = Some(PathBuf::from(value()?)),
            "--summary" => summary = true,
            "--children" | "--config" => {
                let v = value()?;
                inspect.extend([arg, v]);
            }
            flag if flag.starts_with('-') => {
                bail!("plugin test: unknown flag `{flag}`; {}", usage())
            }
            _ if module.is_none() => module = Some(arg),
            _ => keys.push(arg),
        }
    }
    let module = parse_inspect(module.into_iter().chain(inspect))?;
    let sources = usize::from(!keys.is_empty())
        + usize::from(keys_file.is_some())
        + usize::from(trace.is_some());
    if sources != 1 {
        bail!(
            "plugin test needs one of --keys FILE, --trace FILE or KEY...; {}",
            usage()
        );
    }
    Ok(TestCommand {
        module,
        op,
        keys,
        keys_file,
        trace,
        summary,
    })
}

fn parse_inspect(mut args: impl Iterator<Item = String>) -> anyhow::Result<InspectCommand> {
    let usage = || format!("usage: {USAGE}");
    let mut command = InspectCommand {
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

/// Runs the command. `inspect` and `build` print their report, and fail when the router
/// would refuse the module.
pub fn run(command: &PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect(command) => {
            let (report, ok) = inspect(command)?;
            print!("{report}");
            if !ok {
                bail!("{}: the router would refuse this plugin", command.module);
            }
            Ok(())
        }
        PluginCommand::New(command) => scaffold(command),
        PluginCommand::Test(command) => {
            print!("{}", test(command)?);
            Ok(())
        }
        PluginCommand::Build(dir) => build(dir),
        PluginCommand::Help => {
            println!("usage: {USAGE}");
            Ok(())
        }
    }
}

/// `plugin new`: writes the crate.
fn scaffold(command: &NewCommand) -> anyhow::Result<()> {
    let dir = &command.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("plugin new: {} exists and is not empty", dir.display());
    }
    let (sdk, sdk_shown) = command.sdk.dependency()?;
    let name = &command.name;
    let lib = name.replace('-', "_");
    let (source, node) = command.template.source();
    let files: [(&str, String); 6] = [
        (
            "Cargo.toml",
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
                 [lib]\n# cdylib: the .wasm module; rlib: the native tests against the SDK's harness.\n\
                 crate-type = [\"cdylib\", \"rlib\"]\n\n\
                 [dependencies]\nswitchyard-sdk = {sdk}\n\
                 serde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
                 # Small, fast modules: a plugin runs on every request, and a panic is a trap anyway.\n\
                 [profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\npanic = \"abort\"\n\
                 strip = true\ndebug = false\n\n\
                 # A crate of its own, even inside another workspace.\n[workspace]\n",
            ),
        ),
        (
            "rust-toolchain.toml",
            include_str!("../../../rust-toolchain.toml").to_string(),
        ),
        ("src/lib.rs", source.to_string()),
        (".gitignore", "/target\n/Cargo.lock\n".to_string()),
        (
            "example.toml",
            format!(
                "# Switchyard with this plugin as the listener's route over two pools.\n\
                 # Build it first: switchyard plugin build\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:11311\"\nroute = \"{name}\"\n\n\
                 [routes.{name}]\nplugin = \"target/wasm32-unknown-unknown/release/{lib}.wasm\"\n{node}\n\
                 [pools.a]\nservers = [\"127.0.0.1:21211\"]\n\n[pools.b]\nservers = [\"127.0.0.1:21212\"]\n"
            ),
        ),
        (
            "README.md",
            format!(
                "# {name}\n\nA Switchyard routing plugin.\n\n\
                 - `cargo test`: the policy runs natively against the SDK's test harness.\n\
                 - `switchyard plugin build`: builds `target/wasm32-unknown-unknown/release/{lib}.wasm`, \
                 vets it as the router does, `init`s it, and prints its size and SHA-256.\n\
                 - `switchyard --config example.toml`: a router with it as the listener's route \
                 (memcached on 127.0.0.1:21211 and 21212).\n\
                 - Ship it with its SHA-256 pinned: `sha256 = \"...\"` beside `plugin` in \
                 `[routes.{name}]`; another build of the file is then refused.\n\n\
                 The SDK's guide (`sdk/GUIDE.md` in Switchyard's repository, the `guide` module of \
                 `cargo doc -p switchyard-sdk --open`) walks through every plan, testing, \
                 metrics, building and deploying.\n"
            ),
        ),
    ];
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for (file, text) in &files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created {} ({:?} template, switchyard-sdk at {})\nnext: cd {} && cargo test && switchyard plugin build",
        dir.display(),
        command.template,
        sdk_shown,
        dir.display()
    );
    Ok(())
}

/// `plugin build`: the crate's release module for wasm32, then inspected.
fn build(dir: &std::path::Path) -> anyhow::Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("plugin build: cannot read {}", manifest.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("plugin build: {} is not TOML", manifest.display()))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .with_context(|| format!("plugin build: {} has no package name", manifest.display()))?;
    // Run in the crate's directory, so that rustup takes the toolchain its
    // `rust-toolchain.toml` pins wherever the command is run from.
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .status()
        .context("plugin build: cannot run cargo")?;
    if !status.success() {
        bail!("plugin build: cargo build failed ({status})");
    }
    // Cargo ran in `dir`: a relative target directory is relative to it.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let target = if target.is_relative() {
        dir.join(target)
    } else {
        target
    };
    let wasm = target
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    println!("module   {}", wasm.display());
    run(&PluginCommand::Inspect(InspectCommand {
        module: wasm.display().to_string(),
        children: 3,
        config: String::new(),
    }))
}

/// Reads `file`, or standard input for `-`.
pub(crate) fn read_input(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("cannot read standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

/// `plugin test`: every key or traced request routed by the module, as decisions or a
/// summary of them, then the plugin's metrics.
pub fn test(command: &TestCommand) -> anyhow::Result<String> {
    // (what is printed for the request, the request as the plugin gets it)
    let mut requests: Vec<(String, crate::trace::TraceRequest)> = Vec::new();
    let keyed = |key: String| {
        let request = crate::trace::TraceRequest {
            line: 0,
            op: command.op,
            key: key.clone().into_bytes(),
            flags: 0,
            exptime: 0,
            value_len: 0,
        };
        (key, request)
    };
    requests.extend(command.keys.iter().cloned().map(keyed));
    if let Some(file) = &command.keys_file {
        let text = String::from_utf8_lossy(&read_input(file)?).into_owned();
        let keys = text.lines().filter(|l| !l.is_empty()).map(str::to_string);
        requests.extend(keys.map(keyed));
    }
    if let Some(file) = &command.trace {
        let trace = crate::trace::parse(&file.display().to_string(), &read_input(file)?)?;
        requests.extend(trace.requests.into_iter().map(|r| {
            let shown = format!(
                "{}:{} {}",
                r.line,
                r.op.name().unwrap_or("?"),
                String::from_utf8_lossy(&r.key)
            );
            (shown, r)
        }));
    }
    let (mut instance, node) = instantiate(&command.module)?;
    let names: Vec<&str> = node.children.iter().map(|c| c.name.as_str()).collect();
    let mut out = String::new();
    let mut tally: std::collections::BTreeMap<String, u64> = Default::default();
    for (shown, request) in &requests {
        let input = super::RouteInput {
            op: request.op.code(),
            key: &request.key,
            flags: request.flags,
            exptime: request.exptime,
            value_len: request.value_len,
            listener: 0,
            identity: None,
        };
        let decision = match instance.route(&input) {
            Ok(super::Decision::Forward(child)) => format!(
                "forward {}",
                names.get(child as usize).copied().unwrap_or("?")
            ),
            Ok(other) => format!("{other:?}"),
            Err(fault) => format!("fault: {fault}"),
        };
        if command.summary {
            *tally.entry(decision).or_default() += 1;
        } else {
            let _ = writeln!(out, "{shown}\t{decision}");
        }
    }
    if command.summary {
        let total = requests.len().max(1) as f64;
        for (decision, n) in &tally {
            let _ = writeln!(out, "{n}\t{:.1}%\t{decision}", 100.0 * *n as f64 / total);
        }
    }
    let metrics = node.metrics.snapshot();
    for (name, value) in &metrics.counters {
        let _ = writeln!(out, "counter\t{name}\t{value}");
    }
    for (name, h) in &metrics.histograms {
        let _ = writeln!(
            out,
            "histogram\t{name}\tcount {} sum {} mean {} p50 {} p99 {}",
            h.count(),
            h.sum,
            h.mean_us(),
            h.quantile_us(0.5),
            h.quantile_us(0.99)
        );
    }
    Ok(out)
}

/// A module's instance, `init`ed as `command` says, and the node it serves (its children,
/// its metrics).
fn instantiate(command: &InspectCommand) -> anyhow::Result<(PluginInstance, Arc<NodeContext>)> {
    let bytes = module_bytes(&command.module)?;
    let engine = PluginEngine::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let module = PluginModule::compile(&engine, &command.module, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", command.module, e.message))?;
    let node = node_context(command);
    let instance = PluginInstance::new(&module, node.clone(), &default_settings(), 1)
        .map_err(|e| anyhow::anyhow!("{}: {}", command.module, e.message))?;
    Ok((instance, node))
}

/// A bundled plugin's bytes, or a file's.
fn module_bytes(module: &str) -> anyhow::Result<Vec<u8>> {
    match super::bundled::get(module) {
        Some(bytes) if !module.contains('/') && !module.ends_with(".wasm") => Ok(bytes.to_vec()),
        _ => std::fs::read(module).with_context(|| format!("cannot read {module}")),
    }
}

/// The node a module is tried as: `children` children named `child0`, ... of weight 1, every
/// one up, and the config table.
fn node_context(command: &InspectCommand) -> Arc<NodeContext> {
    Arc::new(NodeContext {
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
        metrics: super::PluginMetrics::new(1),
        budget: Default::default(),
        tenant: None,
        file_tenant: None,
        module: command.module.clone(),
    })
}

/// The default sandbox budgets (`[plugins]` with nothing set).
pub(crate) fn default_settings() -> PluginSettings {
    PluginSettings {
        call_timeout: crate::config::DEFAULT_CALL_TIMEOUT,
        init_timeout: crate::config::DEFAULT_INIT_TIMEOUT,
        memory_limit_bytes: crate::config::DEFAULT_MEMORY_LIMIT_BYTES,
        rollback_faults: crate::config::DEFAULT_ROLLBACK_FAULTS,
        breaker_faults: crate::config::DEFAULT_BREAKER_FAULTS,
        breaker_backoff: crate::config::DEFAULT_BREAKER_BACKOFF,
        breaker_max_backoff: crate::config::DEFAULT_BREAKER_MAX_BACKOFF,
    }
}

/// The report, and whether the module passed (vetted, right ABI version, `init` succeeded).
pub fn inspect(command: &InspectCommand) -> anyhow::Result<(String, bool)> {
    let bytes = module_bytes(&command.module)?;
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
    let node = node_context(command);
    let settings = default_settings();
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
            PluginCommand::Inspect(InspectCommand {
                module: "plugins/x.wasm".into(),
                children: 5,
                config: String::new(),
            })
        );
        let PluginCommand::New(new) = parse(args("new my-hash --template call")).expect("new")
        else {
            panic!("not new");
        };
        assert_eq!(
            (new.name.as_str(), new.template),
            ("my-hash", Template::Call)
        );
        assert_eq!(new.dir, PathBuf::from("my-hash"));
        let PluginCommand::New(new) =
            parse(args("new x --sdk-git https://example.invalid/s.git#v1")).expect("new")
        else {
            panic!("not new");
        };
        assert_eq!(
            new.sdk,
            SdkSource::Git {
                url: "https://example.invalid/s.git".into(),
                rev: Some("v1".into())
            }
        );
        assert_eq!(
            new.sdk.dependency().expect("a git dependency").0,
            "{ git = \"https://example.invalid/s.git\", rev = \"v1\" }"
        );
        assert!(parse(args("new x --sdk-git #v1")).is_err());
        assert!(parse(args("new x --sdk-git https://e.invalid/s.git#")).is_err());
        assert!(parse(args("new My/Hash")).is_err());
        assert!(parse(args("new x --template ring")).is_err());
        assert_eq!(
            parse(args("build plugins/x")).expect("build"),
            PluginCommand::Build(PathBuf::from("plugins/x"))
        );
        assert!(parse(args("inspect")).is_err());
        assert!(parse(args("ship x")).is_err());
        assert!(parse(args("inspect a.wasm --children 0")).is_err());
        assert!(parse(args("inspect a.wasm b.wasm")).is_err());
        for help in [
            "--help",
            "help",
            "new --help",
            "build -h",
            "test x.wasm --help",
        ] {
            assert_eq!(
                parse(args(help)).expect(help),
                PluginCommand::Help,
                "{help}"
            );
        }
    }

    #[test]
    fn test_routes_each_key_and_sums_them_up() {
        let PluginCommand::Test(command) = parse(args(
            "test prefix --children 2 --config default=\"child1\" user:1 other",
        ))
        .expect("parses") else {
            panic!("not test");
        };
        assert_eq!(command.keys, ["user:1", "other"]);
        let command = TestCommand {
            module: InspectCommand {
                module: "prefix".into(),
                children: 2,
                config: "prefixes = { \"user:\" = \"child0\" }\ndefault = \"child1\"".into(),
            },
            ..command
        };
        let out = test(&command).expect("routes");
        assert_eq!(
            out,
            "user:1\tforward child0\nother\tforward child1\n\
             counter\tdefaulted\t1\ncounter\tunrouted\t0\n"
        );

        let keys: Vec<String> = (0..3000).map(|i| format!("key:{i}")).collect();
        let summary = test(&TestCommand {
            module: InspectCommand {
                module: "ketama".into(),
                children: 3,
                config: String::new(),
            },
            op: switchyard_sdk::Op::Get,
            keys,
            keys_file: None,
            trace: None,
            summary: true,
        })
        .expect("routes");
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines.len(), 3, "{summary}");
        for line in lines {
            let n: u64 = line
                .split('\t')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a count");
            assert!((700..1300).contains(&n), "{summary}");
        }
        assert!(parse(args("test ketama")).is_err(), "no keys");
        assert!(
            parse(args("test ketama --trace t k1")).is_err(),
            "keys and a trace"
        );
    }

    #[test]
    fn a_trace_routes_each_request_with_its_own_operation_then_the_metrics_follow() {
        let dir = std::env::temp_dir().join(format!("switchyard-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let trace = dir.join("t.trace");
        std::fs::write(&trace, "get a user:2\nset user:1 0 0 10\nstats\ndelete b\n")
            .expect("write the trace");
        let command = parse(
            [
                "test",
                "prefix",
                "--children",
                "2",
                "--config",
                "prefixes = { \"user:\" = \"child0\" }\ndefault = \"child1\"",
                "--trace",
            ]
            .into_iter()
            .map(str::to_string)
            .chain([trace.display().to_string()]),
        )
        .expect("parses");
        let PluginCommand::Test(command) = command else {
            panic!("not test");
        };
        let out = test(&command).expect("routes");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            out,
            "1:get a\tforward child1\n1:get user:2\tforward child0\n\
             2:set user:1\tforward child0\n4:delete b\tforward child1\n\
             counter\tdefaulted\t2\ncounter\tunrouted\t0\n"
        );
    }

    #[test]
    fn a_bundled_plugin_inspects_clean() {
        let (report, ok) = inspect(&InspectCommand {
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
        let (report, ok) = inspect(&InspectCommand {
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
