//! Minimal SVG charts, written by hand so that they are deterministic
//! (byte-identical for the same numbers) and need no font or graphics crate:
//! an x/y chart (lines, markers, shaded bands, linear or log x axis) and a
//! labelled heatmap grid.

use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;
/// Colour-blind-safe palette (Okabe–Ito), one colour per series.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number for an axis label or a cell: short, no trailing zeros.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    };
    if s.contains('.') && !s.contains('e') && !s.ends_with(['k', 'M']) {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// About `n` round tick values covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Ticks for a log axis over `lo..=hi` (both > 0): 1-2-5 in each decade,
/// or, where that gives fewer than 4 (a range under about a decade), every
/// round mantissa 1, 1.5, 2, 3 … 9; under 3 still, the linear ticks.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let pick = |mantissas: &[f64]| {
        let mut out = vec![];
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        for e in a..=b {
            for m in mantissas {
                let v = m * 10f64.powi(e);
                if v >= lo * 0.999 && v <= hi * 1.001 {
                    out.push(v);
                }
            }
        }
        out
    };
    let coarse = pick(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 4 {
        return coarse;
    }
    let fine = pick(&[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if fine.len() >= 3 {
        return fine;
    }
    ticks(lo, hi, 4).into_iter().filter(|t| *t > 0.0).collect()
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// (x, low, high): a shaded band, e.g. p50..p95.
    pub band: Vec<(f64, f64, f64)>,
    pub markers_only: bool,
    pub dashed: bool,
    /// Palette index.
    pub colour: usize,
}

#[derive(Debug, Clone, Default)]
pub struct XyChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    /// A line under the title, e.g. what the band means.
    pub subtitle: Option<String>,
}

impl XyChart {
    pub fn render(&self) -> String {
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.0)
                    .chain(s.band.iter().map(|b| b.0))
            })
            .filter(|x| x.is_finite() && (!self.x_log || *x > 0.0))
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.1)
                    .chain(s.band.iter().map(|b| b.2))
            })
            .filter(|y| y.is_finite() && (!self.y_log || *y > 0.0))
            .collect();
        let mut svg = String::new();
        header(&mut svg, &self.title, self.subtitle.as_deref());
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        if xs.is_empty() || ys.is_empty() {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no data</text>"##,
                W / 2.0,
                H / 2.0
            );
            svg.push_str("</svg>\n");
            return svg;
        }
        let (mut x0, mut x1) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        if self.x_log {
            if x1 <= x0 {
                (x0, x1) = (x0 / 2.0, x1 * 2.0);
            }
            // A margin of 5% of the span on each side (in log terms), so
            // that no point sits on the frame.
            let pad = (x1 / x0).powf(0.05).max(1.02);
            (x0, x1) = (x0 / pad, x1 * pad);
        } else {
            x0 = x0.min(0.0);
            if x1 <= x0 {
                x1 = x0 + 1.0;
            }
        }
        let ymax = ys.iter().copied().fold(0.0, f64::max);
        let (y0, y1) = if self.y_log {
            let ymin = ys.iter().copied().fold(f64::INFINITY, f64::min);
            (ymin / 1.25, ymax * 1.25)
        } else if ymax > 0.0 {
            (0.0, ymax * 1.08)
        } else {
            (0.0, 1.0)
        };
        let sx = |x: f64| {
            if self.x_log {
                LEFT + (x.log10() - x0.log10()) / (x1.log10() - x0.log10()) * pw
            } else {
                LEFT + (x - x0) / (x1 - x0) * pw
            }
        };
        let sy = |y: f64| {
            if self.y_log {
                TOP + ph - (y.log10() - y0.log10()) / (y1.log10() - y0.log10()) * ph
            } else {
                TOP + ph - (y - y0) / (y1 - y0) * ph
            }
        };
        // Grid and axes.
        let xt = if self.x_log {
            log_ticks(x0, x1)
        } else {
            ticks(x0, x1, 6)
        };
        for t in &xt {
            let x = sx(*t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                TOP,
                TOP + ph,
                TOP + ph + 16.0,
                short(*t)
            );
        }
        let yt = if self.y_log {
            log_ticks(y0, y1)
        } else {
            ticks(y0, y1, 5)
        };
        for t in yt {
            let y = sy(t);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                short(t)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{LEFT:.1}" y="{TOP:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#333"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
            LEFT + pw / 2.0,
            H - 14.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // Series.
        for (i, s) in self.series.iter().enumerate() {
            let c = PALETTE[s.colour % PALETTE.len()];
            if s.band.len() >= 2 {
                let mut d = String::new();
                for (j, (x, lo, _)) in s.band.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if j == 0 { "M" } else { " L" },
                        sx(*x),
                        sy(*lo)
                    );
                }
                for (x, _, hi) in s.band.iter().rev() {
                    let _ = write!(d, " L{:.1},{:.1}", sx(*x), sy(*hi));
                }
                let _ = write!(
                    svg,
                    r#"<path d="{d} Z" fill="{c}" fill-opacity="0.15" stroke="none"/>"#
                );
            }
            let shown: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| {
                    x.is_finite()
                        && y.is_finite()
                        && (!self.x_log || *x > 0.0)
                        && (!self.y_log || *y > 0.0)
                })
                .collect();
            let pts: Vec<String> = shown
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            if !s.markers_only && pts.len() >= 2 {
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{}/>"#,
                    pts.join(" "),
                    if s.dashed {
                        r#" stroke-dasharray="6 4""#
                    } else {
                        ""
                    }
                );
            }
            if s.markers_only || (pts.len() < 40 && !s.dashed) {
                for (p, (vx, vy)) in pts.iter().zip(&shown) {
                    let (x, y) = p.split_once(',').expect("formatted above");
                    // A tooltip: the series and the point's values.
                    let _ = write!(
                        svg,
                        r#"<circle cx="{x}" cy="{y}" r="3.5" fill="{c}"><title>{}: {} at {} {}</title></circle>"#,
                        esc(&s.name),
                        esc(&format!("{} {}", short(*vy), self.y_label)),
                        short(*vx),
                        esc(&self.x_label)
                    );
                }
            }
            // Legend.
            let ly = TOP + 10.0 + i as f64 * 18.0;
            let lx = W - RIGHT + 14.0;
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="4" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                ly - 4.0,
                lx + 20.0,
                ly + 2.0,
                esc(&s.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn header(svg: &mut String, title: &str, subtitle: Option<&str>) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/><text x="{LEFT}" y="18" font-size="14" font-weight="bold">{}</text>"##,
        esc(title)
    );
    if let Some(s) = subtitle {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="32" font-size="11" fill="#555">{}</text>"##,
            esc(s)
        );
    }
}

