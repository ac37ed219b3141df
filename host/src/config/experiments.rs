//! `[experiments.NAME]`: experiments on a route node, checked.

use std::collections::HashMap;
use std::ops::Range;

use std::time::Duration;

use super::raw::{RawConfig, RawExperiment};
use super::validate::Ctx;
use super::{CanaryConfig, ConfigError, ExperimentConfig, ExperimentKind};

/// Experiments a configuration may hold: each request's marks fit one word.
pub const MAX_EXPERIMENTS: usize = 64;

/// A shadow's mismatch samples kept by default, and at most.
const DEFAULT_KEEP_MISMATCHES: usize = 32;
const MAX_KEEP_MISMATCHES: usize = 1024;

/// A canary's steps by default, and how many it may have.
const DEFAULT_STEPS: [f64; 5] = [0.01, 0.05, 0.25, 0.5, 1.0];
const MAX_STEPS: usize = 32;

/// A canary step lasts at most a week.
const MAX_STEP_SECONDS: f64 = 7.0 * 86_400.0;

/// The experiments, each checked: its kind is one the router runs, its `node` and `candidate`
/// name pools or routes, the candidate is no listener's or tenant's (so nothing live depends on
/// it), its sample is a fraction, it sets only its own kind's settings, and a node has at most
/// one canary.
pub(super) fn experiments(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    names: &HashMap<&str, Range<usize>>,
) -> Result<Vec<ExperimentConfig>, ConfigError> {
    let mut out = Vec::with_capacity(raw.experiments.len());
    if raw.experiments.len() > MAX_EXPERIMENTS {
        let (first, _) = raw
            .experiments
            .iter()
            .nth(MAX_EXPERIMENTS)
            .expect("counted");
        return Err(cx.at(
            first,
            format!("experiments.{}", first.get_ref()),
            format!("more than {MAX_EXPERIMENTS} experiments"),
        ));
    }
    for (name, e) in &raw.experiments {
        cx.name("experiments", name)?;
        let key = format!("experiments.{}", name.get_ref());
        let kind = match e.kind.get_ref().as_str() {
            "dry-run" => ExperimentKind::DryRun,
            "shadow" => ExperimentKind::Shadow,
            "canary" => ExperimentKind::Canary,
            other => {
                return Err(cx.at(
                    &e.kind,
                    format!("{key}.kind"),
                    format!(
                        "`{other}` is no kind of experiment this router runs: \"dry-run\", \
                         \"shadow\" or \"canary\""
                    ),
                ));
            }
        };
        for (value, what) in [(&e.node, "node"), (&e.candidate, "candidate")] {
            if !names.contains_key(value.get_ref().as_str()) {
                return Err(cx.at(
                    value,
                    format!("{key}.{what}"),
                    format!("no pool or route is named `{}`", value.get_ref()),
                ));
            }
        }
        if e.node.get_ref() == e.candidate.get_ref() {
            return Err(cx.at(
                &e.candidate,
                format!("{key}.candidate"),
                "the candidate is the node itself",
            ));
        }
        // Each kind's own settings, and no other kind's.
        let misplaced = |span: Option<Range<usize>>, what: &str, kinds: &str| {
            cx.err(
                span,
                format!("{key}.{what}"),
                format!("`{what}` is for {kinds} experiments only"),
            )
        };
        if kind == ExperimentKind::Canary {
            if let Some(s) = &e.sample {
                return Err(misplaced(Some(s.span()), "sample", "dry-run and shadow"));
            }
            if let Some(r) = &e.key_range {
                return Err(misplaced(Some(r.span()), "key_range", "dry-run and shadow"));
            }
        } else {
            let canary_only = [
                e.steps.as_ref().map(|v| (v.span(), "steps")),
                e.step_seconds.as_ref().map(|v| (v.span(), "step_seconds")),
                e.min_requests.as_ref().map(|v| (v.span(), "min_requests")),
                e.max_error_rate_increase
                    .as_ref()
                    .map(|v| (v.span(), "max_error_rate_increase")),
                e.max_p99_ratio
                    .as_ref()
                    .map(|v| (v.span(), "max_p99_ratio")),
            ];
            if let Some((span, what)) = canary_only.into_iter().flatten().next() {
                return Err(misplaced(Some(span), what, "canary"));
            }
        }
        if kind != ExperimentKind::Shadow
            && let Some(k) = &e.keep_mismatches
        {
            return Err(misplaced(Some(k.span()), "keep_mismatches", "shadow"));
        }
        let sample = match &e.sample {
            None => 1.0,
            Some(s) if *s.get_ref() > 0.0 && *s.get_ref() <= 1.0 => *s.get_ref(),
            Some(s) => {
                return Err(cx.at(
                    s,
                    format!("{key}.sample"),
                    format!(
                        "{} is no fraction of requests: more than 0, at most 1",
                        s.get_ref()
                    ),
                ));
            }
        };
        let key_range = match &e.key_range {
            None => (0.0, 1.0),
            Some(r) => match r.get_ref().as_slice() {
                &[start, end] if (0.0..end).contains(&start) && end <= 1.0 => (start, end),
                _ => {
                    return Err(cx.at(
                        r,
                        format!("{key}.key_range"),
                        "a band of the key-hash space as [start, end], fractions of it with \
                         0 <= start < end <= 1, such as [0.25, 0.5]",
                    ));
                }
            },
        };
        let keep_mismatches = match &e.keep_mismatches {
            None => DEFAULT_KEEP_MISMATCHES,
            Some(k) if (0..=MAX_KEEP_MISMATCHES as i64).contains(k.get_ref()) => {
                *k.get_ref() as usize
            }
            Some(k) => {
                return Err(cx.at(
                    k,
                    format!("{key}.keep_mismatches"),
                    format!("keeps 0 to {MAX_KEEP_MISMATCHES} samples"),
                ));
            }
        };
        let canary = (kind == ExperimentKind::Canary)
            .then(|| canary(cx, &key, e))
            .transpose()?;
        out.push(ExperimentConfig {
            name: name.get_ref().clone(),
            kind,
            node: e.node.get_ref().clone(),
            candidate: e.candidate.get_ref().clone(),
            sample,
            key_range,
            enabled: e.enabled.as_ref().is_none_or(|v| *v.get_ref()),
            keep_mismatches,
            canary,
            line: cx.line_of(name.span().start),
        });
    }
    // One canary per node: a key is routed one way or the other.
    for (i, c) in out.iter().enumerate() {
        if c.kind == ExperimentKind::Canary
            && let Some(other) = out[..i]
                .iter()
                .find(|o| o.kind == ExperimentKind::Canary && o.node == c.node)
        {
            return Err(cx.err(
                raw.experiments
                    .iter()
                    .find(|(n, _)| *n.get_ref() == c.name)
                    .map(|(_, r)| r.node.span()),
                format!("experiments.{}.node", c.name),
                format!(
                    "`{}` already has the canary `{}`: a node rolls out one candidate at a time",
                    c.node, other.name
                ),
            ));
        }
    }
    Ok(out)
}

