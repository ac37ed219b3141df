//! The `switchyard` command line: run the router, check a config and exit, show where requests
//! would go (`switchyard route ...`, `introspect/cli.rs`), or look at and replay a delete spool
//! (`switchyard spool ...`, `spool/cli.rs`). The binaries
//! (`switchyard`, and `switchyard-count-allocs` for the benchmarks) are this module's `main`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::Router;
use crate::config::{Config, MAX_WORKERS};
use crate::generation::Generation;
use crate::plugin::{ModuleCache, PluginEngine};
use anyhow::{Context, bail};

/// Every flag, in the order `--help` lists them: the parser and the help text both read this
/// table, so a flag cannot exist without its line.
const FLAGS: &[Flag] = &[
    Flag {
        action: Action::Config,
        long: "--config",
        short: Some("-c"),
        value: Some("FILE"),
        help: "run the router with this configuration (reloaded on change, SIGHUP or admin `reload`)",
    },
    Flag {
        action: Action::CheckConfig,
        long: "--check-config",
        short: Some("-t"),
        value: Some("FILE"),
        help: "validate FILE as a reload would (compile and init every plugin), then exit",
    },
    Flag {
        action: Action::Workers,
        long: "--workers",
        short: None,
        value: Some("N"),
        help: "worker threads, overriding [server] workers (default: number of cores)",
    },
    Flag {
        action: Action::LogFormat,
        long: "--log-format",
        short: None,
        value: Some("text|json"),
        help: "log lines as text (the default) or as one JSON object each, on standard error",
    },
    Flag {
        action: Action::LogLevel,
        long: "--log-level",
        short: None,
        value: Some("FILTER"),
        help: "what to log: a level (error, warn, info, debug, trace) or a tracing filter such as `info,switchyard::backend=debug`; overrides SWITCHYARD_LOG (default `info`)",
    },
    Flag {
        action: Action::ListPlugins,
        long: "--list-plugins",
        short: None,
        value: None,
        help: "print the bundled plugins a config can name with `plugin = \"NAME\"`, then exit",
    },
    Flag {
        action: Action::DescribeStats,
        long: "--describe-stats",
        short: None,
        value: None,
        help: "print every stat `stats` reports (group, name, kind, unit, meaning), then exit",
    },
    Flag {
        action: Action::Version,
        long: "--version",
        short: Some("-V"),
        value: None,
        help: "print the version and the plugin ABI version, then exit",
    },
    Flag {
        action: Action::Help,
        long: "--help",
        short: Some("-h"),
        value: None,
        help: "print this help, then exit",
    },
];

/// One command-line flag.
#[derive(Debug)]
struct Flag {
    action: Action,
    long: &'static str,
    short: Option<&'static str>,
    /// The name of the flag's argument, if it takes one.
    value: Option<&'static str>,
    help: &'static str,
}

/// What a flag does; matched exhaustively, so a flag in [`FLAGS`] cannot go unhandled.
#[derive(Debug, Clone, Copy)]
enum Action {
    Config,
    CheckConfig,
    Workers,
    LogFormat,
    LogLevel,
    ListPlugins,
    DescribeStats,
    Version,
    Help,
}

impl Flag {
    fn matches(&self, arg: &str) -> bool {
        arg == self.long || self.short == Some(arg)
    }
}

