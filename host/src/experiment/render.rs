//! What experiments found, for people and programs: `stats experiments` ([`render`]) and
//! `GET /experiments` ([`json`]).

use std::fmt::Write as _;

use super::canary::Side;
use super::{Experiment, Findings, kind_name};
use crate::generation::Generation;
use crate::stats::Snapshot;
use crate::stats::registry::{self, StatDef};

/// Writes one stat: its declaration, what fills its placeholders, its value.
type Line<'a> = dyn FnMut(&StatDef, &[(&str, &str)], &dyn std::fmt::Display) + 'a;

/// `part` of `whole` in percent, to two places.
fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.00".into()
    } else {
        format!("{:.2}", 100.0 * part as f64 / whole as f64)
    }
}

/// `stats experiments`: every experiment of `generation`, as `STAT <experiment>:<name> value`.
pub fn render(generation: &Generation) -> String {
    let mut out = String::with_capacity(1024 * generation.experiments.len() + 8);
    for e in &generation.experiments {
        let name = &e.config.name;
        let mut line = |def: &StatDef, fill: &[(&str, &str)], value: &dyn std::fmt::Display| {
            let mut stat = def.name.replacen("<experiment>", name, 1);
            for (placeholder, with) in fill {
                stat = stat.replacen(placeholder, with, 1);
            }
            let _ = write!(out, "STAT {stat} {value}\r\n");
        };
        line(&registry::EXPERIMENT_KIND, &[], &kind_name(e.config.kind));
        line(&registry::EXPERIMENT_ENABLED, &[], &u8::from(e.enabled()));
        line(&registry::EXPERIMENT_STARTED, &[], &e.state.started);
        let quantiles = |line: &mut Line<'_>, defs: [&StatDef; 3], s: &Snapshot| {
            line(defs[0], &[], &s.mean_us());
            line(defs[1], &[], &s.quantile_us(0.5));
            line(defs[2], &[], &s.quantile_us(0.99));
        };
        match &e.state.findings {
            Findings::DryRun(d) => {
                let (compared, moved) = d.totals();
                line(&registry::EXPERIMENT_SAMPLE, &[], &e.config.sample);
                line(&registry::EXPERIMENT_COMPARED, &[], &compared);
                line(&registry::EXPERIMENT_MOVED, &[], &moved);
                line(&registry::EXPERIMENT_MOVED_PCT, &[], &pct(moved, compared));
                line(&registry::EXPERIMENT_FAULTS, &[], &d.faults());
                line(&registry::EXPERIMENT_LIVE_FAULTS, &[], &d.live_faults());
                quantiles(
                    &mut line,
                    [
                        &registry::EXPERIMENT_TIME_MEAN,
                        &registry::EXPERIMENT_TIME_P50,
                        &registry::EXPERIMENT_TIME_P99,
                    ],
                    &d.time(),
                );
                for (from, to, n) in d.moved_cells() {
                    line(
                        &registry::EXPERIMENT_MOVED_FROM_TO,
                        &[("<from>", from), ("<to>", to)],
                        &n,
                    );
                }
            }
            Findings::Shadow(c) => {
                let (compared, mismatched) = c.totals();
                let agreed = compared - mismatched;
                line(&registry::EXPERIMENT_SAMPLE, &[], &e.config.sample);
                line(&registry::EXPERIMENT_COMPARED, &[], &compared);
                line(&registry::EXPERIMENT_AGREED, &[], &agreed);
                line(&registry::EXPERIMENT_MISMATCHED, &[], &mismatched);
                line(
                    &registry::EXPERIMENT_AGREEMENT_PCT,
                    &[],
                    &pct(agreed, compared),
                );
                for (kind, n) in c.mismatches() {
                    line(
                        &registry::EXPERIMENT_MISMATCH_KIND,
                        &[("<kind>", kind.name())],
                        &n,
                    );
                }
                for (command, compared, agreed) in c.by_command() {
                    let at = [("<command>", command)];
                    line(&registry::EXPERIMENT_CMD_COMPARED, &at, &compared);
                    line(&registry::EXPERIMENT_CMD_AGREED, &at, &agreed);
                }
                let (errors, dropped, unanswered) = c.other_counts();
                line(&registry::EXPERIMENT_CANDIDATE_ERRORS, &[], &errors);
                line(&registry::EXPERIMENT_DROPPED, &[], &dropped);
                line(&registry::EXPERIMENT_UNANSWERED, &[], &unanswered);
                let (live, candidate) = c.times();
                quantiles(&mut line, live_defs(), &live);
                quantiles(&mut line, candidate_defs(), &candidate);
                for (i, s) in c.samples().iter().enumerate() {
                    let n = i.to_string();
                    line(
                        &registry::EXPERIMENT_MISMATCH_SAMPLE,
                        &[("<n>", &n)],
                        &format_args!(
                            "{} {} {} {}/{}",
                            s.op.name().unwrap_or("other"),
                            s.key.replace(char::is_whitespace, "_"),
                            s.mismatch.name(),
                            status_name(s.live),
                            status_name(s.candidate)
                        ),
                    );
                }
            }
            Findings::Canary(r) => {
                let (step, _) = r.step();
                line(&registry::EXPERIMENT_STAGE, &[], &r.stage().name());
                line(&registry::EXPERIMENT_STEP, &[], &step);
                line(&registry::EXPERIMENT_FRACTION, &[], &r.fraction());
                let (live_n, live_errors, live_time) = r.side(Side::Live);
                let (cand_n, cand_errors, cand_time) = r.side(Side::Candidate);
                line(&registry::EXPERIMENT_LIVE_REQUESTS, &[], &live_n);
                line(&registry::EXPERIMENT_LIVE_ERRORS, &[], &live_errors);
                line(&registry::EXPERIMENT_CANDIDATE_REQUESTS, &[], &cand_n);
                line(&registry::EXPERIMENT_CANDIDATE_ERRORS, &[], &cand_errors);
                quantiles(&mut line, live_defs(), &live_time);
                quantiles(&mut line, candidate_defs(), &cand_time);
                if let Some(reason) = r.reason() {
                    line(&registry::EXPERIMENT_ROLLBACK_REASON, &[], &reason);
                }
            }
        }
    }
    out.push_str("END\r\n");
    out
}

