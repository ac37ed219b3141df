//! The `switchyard` command: run the router, or check a config and exit.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use switchyard::config::Config;
use switchyard::generation::Generation;
use switchyard::plugin::{ModuleCache, PluginEngine};
use switchyard::{Router, VERSION_STRING};

const USAGE: &str = "\
usage: switchyard --config FILE [--workers N]
       switchyard --check-config FILE
       switchyard --version

  --config FILE        run the router with this configuration
  --check-config FILE  validate FILE as a reload would (compile and init every plugin), then exit
  --workers N          override [server] workers
Logging: SWITCHYARD_LOG (tracing filter syntax, default `info`).";

enum Mode {
    Run {
        config: PathBuf,
        workers: Option<usize>,
    },
    Check(PathBuf),
}

fn parse_args() -> anyhow::Result<Option<Mode>> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    let mut check = None;
    let mut workers = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(args.next().context("--config needs a file")?))
            }
            "--check-config" | "-t" => {
                check = Some(PathBuf::from(
                    args.next().context("--check-config needs a file")?,
                ))
            }
            "--workers" => {
                let n = args.next().context("--workers needs a number")?;
                workers = Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--workers: `{n}` is not a positive number"))?,
                );
            }
            "--version" | "-V" => {
                println!("{VERSION_STRING}");
                return Ok(None);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    match (config, check) {
        (_, Some(file)) => Ok(Some(Mode::Check(file))),
        (Some(config), None) => Ok(Some(Mode::Run { config, workers })),
        (None, None) => bail!("no config given\n{USAGE}"),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Some(mode) = parse_args()? else {
        return Ok(());
    };
    match mode {
        Mode::Check(file) => {
            let config = Config::load(&file)?;
            let engine = PluginEngine::new()?;
            Generation::build(config, &engine, &ModuleCache::default(), 0, None)?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Mode::Run { config, workers } => {
            let mut config = Config::load(&config)?;
            if let Some(w) = workers {
                config.server.workers = w;
            }
            let router = Router::start(config)?;
            wait_for_termination(&router)?;
            tracing::info!("shutting down");
            router.shutdown();
            Ok(())
        }
    }
}

/// Runs until SIGINT or SIGTERM; SIGHUP reloads the config file.
fn wait_for_termination(router: &Router) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r,
                _ = term.recv() => return Ok(()),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    // Refusals are logged and counted by the reload itself.
                    let _ = router.reload();
                }
            }
        }
    })?;
    Ok(())
}
