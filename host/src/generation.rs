//! A generation: one configuration, built and validated into a route tree with compiled
//! plugins. Immutable and shared by every worker; reloading builds a new one and publishes it
//! with a single atomic store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::backend::{DestinationSpec, Health, HealthPolicy};
use crate::config::{Config, OnFault, PluginSettings, PluginSource};
use crate::plugin::{
    ChildInfo, ModuleCache, NodeContext, PluginEngine, PluginError, PluginInstance, PluginModule,
    bundled,
};

/// Compiled plugins by where they came from.
pub type Modules = HashMap<PluginSource, Arc<PluginModule>>;

/// Where a request goes next: a route node (a plugin) or a backend server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A route or pool node, by index into [`Generation::nodes`].
    Node(usize),
    /// A server, by index into [`Generation::destinations`], with the request timeout of the
    /// pool that reached it.
    Server {
        /// Destination index.
        dest: usize,
        /// Request timeout.
        timeout: Duration,
    },
}

/// A node of the route tree: a plugin instance's blueprint and its children.
#[derive(Debug)]
pub struct Node {
    /// What the plugin sees: label, children's names and weights, config.
    pub context: Arc<NodeContext>,
    /// The compiled plugin.
    pub module: Arc<PluginModule>,
    /// Children in index order.
    pub children: Vec<Target>,
    /// What a request gets when the plugin cannot route it.
    pub on_fault: OnFault,
    /// Limits the node's fault lines in the log.
    pub(crate) fault_log: crate::route::FaultLog,
    /// Calls, faults, call time and memory of the node's plugin (`stats plugins`), carried
    /// across a reload that leaves the node as it was ([`Node::carry`]).
    pub(crate) stats: Arc<crate::stats::NodeStats>,
    /// The node's faults in `stats` when this generation was published (`Control::store`):
    /// its faults since are this generation's (what a partial rollback goes by).
    pub(crate) faults_before: u64,
}

impl Node {
    /// A node of a generation being built, its numbers at zero for `workers` workers.
    fn new(
        context: NodeContext,
        module: Arc<PluginModule>,
        children: Vec<Target>,
        on_fault: OnFault,
        workers: usize,
    ) -> Node {
        Node {
            context: Arc::new(context),
            module,
            children,
            on_fault,
            fault_log: Default::default(),
            stats: Arc::new(crate::stats::NodeStats::new(workers)),
            faults_before: 0,
        }
    }