fn live_defs() -> [&'static StatDef; 3] {
    [
        &registry::EXPERIMENT_LIVE_MEAN,
        &registry::EXPERIMENT_LIVE_P50,
        &registry::EXPERIMENT_LIVE_P99,
    ]
}

fn candidate_defs() -> [&'static StatDef; 3] {
    [
        &registry::EXPERIMENT_CANDIDATE_MEAN,
        &registry::EXPERIMENT_CANDIDATE_P50,
        &registry::EXPERIMENT_CANDIDATE_P99,
    ]
}

/// A reply status's config name.
pub(crate) fn status_name(status: switchyard_protocol::ReplyStatus) -> &'static str {
    status.name().unwrap_or("other")
}

/// `GET /experiments`: every experiment of `generation` as one JSON object: its settings, what
/// it found, and its history.
pub fn json(generation: &Generation) -> String {
    let label = |n: usize| {
        generation
            .nodes
            .get(n)
            .map_or(String::new(), |node| node.context.label.clone())
    };
    let mut out = format!("{{\"generation\":{},\"experiments\":[", generation.number);
    for (i, e) in generation.experiments.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"kind\":\"{}\",\"enabled\":{},\"started\":{},\"node\":{},\
             \"candidate\":{},",
            quoted(&e.config.name),
            kind_name(e.config.kind),
            e.enabled(),
            e.state.started,
            quoted(&label(e.node)),
            quoted(&label(e.candidate)),
        );
        findings_json(e, &mut out);
        out.push_str(",\"history\":[");
        for (k, p) in e.state.history(fraction(e)).iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"at\":{},\"compared\":{},\"differing\":{},\"fraction\":{}}}",
                p.at, p.compared, p.differing, p.fraction
            );
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

/// The fraction of requests `e` covers now: its sample, or a canary's step.
pub(crate) fn fraction(e: &Experiment) -> f64 {
    e.rollout().map_or(e.config.sample, |r| r.fraction())
}

