//! Inline SVG charts, drawn here so the report needs no script and no
//! network. Each chart carries a `<title>` and `<desc>` for screen readers,
//! and the report prints the same numbers in a table next to it.

use crate::html::{esc, num};
use std::fmt::Write;

/// One series of a grouped bar chart.
pub struct Series<'a> {
    /// Legend label.
    pub name: &'a str,
    /// Fill colour.
    pub color: &'a str,
    /// One value per category.
    pub values: Vec<u64>,
}

/// A "nice" axis maximum at or above `max` (1, 2, 5 × 10^n), and its tick step.
fn nice_max(max: u64) -> (u64, u64) {
    if max == 0 {
        return (1, 1);
    }
    let mut step = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            let s = step * m;
            if s * 5 >= max {
                let top = max.div_ceil(s) * s;
                return (top.max(s), s);
            }
        }
        step *= 10;
    }
}

/// Vertical grouped bars: one group per category (e.g. day), one bar per
/// series.
pub fn grouped_bars(title: &str, categories: &[String], series: &[Series<'_>]) -> String {
    let (w, h) = (560.0f64, 250.0f64);
    let (left, right, top, bottom) = (42.0, 10.0, 30.0, 46.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let (axis_max, step) = nice_max(max);
    let mut svg = String::new();
    let desc: Vec<String> = series
        .iter()
        .map(|s| format!("{} total {}", s.name, s.values.iter().sum::<u64>()))
        .collect();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><desc>{d}</desc>",
        t = esc(title),
        d = esc(&desc.join("; "))
    );
    // Grid and y labels.
    let mut v = 0;
    while v <= axis_max {
        let y = top + plot_h - plot_h * (v as f64) / (axis_max as f64);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e7ec\" stroke-width=\"1\"/>\
             <text x=\"{lx}\" y=\"{ty:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6675\">{v}</text>",
            x2 = w - right,
            lx = left - 6.0,
            ty = y + 3.5
        );
        v += step;
    }
    let n = categories.len().max(1) as f64;
    let group_w = plot_w / n;
    let bars = series.len().max(1) as f64;
    let bar_w = ((group_w * 0.78) / bars).min(34.0);
    let label_every = (categories.len() / 12).max(1);
    for (ci, cat) in categories.iter().enumerate() {
        let gx = left + group_w * ci as f64 + (group_w - bar_w * bars) / 2.0;
        for (si, s) in series.iter().enumerate() {
            let value = s.values.get(ci).copied().unwrap_or(0);
            let bh = plot_h * value as f64 / axis_max as f64;
            let x = gx + bar_w * si as f64;
            let y = top + plot_h - bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{c}\"><title>{t}</title></rect>",
                bw = (bar_w - 1.5).max(1.0),
                c = esc(s.color),
                t = esc(&format!("{cat}: {} {}", num(value), s.name))
            );
            if value > 0 && bar_w >= 14.0 {
                let _ = write!(
                    svg,
                    "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#1c2430\">{value}</text>",
                    tx = x + bar_w / 2.0 - 0.75,
                    ty = y - 3.0
                );
            }
        }
        if ci % label_every == 0 {
            let label = cat.get(5..).unwrap_or(cat);
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6675\">{l}</text>",
                x = left + group_w * (ci as f64 + 0.5),
                y = top + plot_h + 14.0,
                l = esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#8792a2\" stroke-width=\"1\"/>",
        x2 = w - right,
        y = top + plot_h
    );
    // Legend.
    let mut lx = left;
    for s in series {
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"8\" width=\"11\" height=\"11\" rx=\"2\" fill=\"{c}\"/>\
             <text x=\"{tx:.1}\" y=\"17.5\" font-size=\"11.5\" fill=\"#1c2430\">{n}</text>",
            c = esc(s.color),
            tx = lx + 15.0,
            n = esc(s.name)
        );
        lx += 26.0 + 6.6 * s.name.chars().count() as f64;
    }
    let _ = write!(
        svg,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"10.5\" text-anchor=\"middle\" fill=\"#5b6675\">day (UTC)</text></svg>",
        x = left + plot_w / 2.0,
        y = h - 8.0
    );
    svg
}

/// Horizontal bars with a label and value each.
pub fn horizontal_bars(title: &str, rows: &[(String, u64, &str)]) -> String {
    let w = 560.0f64;
    let row_h = 26.0f64;
    let (label_w, right, top) = (130.0, 56.0, 8.0);
    let h = top * 2.0 + row_h * rows.len().max(1) as f64;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let plot_w = w - label_w - right;
    let mut svg = String::new();
    let desc: Vec<String> = rows.iter().map(|(l, v, _)| format!("{l}: {v}")).collect();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\">\
         <title>{t}</title><desc>{d}</desc>",
        t = esc(title),
        d = esc(&desc.join("; "))
    );
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#5b6675\">none in this period</text>",
            x = w / 2.0,
            y = top + row_h * 0.65
        );
    }
    for (i, (label, value, color)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let bw = (plot_w * *value as f64 / max as f64).max(if *value > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ty:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#1c2430\">{l}</text>\
             <rect x=\"{label_w}\" y=\"{ry:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" rx=\"2\" fill=\"{c}\"><title>{l}: {v}</title></rect>\
             <text x=\"{vx:.1}\" y=\"{ty:.1}\" font-size=\"12\" fill=\"#1c2430\">{v}</text>",
            lx = label_w - 8.0,
            ty = y + row_h * 0.62,
            ry = y + 4.0,
            bh = row_h - 8.0,
            c = esc(color),
            l = esc(label),
            v = num(*value),
            vx = label_w + bw + 6.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), (1, 1));
        assert_eq!(nice_max(3), (3, 1));
        assert_eq!(nice_max(7), (8, 2));
        assert_eq!(nice_max(42), (50, 10));
        assert_eq!(nice_max(1234), (1500, 500));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = horizontal_bars("t<", &[("<b>".into(), 3, "#000")]);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        let svg = grouped_bars(
            "x",
            &["2025-01-01".into()],
            &[Series {
                name: "a&b",
                color: "#123",
                values: vec![2],
            }],
        );
        assert!(svg.contains("a&amp;b"));
    }
}