fn usage() -> String {
    let mut text = format!(
        "usage: switchyard --config FILE [--workers N]\n       switchyard --check-config FILE\n       {}\n       {}\n       {}\n       {}\n       {}\n       {}\n       {}\n       {}\n\n",
        crate::introspect::cli::USAGE,
        crate::diff::USAGE,
        crate::experiment::cli::USAGE,
        crate::tap::USAGE,
        crate::replay::USAGE,
        crate::plugin::cli::USAGE,
        crate::spool::cli::USAGE,
        crate::top::USAGE
    );
    let spelled: Vec<String> = FLAGS
        .iter()
        .map(|f| {
            let names = f
                .short
                .map_or(format!("    {}", f.long), |s| format!("{s}, {}", f.long));
            f.value.map_or(names.clone(), |v| format!("{names} {v}"))
        })
        .collect();
    let width = spelled.iter().map(String::len).max().unwrap_or(0);
    for (flag, spelled) in FLAGS.iter().zip(&spelled) {
        text.push_str(&format!("  {spelled:width$}  {}\n", flag.help));
    }
    text.push_str(
        "\nRoutes: `route` builds FILE as --check-config does (nothing bound or contacted) and\n\
         prints, for each KEY, where OP on listener N (default 0) would go: the servers, and the\n\
         path through the route tree, as `get __switchyard__.route(OP,KEY)` answers it.\n\
         \nDiff: `diff` builds both files the same way and dry-runs the same requests through\n\
         both (keys `key:0`... with --sample N, default 10000; or --keys FILE; or --trace FILE),\n\
         from listener 0, or --listener N, --route NAME or --tenant NAME, and prints the share\n\
         that would reach other servers and a from->to matrix by server. Its exit status is 1\n\
         when more than --max-moved PCT percent moved, 2 when the diff cannot be made.\n\
         \nExperiments ([experiments.NAME]): `experiment start` and `experiment stop` start or\n\
         stop one on a running router through its admin listener; `experiment report` saves\n\
         its report (numbers and charts) from the admin HTTP listener as an HTML file.\n\
         \nCapture: `tap` asks a running router's admin listener to write one in N client\n\
         requests (command lines, no values) to NAME beside its config file, for S seconds\n\
         (default 10); `replay` routes such a file through a configuration's route tree,\n\
         nothing sent, and prints each request's servers and the count per server; given a\n\
         running router (`--router HOST:PORT`) it sends it the requests and counts the replies.\n\
         \nPlugins: `plugin new` writes a standalone plugin crate (a hash, prefix or call policy\n\
         with tests); `plugin build` builds its module for wasm32 and inspects it; `plugin test`\n\
         prints where a module sends each of a list of keys; `plugin inspect` compiles and\n\
         vets a module as the router does, `init`s it with N children (default 3) and a\n\
         config table, and prints its size, SHA-256 (what a config's `sha256` pins),\n\
         imports, exports and how `init` went.\n\
         \nDelete spools ([pools.NAME] delete_spool): `spool show DIR` prints what each server's\n\
         spool holds; `spool replay DIR` replays it (only HOST:PORT's with --server, N deletes a\n\
         second with --rate, default 1000) and fails if deletes are left. A running router\n\
         replays its spools itself and holds them locked.\n\
         \nLogging: on standard error, as text or JSON (--log-format); --log-level, else\n\
         SWITCHYARD_LOG (tracing filter syntax), else `info`.\n\
         Configuration reference: configs/README.md.",
    );
    text
}

/// What `--version` prints: the router's version and the plugin ABI it loads.
fn version() -> String {
    format!(
        "switchyard {} (plugin ABI version {})",
        env!("CARGO_PKG_VERSION"),
        switchyard_sdk::abi::ABI_VERSION
    )
}

enum Mode {
    Run {
        config: PathBuf,
        workers: Option<usize>,
    },
    Check(PathBuf),
    Route(crate::introspect::cli::RouteCommand),
    Diff(crate::diff::DiffCommand),
    Tap(crate::tap::TapCommand),
    Experiment(crate::experiment::cli::ExperimentCommand),
    Replay(crate::replay::ReplayCommand),
    Spool(crate::spool::cli::SpoolCommand),
    Top(crate::top::TopOptions),
    Plugin(crate::plugin::cli::PluginCommand),
}