/// A histogram as `{"mean":..,"p50":..,"p99":..}` (microseconds).
fn times(s: &Snapshot) -> String {
    format!(
        "{{\"count\":{},\"mean\":{},\"p50\":{},\"p99\":{}}}",
        s.count(),
        s.mean_us(),
        s.quantile_us(0.5),
        s.quantile_us(0.99)
    )
}

/// The kind's own fields of `e`, without braces.
fn findings_json(e: &Experiment, out: &mut String) {
    let ratio = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    match &e.state.findings {
        Findings::DryRun(d) => {
            let (compared, moved) = d.totals();
            let _ = write!(
                out,
                "\"sample\":{},\"key_range\":[{},{}],\"compared\":{compared},\"moved\":{moved},\
                 \"moved_fraction\":{:.6},\"candidate_faults\":{},\"live_faults\":{},\"candidate_time_us\":{},\
                 \"moved_by_server\":[",
                e.config.sample,
                e.config.key_range.0,
                e.config.key_range.1,
                ratio(moved, compared),
                d.faults(),
                d.live_faults(),
                times(&d.time()),
            );
            for (k, (from, to, n)) in d.moved_cells().into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{\"from\":{},\"to\":{},\"requests\":{n}}}",
                    quoted(from),
                    quoted(to)
                );
            }
            out.push(']');
        }
        Findings::Shadow(c) => {
            let (compared, mismatched) = c.totals();
            let (errors, dropped, unanswered) = c.other_counts();
            let (live, candidate) = c.times();
            let _ = write!(
                out,
                "\"sample\":{},\"key_range\":[{},{}],\"compared\":{compared},\
                 \"mismatched\":{mismatched},\
                 \"agreement\":{:.6},\"mismatches\":{{",
                e.config.sample,
                e.config.key_range.0,
                e.config.key_range.1,
                ratio(compared - mismatched, compared),
            );
            for (k, (kind, n)) in c.mismatches().into_iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\"{}\":{n}",
                    if k > 0 { "," } else { "" },
                    kind.name()
                );
            }
            out.push_str("},\"by_command\":[");
            for (k, (command, n, agreed)) in c.by_command().into_iter().enumerate() {
                let _ = write!(
                    out,
                    "{}{{\"command\":\"{command}\",\"compared\":{n},\"agreed\":{agreed}}}",
                    if k > 0 { "," } else { "" }
                );
            }
            let _ = write!(
                out,
                "],\"candidate_errors\":{errors},\"dropped\":{dropped},\
                 \"unanswered\":{unanswered},\"live_reply_us\":{},\"candidate_reply_us\":{},\
                 \"mismatch_samples\":[",
                times(&live),
                times(&candidate)
            );
            for (k, s) in c.samples().iter().enumerate() {
                let _ = write!(
                    out,
                    "{}{{\"at\":{},\"command\":\"{}\",\"key\":{},\"mismatch\":\"{}\",\
                     \"live\":\"{}\",\"candidate\":\"{}\"}}",
                    if k > 0 { "," } else { "" },
                    s.at,
                    s.op.name().unwrap_or("other"),
                    quoted(&s.key),
                    s.mismatch.name(),
                    status_name(s.live),
                    status_name(s.candidate)
                );
            }
            out.push(']');
        }
        Findings::Canary(r) => {
            let (step, steps) = r.step();
            let (live_n, live_errors, live_time) = r.side(Side::Live);
            let (cand_n, cand_errors, cand_time) = r.side(Side::Candidate);
            let _ = write!(
                out,
                "\"stage\":\"{}\",\"step\":{step},\"steps\":{steps},\"fraction\":{},\
                 \"live_side\":{{\"requests\":{live_n},\"errors\":{live_errors},\"reply_us\":{}}},\
                 \"candidate_side\":{{\"requests\":{cand_n},\"errors\":{cand_errors},\
                 \"reply_us\":{}}},\"rollback_reason\":{}",
                r.stage().name(),
                r.fraction(),
                times(&live_time),
                times(&cand_time),
                r.reason().map_or("null".into(), |w| quoted(&w)),
            );
        }
    }
}

/// `text` as a JSON string.
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
