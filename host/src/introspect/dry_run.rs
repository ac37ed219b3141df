//! A dry run of one request through the route tree: every node's plugin is called as it would
//! be for the request (`LocalGeneration::route`, the same instances, breakers and fault
//! handling), and what the plans say is written down instead of carried out. Nothing is sent and
//! no background send is started.
//!
//! The walk follows `route.rs` (`LocalGeneration::resolve`: forwards, replies, faults and the
//! node's `on_fault`) and `execute.rs` (`carry_out` of a `route` plan: fan-outs, a `call`,
//! rewrites, background sends), step for step; a change there belongs here too.
//!
//! The text, one line per step in the order the router would take them (`configs/README.md`,
//! "Introspection", is the reference):
//!
//! ```text
//! route <op> <key>
//! server <path> <address> <role> <up|down>
//! fan_out <path> <wait>
//! call <path>
//! on_reply <path>
//! rewrite <path> <key> [exptime <seconds>]
//! background <path> <request|set|add|replace> [compare]
//! skip <path> <why>
//! fault <path> <what the plugin did>
//! error <path> <why>
//! reply <path> <the reply's first line>
//! ```

use switchyard_sdk::{Exptime, Op, Store};

use crate::error::{PlanProblem, PluginCall, RequestError, Side};
use crate::execute::{now_for, rewritten_key};
use crate::generation::Target;
use crate::plugin::{Decision, OwnedBackground, RouteInput, Wait};
use crate::reply::{Outcome, render_plugin_reply};
use crate::route::Recovery;
use crate::worker::LocalGeneration;

impl LocalGeneration {
    /// What a request `input` would do from `target`, as text: the plugins are called, nothing
    /// is sent. Faults count as they would for the request; the request itself counts nowhere.
    pub(crate) fn dry_run(&self, target: Target, input: &RouteInput<'_>) -> String {
        let op = Op::from_code(input.op).name().unwrap_or("unknown");
        let text = format!("route {op} {}\n", String::from_utf8_lossy(input.key));
        self.walk(target, input, false, text).text
    }

    /// Walks from `target` for `input` with `self.dry` set, so that the walk's own plugin
    /// calls start no experiment; `quiet`: no text, only the servers reached.
    fn walk(&self, target: Target, input: &RouteInput<'_>, quiet: bool, text: String) -> Walk<'_> {
        let mut walk = Walk {
            generation: self,
            path: Vec::new(),
            text,
            reached: Vec::new(),
            faulted: false,
            quiet,
        };
        let was = self.dry.replace(true);
        walk.target(target, input, Role::Answer);
        self.dry.set(was);
        walk
    }

    /// The servers a request `input` would reach from `target` for its reply (the answering
    /// server, a fan-out's children, a `call`'s; not background sends), each once, by index
    /// into the generation's destinations: what `switchyard diff` compares. Nothing is sent.
    /// Also says whether a plugin faulted on the way.
    pub(crate) fn reach(&self, target: Target, input: &RouteInput<'_>) -> (Vec<usize>, bool) {
        let mut walk = self.walk(target, input, true, String::new());
        walk.reached.sort_unstable();
        walk.reached.dedup();
        (walk.reached, walk.faulted)
    }
}

/// How a server's reply is used: the role column of a `server` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Its reply is the route's reply.
    Answer,
    /// One of a fan-out's children, waited for by this policy (never `Wait::None`).
    Wait(Wait),
    /// Sent by a `call`: the node's `on_reply` decides what comes next from its reply.
    Call,
    /// A background send (or a child of a `none` fan-out): its reply is dropped.
    Background,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Answer => "answer",
            Role::Wait(wait) => wait_name(wait),
            Role::Call => "call",
            Role::Background => "background",
        }
    }

    /// The role of a send a plan of this role makes as `inner`: the innermost plan's, except that
    /// everything under a background send is background.
    fn then(self, inner: Role) -> Role {
        if self == Role::Background {
            self
        } else {
            inner
        }
    }
}

