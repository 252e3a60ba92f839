//! A small server-rendered SVG line chart (no JavaScript, nothing fetched by the browser):
//! one polyline per series over a time axis, a zero-based money axis with gridlines, and
//! the first and last dates. Every text in it goes through [`super::html::escape`].

use std::fmt::Write as _;

use super::html::{escape, usd};

/// Width of the chart's viewBox, in SVG user units.
pub const WIDTH: f64 = 720.0;
/// Height of the chart's viewBox, in SVG user units.
pub const HEIGHT: f64 = 240.0;
/// Most points drawn per series: longer series are thinned to every k-th point (keeping
/// the last), so a year of 15-minute analyses (35,040 points) draws in under 32 KiB of SVG
/// (unit test `a_year_of_quarter_hours_is_thinned_and_keeps_the_last_point`).
pub const MAX_POINTS: usize = 720;

const LEFT: f64 = 72.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
const GRIDLINES: u32 = 4;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend and the line's tooltip.
    pub name: String,
    /// A CSS colour for the line (a constant of ours, not user input).
    pub colour: &'static str,
    /// (time, value in USD), oldest first.
    pub points: Vec<(jiff::Timestamp, f64)>,
}

/// An SVG line chart of `series` over `[from, to]`, titled `title` (for screen readers).
/// With no point at all it says so instead of drawing empty axes.
pub fn line_chart(
    title: &str,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
    series: &[Series],
) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    if series.iter().all(|s| s.points.is_empty()) {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{x}" y="{y}" text-anchor="middle">no analyses in this range</text></svg>"#,
            x = WIDTH / 2.0,
            y = HEIGHT / 2.0
        );
        return svg;
    }
    let top_value = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let span = (to.as_second() - from.as_second()).max(1) as f64;
    let x = |t: jiff::Timestamp| {
        let f = ((t.as_second() - from.as_second()) as f64 / span).clamp(0.0, 1.0);
        LEFT + f * (WIDTH - LEFT - RIGHT)
    };
    let y = |v: f64| {
        let f = (v / top_value).clamp(0.0, 1.0);
        HEIGHT - BOTTOM - f * (HEIGHT - TOP - BOTTOM)
    };
    for i in 0..=GRIDLINES {
        let v = top_value * f64::from(i) / f64::from(GRIDLINES);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ly:.1}" text-anchor="end">{label}</text>"#,
            x2 = WIDTH - RIGHT,
            y = y(v),
            lx = LEFT - 6.0,
            ly = y(v) + 4.0,
            label = escape(&usd(v, 0)),
        );
    }
    for (t, anchor) in [(from, "start"), (to, "end")] {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="{anchor}">{d}</text>"#,
            x = x(t),
            y = HEIGHT - 8.0,
            d = escape(&t.strftime("%Y-%m-%d").to_string()),
        );
    }
    for (i, s) in series.iter().enumerate() {
        let drawn = thin(&s.points, MAX_POINTS);
        let coords: Vec<String> = drawn
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        if coords.len() == 1 {
            let (t, v) = drawn[0];
            let _ = write!(
                svg,
                r#"<circle class="series series-{i}" cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{n}</title></circle>"#,
                x(t),
                y(v),
                c = s.colour,
                n = escape(&s.name),
            );
        } else if let Some((t, v)) = drawn.last() {
            // The line, and a dot on its latest point: a few analyses at the end of a long
            // range are a line too short to see.
            let _ = write!(
                svg,
                r#"<polyline class="series series-{i}" fill="none" stroke="{c}" stroke-width="2" points="{p}"><title>{n}</title></polyline><circle class="latest series-{i}" cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"/>"#,
                c = s.colour,
                p = coords.join(" "),
                n = escape(&s.name),
                x = x(*t),
                y = y(*v),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Every k-th point so that at most `max` remain, always keeping the last (the figure the
/// page prints beside the chart).
fn thin<T: Copy>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = points.len().div_ceil(max - 1);
    let mut out: Vec<T> = points.iter().step_by(step).copied().collect();
    if !(points.len() - 1).is_multiple_of(step) {
        out.push(points[points.len() - 1]);
    }
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10^n at or above `v` (a round axis top); 1 for 0.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_767_225_600 + s).unwrap()
    }

    /// The numbers of a `points="x,y x,y"` attribute.
    fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("points=\"")
            .skip(1)
            .map(|rest| {
                rest[..rest.find('"').unwrap()]
                    .split(' ')
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_series_is_one_polyline_inside_the_plot_area_rising_where_the_value_rises() {
        let points = vec![(ts(0), 100.0), (ts(3600), 300.0), (ts(7200), 200.0)];
        let svg = line_chart(
            "cost",
            ts(0),
            ts(7200),
            &[Series {
                name: "cost".into(),
                colour: "#1f77b4",
                points,
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let lines = polyline_points(&svg);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.len(), 3);
        for (x, y) in line {
            assert!((LEFT..=WIDTH - RIGHT).contains(x), "x {x}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(y), "y {y}");
        }
        // x grows with time, from the left edge to the right edge of the plot.
        assert_eq!(line[0].0, LEFT);
        assert_eq!(line[2].0, WIDTH - RIGHT);
        // SVG y grows downwards: the highest value is the smallest y.
        assert!(line[1].1 < line[2].1 && line[2].1 < line[0].1);
        // The axis tops out at a round figure at or above the maximum.
        assert!(svg.contains(">$500<"), "{svg}");
        assert!(svg.contains(">2026-01-01<"), "{svg}");
    }

    #[test]
    fn a_year_of_quarter_hours_is_thinned_and_keeps_the_last_point() {
        let year: Vec<(jiff::Timestamp, f64)> =
            (0..35_040).map(|i| (ts(i * 900), i as f64)).collect();
        let last = year[year.len() - 1];
        let svg = line_chart(
            "cost",
            year[0].0,
            last.0,
            &[Series {
                name: "cost".into(),
                colour: "#000",
                points: year,
            }],
        );
        let line = &polyline_points(&svg)[0];
        assert!(line.len() <= MAX_POINTS, "{} points", line.len());
        assert!(line.len() > MAX_POINTS / 2);
        assert_eq!(line.last().unwrap().0, WIDTH - RIGHT);
        assert!(svg.len() < 32 * 1024, "{} bytes", svg.len());
    }

    #[test]
    fn empty_and_single_point_series() {
        let empty = line_chart("cost", ts(0), ts(1), &[]);
        assert!(empty.contains("no analyses in this range"));
        assert!(!empty.contains("<polyline"));
        let one = line_chart(
            "cost",
            ts(0),
            ts(10),
            &[Series {
                name: "cost".into(),
                colour: "#000",
                points: vec![(ts(10), 5.0)],
            }],
        );
        assert!(one.contains("<circle") && !one.contains("<polyline"));
        // A line ends in a dot on its latest point.
        let two = line_chart(
            "cost",
            ts(0),
            ts(10),
            &[Series {
                name: "cost".into(),
                colour: "#000",
                points: vec![(ts(0), 1.0), (ts(10), 2.0)],
            }],
        );
        assert_eq!(two.matches("<circle").count(), 1);
        assert!(two.contains(&format!(r#"cx="{:.1}""#, WIDTH - RIGHT)));
    }

    #[test]
    fn names_are_escaped() {
        let svg = line_chart(
            "<script>alert(1)</script>",
            ts(0),
            ts(10),
            &[Series {
                name: "a\"><script>".into(),
                colour: "#000",
                points: vec![(ts(0), 1.0), (ts(10), 2.0)],
            }],
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(420.0), 500.0);
        assert_eq!(nice_ceiling(5001.0), 10_000.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }
}