    /// This node with the context (plugin metrics, log budget) and stats of the previous
    /// generation's node of its label when that is the same node: the same module, config,
    /// children (the same servers, for a pool), budget, log level, fault policy and tenant,
    /// under the same `[plugins]` call timeout and memory cap (`settings`: an instance keeps
    /// those it was made with).
    /// So a reload that leaves a node as it was (another tenant's file changing, say)
    /// leaves its numbers as they were, and each worker keeps its instance of it (the slot
    /// is shared: `worker::LocalGeneration::new`); instances are made for it all the same,
    /// for a worker that had none and for a rollback kept ready.
    fn carry(mut self, previous: Option<&Generation>, settings: &PluginSettings) -> Node {
        let Some(old) = previous
            .filter(|p| {
                p.config.plugins.call_timeout == settings.call_timeout
                    && p.config.plugins.memory_limit_bytes == settings.memory_limit_bytes
            })
            .and_then(|p| {
                p.nodes
                    .iter()
                    .find(|o| o.context.label == self.context.label)
            })
        else {
            return self;
        };
        let (a, b) = (&*old.context, &*self.context);
        let same_health = a.health.len() == b.health.len()
            && a.health.iter().zip(&b.health).all(|pair| match pair {
                (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                (None, None) => true,
                _ => false,
            });
        let same = same_health
            && a.module == b.module
            && a.config_toml == b.config_toml
            && a.children.len() == b.children.len()
            && a.children
                .iter()
                .zip(&b.children)
                .all(|(x, y)| x.name == y.name && x.weight == y.weight)
            && a.log_level == b.log_level
            && a.budget == b.budget
            && a.tenant == b.tenant
            && a.file_tenant == b.file_tenant
            && old.on_fault == self.on_fault
            && old.children.len() == self.children.len()
            && old
                .children
                .iter()
                .zip(&self.children)
                .all(|pair| match pair {
                    (Target::Server { timeout: x, .. }, Target::Server { timeout: y, .. }) => {
                        x == y
                    }
                    (Target::Node(_), Target::Node(_)) => true,
                    _ => false,
                });
        if same {
            self.context = old.context.clone();
            self.stats = old.stats.clone();
        }
        self
    }
}

/// One built configuration.
#[derive(Debug)]
pub struct Generation {
    /// Increases by one with every published generation.
    pub number: u64,
    /// When it was built.
    pub loaded_at: SystemTime,
    /// The configuration it was built from.
    pub config: Config,
    /// Route and pool nodes.
    pub nodes: Vec<Node>,
    /// Backend servers, deduplicated by address.
    pub destinations: Vec<DestinationSpec>,
    /// The root of each listener, in config order: `None` for one whose connections are
    /// tenants' (each tenant has its own root).
    pub roots: Vec<Option<Target>>,
    /// The tenants, in name order.
    pub tenants: Vec<Arc<crate::tenant::Tenant>>,
    /// The users and passwords of `[auth]`, read when this generation was built.
    pub credentials: Option<crate::tenant::Credentials>,
    /// The compiled plugins, by source.
    pub modules: Modules,
    /// The bound listening sockets, in config order (bound by [`crate::reload::Control`], not
    /// by `build`, so that checking a config never touches a port).
    pub sockets: Vec<Arc<std::net::TcpListener>>,
    /// Where each socket actually listens (with port 0 resolved), in config order.
    pub listen_addrs: Vec<SocketAddr>,
    /// Each listener's TLS, in config order (`None`: plaintext), its files read when this
    /// generation was built: a connection accepted on it is served with what is here then.
    pub acceptors: Vec<Option<crate::tls::Acceptor>>,
    /// The delete spool of each destination (by index) that has one: given when the
    /// generation is about to be published (`spool::Spools::attach`), like its sockets, so
    /// that checking a config never opens one. Empty when no pool has `delete_spool`.
    pub(crate) spools: Vec<Option<Arc<crate::spool::ServerSpool>>>,
    /// Plugin faults (traps, timeouts, invalid plans) while this generation served: what a
    /// crash-looping plugin is rolled back on.
    pub faults: crate::stats::Counter,
    /// Its experiments (`[experiments.NAME]`).
    pub experiments: Vec<crate::experiment::Experiment>,
    /// Nodes only experiments reach (a candidate and what only it reaches), by node index:
    /// their faults do not count towards the rollback.
    pub candidate_only: Vec<bool>,
    /// The watcher, told when the faults reach `[plugins] rollback_faults` so that it rolls
    /// back at once rather than at its next look (set when the generation is published).
    pub(crate) alarm: std::sync::OnceLock<std::sync::mpsc::Sender<crate::reload::WatchSignal>>,
    /// The reload control that published it, to roll back through at the fault itself.
    pub(crate) control: std::sync::OnceLock<std::sync::Weak<crate::reload::Control>>,
    /// Each worker's plugin instances, one per node, until the worker takes them.
    prepared: Vec<std::sync::Mutex<Vec<Prepared>>>,
}

/// An instance made when a generation was built, with how long it took to make.
type Prepared = (PluginInstance, Duration);

/// Why a configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A certificate, key or CA bundle a `tls` table names cannot be used.
    #[error("{file}:{line}: {problem}")]
    Tls {
        /// The config file.
        file: String,
        /// Line of the `tls` table.
        line: usize,
        /// Which file, and why.
        problem: crate::tls::TlsFileError,
    },
    /// A plugin could not be read, compiled or initialised.
    #[error("{file}:{line}: {node}: {error}")]
    Plugin {
        /// The config file.
        file: String,
        /// Line of the node.
        line: usize,
        /// The node's key (`routes.root`, `pools.main.hash`).
        node: String,
        /// What the plugin runtime said.
        error: PluginError,
    },
    /// A reference to a pool or route that does not exist.
    #[error("{node} (line {line}): no pool or route is named `{name}`")]
    Reference {
        /// The referring node.
        node: String,
        /// Its line.
        line: usize,
        /// The missing name.
        name: String,
    },
    /// The `[auth]` credentials file cannot be used.
    #[error("{file}:{line}: auth.credentials: {problem}")]
    Credentials {
        /// The config file.
        file: String,
        /// Line of the `credentials` key.
        line: usize,
        /// Which file, and why.
        problem: String,
    },
}