fn wait_name(wait: Wait) -> &'static str {
    match wait {
        Wait::All => "all",
        Wait::First => "first",
        Wait::FirstGood => "first_good",
        Wait::Majority => "majority",
        Wait::None => "none",
    }
}

/// One dry run in progress.
struct Walk<'g> {
    generation: &'g LocalGeneration,
    /// The nodes from the root to the one being walked.
    path: Vec<usize>,
    text: String,
    /// The servers reached for the reply ([`LocalGeneration::reach`]).
    reached: Vec<usize>,
    /// A plugin faulted.
    faulted: bool,
    /// Only `reached` and `faulted` are wanted: no text is written ([`LocalGeneration::reach`],
    /// which experiments run on live requests).
    quiet: bool,
}

impl Walk<'_> {
    /// From `target` until the route ends at a server, a reply, or a plan, which is walked in
    /// turn (`resolve`).
    fn target(&mut self, mut target: Target, input: &RouteInput<'_>, role: Role) {
        let depth = self.path.len();
        loop {
            let n = match target {
                Target::Server { dest, .. } => {
                    self.server(dest, role);
                    break;
                }
                Target::Node(n) => self.canary(n, input),
            };
            self.path.push(n);
            let step = match self.generation.route(n, input) {
                Ok(Decision::Forward(child)) => match self.child(n, child) {
                    Some(next) => Recovery::Reroute(next),
                    None => break,
                },
                Ok(Decision::Reply(r)) => self.plugin_reply(n, &r, input.op),
                Ok(plan) if *plan.primary() == Decision::Pass => {
                    self.failed(n, self.plan_error(n, PlanProblem::MisplacedPass))
                }
                Ok(plan) => {
                    self.plan(n, plan, input, role);
                    break;
                }
                Err(error) => self.failed(n, error),
            };
            match step {
                Recovery::Answer(outcome) => {
                    self.reply(&outcome);
                    break;
                }
                Recovery::Reroute(next) => target = next,
            }
        }
        self.path.truncate(depth);
    }

    /// Node `n`, or, shown as a `canary` line, the candidate of a running canary on `n` that
    /// has taken the key (as `resolve` routes it). A quiet walk (an experiment's, a diff's)
    /// compares the nodes as configured and takes no canary's side.
    fn canary(&mut self, n: usize, input: &RouteInput<'_>) -> usize {
        if self.quiet || self.generation.shared.experiments.is_empty() {
            return n;
        }
        match self.generation.canary_side(n, input.key) {
            Some((i, crate::experiment::Side::Candidate)) => {
                let e = &self.generation.shared.experiments[i];
                self.path.push(n);
                self.line("canary", &[e.config.name.as_str()]);
                self.path.pop();
                e.candidate
            }
            _ => n,
        }
    }

    /// Node `n`'s plan from `route` (`carry_out`, before anything was sent).
    fn plan(&mut self, n: usize, plan: Decision, input: &RouteInput<'_>, role: Role) {
        match plan {
            Decision::Forward(child) => {
                if let Some(next) = self.child(n, child) {
                    self.target(next, input, role);
                }
            }
            Decision::Reply(r) => match self.plugin_reply(n, &r, input.op) {
                Recovery::Answer(outcome) => self.reply(&outcome),
                Recovery::Reroute(next) => self.target(next, input, role),
            },
            Decision::FanOut { children, wait } => {
                self.line("fan_out", &[wait_name(wait)]);
                let each = if wait == Wait::None {
                    // Nothing waits for these: the client gets the default reply at once.
                    match render_plugin_reply(&crate::plugin::OwnedReply::Miss, input.op) {
                        Ok(outcome) => self.reply(&outcome),
                        Err(problem) => {
                            let error = self.plan_error(n, problem);
                            return self.recover(n, error, input, role);
                        }
                    }
                    Role::Background
                } else {
                    Role::Wait(wait)
                };
                for child in children {
                    if let Some(next) = self.child(n, child) {
                        self.target(next, input, role.then(each));
                    }
                }
            }
            Decision::Call { child, .. } => {
                self.line("call", &[]);
                if let Some(next) = self.child(n, child) {
                    self.target(next, input, role.then(Role::Call));
                }
                // What comes next depends on a reply, and a dry run has none.
                self.line("on_reply", &[]);
            }
            Decision::Pass => {
                let error = self.plan_error(n, PlanProblem::MisplacedPass);
                self.recover(n, error, input, role);
            }
            Decision::Extended {
                primary,
                rewrite,
                background,
            } => {
                let mut key = input.key.to_vec();
                let mut sent = *input;
                if !rewrite.is_identity() {
                    key = match rewritten_key(input.key, &rewrite) {
                        Ok(key) => key,
                        Err(problem) => {
                            let error = self.plan_error(n, problem);
                            return self.recover(n, error, input, role);
                        }
                    };
                    let shown = String::from_utf8_lossy(&key).into_owned();
                    match rewritten_exptime(input, rewrite.exptime) {
                        Some(exptime) if rewrite.exptime != Exptime::Keep => {
                            sent.exptime = exptime;
                            let exptime = exptime.to_string();
                            self.line("rewrite", &[shown.as_str(), "exptime", exptime.as_str()]);
                        }
                        _ => self.line("rewrite", &[shown.as_str()]),
                    }
                }
                let sent = sent.with_key(&key);
                self.plan(n, *primary, &sent, role);
                for send in &background {
                    self.background(n, send, input);
                }
            }
        }
    }

    /// A background send of node `n` for `input`, the request as it reached the node
    /// (`execute/background.rs`).
    fn background(&mut self, n: usize, send: &OwnedBackground, input: &RouteInput<'_>) {
        let what = send.store.map_or("request", |store| {
            Op::from_code(store.op()).name().unwrap_or("store")
        });
        let key = match rewritten_key(input.key, &send.rewrite) {
            Ok(key) => key,
            Err(problem) => {
                let why = format!("background {what}: {}", self.plan_error(n, problem));
                return self.line("skip", &[why.as_str()]);
            }
        };
        let mut sent = input.with_key(&key);
        match send.store {
            // In `route` the value at hand is the request's own, if it is a classic store.
            Some(store) => {
                let op = Op::from_code(input.op);
                if !op.is_storage() || op.is_meta() {
                    let why = format!("background {what}: no value at hand");
                    return self.line("skip", &[why.as_str()]);
                }
                sent.op = Store::op(store);
                sent.exptime = send
                    .rewrite
                    .exptime
                    .apply(input.exptime, now_for(send.rewrite.exptime));
            }
            None => {
                if let Some(exptime) = rewritten_exptime(input, send.rewrite.exptime) {
                    sent.exptime = exptime;
                }
            }
        }
        if send.compare {
            self.line("background", &[what, "compare"]);
        } else {
            self.line("background", &[what]);
        }
        if let Some(next) = self.child(n, send.child) {
            self.target(next, &sent, Role::Background);
        }
    }

    /// Node `n`'s child `child`; `None`, and an `error` line ending this branch of the walk, if
    /// it has no such child (which the plan decoder refuses before a plan gets here).
    fn child(&mut self, n: usize, child: u32) -> Option<Target> {
        let found = self.generation.shared.nodes[n]
            .children
            .get(child as usize)
            .copied();
        if found.is_none() {
            self.line("error", &["no such child"]);
        }
        found
    }

    /// Node `n`'s own reply `r`, or what becomes of the request if the reply is not valid for
    /// the operation.
    fn plugin_reply(&mut self, n: usize, r: &crate::plugin::OwnedReply, op: u32) -> Recovery {
        match render_plugin_reply(r, op) {
            Ok(outcome) => Recovery::Answer(outcome),
            Err(problem) => self.failed(n, self.plan_error(n, problem)),
        }
    }

    fn plan_error(&self, n: usize, problem: PlanProblem) -> RequestError {
        RequestError::Plan {
            node: self.generation.shared.nodes[n].context.label.clone(),
            call: PluginCall::Route,
            problem,
        }
    }

    /// Writes down a failure at node `n` and hands it to the node's `on_fault`, as a request's
    /// would be (counted, logged): what the request gets then.
    fn failed(&mut self, n: usize, error: RequestError) -> Recovery {
        let kind = if error.side() == Side::Plugin {
            self.faulted = true;
            "fault"
        } else {
            "error"
        };
        self.line(kind, &[error.detail().as_str()]);
        self.generation.plugin_failed(n, error)
    }

    /// [`failed`](Self::failed), then the rest of the walk.
    fn recover(&mut self, n: usize, error: RequestError, input: &RouteInput<'_>, role: Role) {
        match self.failed(n, error) {
            Recovery::Answer(outcome) => self.reply(&outcome),
            Recovery::Reroute(next) => self.target(next, input, role),
        }
    }

    fn server(&mut self, dest: usize, role: Role) {
        let Some(spec) = self.generation.shared.destinations.get(dest) else {
            return self.line("error", &["no such server"]);
        };
        if role != Role::Background {
            self.reached.push(dest);
        }
        if self.quiet {
            return;
        }
        let state = if spec.health.is_up() { "up" } else { "down" };
        let address = spec.address.to_string();
        self.line("server", &[address.as_str(), role.name(), state]);
    }

    fn reply(&mut self, outcome: &Outcome) {
        let first = outcome
            .frame
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        let first = String::from_utf8_lossy(first.strip_suffix(b"\r").unwrap_or(first));
        self.line("reply", &[first.as_ref()]);
    }

    /// One line: `kind`, the path to the node walked now, then `fields`, with any control
    /// character in them made a space so that a line stays a line.
    fn line(&mut self, kind: &str, fields: &[&str]) {
        if self.quiet {
            return;
        }
        self.text.push_str(kind);
        self.text.push(' ');
        self.push_path();
        for field in fields {
            self.text.push(' ');
            self.text
                .extend(field.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        self.text.push('\n');
    }

    /// The node labels from the root, joined by `>` (`-` for none, which a walk never writes:
    /// every root is a node). A label's spaces, `>`, `%` and control characters are
    /// percent-escaped, so a path is one word.
    fn push_path(&mut self) {
        if self.path.is_empty() {
            self.text.push('-');
            return;
        }
        let nodes = &self.generation.shared.nodes;
        for (i, &n) in self.path.iter().enumerate() {
            if i > 0 {
                self.text.push('>');
            }
            push_escaped(&mut self.text, &nodes[n].context.label);
        }
    }
}

/// `label` with every space, `>`, `%` and control character written as `%XX` per byte.
fn push_escaped(out: &mut String, label: &str) {
    for c in label.chars() {
        if c == ' ' || c == '>' || c == '%' || c.is_control() {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// The exptime a rewrite gives the children's `route`; `None` for an operation that carries
/// none (`execute/rewrite.rs`, `carries_exptime`).
fn rewritten_exptime(input: &RouteInput<'_>, exptime: Exptime) -> Option<i64> {
    let op = Op::from_code(input.op);
    let carries = op.is_storage()
        || matches!(
            op,
            Op::Touch | Op::Gat | Op::Gats | Op::MetaGet | Op::MetaDelete | Op::MetaArithmetic
        );
    carries.then(|| exptime.apply(input.exptime, now_for(exptime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_one_word() {
        let mut out = String::new();
        push_escaped(&mut out, "pools.a b>c%d\n");
        assert_eq!(out, "pools.a%20b%3Ec%25d%0A");
        let mut plain = String::new();
        push_escaped(&mut plain, "routes.root");
        assert_eq!(plain, "routes.root");
    }

    #[test]
    fn background_is_sticky_and_other_roles_are_the_innermost() {
        assert_eq!(Role::Answer.then(Role::Call), Role::Call);
        assert_eq!(
            Role::Call.then(Role::Wait(Wait::All)),
            Role::Wait(Wait::All)
        );
        assert_eq!(Role::Background.then(Role::Call), Role::Background);
        assert_eq!(Role::Wait(Wait::FirstGood).name(), "first_good");
    }
}
