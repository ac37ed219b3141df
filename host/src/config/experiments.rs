//! `[experiments.NAME]`: experiments on a route node, checked.

use std::collections::HashMap;
use std::ops::Range;

use super::raw::RawConfig;
use super::validate::Ctx;
use super::{ConfigError, ExperimentConfig, ExperimentKind};

/// The experiments, each checked: its kind is one the router runs, its `node` and `candidate`
/// name pools or routes, the candidate is no listener's or tenant's (so nothing live depends on
/// it), and its sample is a fraction.
pub(super) fn experiments(
    cx: &Ctx<'_>,
    raw: &RawConfig,
    names: &HashMap<&str, Range<usize>>,
) -> Result<Vec<ExperimentConfig>, ConfigError> {
    let mut out = Vec::with_capacity(raw.experiments.len());
    for (name, e) in &raw.experiments {
        let key = format!("experiments.{}", name.get_ref());
        let kind = match e.kind.get_ref().as_str() {
            "dry-run" => ExperimentKind::DryRun,
            other => {
                return Err(cx.at(
                    &e.kind,
                    format!("{key}.kind"),
                    format!("`{other}` is no kind of experiment this router runs: \"dry-run\""),
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
        out.push(ExperimentConfig {
            name: name.get_ref().clone(),
            kind,
            node: e.node.get_ref().clone(),
            candidate: e.candidate.get_ref().clone(),
            sample,
            enabled: e.enabled.as_ref().is_none_or(|v| *v.get_ref()),
            line: cx.line_of(name.span().start),
        });
    }
    Ok(out)
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
                "kind = \"shadow\"\nnode = \"main\"\ncandidate = \"grown\"\n",
                "experiments.x.kind",
                "`shadow` is no kind of experiment",
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
        ] {
            let e = check(&format!("[experiments.x]\n{table}")).expect_err(table);
            assert_eq!(e.key, key, "{table}");
            assert!(e.message.contains(message), "{table}: {}", e.message);
            assert!(e.line.is_some(), "{table}");
        }
    }
}