impl Generation {
    /// Compiles every plugin the config names (each distinct source once), builds the tree, and
    /// instantiates and `init`s every node once, so that a configuration a plugin rejects never
    /// gets published. Servers also in `previous` keep their health.
    pub fn build(
        config: Config,
        engine: &PluginEngine,
        cache: &ModuleCache,
        number: u64,
        previous: Option<&Generation>,
    ) -> Result<Generation, BuildError> {
        Generation::build_with(config, engine, cache, number, previous, HashMap::new())
    }

    /// [`build`](Self::build), taking the modules in `pinned` as they are instead of reading
    /// their sources again: a rollback must run the code that ran before, even if its file has
    /// been overwritten since.
    pub fn build_with(
        config: Config,
        engine: &PluginEngine,
        cache: &ModuleCache,
        number: u64,
        previous: Option<&Generation>,
        pinned: Modules,
    ) -> Result<Generation, BuildError> {
        let file = config.origin.display().to_string();
        let config_path = config.origin.clone();
        // A route from a tenant's file is named by that file and its line there.
        let starts: Vec<(String, usize)> = config
            .includes
            .iter()
            .map(|i| (i.path.display().to_string(), i.first_line))
            .collect();
        let locate = |line: usize| match starts.iter().rev().find(|(_, first)| line >= *first) {
            Some((path, first)) => (path.clone(), line - first + 1),
            None => (file.clone(), line),
        };
        let mut modules: Modules = pinned;
        let mut compile = |source: &PluginSource,
                           sha256: Option<&str>,
                           node: &str,
                           line: usize|
         -> Result<Arc<PluginModule>, BuildError> {
            let (in_file, line) = locate(line);
            let fail = |message: String| BuildError::Plugin {
                file: in_file.clone(),
                line,
                node: node.to_string(),
                error: PluginError {
                    plugin: source.to_string(),
                    message,
                },
            };
            // The module a node gets must have the bytes its config pins, however it was
            // found (compiled now, cached, or kept from the generation before).
            let checked = |module: Arc<PluginModule>| match sha256 {
                Some(pin) if !module.matches(pin) => Err(fail(format!(
                    "its module is {}, but the config pins sha256:{pin}; refused",
                    module.hash()
                ))),
                _ => Ok(module),
            };
            if let Some(m) = modules.get(source) {
                return checked(m.clone());
            }
            let bytes: std::borrow::Cow<'static, [u8]> = match source {
                PluginSource::Bundled(name) => bundled::get(name)
                    .ok_or_else(|| fail("no such bundled plugin".into()))?
                    .into(),
                PluginSource::File(path) => std::fs::read(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
                    .into(),
            };
            let module = cache
                .get_or_compile(engine, &source.to_string(), &bytes)
                .map_err(|e| fail(e.message))?;
            modules.insert(source.clone(), module.clone());
            checked(module)
        };

        // Node indexes: pools first, then routes, in config order.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, name) in config
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .chain(config.routes.iter().map(|r| r.name.as_str()))
            .enumerate()
        {
            index.insert(name, i);
        }

        let workers = previous.map_or(config.server.workers, |p| p.prepared.len());
        let mut destinations: Vec<DestinationSpec> = Vec::new();
        let mut dest_index: HashMap<SocketAddr, usize> = HashMap::new();
        let mut nodes = Vec::with_capacity(index.len());
        let owners = config.node_tenants();
        for pool in &config.pools {
            let label = format!("pools.{}", pool.name);
            let module = compile(
                &pool.hash,
                pool.hash_sha256.as_deref(),
                &format!("{label}.hash"),
                pool.line,
            )?;
            let tls_config = match &pool.tls {
                None => None,
                Some(files) => Some((
                    files,
                    crate::tls::pool(files, &format!("{label}.tls")).map_err(|problem| {
                        BuildError::Tls {
                            file: file.clone(),
                            line: files.line,
                            problem,
                        }
                    })?,
                )),
            };
            let mut children = Vec::with_capacity(pool.servers.len());
            let mut infos = Vec::with_capacity(pool.servers.len());
            let mut health = Vec::with_capacity(pool.servers.len());
            for s in &pool.servers {
                let tls = match &tls_config {
                    None => None,
                    Some((files, (config, fingerprint))) => Some(
                        crate::tls::connector(files, config, *fingerprint, &s.host).map_err(
                            |message| BuildError::Tls {
                                file: file.clone(),
                                line: files.line,
                                problem: crate::tls::TlsFileError {
                                    key: format!("{label}.tls.server_name"),
                                    path: config_path.clone(),
                                    message,
                                },
                            },
                        )?,
                    ),
                };
                if let Some(&dest) = dest_index.get(&s.address)
                    && !crate::tls::same(&destinations[dest].tls, &tls)
                {
                    return Err(BuildError::Tls {
                        file: file.clone(),
                        line: pool.line,
                        problem: crate::tls::TlsFileError {
                            key: format!("{label}.servers"),
                            path: config_path.clone(),
                            message: format!(
                                "{} is also in a pool that reaches it {}: pools that share \
                                 a server share its connections, so they must reach it alike",
                                s.address,
                                match (&destinations[dest].tls, &tls) {
                                    (None, _) => "without TLS",
                                    (_, None) => "over TLS",
                                    _ => "over TLS with other files or another server_name",
                                }
                            ),
                        },
                    });
                }
                let dest = *dest_index.entry(s.address).or_insert_with(|| {
                    // Health outlives generations: a server down before a reload is still down.
                    let health = previous
                        .and_then(|p| p.destinations.iter().find(|d| d.address == s.address))
                        .map_or_else(
                            || Arc::new(Health::new(s.address, config.server.workers)),
                            |d| d.health.clone(),
                        );
                    destinations.push(DestinationSpec {
                        address: s.address,
                        connect_timeout: pool.connect_timeout,
                        policy: HealthPolicy {
                            failure_limit: pool.failure_limit,
                            probe_floor: pool.probe_floor,
                            probe_ceiling: pool.probe_ceiling,
                            probe_timeout: pool.connect_timeout + pool.timeout,
                        },
                        max_outstanding_bytes: pool.max_outstanding_bytes,
                        max_reply_bytes: pool.max_reply_bytes,
                        tls: tls.clone(),
                        timings: config.stats.timings,
                        health,
                    });
                    destinations.len() - 1
                });
                let spec = &mut destinations[dest];
                spec.connect_timeout = spec.connect_timeout.min(pool.connect_timeout);
                // Pools sharing a server share its connection: no pool's replies are cut
                // short of its own bound.
                spec.max_reply_bytes = spec.max_reply_bytes.max(pool.max_reply_bytes);
                children.push(Target::Server {
                    dest,
                    timeout: pool.timeout,
                });
                infos.push(ChildInfo {
                    name: s.name.clone(),
                    weight: s.weight,
                });
                health.push(Some(destinations[dest].health.clone()));
            }
            nodes.push(
                Node::new(
                    NodeContext {
                        label,
                        children: infos,
                        config_toml: table_text(&pool.hash_config),
                        health,
                        log_budget: Default::default(),
                        log_level: pool
                            .hash_log_level
                            .map_or(switchyard_sdk::abi::log_level::DEBUG, |l| l.code()),
                        module: format!("{} {}", module.name(), module.hash()),
                        metrics: crate::plugin::PluginMetrics::new(workers),
                        budget: Default::default(),
                        tenant: owners.get(pool.name.as_str()).map(|t| t.to_string()),
                        file_tenant: None,
                    },
                    module,
                    children,
                    pool.on_fault,
                    workers,
                )
                .carry(previous, &config.plugins),
            );
        }
        for route in &config.routes {
            let label = format!("routes.{}", route.name);
            let module = compile(&route.plugin, route.sha256.as_deref(), &label, route.line)?;
            let children = route
                .children
                .iter()
                .map(|c| lookup(&index, c, &label, route.line))
                .collect::<Result<Vec<_>, _>>()?;
            let infos = route
                .children
                .iter()
                .map(|c| ChildInfo {
                    name: c.clone(),
                    weight: 1,
                })
                .collect();
            let file_tenant = config.locate(route.line).2;
            nodes.push(
                Node::new(
                    NodeContext {
                        label,
                        children: infos,
                        config_toml: table_text(&route.config),
                        health: vec![None; route.children.len()],
                        log_budget: Default::default(),
                        log_level: route
                            .log_level
                            .map_or(switchyard_sdk::abi::log_level::DEBUG, |l| l.code()),
                        module: format!("{} {}", module.name(), module.hash()),
                        metrics: crate::plugin::PluginMetrics::new(workers),
                        budget: route.budget,
                        tenant: file_tenant
                            .or_else(|| owners.get(route.name.as_str()).copied())
                            .map(str::to_string),
                        file_tenant: file_tenant.map(str::to_string),
                    },
                    module,
                    children,
                    route.on_fault,
                    workers,
                )
                .carry(previous, &config.plugins),
            );
        }
        let acceptors = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let Some(files) = &l.tls else {
                    return Ok(None);
                };
                let server = crate::tls::listener(files, &format!("listeners[{i}].tls")).map_err(
                    |problem| BuildError::Tls {
                        file: file.clone(),
                        line: files.line,
                        problem,
                    },
                )?;
                Ok(Some(crate::tls::Acceptor {
                    config: server,
                    mutual: files.client_ca.is_some(),
                }))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let roots = config
            .listeners
            .iter()
            .map(|l| match &l.route {
                crate::config::ListenerRoute::Route(route) => {
                    lookup(&index, route, "listeners", 0).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Each node's place in the generation before, if a reload carried it (its counts, and
        // each tenant's share of them, carry on with it).
        let carried: Vec<Option<usize>> = nodes
            .iter()
            .map(|node| {
                previous?
                    .nodes
                    .iter()
                    .position(|o| Arc::ptr_eq(&o.context, &node.context))
            })
            .collect();
        // Experiments send or walk a request of their node to their candidate too.
        let candidates: Vec<(usize, usize)> = config
            .experiments
            .iter()
            .filter_map(|e| {
                Some((
                    *index.get(e.node.as_str())?,
                    *index.get(e.candidate.as_str())?,
                ))
            })
            .collect();
        let tenants = config
            .tenants
            .iter()
            .enumerate()
            .map(|(position, t)| {
                let old = previous.and_then(|p| p.tenants.iter().find(|old| *old.name == *t.name));
                let root = lookup(&index, &t.route, &format!("tenants.{}", t.name), t.line)?;
                // Counts are kept for what the tenant's requests can reach, no more.
                let (reached_nodes, reached_servers) =
                    reach(&nodes, destinations.len(), root, &candidates);
                let old_servers: HashMap<SocketAddr, &Arc<crate::tenant::servers::ServerTraffic>> =
                    old.map_or_else(HashMap::new, |old| {
                        old.servers
                            .iter()
                            .flatten()
                            .map(|s| (s.address, s))
                            .collect()
                    });
                Ok(Arc::new(crate::tenant::Tenant {
                    name: t.name.as_str().into(),
                    index: position,
                    root,
                    // A tenant keeps its buckets, connections and counters across reloads,
                    // and its counts at each server that stays and each node carried.
                    state: old
                        .map(|old| old.state.clone())
                        .unwrap_or_else(|| Arc::new(crate::tenant::TenantState::new(workers))),
                    servers: destinations
                        .iter()
                        .zip(reached_servers)
                        .map(|(d, reached)| {
                            reached.then(|| {
                                old_servers.get(&d.address).map_or_else(
                                    || {
                                        Arc::new(crate::tenant::servers::ServerTraffic::new(
                                            d.address, workers,
                                        ))
                                    },
                                    |s| Arc::clone(s),
                                )
                            })
                        })
                        .collect(),
                    nodes: carried
                        .iter()
                        .zip(reached_nodes)
                        .map(|(was, reached)| {
                            reached.then(|| {
                                was.and_then(|was| old?.nodes.get(was)?.clone())
                                    .unwrap_or_else(|| {
                                        Arc::new(crate::tenant::nodes::NodeTraffic::new(workers))
                                    })
                            })
                        })
                        .collect(),
                    rewrite: crate::plugin::OwnedRewrite {
                        prefix: t.namespace.as_bytes().to_vec(),
                        ..Default::default()
                    },
                    namespace: bytes::Bytes::copy_from_slice(t.namespace.as_bytes()),
                    config: t.clone(),
                }))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let credentials = match &config.auth {
            None => None,
            Some(auth) => {
                let fail = |problem: String| BuildError::Credentials {
                    file: file.clone(),
                    line: auth.line,
                    problem,
                };
                let text = std::fs::read_to_string(&auth.credentials).map_err(|e| {
                    fail(format!("cannot read {}: {e}", auth.credentials.display()))
                })?;
                let credentials = crate::tenant::Credentials::parse(&text)
                    .map_err(|e| fail(format!("{}: {e}", auth.credentials.display())))?;
                for t in &config.tenants {
                    if let Some(user) = t.users.iter().find(|u| !credentials.has(u)) {
                        return Err(fail(format!(
                            "tenant {}'s user `{user}` is not in {}",
                            t.name,
                            auth.credentials.display()
                        )));
                    }
                }
                Some(credentials)
            }
        };

        // Every worker's instance of every node, created and `init`ed now, off the request
        // path: a configuration a plugin rejects on any worker is never published, and no
        // client waits for an `init`.
        let lines: Vec<usize> = config
            .pools
            .iter()
            .map(|p| p.line)
            .chain(config.routes.iter().map(|r| r.line))
            .collect();
        let prepared =
            prepare(&nodes, &config.plugins, workers).map_err(|(n, error)| BuildError::Plugin {
                file: locate(lines[n]).0,
                line: locate(lines[n]).1,
                node: nodes[n].context.label.clone(),
                error,
            })?;

        let addresses: Vec<String> = destinations.iter().map(|d| d.address.to_string()).collect();
        let experiments = config
            .experiments
            .iter()
            .map(|e| {
                let key = format!("experiments.{}", e.name);
                let node = |name: &str| match lookup(&index, name, &key, e.line)? {
                    Target::Node(n) => Ok(n),
                    Target::Server { .. } => Err(BuildError::Reference {
                        line: e.line,
                        node: key.clone(),
                        name: name.to_string(),
                    }),
                };
                Ok(crate::experiment::Experiment::new(
                    e.clone(),
                    node(&e.node)?,
                    node(&e.candidate)?,
                    &nodes,
                    &addresses,
                    previous.and_then(|p| p.experiments.iter().find(|x| x.config.name == e.name)),
                ))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let candidate_only = candidate_only(&nodes, &roots, &tenants, &experiments);
        Ok(Generation {
            number,
            loaded_at: SystemTime::now(),
            config,
            nodes,
            destinations,
            roots,
            tenants,
            credentials,
            modules,
            sockets: Vec::new(),
            listen_addrs: Vec::new(),
            acceptors,
            spools: Vec::new(),
            faults: crate::stats::Counter::default(),
            experiments,
            candidate_only,
            alarm: std::sync::OnceLock::new(),
            control: std::sync::OnceLock::new(),
            prepared,
        })
    }

    /// Worker `worker`'s instances of every node, created when the generation was built; each
    /// worker takes them once, when it first serves the generation (an empty list after that).
    pub(crate) fn take_instances(&self, worker: usize) -> Vec<Prepared> {
        self.prepared
            .get(worker)
            .map(|p| std::mem::take(&mut *p.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default()
    }

    /// Counts a plugin fault. The one that reaches `[plugins] rollback_faults` rolls the
    /// generation back there and then when the previous configuration is ready
    /// ([`crate::reload::Control::roll_back_now`]), else tells the watcher.
    pub(crate) fn fault(&self) {
        let threshold = self.config.plugins.rollback_faults;
        let faults = self.faults.inc_get();
        if faults < threshold || threshold == 0 || faults - threshold >= ROLLBACK_TRIES {
            return;
        }
        // The first faults from the threshold on try: the one that reached it may find a
        // reload building or, for a tenant's file, leave it to the watcher, which looks again
        // every interval.
        let swapped = self
            .control
            .get()
            .and_then(std::sync::Weak::upgrade)
            .is_some_and(|control| control.roll_back_now(self));
        if !swapped
            && faults == threshold
            && let Some(alarm) = self.alarm.get()
        {
            let _ = alarm.send(crate::reload::WatchSignal::Faults);
        }
    }
}

impl Generation {
    /// The index of the listener bound at `local`, if this generation has it.
    pub fn listener_index(&self, local: SocketAddr) -> Option<u32> {
        self.listen_addrs
            .iter()
            .position(|a| *a == local)
            .map(|i| i as u32)
    }

    /// Every server reachable from `target`, each once, with the timeout of the first pool
    /// that reaches it: where a `flush_all` must go.
    pub fn reachable_servers(&self, target: Target) -> Vec<(usize, Duration)> {
        let mut out: Vec<(usize, Duration)> = Vec::new();
        let mut seen_nodes = vec![false; self.nodes.len()];
        let mut stack = vec![target];
        while let Some(t) = stack.pop() {
            match t {
                Target::Server { dest, timeout } => {
                    if !out.iter().any(|(d, _)| *d == dest) {
                        out.push((dest, timeout));
                    }
                }
                Target::Node(n) => {
                    if let Some(seen) = seen_nodes.get_mut(n)
                        && !*seen
                    {
                        *seen = true;
                        stack.extend(self.nodes[n].children.iter().rev().copied());
                    }
                }
            }
        }
        out
    }
}

/// The nodes and servers (by destination index, of `servers`) a request from `root` can
/// reach: down every node's children, and from an experiment's node (`candidates`: node and
/// candidate) to its candidate.
fn reach(
    nodes: &[Node],
    servers: usize,
    root: Target,
    candidates: &[(usize, usize)],
) -> (Vec<bool>, Vec<bool>) {
    let (mut reached_nodes, mut reached_servers) = (vec![false; nodes.len()], vec![false; servers]);
    let mut stack = vec![root];
    while let Some(target) = stack.pop() {
        match target {
            Target::Server { dest, .. } => {
                if let Some(reached) = reached_servers.get_mut(dest) {
                    *reached = true;
                }
            }
            Target::Node(n) => {
                let Some(reached) = reached_nodes.get_mut(n) else {
                    continue;
                };
                if std::mem::replace(reached, true) {
                    continue;
                }
                stack.extend(nodes[n].children.iter().copied());
                stack.extend(
                    candidates
                        .iter()
                        .filter(|(node, _)| *node == n)
                        .map(|(_, candidate)| Target::Node(*candidate)),
                );
            }
        }
    }
    (reached_nodes, reached_servers)
}

/// A reference by name; `Config` validation guarantees it exists, but a `Config` built by hand
/// gets an error rather than a panic.
fn lookup(
    index: &HashMap<&str, usize>,
    name: &str,
    node: &str,
    line: usize,
) -> Result<Target, BuildError> {
    index
        .get(name)
        .map(|&i| Target::Node(i))
        .ok_or_else(|| BuildError::Reference {
            node: node.to_string(),
            line,
            name: name.to_string(),
        })
}

/// The random seed of worker `worker`'s `created`-th instance of a node.
pub(crate) fn seed(worker: usize, created: u64) -> u64 {
    (worker as u64) << 32 | created
}

/// Faults from `rollback_faults` on that try the prepared rollback themselves; after them
/// only the watcher does, so a generation that cannot roll back costs its faults no lock.
const ROLLBACK_TRIES: u64 = 32;

/// Which nodes only experiments' candidates reach: from the candidates, less what any listener
/// or tenant reaches.
fn candidate_only(
    nodes: &[Node],
    roots: &[Option<Target>],
    tenants: &[Arc<crate::tenant::Tenant>],
    experiments: &[crate::experiment::Experiment],
) -> Vec<bool> {
    let reach = |from: &mut dyn Iterator<Item = Target>| {
        let mut seen = vec![false; nodes.len()];
        let mut stack: Vec<Target> = from.collect();
        while let Some(target) = stack.pop() {
            if let Target::Node(n) = target
                && !seen[n]
            {
                seen[n] = true;
                stack.extend(nodes[n].children.iter().copied());
            }
        }
        seen
    };
    if experiments.is_empty() {
        return Vec::new();
    }
    let live = reach(
        &mut roots
            .iter()
            .flatten()
            .copied()
            .chain(tenants.iter().map(|t| t.root)),
    );
    let candidates = reach(&mut experiments.iter().map(|e| Target::Node(e.candidate)));
    candidates.iter().zip(live).map(|(c, l)| *c && !l).collect()
}

/// One instance of every node for each of `workers` workers, each worker's made on a thread of
/// its own so that a slow `init` costs a reload its time once, not once per worker. The first
/// failure, by worker then node, is the node's index and why; it names the worker when other
/// workers succeeded.
fn prepare(
    nodes: &[Node],
    settings: &PluginSettings,
    workers: usize,
) -> Result<Vec<std::sync::Mutex<Vec<Prepared>>>, (usize, PluginError)> {
    let make = |worker: usize| -> Result<Vec<Prepared>, (usize, PluginError)> {
        nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let started = std::time::Instant::now();
                PluginInstance::new(
                    &node.module,
                    node.context.clone(),
                    settings,
                    seed(worker, 0),
                )
                .map(|i| (i, started.elapsed()))
                .map_err(|e| (n, e))
            })
            .collect()
    };
    let results: Vec<_> = if workers <= 1 {
        vec![make(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    std::thread::Builder::new()
                        .name(format!("switchyard-init-{w}"))
                        .spawn_scoped(scope, move || make(w))
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(w, h)| match h {
                    // Cannot spawn a thread: make this worker's here.
                    Err(_) => make(w),
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err((
                            0,
                            PluginError {
                                plugin: String::new(),
                                message: "instance creation panicked".into(),
                            },
                        ))
                    }),
                })
                .collect()
        })
    };
    let failed_on = results.iter().filter(|r| r.is_err()).count();
    let mut prepared = Vec::with_capacity(workers);
    for (w, result) in results.into_iter().enumerate() {
        match result {
            Ok(instances) => prepared.push(std::sync::Mutex::new(instances)),
            Err((n, mut e)) => {
                if failed_on < workers {
                    e.message = format!(
                        "{} (on worker {w} of {workers}; a plugin must start on every worker)",
                        e.message
                    );
                }
                return Err((n, e));
            }
        }
    }
    Ok(prepared)
}

fn table_text(table: &toml::Table) -> String {
    toml::to_string(table).unwrap_or_default()
}