/// A canary's rollout settings, checked: steps that grow to at most all keys, a step time, and
/// bounds that can be met.
fn canary(cx: &Ctx<'_>, key: &str, e: &RawExperiment) -> Result<CanaryConfig, ConfigError> {
    let steps = match &e.steps {
        None => DEFAULT_STEPS.to_vec(),
        Some(s) => {
            let steps = s.get_ref();
            let grows = steps.windows(2).all(|w| w[0] < w[1]);
            let fractions = steps.iter().all(|f| *f > 0.0 && *f <= 1.0);
            if steps.is_empty() || steps.len() > MAX_STEPS || !grows || !fractions {
                return Err(cx.at(
                    s,
                    format!("{key}.steps"),
                    format!(
                        "1 to {MAX_STEPS} growing fractions of keys, each more than 0 and at \
                         most 1, such as [0.01, 0.1, 0.5, 1.0]"
                    ),
                ));
            }
            steps.clone()
        }
    };
    let positive = |v: &Option<toml::Spanned<f64>>, what: &str, default: f64, at_least: f64| match v
    {
        None => Ok(default),
        Some(v) if v.get_ref().is_finite() && *v.get_ref() >= at_least => Ok(*v.get_ref()),
        Some(v) => Err(cx.at(
            v,
            format!("{key}.{what}"),
            format!("{} is less than {at_least}", v.get_ref()),
        )),
    };
    let step_seconds = positive(&e.step_seconds, "step_seconds", 60.0, 0.1)?;
    if step_seconds > MAX_STEP_SECONDS {
        let at = e.step_seconds.as_ref().map(|v| v.span());
        return Err(cx.err(
            at,
            format!("{key}.step_seconds"),
            format!("{step_seconds} is more than {MAX_STEP_SECONDS} (a week)"),
        ));
    }
    let max_error_rate_increase = positive(
        &e.max_error_rate_increase,
        "max_error_rate_increase",
        0.01,
        0.0,
    )?;
    let max_p99_ratio = positive(&e.max_p99_ratio, "max_p99_ratio", 2.0, 1.0)?;
    let min_requests = match &e.min_requests {
        None => 100,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref() as u64,
        Some(m) => {
            return Err(cx.at(
                m,
                format!("{key}.min_requests"),
                format!("{} is less than 1", m.get_ref()),
            ));
        }
    };
    Ok(CanaryConfig {
        steps,
        step: Duration::from_secs_f64(step_seconds),
        min_requests,
        max_error_rate_increase,
        max_p99_ratio,
    })
}

