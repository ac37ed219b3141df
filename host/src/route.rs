//! Routing one key: the node's plugin is asked, a `Forward` moves to the child and asks again,
//! until the route ends at a server, a reply, or a plan that needs more than one send
//! ([`Resolved`]). Nothing is sent here: plugins in, a resolved plan out. The plugin calls
//! themselves (`route`, `on_reply`, replacing an instance after a fault, the circuit breaker)
//! are [`LocalGeneration::call_plugin`]'s; what a request whose plugin failed gets (the node's
//! `on_fault`) is [`LocalGeneration::plugin_failed`]'s.
//!
//! - `slot`: a node's instance on one worker, and its breaker.
//! - `fault_log`: one log line per node and fault kind per interval.

mod fault_log;
mod slot;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use switchyard_protocol::ReplyStatus;

use crate::config::{ExperimentKind, OnFault};
use crate::error::{Fault, PlanProblem, PluginCall, RequestError, Side};
use crate::generation::Target;
use crate::plugin::{Decision, OwnedReply, PluginFault, PluginInstance, RouteInput};
use crate::reply::Outcome;
use crate::reply::render_plugin_reply;
use crate::worker::LocalGeneration;

pub(crate) use fault_log::FaultLog;
pub(crate) use slot::Slot;
use slot::{Made, Tripped};

/// What becomes of a request after a step of its route: answered, or sent on to a target (a
/// node's `on_fault` forwarding a request its plugin failed).
#[derive(Debug)]
pub enum Recovery {
    /// Answered with this.
    Answer(Outcome),
    /// Routed on from this target.
    Reroute(Target),
}

/// Where one key's route ends, before anything is sent.
#[derive(Debug)]
pub enum Resolved {
    /// A single backend server: the common case, and the one multi-key gets batch.
    Server {
        /// Destination index in the generation.
        dest: usize,
        /// Request timeout of the pool that chose it.
        timeout: Duration,
    },
    /// A reply decided without a backend (a plugin's reply, or why the request failed).
    Reply(Outcome),
    /// Node `node` planned more than a forward: a fan-out, a call, an extended plan.
    Plan {
        /// The node whose plugin made the plan.
        node: usize,
        /// The plan, decoded and checked.
        plan: Decision,
    },
}

impl LocalGeneration {
    /// Follows `target` through plugins until it ends at a server, a reply or a plan that
    /// needs more than one send.
    pub fn resolve(&self, mut target: Target, input: &RouteInput<'_>) -> Resolved {
        loop {
            let n = match target {
                Target::Server { dest, timeout } => return Resolved::Server { dest, timeout },
                Target::Node(n) if !self.shared.experiments.is_empty() && !self.dry.get() => {
                    self.canary(n, input)
                }
                Target::Node(n) => n,
            };
            self.trail.note(n);
            let step = match self.route(n, input) {
                Ok(Decision::Forward(child)) => {
                    Recovery::Reroute(self.shared.nodes[n].children[child as usize])
                }
                Ok(Decision::Reply(r)) => self.plugin_reply(n, &r, input.op, PluginCall::Route),
                Ok(plan) if *plan.primary() == Decision::Pass => {
                    self.plan_failed(n, PluginCall::Route, PlanProblem::MisplacedPass)
                }
                Ok(plan) => return Resolved::Plan { node: n, plan },
                Err(error) => self.plugin_failed(n, error),
            };
            match step {
                Recovery::Answer(outcome) => return Resolved::Reply(outcome),
                Recovery::Reroute(next) => target = next,
            }
        }
    }

    /// Runs node `n`'s plugin on one request.
    pub fn route(&self, n: usize, input: &RouteInput<'_>) -> Result<Decision, RequestError> {
        if !self.shared.experiments.is_empty() && !self.dry.get() {
            self.experiment(n, input);
        }
        self.call_plugin(n, PluginCall::Route, |instance| instance.route(input))
    }

