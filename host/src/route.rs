//! Routing one key: the node's plugin is asked, a `Forward` moves to the child and asks again,
//! until the route ends at a server, a reply, or a plan that needs more than one send
//! ([`Resolved`]). Nothing is sent here: plugins in, a resolved plan out. The plugin calls
//! themselves (`route`, `on_reply`, instance creation and replacement after a fault) are
//! [`LocalGeneration::call_plugin`]'s.

use std::rc::Rc;
use std::time::Duration;

use switchyard_protocol::ReplyStatus;

use crate::backend::Destination;
use crate::error::{Fault, PlanProblem, PluginCall, RequestError};
use crate::generation::Target;
use crate::plugin::{Decision, OwnedReply, PluginFault, PluginInstance, RouteInput};
use crate::reply::Outcome;
use crate::reply::render_plugin_reply;
use crate::worker::LocalGeneration;

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
            match target {
                Target::Server { dest, timeout } => return Resolved::Server { dest, timeout },
                Target::Node(n) => match self.route(n, input) {
                    Ok(Decision::Forward(child)) => {
                        target = self.shared.nodes[n].children[child as usize];
                    }
                    Ok(Decision::Reply(r)) => {
                        return Resolved::Reply(self.plugin_reply(
                            n,
                            &r,
                            input.op,
                            PluginCall::Route,
                        ));
                    }
                    Ok(plan) if *plan.primary() == Decision::Pass => {
                        let problem = PlanProblem::MisplacedPass;
                        return Resolved::Reply(self.plan_failed(n, PluginCall::Route, problem));
                    }
                    Ok(plan) => return Resolved::Plan { node: n, plan },
                    Err(error) => return Resolved::Reply(error.answer(&self.stats)),
                },
            }
        }
    }

    /// Runs node `n`'s plugin on one request.
    pub fn route(&self, n: usize, input: &RouteInput<'_>) -> Result<Decision, RequestError> {
        self.call_plugin(n, PluginCall::Route, |instance| instance.route(input))
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
            instance.on_reply(cookie, status, input.op, input.key)
        })
    }

    /// Calls into node `n`'s instance, creating it first if needed. A fault fails only this
    /// request (the caller answers and counts it); a trapped or timed-out instance is dropped
    /// and replaced before the node's next call. A fault of the call itself, not of creating the
    /// instance, counts toward the generation's rollback.
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
        let instance = match slot.instance {
            Some(ref mut instance) => instance,
            None => {
                let health = self.health_view(n);
                let seed = (self.worker as u64) << 32 | slot.created;
                let created = PluginInstance::new(
                    &node.module,
                    node.context.clone(),
                    Some(health),
                    &self.shared.config.plugins,
                    seed,
                );
                match created {
                    Ok(instance) => {
                        slot.created += 1;
                        slot.instance.insert(instance)
                    }
                    Err(e) => {
                        // A fault of the generation too: one whose plugin cannot start on a
                        // worker is rolled back like one that traps.
                        self.shared.fault();
                        tracing::error!(node = %node.context.label, error = %e, "cannot instantiate plugin");
                        return Err(failed(Fault::Unavailable(e.to_string())));
                    }
                }
            }
        };
        match call(instance) {
            Ok(plan) => Ok(plan),
            Err(fault) => {
                self.shared.fault();
                tracing::warn!(node = %node.context.label, plugin = %node.module.name(), error = %fault, "plugin fault; request failed");
                if fault.poisons() {
                    slot.instance = None;
                }
                Err(failed(fault.into()))
            }
        }
    }

    /// What `child_healthy` answers for node `n`'s children on this worker.
    fn health_view(&self, n: usize) -> crate::plugin::HealthView {
        let targets = self.shared.nodes[n].children.clone();
        let dests: Vec<Option<Rc<Destination>>> = targets
            .iter()
            .map(|t| match t {
                crate::generation::Target::Server { dest, .. } => {
                    self.destinations.get(*dest).cloned()
                }
                crate::generation::Target::Node(_) => None,
            })
            .collect();
        Rc::new(move |child: usize| {
            dests
                .get(child)
                .and_then(|d| d.as_ref())
                .is_none_or(|d| d.is_up())
        })
    }

    /// Node `n`'s direct reply `r` to operation `op`; a failure when the reply makes no sense
    /// for the operation.
    pub(crate) fn plugin_reply(
        &self,
        n: usize,
        r: &OwnedReply,
        op: u32,
        call: PluginCall,
    ) -> Outcome {
        render_plugin_reply(r, op).unwrap_or_else(|problem| self.plan_failed(n, call, problem))
    }

    /// Fails a request node `n`'s plan from `call` cannot be carried out for: counted, and
    /// logged when the plugin should not have made the plan.
    pub(crate) fn plan_failed(&self, n: usize, call: PluginCall, problem: PlanProblem) -> Outcome {
        let label = &self.shared.nodes[n].context.label;
        match problem {
            // The plugin should not have made these plans: faults of the generation, counted
            // towards its rollback like traps.
            PlanProblem::MisplacedPass => {
                self.shared.fault();
                tracing::warn!(node = %label, "plugin returned pass from route; request failed");
            }
            PlanProblem::TooManyCalls => {
                self.shared.fault();
                tracing::warn!(node = %label, "plugin chained more than {} calls; request failed", crate::execute::MAX_CALLS);
            }
            _ => {}
        }
        let error = RequestError::Plan {
            node: label.clone(),
            call,
            problem,
        };
        error.answer(&self.stats)
    }
}
