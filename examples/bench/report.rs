//! The results: one row per (case, baseline), printed as an aligned table and
//! written as TSV or JSON for docs/performance.md.

use std::fmt::Write as _;

use serde::Serialize;

/// One line of the table. Figures are medians over `*_runs`; the ratio compares
/// figures of this same bench run.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub case: String,
    pub baseline: String,
    pub baseline_figure: String,
    pub dsps_figure: String,
    pub ratio: String,
    pub target: String,
    pub unit: String,
    pub baseline_runs: Vec<f64>,
    pub dsps_runs: Vec<f64>,
}

impl Row {
    /// A throughput row: MB/s medians and dsps ÷ baseline.
    /// Runs that stalled are NaN: left out of the median and counted in the figure.
    pub fn rate(case: &str, baseline: &str, base: &[f64], dsps: &[f64], target: &str) -> Row {
        let (b, d) = (median(base), median(dsps));
        let stalled = base.iter().filter(|x| x.is_nan()).count();
        let mut baseline_figure = fmt_rate(b);
        if stalled > 0 {
            baseline_figure += &format!(" ({stalled} of {} runs stalled)", base.len());
        }
        Row {
            case: case.into(),
            baseline: baseline.into(),
            baseline_figure,
            dsps_figure: fmt_rate(d),
            ratio: format!("{:.2}×", d / b),
            target: target.into(),
            unit: "MB/s".into(),
            baseline_runs: base.to_vec(),
            dsps_runs: dsps.to_vec(),
        }
    }
}

/// The median of the numbers that are not NaN (the mean of the middle two for an
/// even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// `1331.4` → `1 331 MB/s`.
pub fn fmt_rate(mb_s: f64) -> String {
    format!("{} MB/s", thousands(mb_s.round() as u64))
}

/// `12345` → `12 345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

const HEADER: [&str; 6] = [
    "case",
    "baseline",
    "baseline figure",
    "dsps",
    "ratio",
    "target",
];

fn cells(r: &Row) -> [&str; 6] {
    [
        &r.case,
        &r.baseline,
        &r.baseline_figure,
        &r.dsps_figure,
        &r.ratio,
        &r.target,
    ]
}

/// The aligned table.
pub fn table(rows: &[Row]) -> String {
    let mut width = HEADER.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in width.iter_mut().zip(cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; 6]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            // Text columns left, figures right.
            if i < 2 || i == 5 {
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(l, "{}{c}  ", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(HEADER);
    line(width.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for r in rows {
        line(cells(r));
    }
    out
}

/// Tab-separated: the table's columns, the unit, then each side's runs.
pub fn tsv(rows: &[Row]) -> String {
    let runs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = HEADER.join("\t") + "\tunit\tbaseline runs\tdsps runs\n";
    for r in rows {
        let (b, d) = (runs(&r.baseline_runs), runs(&r.dsps_runs));
        let _ = writeln!(out, "{}\t{}\t{b}\t{d}", cells(r).join("\t"), r.unit);
    }
    out
}