/// A heatmap cell's colour for a shade in 0..=1: light green (cheap) to light
/// red (dear); grey for none.
pub fn shade_fill(shade: Option<f64>) -> String {
    match shade {
        Some(s) => {
            let s = s.clamp(0.0, 1.0);
            let r = (200.0 + 55.0 * s) as u8;
            let g = (240.0 - 90.0 * s) as u8;
            let b = (200.0 - 50.0 * s) as u8;
            format!("#{r:02x}{g:02x}{b:02x}")
        }
        None => "#eeeeee".into(),
    }
}

/// One heatmap cell: two text lines, a shade in 0..=1 (none: grey), markers.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub line1: String,
    pub line2: String,
    pub shade: Option<f64>,
    pub best: bool,
    pub marks: String,
}

/// A grid with one row per `rows` label and one column per `cols` label.
pub fn heatmap(
    title: &str,
    subtitle: &str,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Cell>],
) -> String {
    let cw = 118.0;
    let ch = 40.0;
    let left = 96.0;
    let top = 64.0;
    let w = (left + cw * cols.len() as f64 + 20.0).max(420.0);
    let h = top + ch * rows.len() as f64 + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/><text x="10" y="18" font-size="14" font-weight="bold">{}</text><text x="10" y="34" font-size="11" fill="#555">{}</text><text x="10" y="{:.1}" font-size="11" fill="#555">req/min</text>"##,
        esc(title),
        esc(subtitle),
        top - 8.0
    );
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" font-weight="bold">{}</text>"#,
            left + cw * j as f64 + cw / 2.0,
            top - 8.0,
            esc(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            left - 8.0,
            y + ch / 2.0 + 4.0,
            esc(r)
        );
        for (j, cell) in cells[i].iter().enumerate() {
            let x = left + cw * j as f64;
            let fill = shade_fill(cell.shade);
            let stroke = if cell.best {
                r##" stroke="#000" stroke-width="2.5""##
            } else {
                r##" stroke="#fff""##
            };
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cw:.1}" height="{ch:.1}" fill="{fill}"{stroke}/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#333">{}</text>"##,
                x + cw / 2.0,
                y + 16.0,
                esc(format!("{} {}", cell.line1, cell.marks).trim_end()),
                x + cw / 2.0,
                y + 31.0,
                esc(&cell.line2)
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<text x="10" y="{:.1}" font-size="10" fill="#555">★ best choice (outlined)   $ least cost   # fewest instances   – budget never met or no price</text></svg>"##,
        h - 14.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(log_ticks(3.0, 60.0), vec![5.0, 10.0, 20.0, 50.0]);
        // Under a decade: finer mantissas (was only 2000 and 5000).
        assert_eq!(
            log_ticks(1000.0, 7000.0),
            vec![1000.0, 1500.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 7000.0]
        );
        assert_eq!(
            log_ticks(50.0, 160.0),
            vec![50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 150.0]
        );
        assert_eq!(short(1500.0), "1500");
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(2.50), "2.5");
        assert_eq!(short(0.0), "0");
    }

    #[test]
    fn chart_escapes_and_is_deterministic() {
        let c = XyChart {
            title: "a < b".into(),
            series: vec![Series {
                name: "g5 & co".into(),
                points: vec![(1.0, 2.0), (2.0, 3.0)],
                band: vec![(1.0, 2.0, 4.0), (2.0, 3.0, 5.0)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = c.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a &lt; b") && s.contains("g5 &amp; co"));
        assert!(s.contains("<polyline") && s.contains("fill-opacity"));
        assert_eq!(s, c.render());
        let empty = XyChart::default().render();
        assert!(empty.contains("no data"));
    }
}
