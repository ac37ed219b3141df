//! The PNG chart of a run: throughput relative to direct memcached (to memcached `-Z` direct
//! for the TLS workloads), and p99 latency, per workload, one bar per target measured.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::{Summary, Target};

/// DejaVu Sans from Debian's fonts-dejavu-core (scripts/setup installs it): plotters draws
/// text with a font it is given, not one it finds.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn colour(t: Target) -> RGBColor {
    match t {
        Target::Memcached => RGBColor(0x8c, 0x8c, 0x8c),
        Target::Twemproxy => RGBColor(0x4c, 0x72, 0xb0),
        Target::Switchyard => RGBColor(0xdd, 0x84, 0x52),
        Target::SwitchyardBare => RGBColor(0xf0, 0xc0, 0x90),
        Target::SwitchyardTenants => RGBColor(0xa8, 0x5c, 0x9c),
        Target::SwitchyardDryRun10 => RGBColor(0x55, 0xa8, 0x68),
        Target::SwitchyardDryRun100 => RGBColor(0x2e, 0x6b, 0x3c),
        Target::SwitchyardShadow10 => RGBColor(0x64, 0xb5, 0xcd),
        Target::SwitchyardShadow100 => RGBColor(0x1f, 0x5f, 0x7a),
        Target::MemcachedTls => RGBColor(0x4d, 0x4d, 0x4d),
        Target::SwitchyardTls => RGBColor(0x9c, 0x3f, 0x1b),
    }
}

/// Draws `summaries` of the load workloads (in `order`) to `path`.
pub fn draw(path: &Path, title: &str, order: &[&str], summaries: &[Summary]) -> anyhow::Result<()> {
    let font = std::fs::read(FONT)
        .with_context(|| format!("read {FONT} (scripts/setup installs fonts-dejavu-core)"))?;
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow!("{FONT} is not a font plotters can read"))?;

    let workloads: Vec<&str> = order
        .iter()
        .copied()
        .filter(|w| {
            summaries
                .iter()
                .any(|s| s.workload == *w && s.throughput.is_some())
        })
        .collect();
    if workloads.is_empty() {
        return Ok(());
    }
    let value = |w: &str, t: Target, f: fn(&Summary) -> Option<f64>| {
        summaries
            .iter()
            .find(|s| s.workload == w && s.target == t)
            .and_then(f)
    };
    let relative = |w: &str, t: Target| -> Option<f64> {
        let throughput = |t: Target| value(w, t, |s| s.throughput.map(|x| x.median));
        let direct = throughput(Target::Memcached).or_else(|| throughput(Target::MemcachedTls))?;
        throughput(t).map(|v| v / direct)
    };
    let p99 = |w: &str, t: Target| value(w, t, |s| s.p99.map(|x| x.median));

    let root = BitMapBackend::new(path, (1600, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("draw: {e}"))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| anyhow!("draw: {e}"))?;
    let (left, right) = root.split_horizontally(800);

    let n = workloads.len() as f64;
    let max_rel = workloads
        .iter()
        .flat_map(|w| Target::ALL.map(|t| relative(w, t)))
        .flatten()
        .fold(1.0f64, f64::max);
    let max_p99 = workloads
        .iter()
        .flat_map(|w| Target::ALL.map(|t| p99(w, t)))
        .flatten()
        .fold(1.0f64, f64::max);
    let min_p99 = workloads
        .iter()
        .flat_map(|w| Target::ALL.map(|t| p99(w, t)))
        .flatten()
        .fold(max_p99, f64::min);

    // Workloads without latency figures (memcaslap's) have no bars on the right.
    let timed: Vec<&str> = workloads
        .iter()
        .copied()
        .filter(|w| Target::ALL.iter().any(|t| p99(w, *t).is_some()))
        .collect();
    let label = |names: &[&str], x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].to_string()
        } else {
            String::new()
        }
    };
    let left_label = |x: &f64| label(&workloads, x);
    let right_label = |x: &f64| label(&timed, x);

    {
        let mut chart = ChartBuilder::on(&left)
            .caption(
                "throughput relative to direct memcached, over TLS to memcached -Z (higher is better)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..max_rel * 1.15)
            .map_err(|e| anyhow!("draw: {e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(workloads.len() * 2 + 1)
            .x_label_formatter(&left_label)
            .x_label_style(("sans-serif", 12))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .y_desc("× direct")
            .draw()
            .map_err(|e| anyhow!("draw: {e}"))?;
        bars(&mut chart, &workloads, relative)?;
    }
    {
        let mut chart = ChartBuilder::on(&right)
            .caption(
                "p99 latency, µs (log scale; lower is better)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                -0.5..timed.len().max(1) as f64 - 0.5,
                (min_p99 / 2.0..max_p99 * 2.0).log_scale(),
            )
            .map_err(|e| anyhow!("draw: {e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(timed.len() * 2 + 1)
            .x_label_formatter(&right_label)
            .x_label_style(("sans-serif", 12))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .y_desc("µs")
            .draw()
            .map_err(|e| anyhow!("draw: {e}"))?;
        bars(&mut chart, &timed, p99)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("draw: {e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}

/// One group of bars per workload, at x = its index: one bar per target that has a value,
/// side by side in [`Target::ALL`]'s order.
fn bars<Y>(
    chart: &mut ChartContext<
        '_,
        BitMapBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    workloads: &[&str],
    value: impl Fn(&str, Target) -> Option<f64>,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    const WIDTH: f64 = 0.26;
    let present = |w: &str| -> Vec<Target> {
        Target::ALL
            .into_iter()
            .filter(|t| value(w, *t).is_some())
            .collect()
    };
    for target in Target::ALL {
        if !workloads.iter().any(|w| value(w, target).is_some()) {
            continue;
        }
        let c = colour(target);
        let floor = chart.y_range().start;
        chart
            .draw_series(workloads.iter().enumerate().filter_map(|(i, w)| {
                let v = value(w, target)?;
                let here = present(w);
                let slot = here.iter().position(|t| *t == target)?;
                let offset = (slot as f64 - (here.len() as f64 - 1.0) / 2.0) * WIDTH;
                let x = i as f64 + offset;
                Some(Rectangle::new(
                    [(x - WIDTH / 2.0, floor), (x + WIDTH / 2.0, v)],
                    c.filled(),
                ))
            }))
            .map_err(|e| anyhow!("draw: {e}"))?
            .label(target.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
    }
    Ok(())
}