    /// The experiments on node `n` that sample this request: a dry run compares its
    /// decision with the candidate's (both dry-run from here, nothing sent); a shadow marks it
    /// for a copy to the candidate, which `execute` sends (`experiment.rs`).
    fn experiment(&self, n: usize, input: &RouteInput<'_>) {
        for (i, e) in self.shared.experiments.iter().enumerate() {
            if e.node != n || !e.samples(input.key) {
                continue;
            }
            match e.config.kind {
                ExperimentKind::DryRun => {
                    let (live, live_faulted) = self.reach(Target::Node(n), input);
                    if live_faulted {
                        e.live_faulted();
                        continue;
                    }
                    let started = Instant::now();
                    let (candidate, faulted) = self.reach(Target::Node(e.candidate), input);
                    e.record(&live, &candidate, faulted, started.elapsed());
                }
                ExperimentKind::Shadow => self.marks.set(self.marks.get().shadow(i)),
                ExperimentKind::Canary => {}
            }
        }
    }

    /// Node `n`, or the candidate of a canary on `n` for a key it has taken: a key is routed
    /// one way or the other, and measured on its side (`experiment/canary.rs`).
    fn canary(&self, n: usize, input: &RouteInput<'_>) -> usize {
        match self.canary_side(n, input.key) {
            Some((i, side)) => {
                self.marks.set(self.marks.get().canary(i, side));
                match side {
                    crate::experiment::Side::Candidate => self.shared.experiments[i].candidate,
                    crate::experiment::Side::Live => n,
                }
            }
            None => n,
        }
    }

    /// The running canary on node `n` that measures `key`, by index, and the side the key is
    /// on.
    pub(crate) fn canary_side(
        &self,
        n: usize,
        key: &[u8],
    ) -> Option<(usize, crate::experiment::Side)> {
        self.shared
            .experiments
            .iter()
            .enumerate()
            .filter(|(_, e)| e.node == n && e.enabled())
            .find_map(|(i, e)| Some((i, e.rollout()?.side_of(key)?)))
    }