/// A candidate some listener or tenant reaches is live: its faults would count towards the
/// rollback and its servers would get traffic. `live` are the pool and route names reachable
/// from the listeners' and tenants' roots.
pub(super) fn candidates_are_not_live(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    experiments: &[ExperimentConfig],
    live: &[String],
) -> Result<(), ConfigError> {
    for e in experiments {
        if live.contains(&e.candidate) {
            let value = raw
                .experiments
                .iter()
                .find(|(n, _)| *n.get_ref() == e.name)
                .map(|(_, r)| r.candidate.span());
            return Err(cx.err(
                value,
                format!("experiments.{}.candidate", e.name),
                format!(
                    "`{}` serves live requests (a listener or tenant reaches it): a candidate \
                     must be a pool or route only the experiment uses",
                    e.candidate
                ),
            ));
        }
    }
    Ok(())
}

/// A candidate that reaches an experiment's node would route a request back into the
/// experiment: a canary would divert it again, a shadow copy it again. `reach` gives the pool
/// and route names reachable from one (itself included).
pub(super) fn candidates_lead_to_no_node(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    experiments: &[ExperimentConfig],
    reach: impl Fn(&str) -> Vec<String>,
) -> Result<(), ConfigError> {
    for e in experiments {
        let reached = reach(&e.candidate);
        if let Some(node) = experiments.iter().find(|x| reached.contains(&x.node)) {
            let value = raw
                .experiments
                .iter()
                .find(|(n, _)| *n.get_ref() == e.name)
                .map(|(_, r)| r.candidate.span());
            return Err(cx.err(
                value,
                format!("experiments.{}.candidate", e.name),
                format!(
                    "`{}` reaches `{}`, the node of experiment `{}`: a candidate must not lead \
                     back into an experiment",
                    e.candidate, node.node, node.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, ExperimentKind};

    const BASE: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
        [pools.main]\nservers = [\"127.0.0.1:21211\"]\n\n\
        [pools.grown]\nservers = [\"127.0.0.1:21211\", \"127.0.0.1:21212\"]\n\n";

    fn check(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!("{BASE}{extra}"), std::path::Path::new("/x/t.toml"))
    }

    #[test]
    fn an_experiment_is_read_and_its_mistakes_named() {
        let config = check(
            "[experiments.grow]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"grown\"\n\
             sample = 0.1\n",
        )
        .expect("valid");
        let e = &config.experiments[0];
        assert_eq!(
            (e.kind, e.sample, e.enabled),
            (ExperimentKind::DryRun, 0.1, true)
        );
        for (table, key, message) in [
            (
                "kind = \"shadowing\"\nnode = \"main\"\ncandidate = \"grown\"\n",
                "experiments.x.kind",
                "`shadowing` is no kind of experiment",
            ),
            (
                "kind = \"dry-run\"\nnode = \"nowhere\"\ncandidate = \"grown\"\n",
                "experiments.x.node",
                "no pool or route is named `nowhere`",
            ),
            (
                "kind = \"dry-run\"\nnode = \"grown\"\ncandidate = \"main\"\n",
                "experiments.x.candidate",
                "serves live requests",
            ),
            (
                "kind = \"dry-run\"\nnode = \"main\"\ncandidate = \"grown\"\nsample = 0\n",
                "experiments.x.sample",
                "no fraction of requests",
            ),
            (
                "kind = \"dry-run\"\nnode = \"main\"\ncandidate = \"main\"\n",
                "experiments.x.candidate",
                "the node itself",
            ),
            (
                "kind = \"dry-run\"\nnode = \"main\"\ncandidate = \"grown\"\nsteps = [1.0]\n",
                "experiments.x.steps",
                "for canary experiments only",
            ),
            (
                "kind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\nsample = 0.5\n",
                "experiments.x.sample",
                "for dry-run and shadow experiments only",
            ),
            (
                "kind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n\
                 steps = [0.5, 0.1]\n",
                "experiments.x.steps",
                "growing fractions",
            ),
            (
                "kind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n\
                 max_p99_ratio = 0.5\n",
                "experiments.x.max_p99_ratio",
                "less than 1",
            ),
            (
                "kind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\nkeep_mismatches = 3\n",
                "experiments.x.keep_mismatches",
                "for shadow experiments only",
            ),
            (
                "kind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n\
                 step_seconds = 1e20\n",
                "experiments.x.step_seconds",
                "more than 604800",
            ),
            (
                "kind = \"shadow\"\nnode = \"main\"\ncandidate = \"grown\"\n\
                 key_range = [0.5, 0.2]\n",
                "experiments.x.key_range",
                "0 <= start < end <= 1",
            ),
            (
                "kind = \"shadow\"\nnode = \"main\"\ncandidate = \"grown\"\n\
                 keep_mismatches = 5000\n",
                "experiments.x.keep_mismatches",
                "0 to 1024",
            ),
        ] {
            let e = check(&format!("[experiments.x]\n{table}")).expect_err(table);
            assert_eq!(e.key, key, "{table}");
            assert!(e.message.contains(message), "{table}: {}", e.message);
            assert!(e.line.is_some(), "{table}");
        }
        let e = check(
            "[experiments.\"a:b\"]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"grown\"\n",
        )
        .expect_err("a name with a colon");
        assert_eq!(e.key, "experiments.a:b");
        assert!(e.line.is_some());
        assert!(e.message.contains("is not a name"), "{}", e.message);
        let config = check(
            "[experiments.roll]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n\
             steps = [0.1, 1.0]\nstep_seconds = 0.5\n",
        )
        .expect("valid");
        let canary = config.experiments[0].canary.as_ref().expect("a canary");
        assert_eq!(
            (
                canary.steps.as_slice(),
                canary.step.as_millis(),
                canary.min_requests
            ),
            (&[0.1, 1.0][..], 500, 100)
        );
        let two = check(
            "[experiments.a]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n\
             [experiments.b]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"grown\"\n",
        )
        .expect_err("two canaries on one node");
        assert!(two.message.contains("already has the canary `a`"), "{two}");
        let back = check(
            "[routes.next]\nplugin = \"failover\"\nchildren = [\"main\", \"grown\"]\n\
             [experiments.a]\nkind = \"shadow\"\nnode = \"main\"\ncandidate = \"next\"\n",
        )
        .expect_err("a candidate that reaches the node");
        assert_eq!(back.key, "experiments.a.candidate");
        assert!(back.message.contains("reaches `main`"), "{back}");
    }
}
