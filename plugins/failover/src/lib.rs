//! Ordered failover, like mcrouter's FailoverRoute: send each request to the first child the
//! host reports healthy; when its reply has a status in `failover_on`, try the next healthy
//! child, and so on down the list. See `README.md`.
//!
//! The cookie of every call is the index of the child called: that is all `on_reply` needs
//! (the next candidates are the children after it), and it survives the instance being
//! replaced between the call and its reply.

use serde::Deserialize;
use switchyard_sdk::abi::MAX_CALLS;
use switchyard_sdk::metrics::Counter;
use switchyard_sdk::{Child, InitContext, Plan, Policy, ReplyStatus, Request, host};

/// The statuses `failover_on` may name: the failures (an error from the child, or from the
/// router when the child is down, timed out or unreachable) and `miss`, for a miss-failover.
/// Anything else (`stored`, `not_found`, ...) is an answer, not a failure of the child.
pub const FAILOVER_STATUSES: [ReplyStatus; 4] = [
    ReplyStatus::ServerError,
    ReplyStatus::Error,
    ReplyStatus::ClientError,
    ReplyStatus::Miss,
];

/// The default `failover_on`: `server_error` alone, because that is how every failure of a
/// child reaches the plugin (a backend that is down, timed out or unreachable, and a
/// backend's own `SERVER_ERROR`), while `ERROR` and `CLIENT_ERROR` mean the request itself
/// was refused, and would be refused by the next child too.
pub const DEFAULT_FAILOVER_ON: &[ReplyStatus] = &[ReplyStatus::ServerError];

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Reply statuses that send the request on to the next child, by name (one of
    /// [`FAILOVER_STATUSES`]); default [`DEFAULT_FAILOVER_ON`]. Names rather than
    /// `ReplyStatus` so that a bad one is reported with the list this plugin accepts.
    #[serde(default)]
    pub failover_on: Option<Vec<String>>,
}

/// The policy.
#[derive(Debug)]
pub struct Failover {
    /// Number of children; they are tried in index order.
    children: u32,
    /// Statuses that fail over, without duplicates.
    failover_on: Vec<ReplyStatus>,
    /// Requests sent on to a later child after a reply in `failover_on` (`stats plugins`).
    failovers: Counter,
    /// Requests whose first child was not the first one, because it was marked down.
    skipped_down: Counter,
}

impl Failover {
    /// The first healthy child from index `from` on, if any.
    fn next_healthy(&self, from: u32) -> Option<Child> {
        (from..self.children)
            .map(Child)
            .find(|&child| host::child_healthy(child))
    }

    /// The plan that sends the request to `child`: a call, so that its reply comes back to
    /// `on_reply`; but a plain forward when nothing could follow it, because `child` is the
    /// last one (`on_reply` could only pass its reply) or a further call could exceed the
    /// host's limit. `calls_so_far` is an upper bound on the calls this request has made.
    fn send_to(&self, child: Child, calls_so_far: u32) -> Plan<'static> {
        if child.0 + 1 >= self.children || calls_so_far >= MAX_CALLS {
            Plan::Forward(child)
        } else {
            Plan::Call {
                child,
                cookie: child.0,
            }
        }
    }
}

/// Parses `failover_on`, naming every name it does not accept.
fn parse_failover_on(names: &[String]) -> Result<Vec<ReplyStatus>, String> {
    if names.is_empty() {
        return Err(
            "failover_on is empty, so no reply would ever fail over; leave it out for the \
             default [\"server_error\"]"
                .into(),
        );
    }
    let mut statuses = Vec::new();
    let mut rejected = Vec::new();
    for name in names {
        match ReplyStatus::from_name(name).filter(|status| FAILOVER_STATUSES.contains(status)) {
            Some(status) if !statuses.contains(&status) => statuses.push(status),
            Some(_) => {}
            None => rejected.push(format!("{name:?}")),
        }
    }
    if rejected.is_empty() {
        return Ok(statuses);
    }
    let accepted: Vec<_> = FAILOVER_STATUSES
        .iter()
        .filter_map(|status| status.name())
        .map(|name| format!("{name:?}"))
        .collect();
    Err(format!(
        "failover_on: cannot fail over on {} (it takes {})",
        rejected.join(", "),
        accepted.join(", ")
    ))
}

