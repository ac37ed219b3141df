//! Time from a reload trigger to the new generation being published, for a config with ten
//! plugin nodes (one ketama pool under a chain of nine prefix routes): the config file is read,
//! parsed, built (modules from the content-hash cache), every node instantiated and `init`-ed,
//! and the generation stored. Also the cold case, where every module is compiled.
//!
//! `cargo bench -p switchyard --bench reload` prints the median of 20 reloads of each kind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::config::Config;
use switchyard::plugin::PluginEngine;
use switchyard::reload::Control;

const RELOADS: usize = 20;

fn main() {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ten-plugins.toml");
    std::fs::write(&path, ten_plugin_config()).expect("write config");

    let engine = Arc::new(PluginEngine::new().expect("engine"));
    let config = Config::load(&path).expect("valid config");
    let control = Control::start(engine.clone(), config).expect("first build");

    let warm = median((0..RELOADS).map(|_| {
        let started = Instant::now();
        control.reload().expect("reload");
        started.elapsed()
    }));
    println!("reload, 10 plugin nodes, modules cached: median {warm:?} of {RELOADS}");

    let cold = median((0..RELOADS).map(|_| {
        let started = Instant::now();
        let config = Config::load(&path).expect("valid config");
        Control::start(engine.clone(), config).expect("build");
        started.elapsed()
    }));
    println!("first build, 10 plugin nodes, every module compiled: median {cold:?} of {RELOADS}");
    println!(
        "generations alive after the reloads: {}",
        control.generations_alive()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn ten_plugin_config() -> String {
    let mut text = String::from(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r0\"\n\n[pools.main]\nservers = [\"127.0.0.1:21211\", \"127.0.0.1:21212\", \"127.0.0.1:21213\"]\n",
    );
    for i in 0..9 {
        let next = if i == 8 {
            "main".to_string()
        } else {
            format!("r{}", i + 1)
        };
        text.push_str(&format!(
            "\n[routes.r{i}]\nplugin = \"prefix\"\nchildren = [\"{next}\"]\nconfig = {{ default = \"{next}\", prefixes = {{ \"p{i}:\" = \"{next}\" }} }}\n"
        ));
    }
    text
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = samples.collect();
    v.sort();
    v[v.len() / 2]
}
