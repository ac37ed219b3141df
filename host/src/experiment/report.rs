//! `switchyard experiment report NAME --html FILE`: one experiment as a page a person reads,
//! with its numbers and charts drawn as inline SVG (no script, nothing fetched): the rate of
//! moved, mismatched or failed requests over time, the two sides' reply times, and the kind's
//! own tables (a dry run's from→to matrix, a shadow's mismatches and samples, a canary's
//! steps). The admin HTTP listener serves it at `/experiments/NAME/report`.

use std::fmt::Write as _;

use super::canary::Side;
use super::render::{fraction, status_name};
use super::{Experiment, Findings, Point, kind_name};
use crate::generation::Generation;
use crate::stats::Snapshot;

/// `text` with HTML's special characters escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for experiment `e` of `generation`.
pub fn html(e: &Experiment, generation: &Generation) -> String {
    let label = |n: usize| {
        generation
            .nodes
            .get(n)
            .map_or(String::new(), |node| node.context.label.clone())
    };
    let name = esc(&e.config.name);
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(
        out,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Switchyard experiment \
         {name}</title>\n<style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em auto;\
         max-width:60em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}\
         th{{background:#f4f4f4}}td.l,th.l{{text-align:left}}h2{{margin-top:1.6em}}\
         .big{{font-size:2em;font-weight:600}}svg{{background:#fafafa;border:1px solid #ddd}}\
         </style></head><body>\n<h1>Experiment <code>{name}</code></h1>\n<p>{} of \
         <code>{}</code> against <code>{}</code>, {}; generation {}; started {}; \
         report made {}.</p>",
        kind_name(e.config.kind),
        esc(&label(e.node)),
        esc(&label(e.candidate)),
        if e.enabled() { "running" } else { "stopped" },
        generation.number,
        utc(e.state.started),
        utc(super::unix_now()),
    );
    let history = e.state.history(fraction(e));
    match &e.state.findings {
        Findings::DryRun(d) => {
            let (compared, moved) = d.totals();
            headline(&mut out, "of requests would move", moved, compared);
            let _ = writeln!(
                out,
                "<p>{compared} requests compared (a sample of {} of the node's keys), {moved} \
                 would reach other servers; the candidate faulted in {}. The node's own dry \
                 walk faulted on {} more, left uncompared.</p>",
                percent(e.config.sample),
                d.faults(),
                d.live_faults()
            );
            rate_chart(&mut out, "Moved requests over time", &history);
            out.push_str("<h2>From → to</h2>\n<table><tr><th class=l>from</th><th class=l>to</th><th>requests</th><th>share of moved</th></tr>\n");
            for (from, to, n) in d.moved_cells() {
                let _ = writeln!(
                    out,
                    "<tr><td class=l>{}</td><td class=l>{}</td><td>{n}</td><td>{}</td></tr>",
                    esc(from),
                    esc(to),
                    share(n, moved)
                );
            }
            out.push_str("</table>\n");
            times_table(&mut out, &[("candidate dry run", &d.time())]);
        }
        Findings::Shadow(c) => {
            let (compared, mismatched) = c.totals();
            headline(&mut out, "of replies differed", mismatched, compared);
            let (errors, dropped, unanswered) = c.other_counts();
            let _ = writeln!(
                out,
                "<p>{compared} pairs of replies compared (a sample of {} of the node's keys); \
                 {mismatched} differed. The candidate answered {errors} with an error; \
                 {dropped} copies were not sent (over the background limit) and {unanswered} \
                 had no node reply to compare with.</p>",
                percent(e.config.sample)
            );
            rate_chart(&mut out, "Mismatch rate over time", &history);
            out.push_str("<h2>Mismatches by kind</h2>\n<table><tr><th class=l>kind</th><th>requests</th></tr>\n");
            for (kind, n) in c.mismatches() {
                let _ = writeln!(out, "<tr><td class=l>{}</td><td>{n}</td></tr>", kind.name());
            }
            out.push_str("</table>\n<h2>Agreement by command</h2>\n<table><tr><th class=l>command</th><th>compared</th><th>agreed</th><th>agreement</th></tr>\n");
            for (command, n, agreed) in c.by_command() {
                let _ = writeln!(
                    out,
                    "<tr><td class=l>{command}</td><td>{n}</td><td>{agreed}</td><td>{}</td></tr>",
                    share(agreed, n)
                );
            }
            out.push_str("</table>\n");
            let (live, candidate) = c.times();
            times_table(&mut out, &[("node", &live), ("candidate", &candidate)]);
            latency_bars(&mut out, &live, &candidate);
            out.push_str("<h2>Newest mismatches</h2>\n<table><tr><th class=l>at</th><th class=l>command</th><th class=l>key</th><th class=l>kind</th><th class=l>node</th><th class=l>candidate</th></tr>\n");
            for s in c.samples().iter().rev() {
                let _ = writeln!(
                    out,
                    "<tr><td class=l>{}</td><td class=l>{}</td><td class=l><code>{}</code></td>\
                     <td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
                    utc(s.at),
                    s.op.name().unwrap_or("other"),
                    esc(&s.key),
                    s.mismatch.name(),
                    status_name(s.live),
                    status_name(s.candidate)
                );
            }
            out.push_str("</table>\n");
        }
        Findings::Canary(r) => {
            let (step, steps) = r.step();
            let (live_n, live_errors, live_time) = r.side(Side::Live);
            let (cand_n, cand_errors, cand_time) = r.side(Side::Candidate);
            let _ = writeln!(
                out,
                "<p class=big>{} — {} of keys on the candidate (step {step} of {steps})</p>",
                r.stage().name(),
                percent(r.fraction())
            );
            if let Some(reason) = r.reason() {
                let _ = writeln!(out, "<p><b>Rolled back:</b> {}</p>", esc(&reason));
            }
            let _ = writeln!(
                out,
                "<table><tr><th class=l>side</th><th>requests</th><th>errors</th><th>error \
                 rate</th></tr>\n<tr><td class=l>node</td><td>{live_n}</td><td>{live_errors}\
                 </td><td>{}</td></tr>\n<tr><td class=l>candidate</td><td>{cand_n}</td>\
                 <td>{cand_errors}</td><td>{}</td></tr></table>",
                share(live_errors, live_n),
                share(cand_errors, cand_n)
            );
            fraction_chart(&mut out, &history);
            rate_chart(&mut out, "Candidate error rate over time", &history);
            times_table(&mut out, &[("node", &live_time), ("candidate", &cand_time)]);
            latency_bars(&mut out, &live_time, &cand_time);
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// `part` of `whole` as a percentage.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.2}%", 100.0 * part as f64 / whole as f64)
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

/// The big number at the top.
fn headline(out: &mut String, what: &str, part: u64, whole: u64) {
    let _ = writeln!(out, "<p class=big>{} {what}</p>", share(part, whole));
}

/// Seconds since the epoch as a UTC date and time.
fn utc(at: u64) -> String {
    let days = at / 86_400;
    let (h, m, s) = ((at % 86_400) / 3600, (at % 3600) / 60, at % 60);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// A line chart of `points` (x: seconds from the first, y: 0 to `top`), with a caption.
fn line_chart(out: &mut String, title: &str, points: &[(f64, f64)], top: f64, unit: &str) {
    let (w, h, pad) = (640.0, 200.0, 40.0);
    let _ = writeln!(out, "<h2>{}</h2>", esc(title));
    if points.len() < 2 {
        out.push_str("<p>Not enough history yet (a point every 5 seconds).</p>\n");
        return;
    }
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let top = if top > 0.0 { top } else { 1.0 };
    let at = |(x, y): (f64, f64)| {
        (
            pad + x / x_max * (w - 2.0 * pad),
            h - pad + -(y / top) * (h - 2.0 * pad),
        )
    };
    let _ = write!(
        out,
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=img>\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>\
         <text x=\"4\" y=\"{}\" font-size=\"11\">0</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{:.0} s</text>\
         <polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"",
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        pad + 4.0,
        esc(&format!("{top:.3}{unit}")),
        h - pad,
        w - pad,
        h - pad + 16.0,
        x_max
    );
    for p in points {
        let (x, y) = at(*p);
        let _ = write!(out, "{x:.1},{y:.1} ");
    }
    out.push_str("\"/></svg>\n");
}

/// The differing share of each interval of the history, in percent.
fn rate_chart(out: &mut String, title: &str, history: &[Point]) {
    let Some(first) = history.first() else {
        return;
    };
    let points: Vec<(f64, f64)> = history
        .windows(2)
        .map(|w| {
            let compared = w[1].compared.saturating_sub(w[0].compared);
            let differing = w[1].differing.saturating_sub(w[0].differing);
            let rate = if compared == 0 {
                0.0
            } else {
                100.0 * differing as f64 / compared as f64
            };
            (w[1].at.saturating_sub(first.at) as f64, rate)
        })
        .collect();
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max);
    line_chart(out, title, &points, top, "%");
}

/// A canary's fraction of keys on the candidate over time.
fn fraction_chart(out: &mut String, history: &[Point]) {
    let Some(first) = history.first() else {
        return;
    };
    let points: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (p.at.saturating_sub(first.at) as f64, 100.0 * p.fraction))
        .collect();
    line_chart(out, "Keys on the candidate over time", &points, 100.0, "%");
}

/// Each side's reply times.
fn times_table(out: &mut String, sides: &[(&str, &Snapshot)]) {
    out.push_str("<h2>Reply times</h2>\n<table><tr><th class=l>side</th><th>replies</th><th>mean</th><th>p50</th><th>p99</th></tr>\n");
    for (side, s) in sides {
        let _ = writeln!(
            out,
            "<tr><td class=l>{side}</td><td>{}</td><td>{} µs</td><td>{} µs</td><td>{} µs</td></tr>",
            s.count(),
            s.mean_us(),
            s.quantile_us(0.5),
            s.quantile_us(0.99)
        );
    }
    out.push_str("</table>\n");
}

/// p50 and p99 of the node and the candidate as bars.
fn latency_bars(out: &mut String, live: &Snapshot, candidate: &Snapshot) {
    let bars = [
        ("node p50", live.quantile_us(0.5), "#2980b9"),
        ("candidate p50", candidate.quantile_us(0.5), "#c0392b"),
        ("node p99", live.quantile_us(0.99), "#2980b9"),
        ("candidate p99", candidate.quantile_us(0.99), "#c0392b"),
    ];
    let top = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        out,
        "<svg width=\"640\" height=\"{}\" role=img>",
        28 * bars.len() + 8
    );
    for (i, (what, us, colour)) in bars.iter().enumerate() {
        let y = 8 + 28 * i;
        let width = 440.0 * *us as f64 / top;
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{}\" font-size=\"12\">{what}</text>\
             <rect x=\"110\" y=\"{y}\" width=\"{width:.1}\" height=\"20\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{us} µs</text>",
            y + 15,
            116.0 + width,
            y + 15
        );
    }
    out.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_796_212_800), "2026-12-02 12:00:00 UTC");
    }
}