impl Policy for Failover {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() == 0 {
            return Err("failover needs at least one child (two to be of use)".into());
        }
        let failover_on = match &config.failover_on {
            Some(names) => parse_failover_on(names)?,
            None => DEFAULT_FAILOVER_ON.to_vec(),
        };
        Ok(Self {
            children: ctx.child_count(),
            failover_on,
            failovers: Counter::define("failovers")?,
            skipped_down: Counter::define("skipped_down")?,
        })
    }

    /// The first healthy child, or child 0 when none is (its reply, a fast `SERVER_ERROR` if
    /// it is still down, may still fail over to a child that came back meanwhile).
    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        let child = self.next_healthy(0).unwrap_or(Child(0));
        if child.0 > 0 {
            self.skipped_down.increment();
        }
        self.send_to(child, 0)
    }

    /// `cookie` is the index of the child that answered `status`.
    fn on_reply<'a>(
        &'a mut self,
        cookie: u32,
        status: ReplyStatus,
        _request: &Request<'_>,
    ) -> Plan<'a> {
        if !self.failover_on.contains(&status) {
            return Plan::Pass;
        }
        match self.next_healthy(cookie.saturating_add(1)) {
            // Every call went to a higher index than the one before, starting at 0 or more, so
            // the call to child `cookie` was at most call number `cookie + 1`.
            Some(next) => {
                self.failovers.increment();
                self.send_to(next, cookie.saturating_add(1))
            }
            None => Plan::Pass,
        }
    }
}

