//! Time from a reload trigger to the new generation being published, for a config with ten
//! plugin nodes (one ketama pool under a chain of nine prefix routes): the config file is read,
//! parsed, built (modules from the content-hash cache), every node instantiated and `init`-ed,
//! and the generation stored (`reload/cached_modules`). Also the cold case, a first build
//! (`Control::start`) from the file, where every module is compiled (`reload/first_build`).
//! Prints, at the end, how many generations are still alive after all the reloads (old ones
//! must be freed once no worker holds them).
//!
//! `cargo bench -p switchyard --bench reload` (about 20 s once built); `-- --quick` for a rough
//! pass.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use switchyard::config::Config;
use switchyard::plugin::PluginEngine;
use switchyard::reload::Control;

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

/// Both cases, on the config file at `path`; returns the control that was reloaded.
fn reload(c: &mut Criterion, engine: &Arc<PluginEngine>, path: &Path) -> Control {
    let config = Config::load(path).expect("valid config");
    let control = Control::start(engine.clone(), config).expect("first build");

    let mut group = c.benchmark_group("reload");
    // Milliseconds per iteration: as many iterations in every sample, not a growing number.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.bench_function("cached_modules", |b| {
        b.iter(|| control.reload().expect("reload"));
    });
    // About 0.4 s a build: criterion's fewest samples, in a window that fits them.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("first_build", |b| {
        // Dropping a generation (its modules, instances, listeners) is not part of a build.
        b.iter_with_large_drop(|| {
            let config = Config::load(path).expect("valid config");
            Control::start(engine.clone(), config).expect("build")
        });
    });
    group.finish();
    control
}

fn main() {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ten-plugins.toml");
    std::fs::write(&path, ten_plugin_config()).expect("write config");
    let engine = Arc::new(PluginEngine::new().expect("engine"));

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let control = reload(&mut criterion, &engine, &path);
    criterion.final_summary();

    println!(
        "generations alive after the reloads: {}",
        control.generations_alive()
    );
    // A leftover temp dir is harmless; say so rather than fail the run.
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}