fn parse_args() -> anyhow::Result<Option<Mode>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("spool") {
        args.next();
        return Ok(Some(Mode::Spool(crate::spool::cli::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("top") {
        args.next();
        return Ok(Some(Mode::Top(crate::top::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("plugin") {
        args.next();
        return Ok(Some(Mode::Plugin(crate::plugin::cli::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("tap") {
        args.next();
        return Ok(Some(Mode::Tap(crate::tap::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("experiment") {
        args.next();
        return Ok(Some(Mode::Experiment(crate::experiment::cli::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("replay") {
        args.next();
        return Ok(Some(Mode::Replay(crate::replay::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("diff") {
        args.next();
        return Ok(Some(Mode::Diff(crate::diff::parse(args)?)));
    }
    if args.peek().map(String::as_str) == Some("route") {
        args.next();
        return Ok(Some(Mode::Route(crate::introspect::cli::parse(args)?)));
    }
    let mut config = None;
    let mut check = None;
    let mut workers = None;
    while let Some(arg) = args.next() {
        let Some(flag) = FLAGS.iter().find(|f| f.matches(&arg)) else {
            bail!("unknown argument `{arg}` (`switchyard --help` lists every flag)");
        };
        let mut value = || {
            args.next()
                .with_context(|| format!("{} needs {}", flag.long, flag.value.unwrap_or("a value")))
        };
        match flag.action {
            Action::Config => config = Some(PathBuf::from(value()?)),
            Action::CheckConfig => check = Some(PathBuf::from(value()?)),
            Action::Workers => {
                let n = value()?;
                workers = Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_WORKERS).contains(n))
                        .with_context(|| {
                            format!("--workers: `{n}` is not a number from 1 to {MAX_WORKERS}")
                        })?,
                );
            }
            // Read by `main` before anything runs (`logging`); taken here so they parse.
            Action::LogFormat | Action::LogLevel => {
                value()?;
            }
            Action::ListPlugins => {
                let names: Vec<&str> = crate::plugin::bundled::names().collect();
                out(&format!("{}\n", names.join("\n")));
                return Ok(None);
            }
            Action::DescribeStats => {
                out(&crate::stats::describe());
                return Ok(None);
            }
            Action::Version => {
                out(&format!("{}\n", version()));
                return Ok(None);
            }
            Action::Help => {
                out(&format!("{}\n", usage()));
                return Ok(None);
            }
        }
    }
    match (config, check) {
        (_, Some(file)) => Ok(Some(Mode::Check(file))),
        (Some(config), None) => Ok(Some(Mode::Run { config, workers })),
        (None, None) => bail!(
            "no config given: `switchyard --config FILE` runs the router (`switchyard --help` lists every flag)"
        ),
    }
}

/// Writes `text` to standard output, quietly stopping if the reader has gone (`switchyard
/// --help | head`): a closed pipe is not an error of ours.
pub(crate) fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs the command line of `std::env::args`.
pub fn main() -> ExitCode {
    if let Err(e) = logging() {
        eprintln!("switchyard: {e:#}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the log from `--log-format` and `--log-level` (else `SWITCHYARD_LOG`, else `info`)
/// before anything else runs, so that everything is logged the same way.
fn logging() -> anyhow::Result<()> {
    let mut format = "text".to_string();
    let mut level = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--log-format" => format = args.next().unwrap_or_default(),
            "--log-level" => level = args.next(),
            _ => {}
        }
    }
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(&level).with_context(|| {
            format!("--log-level: `{level}` is not a level or a tracing filter")
        })?,
        None => tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    // Colours only for a terminal: a log file or the journal gets plain text.
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format.as_str() {
        "text" => log.init(),
        "json" => log.json().with_current_span(false).init(),
        other => bail!("--log-format: `{other}` is neither `text` nor `json`"),
    }
    Ok(())
}

fn run() -> anyhow::Result<ExitCode> {
    let Some(mode) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
    match mode {
        // 1: more moved than --max-moved allows; 2: the diff could not be made.
        Mode::Diff(command) => Ok(match crate::diff::run(command) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("switchyard: {e:#}");
                ExitCode::from(2)
            }
        }),
        mode => run_mode(mode).map(|()| ExitCode::SUCCESS),
    }
}

fn run_mode(mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Check(file) => {
            let config = Config::load(&file)?;
            let engine = PluginEngine::new()?;
            Generation::build(config, &engine, &ModuleCache::default(), 0, None)?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Mode::Diff(_) => unreachable!("handled by run"),
        Mode::Route(command) => crate::introspect::cli::run(command),
        Mode::Tap(command) => crate::tap::run(&command),
        Mode::Experiment(command) => crate::experiment::cli::run(&command),
        Mode::Replay(command) => crate::replay::run(&command),
        Mode::Spool(command) => crate::spool::cli::run(command),
        Mode::Top(options) => crate::top::run(&options),
        Mode::Plugin(command) => crate::plugin::cli::run(&command),
        Mode::Run { config, workers } => {
            let mut config = Config::load(&config)?;
            if let Some(w) = workers {
                config.server.workers = w;
            }
            let soft = crate::server::open_file_limit();
            match crate::server::raise_open_file_limit() {
                Ok(files) if files > soft => {
                    tracing::info!(files, "open file limit raised from {soft} to {files}");
                }
                Ok(files) => tracing::info!(files, "open file limit {files} (its hard limit)"),
                Err(e) => {
                    tracing::warn!(error = %e, files = soft, "cannot raise the open file limit");
                }
            }
            let router = Router::start(config)?;
            serve(router)
        }
    }
}

/// Runs until SIGTERM or SIGINT, then drains ([`Router::drain`], `[server] drain_timeout_ms`);
/// a second SIGTERM or SIGINT during the drain exits at once, with status 1. SIGHUP reloads
/// the config file (not during a drain).
fn serve(router: Router) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let name = loop {
            tokio::select! {
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    // Refusals are logged and counted by the reload itself.
                    let _ = router.reload();
                }
            }
        };
        let timeout = router.generation().config.server.drain_timeout;
        // The drain logs its own line, with the connections open.
        tracing::debug!("{name}: draining; a second SIGTERM or SIGINT stops at once");
        // The drain blocks (it joins the workers): on a thread of its own, so that this one
        // still hears a second signal.
        let drain = tokio::task::spawn_blocking(move || router.drain(timeout));
        let name = tokio::select! {
            drained = drain => {
                drained?;
                return Ok(());
            }
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!("second {name} while draining: exiting now");
        std::process::exit(1)
    })
}