    /// Calls into the plugins until the returned guard is dropped are for a request of tenant
    /// `tenant` (its index; `None`: of no tenant), and count in its share of each node. Held
    /// only while the request is routed on this thread, never across an await.
    pub(crate) fn serving(&self, tenant: Option<usize>) -> Serving<'_> {
        Serving {
            cell: &self.serving,
            was: self.serving.replace(tenant),
        }
    }

    /// The share of node `n` of the tenant being served, if any.
    fn served(&self, n: usize) -> Option<&std::sync::Arc<crate::tenant::nodes::NodeTraffic>> {
        self.shared
            .tenants
            .get(self.serving.get()?)?
            .nodes
            .get(n)?
            .as_ref()
    }

    /// Runs node `n`'s `on_reply` for a `call` it planned.
    pub fn on_reply(
        &self,
        n: usize,
        cookie: u32,
        status: ReplyStatus,
        input: &RouteInput<'_>,
    ) -> Result<Decision, RequestError> {
        self.call_plugin(n, PluginCall::OnReply, |instance| {
            instance.on_reply(cookie, status, input)
        })
    }

    /// Calls into node `n`'s instance on this worker. A fault fails only this request (the
    /// caller hands it to [`plugin_failed`](Self::plugin_failed)); a trapped or timed-out
    /// instance is dropped and replaced, at once on this thread when creating one is quick,
    /// else in the background. Repeated traps and timeouts open the node's breaker
    /// (`route/slot.rs`): then the plugin is not called at all until it closes.
    fn call_plugin(
        &self,
        n: usize,
        which: PluginCall,
        call: impl FnOnce(&mut PluginInstance) -> Result<Decision, PluginFault>,
    ) -> Result<Decision, RequestError> {
        let node = &self.shared.nodes[n];
        let failed = |fault| RequestError::Plugin {
            node: node.context.label.clone(),
            call: which,
            fault,
        };
        let mut slot = self.slots[n].borrow_mut();
        let slot = &mut *slot;
        if !slot.breaker.allows(Instant::now) {
            return Err(failed(Fault::Unavailable(Cow::Borrowed(
                "its circuit breaker is open",
            ))));
        }
        if slot.instance.is_none() {
            self.replace_instance(n, slot).map_err(failed)?;
        }
        let Some(instance) = slot.instance.as_mut() else {
            return Err(failed(Fault::Unavailable(Cow::Borrowed(
                "its instance is being re-created",
            ))));
        };
        // A plugin that defines metrics moves the tenant's share of them too.
        if !node.context.metrics.is_empty() {
            instance.serve(self.served(n).map(|s| s.metric_values(self.worker)));
        }
        let started = self.shared.config.stats.timings.then(Instant::now);
        let result = call(instance);
        let took = started.map(|at| at.elapsed());
        node.stats.call(self.worker, took, instance.memory_size());
        if let Some(share) = self.served(n) {
            share.call(self.worker, took);
        }
        match result {
            Ok(plan) => {
                slot.breaker.success();
                Ok(plan)
            }
            Err(fault) => {
                if fault.poisons() {
                    slot.instance = None;
                    self.breaker_fault(n, slot);
                }
                Err(failed(fault.into()))
            }
        }
    }

    /// Gives node `n`'s slot an instance if it can now: one made in the background that has
    /// arrived, or a new one made here when that is quick. Otherwise starts making one in the
    /// background (if none is on its way) and leaves the slot empty.
    fn replace_instance(&self, n: usize, slot: &mut Slot) -> Result<(), Fault> {
        if let Some(incoming) = &slot.incoming {
            let made = match incoming.try_recv() {
                Ok(made) => made,
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Err(crate::plugin::PluginError {
                        plugin: self.shared.nodes[n].context.label.clone(),
                        message: "instance creation panicked".into(),
                    })
                }
            };
            slot.incoming = None;
            return self.install(n, slot, made);
        }
        // An instance that took no longer to create than one call may take is re-created here,
        // so that a plugin failing on one bad key fails only that key's request, and the
        // worker's other clients wait no longer than for a slow call; a slower one (an `init`
        // that builds large tables) is made in the background.
        if slot.creation_time <= self.shared.config.plugins.call_timeout {
            let made = self.make_instance(n, slot);
            return self.install(n, slot, made);
        }
        self.make_in_background(n, slot);
        Ok(())
    }

    /// Puts a new instance in node `n`'s slot, or counts why there is none.
    fn install(&self, n: usize, slot: &mut Slot, made: Made) -> Result<(), Fault> {
        match made {
            Ok((instance, took)) => {
                slot.instance = Some(instance);
                slot.creation_time = took;
                Ok(())
            }
            Err(e) => {
                self.breaker_fault(n, slot);
                Err(Fault::Unavailable(Cow::Owned(format!(
                    "cannot create an instance: {}",
                    e.message
                ))))
            }
        }
    }

    /// Makes an instance of node `n`'s plugin on this thread.
    fn make_instance(&self, n: usize, slot: &mut Slot) -> Made {
        let node = &self.shared.nodes[n];
        let seed = crate::generation::seed(self.worker, slot.created);
        slot.created += 1;
        let started = Instant::now();
        PluginInstance::new(
            &node.module,
            node.context.clone(),
            &self.shared.config.plugins,
            seed,
        )
        .map(|instance| (instance, started.elapsed()))
    }

    /// Starts making an instance of node `n`'s plugin on a thread of its own, unless one is on
    /// its way; the slot takes it at its next call after it arrives.
    fn make_in_background(&self, n: usize, slot: &mut Slot) {
        if slot.incoming.is_some() {
            return;
        }
        let node = &self.shared.nodes[n];
        let (module, context) = (node.module.clone(), node.context.clone());
        let settings = self.shared.config.plugins.clone();
        let seed = crate::generation::seed(self.worker, slot.created);
        slot.created += 1;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("switchyard-init".into())
            .spawn(move || {
                let started = Instant::now();
                let made = PluginInstance::new(&module, context, &settings, seed)
                    .map(|instance| (instance, started.elapsed()));
                // The generation may be gone: then nobody wants it.
                let _ = tx.send(made);
            });
        if spawned.is_ok() {
            slot.incoming = Some(rx);
        }
    }

    /// Counts a trap, a timeout or a failed creation against node `n`'s breaker on this worker;
    /// when that opens it, starts making the instance the breaker will try when it closes.
    fn breaker_fault(&self, n: usize, slot: &mut Slot) {
        let settings = &self.shared.config.plugins;
        let now = Instant::now();
        if let Tripped::Open(open_for) = slot.breaker.fault(now, settings) {
            self.stats.plugin_breaker_opens.inc();
            let label = &self.shared.nodes[n].context.label;
            tracing::warn!(
                node = %label,
                tenant = self.shared.nodes[n].context.tenant.as_deref().unwrap_or("-"),
                worker = self.worker,
                open_ms = open_for.as_millis() as u64,
                "plugin keeps faulting; its circuit breaker is open: requests get the node's \
                 on_fault without calling it until then"
            );
            if slot.instance.is_none() {
                self.make_in_background(n, slot);
            }
        }
    }

    /// What a request whose node `n` failed it gets. A failure on the plugin's side counts
    /// towards the generation's rollback and goes to the node's fault log, then the node's
    /// `on_fault` decides: `SERVER_ERROR`, or the request goes on to a child. Any other
    /// failure is answered as it is.
    pub(crate) fn plugin_failed(&self, n: usize, error: RequestError) -> Recovery {
        if error.side() != Side::Plugin {
            return Recovery::Answer(error.answer(&self.stats));
        }
        let node = &self.shared.nodes[n];
        // The node's count first: a rollback the fault below sets off reads it
        // (`reload/partial.rs`).
        if let Some(kind) = error.fault_kind() {
            node.stats.fault(self.worker, kind);
            if let Some(share) = self.served(n) {
                share.fault(self.worker, kind);
            }
        }
        // A dry walk's faults (an experiment's, `__switchyard__.route`'s) and an experiment's
        // candidate's count for them only, never towards the rollback.
        if !self.dry.get() && !self.shared.candidate_only.get(n).copied().unwrap_or(false) {
            self.shared.fault();
        }
        if let Some(kind) = error.fault_kind()
            && let Some(suppressed) = node.fault_log.admit(kind, fault_log::now_ms())
        {
            // The node's tenant, or on a node tenants share, the one whose request faulted.
            let tenant = node.context.tenant.as_deref().or_else(|| {
                let t = self.shared.tenants.get(self.serving.get()?)?;
                Some(&*t.name)
            });
            tracing::warn!(
                node = %node.context.label,
                tenant = tenant.unwrap_or("-"),
                plugin = %node.module.name(),
                kind = kind.name(),
                not_logged = suppressed,
                on_fault = ?node.on_fault,
                "plugin fault: {}; {suppressed} more of this kind in the last {} s were not logged",
                error.detail(),
                fault_log::INTERVAL.as_secs(),
            );
        }
        match node.on_fault {
            OnFault::Error => Recovery::Answer(error.answer(&self.stats)),
            OnFault::Forward(child) => {
                error.count(&self.stats);
                self.stats.plugin_fallbacks.inc();
                Recovery::Reroute(node.children[child])
            }
        }
    }

    /// Node `n`'s direct reply `r` to operation `op`; a failure when the reply makes no sense
    /// for the operation.
    pub(crate) fn plugin_reply(
        &self,
        n: usize,
        r: &OwnedReply,
        op: u32,
        call: PluginCall,
    ) -> Recovery {
        match render_plugin_reply(r, op) {
            Ok(outcome) => Recovery::Answer(outcome),
            Err(problem) => self.plan_failed(n, call, problem),
        }
    }

    /// A request node `n`'s plan from `call` cannot be carried out for.
    pub(crate) fn plan_failed(&self, n: usize, call: PluginCall, problem: PlanProblem) -> Recovery {
        let error = RequestError::Plan {
            node: self.shared.nodes[n].context.label.clone(),
            call,
            problem,
        };
        self.plugin_failed(n, error)
    }
}

/// The tenant a worker's plugin calls are for, put back as it was when dropped
/// ([`LocalGeneration::serving`]).
#[derive(Debug)]
pub(crate) struct Serving<'a> {
    cell: &'a std::cell::Cell<Option<usize>>,
    was: Option<usize>,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.cell.set(self.was);
    }
}