switchyard_sdk::export_policy!(Failover);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const THREE: &[(&str, u32)] = &[("main", 1), ("backup", 1), ("last", 1)];

    const GET: Request<'static> = Request::new(Op::Get, b"key");

    fn call(child: u32) -> Decision {
        Decision::Call {
            child,
            cookie: child,
        }
    }

    fn failover(config: &str, children: &[(&str, u32)]) -> Harness<Failover> {
        Harness::new(config, children).expect("valid config")
    }

    /// Plays one request to the end: `route`, then each called child answers `answer(child)`.
    /// Returns the children the request went to, and the final decision (`Pass` or `Forward`).
    fn play(
        h: &mut Harness<Failover>,
        request: &Request<'_>,
        answer: impl Fn(u32) -> ReplyStatus,
    ) -> (Vec<u32>, Decision) {
        let mut visited = Vec::new();
        let mut decision = h.route(request);
        while let Decision::Call { child, cookie } = decision {
            visited.push(child);
            assert!(visited.len() <= MAX_CALLS as usize, "too many calls");
            decision = h.on_reply(cookie, answer(child), request);
        }
        (visited, decision)
    }

    #[test]
    fn routes_to_the_first_healthy_child() {
        let mut h = failover("", THREE);
        assert_eq!(h.route(&GET), call(0));
        h.set_healthy(0, false);
        assert_eq!(h.route(&GET), call(1));
        h.set_healthy(1, false);
        // The last child: nothing could follow it, so a plain forward.
        assert_eq!(h.route(&GET), Decision::Forward(2));
        assert_eq!(h.counter("skipped_down"), 2);
        assert_eq!(h.counter("failovers"), 0);
    }

    #[test]
    fn routes_to_child_0_when_none_is_healthy() {
        let mut h = failover("", THREE);
        (0..3).for_each(|child| h.set_healthy(child, false));
        assert_eq!(h.route(&GET), call(0));
        // Its SERVER_ERROR passes through, as nothing after it is healthy either.
        assert_eq!(
            h.on_reply(0, ReplyStatus::ServerError, &GET),
            Decision::Pass
        );
        // Unless a child came back meanwhile.
        h.set_healthy(2, true);
        assert_eq!(
            h.on_reply(0, ReplyStatus::ServerError, &GET),
            Decision::Forward(2)
        );
    }

    #[test]
    fn fails_over_on_server_error_only_by_default() {
        let mut h = failover("", THREE);
        assert_eq!(h.on_reply(0, ReplyStatus::ServerError, &GET), call(1));
        assert_eq!(
            h.on_reply(1, ReplyStatus::ServerError, &GET),
            Decision::Forward(2)
        );
        assert_eq!(h.counter("failovers"), 2);
        for code in 0..15 {
            let status = ReplyStatus::from_code(code);
            if status != ReplyStatus::ServerError {
                assert_eq!(h.on_reply(0, status, &GET), Decision::Pass, "{status}");
            }
        }
    }

    #[test]
    fn chains_skip_children_that_are_down() {
        let five = [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)];
        let mut h = failover("", &five);
        h.set_healthy(1, false);
        h.set_healthy(2, false);
        let (visited, last) = play(&mut h, &GET, |_| ReplyStatus::ServerError);
        assert_eq!((visited, last), (vec![0, 3], Decision::Forward(4)));

        // The first answer that does not fail over ends the chain.
        let (visited, last) = play(&mut h, &GET, |child| {
            if child == 0 {
                ReplyStatus::ServerError
            } else {
                ReplyStatus::Hit
            }
        });
        assert_eq!((visited, last), (vec![0, 3], Decision::Pass));
    }

    #[test]
    fn passes_the_last_error_when_no_healthy_child_is_left() {
        let mut h = failover("", THREE);
        h.set_healthy(2, false);
        assert_eq!(h.route(&GET), call(0));
        assert_eq!(h.on_reply(0, ReplyStatus::ServerError, &GET), call(1));
        assert_eq!(
            h.on_reply(1, ReplyStatus::ServerError, &GET),
            Decision::Pass
        );
    }

    #[test]
    fn one_child_is_a_forward() {
        let mut h = failover("", &[("only", 1)]);
        assert_eq!(h.route(&GET), Decision::Forward(0));
        h.set_healthy(0, false);
        assert_eq!(h.route(&GET), Decision::Forward(0));
        assert_eq!(
            h.on_reply(0, ReplyStatus::ServerError, &GET),
            Decision::Pass
        );
    }

    #[test]
    fn miss_failover() {
        let config = r#"failover_on = ["miss", "server_error"]"#;
        let mut h = failover(config, THREE);
        // A miss on the first two, a hit on the last.
        let (visited, last) = play(&mut h, &GET, |_| ReplyStatus::Miss);
        assert_eq!((visited, last), (vec![0, 1], Decision::Forward(2)));
        // A hit ends it.
        assert_eq!(h.on_reply(0, ReplyStatus::Hit, &GET), Decision::Pass);
        // Writes never miss: their answers pass through.
        let set = Request::new(Op::Set, b"key").with_value_len(1);
        assert_eq!(h.on_reply(0, ReplyStatus::Stored, &set), Decision::Pass);
        assert_eq!(h.on_reply(0, ReplyStatus::NotStored, &set), Decision::Pass);
        assert_eq!(h.on_reply(0, ReplyStatus::ServerError, &set), call(1));

        let mut miss_only = failover(r#"failover_on = ["miss"]"#, THREE);
        assert_eq!(
            miss_only.on_reply(0, ReplyStatus::ServerError, &GET),
            Decision::Pass
        );
        assert_eq!(miss_only.on_reply(0, ReplyStatus::Miss, &GET), call(1));
    }

    #[test]
    fn every_error_status_can_fail_over() {
        let config = r#"failover_on = ["error", "client_error", "server_error", "error"]"#;
        let mut h = failover(config, THREE);
        assert_eq!(
            h.policy().failover_on,
            [
                ReplyStatus::Error,
                ReplyStatus::ClientError,
                ReplyStatus::ServerError
            ]
        );
        for status in [
            ReplyStatus::Error,
            ReplyStatus::ClientError,
            ReplyStatus::ServerError,
        ] {
            assert_eq!(h.on_reply(0, status, &GET), call(1), "{status}");
        }
        assert_eq!(h.on_reply(0, ReplyStatus::Miss, &GET), Decision::Pass);
    }

    #[test]
    fn unknown_statuses_and_cookies_pass() {
        let mut h = failover("", THREE);
        assert_eq!(h.on_reply(0, ReplyStatus::Other(99), &GET), Decision::Pass);
        for cookie in [2, 3, u32::MAX] {
            assert_eq!(
                h.on_reply(cookie, ReplyStatus::ServerError, &GET),
                Decision::Pass
            );
        }
    }

    #[test]
    fn chains_stay_within_the_call_limit() {
        let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        let twelve: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let mut h = failover("", &twelve);
        let (visited, last) = play(&mut h, &GET, |_| ReplyStatus::ServerError);
        // Eight calls (0..=7), then child 8 as a forward: its reply is final.
        assert_eq!(visited, (0..MAX_CALLS).collect::<Vec<_>>());
        assert_eq!(last, Decision::Forward(MAX_CALLS));

        // With children down, the bound stays conservative but never exceeds the limit.
        (0..6).for_each(|child| h.set_healthy(child, false));
        let (visited, last) = play(&mut h, &GET, |_| ReplyStatus::ServerError);
        assert_eq!((visited, last), (vec![6, 7], Decision::Forward(8)));
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Failover>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");

        let err = Harness::<Failover>::new(
            r#"failover_on = ["server_error", "sever_error", "hit", "not_found"]"#,
            THREE,
        )
        .expect_err("bad names");
        assert_eq!(
            err,
            r#"failover_on: cannot fail over on "sever_error", "hit", "not_found" (it takes "server_error", "error", "client_error", "miss")"#
        );

        let err = Harness::<Failover>::new("failover_on = []", THREE).expect_err("empty");
        assert!(err.contains("failover_on is empty"), "{err}");

        let err =
            Harness::<Failover>::new(r#"failover = ["miss"]"#, THREE).expect_err("unknown key");
        assert!(err.contains("unknown field `failover`"), "{err}");

        let err = Harness::<Failover>::new(r#"failover_on = "miss""#, THREE).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
    }

    #[test]
    fn default_config() {
        let h = failover("", THREE);
        assert_eq!(h.policy().failover_on, DEFAULT_FAILOVER_ON);
        assert_eq!(h.policy().children, 3);
    }
}
