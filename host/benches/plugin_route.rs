//! Cost of one plugin `route` call through the real ABI: key copied into guest memory, epoch
//! deadline set, wasm call, plan word decoded and checked.
//!
//! `cargo bench -p switchyard --bench plugin_route` prints the median over several runs of the
//! time per call for the bundled `ketama` (3 servers) and `prefix` (3 prefixes) plugins, and
//! for comparison the native hash the ketama call is built around.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use switchyard::config::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_INIT_TIMEOUT, DEFAULT_MEMORY_LIMIT_BYTES, PluginSettings,
};
use switchyard::plugin::{
    ChildInfo, NodeContext, PluginEngine, PluginInstance, PluginModule, RouteInput, bundled,
};

/// A plugin that forwards everything to child 0: what is left is the host's side of a call.
const NULL_PLUGIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_key_buffer") (result i32) i32.const 1024)
  (func (export "switchyard_plan_buffer") (result i32) i32.const 4096)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 8192)
  (func (export "switchyard_init") (param i32 i32) (result i32) i32.const 0)
  (func (export "switchyard_route") (param i32 i32 i32 i64 i32 i32) (result i64) i64.const 1))"#;

const CALLS: usize = 200_000;
const RUNS: usize = 7;

fn main() {
    let engine = PluginEngine::new().expect("engine");
    let settings = PluginSettings {
        call_timeout: DEFAULT_CALL_TIMEOUT,
        init_timeout: DEFAULT_INIT_TIMEOUT,
        memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        rollback_faults: 0,
    };
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("user:{i}:profile").into_bytes())
        .collect();

    let servers = ["127.0.0.1:21211", "127.0.0.1:21212", "127.0.0.1:21213"];
    let ketama = instance(&engine, &settings, "ketama", &servers, "");
    let prefix = instance(
        &engine,
        &settings,
        "prefix",
        &["a", "b", "c"],
        "default = \"c\"\n[prefixes]\n\"session:\" = \"a\"\n\"user:\" = \"b\"\n\"feed:\" = \"a\"\n",
    );

    let null = {
        let wasm = wat::parse_str(NULL_PLUGIN).expect("wat");
        let module = PluginModule::compile(&engine, "null", &wasm).expect("compile");
        let ctx = Arc::new(NodeContext {
            label: "bench.null".into(),
            children: vec![ChildInfo {
                name: "a".into(),
                weight: 1,
            }],
            config_toml: String::new(),
        });
        PluginInstance::new(&module, ctx, None, &settings, 1).expect("init")
    };

    for (name, mut inst) in [
        ("null (host overhead)", null),
        ("ketama", ketama),
        ("prefix", prefix),
    ] {
        let ns = median(|| {
            let start = Instant::now();
            for i in 0..CALLS {
                let key = &keys[i % keys.len()];
                let input = RouteInput {
                    op: 1,
                    key,
                    flags: 0,
                    exptime: 0,
                    value_len: 0,
                    listener: 0,
                };
                black_box(inst.route(black_box(&input)).expect("route"));
            }
            start.elapsed().as_nanos() as f64 / CALLS as f64
        });
        println!("plugin_route/{name}: {ns:.1} ns/call (median of {RUNS} runs of {CALLS})");
    }

    let ns = median(|| {
        let start = Instant::now();
        for i in 0..CALLS {
            black_box(switchyard_sdk::hash::md5_u32(black_box(
                &keys[i % keys.len()],
            )));
        }
        start.elapsed().as_nanos() as f64 / CALLS as f64
    });
    println!("native md5 of the key (reference): {ns:.1} ns");
}

fn instance(
    engine: &PluginEngine,
    settings: &PluginSettings,
    plugin: &str,
    children: &[&str],
    config: &str,
) -> PluginInstance {
    let module = PluginModule::compile(engine, plugin, bundled::get(plugin).expect("bundled"))
        .expect("compile");
    let ctx = Arc::new(NodeContext {
        label: format!("bench.{plugin}"),
        children: children
            .iter()
            .map(|c| ChildInfo {
                name: c.to_string(),
                weight: 1,
            })
            .collect(),
        config_toml: config.to_string(),
    });
    PluginInstance::new(&module, ctx, None, settings, 1).expect("init")
}

fn median(mut run: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..RUNS).map(|_| run()).collect();
    v.sort_by(f64::total_cmp);
    v[RUNS / 2]
}
