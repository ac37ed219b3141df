//! Cost of one plugin `route` call through the real ABI: key copied into guest memory, epoch
//! deadline set, wasm call, plan word decoded and checked. One `get` per iteration, keys
//! cycling through 1024 of the form `user:<n>:profile`.
//!
//! - `plugin_route/null_forward`: a WAT plugin that forwards everything to child 0, so what is
//!   measured is the host's side of a call;
//! - `plugin_route/null_bundled`: the bundled `null` plugin, which answers a miss (a `Reply`
//!   plan, decoded into an owned reply) through the SDK's `Policy` glue;
//! - `plugin_route/ketama`: a full ketama decision, the bundled plugin over 3 servers (md5 of
//!   the key through the `md5` host function, then the continuum search);
//! - `plugin_route/prefix`: the bundled `prefix` plugin with 3 prefixes;
//! - `plugin_route/null_counter` and `null_histogram`: `null_forward` plus one `counter_add`
//!   (`histogram_record` of the key's length) per call: the difference is the cost of a plugin
//!   metric bump (ABI.md, "Plugin metrics");
//! - `native/md5_u32`: for reference, the native hash the ketama call is built around.
//!
//! `cargo bench -p switchyard --bench plugin_route` (about 20 s once built); `-- --quick` for a
//! rough pass.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::config::{
    DEFAULT_BREAKER_BACKOFF, DEFAULT_BREAKER_FAULTS, DEFAULT_BREAKER_MAX_BACKOFF,
    DEFAULT_CALL_TIMEOUT, DEFAULT_INIT_TIMEOUT, DEFAULT_MEMORY_LIMIT_BYTES, PluginSettings,
};
use switchyard::plugin::{
    ChildInfo, Decision, NodeContext, PluginEngine, PluginInstance, PluginModule, RouteInput,
    bundled,
};
use switchyard_sdk::abi::op;

/// A plugin that forwards everything to child 0: what is left is the host's side of a call.
const NULL_PLUGIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_key_buffer") (result i32) i32.const 1024)
  (func (export "switchyard_plan_buffer") (result i32) i32.const 4096)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 8192)
  (func (export "switchyard_init") (param i32 i32) (result i32) i32.const 0)
  (func (export "switchyard_route") (param i32 i32 i32 i64 i32 i32) (result i64) i64.const 1))"#;

/// [`NULL_PLUGIN`] that also bumps a metric it defined in `init` on every call: `$bump` is
/// `counter_add` or `histogram_record`, `kind` 1 (counter) or 2 (histogram).
fn bumping_plugin(import: &str, kind: u32) -> String {
    format!(
        r#"(module
  (import "switchyard" "metric_define" (func $define (param i32 i32 i32) (result i32)))
  (import "switchyard" "{import}" (func $bump (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 9000) "bumps")
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_key_buffer") (result i32) i32.const 1024)
  (func (export "switchyard_plan_buffer") (result i32) i32.const 4096)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 8192)
  (func (export "switchyard_init") (param i32 i32) (result i32)
    (i32.store (i32.const 9008) (call $define (i32.const {kind}) (i32.const 9000) (i32.const 5)))
    (i32.load (i32.const 9008)))
  (func (export "switchyard_route") (param i32 i32 i32 i64 i32 i32) (result i64)
    (call $bump (i32.load (i32.const 9008)) (i64.extend_i32_u (local.get 1)))
    i64.const 1))"#
    )
}

/// The `prefix` plugin's config: three prefixes over three children.
const PREFIX_CONFIG: &str =
    "default = \"c\"\n[prefixes]\n\"session:\" = \"a\"\n\"user:\" = \"b\"\n\"feed:\" = \"a\"\n";

const SERVERS: [&str; 3] = ["127.0.0.1:21211", "127.0.0.1:21212", "127.0.0.1:21213"];

fn settings() -> PluginSettings {
    PluginSettings {
        call_timeout: DEFAULT_CALL_TIMEOUT,
        init_timeout: DEFAULT_INIT_TIMEOUT,
        memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        rollback_faults: 0,
        breaker_faults: DEFAULT_BREAKER_FAULTS,
        breaker_backoff: DEFAULT_BREAKER_BACKOFF,
        breaker_max_backoff: DEFAULT_BREAKER_MAX_BACKOFF,
    }
}

/// An instance of `wasm` on a node with `children`, initialised with `config`.
fn instance(
    engine: &PluginEngine,
    plugin: &str,
    wasm: &[u8],
    children: &[&str],
    config: &str,
) -> PluginInstance {
    let module = PluginModule::compile(engine, plugin, wasm).expect("the plugin compiles");
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
        health: vec![None; children.len()],
        log_budget: Default::default(),
        log_level: switchyard_sdk::abi::log_level::DEBUG,
        module: plugin.to_string(),
        metrics: switchyard::plugin::PluginMetrics::new(1),
        budget: Default::default(),
        tenant: None,
        file_tenant: None,
    });
    PluginInstance::new(&module, ctx, &settings(), 1).expect("the plugin's init succeeds")
}

fn bundled_instance(
    engine: &PluginEngine,
    plugin: &str,
    children: &[&str],
    config: &str,
) -> PluginInstance {
    let wasm = bundled::get(plugin).expect("the plugin is bundled");
    instance(engine, plugin, wasm, children, config)
}

fn get(key: &[u8]) -> RouteInput<'_> {
    RouteInput {
        op: op::GET,
        key,
        flags: 0,
        exptime: 0,
        value_len: 0,
        listener: 0,
        identity: None,
    }
}

fn plugin_route(c: &mut Criterion) {
    let engine = PluginEngine::new().expect("engine");
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("user:{i}:profile").into_bytes())
        .collect();

    let wat = wat::parse_str(NULL_PLUGIN).expect("the null plugin's WAT parses");
    let counting = wat::parse_str(bumping_plugin("counter_add", 1)).expect("WAT");
    let recording = wat::parse_str(bumping_plugin("histogram_record", 2)).expect("WAT");
    let cases = [
        ("null_forward", instance(&engine, "null", &wat, &["a"], "")),
        (
            "null_counter",
            instance(&engine, "counter", &counting, &["a"], ""),
        ),
        (
            "null_histogram",
            instance(&engine, "histogram", &recording, &["a"], ""),
        ),
        (
            "null_bundled",
            bundled_instance(&engine, "null", &["a"], ""),
        ),
        ("ketama", bundled_instance(&engine, "ketama", &SERVERS, "")),
        (
            "prefix",
            bundled_instance(&engine, "prefix", &["a", "b", "c"], PREFIX_CONFIG),
        ),
    ];

    let mut group = c.benchmark_group("plugin_route");
    for (name, mut inst) in cases {
        let plan = inst.route(&get(&keys[0])).expect("route");
        let expected = match name {
            "null_forward" | "null_counter" | "null_histogram" => {
                matches!(plan, Decision::Forward(0))
            }
            "null_bundled" => matches!(plan, Decision::Reply(_)),
            "prefix" => matches!(plan, Decision::Forward(1)),
            _ => matches!(plan, Decision::Forward(n) if n < 3),
        };
        assert!(expected, "{name}: unexpected plan {plan:?}");
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % keys.len();
                inst.route(black_box(&get(&keys[next]))).expect("route")
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("native");
    let mut next = 0;
    group.bench_function("md5_u32", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            switchyard_sdk::hash::md5_u32(black_box(&keys[next]))
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = plugin_route
}
criterion_main!(benches);
