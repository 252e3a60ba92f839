//! The dashboard's HTML: escaping, number formats and the page frame. Everything that
//! comes from an object, a report or a viewer (names, reasons, messages, findings) is
//! written through [`escape`] (or [`Esc`] in `format!`); attribute values are always
//! double-quoted, so escaping `&<>"'` is enough for text and attributes alike.

use std::fmt;

/// `s` with `& < > " '` replaced by character references: safe as HTML text and inside a
/// double- or single-quoted attribute value (not inside `<script>`/`<style>`, which the
/// dashboard never fills, nor as an unquoted attribute or a URL scheme).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A string that is escaped when formatted: `format!("<td>{}</td>", Esc(&name))`.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// A path segment for a dashboard link: Kubernetes names are DNS labels/subdomains, but a
/// link is built from stored data, so anything outside `[a-z0-9.-]` is percent-encoded.
pub fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// `v` US dollars with thousands separators and `decimals` decimals: `$12,345.67`.
pub fn usd(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let fixed = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match fixed.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (fixed, String::new()),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}{frac}")
}

/// `ratio` (0.0–1.0) as a percentage with one decimal: `43.5%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f6f8fa}\
header{background:#1d2733;color:#fff;padding:.6rem 1.2rem;display:flex;justify-content:space-between;align-items:center}\
header a{color:#fff;text-decoration:none;font-weight:600}header form{margin:0}\
main{padding:1rem 1.2rem;max-width:1100px}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}\
table{border-collapse:collapse;background:#fff;width:100%;margin:.4rem 0}\
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
th{background:#eef1f4}table#latest th{width:14rem;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.unknown{color:#9a6700;font-weight:600}\
.chart{width:100%;max-width:720px;background:#fff;border:1px solid #d0d7de}\
.chart .grid{stroke:#e1e4e8}.chart text{font-size:11px;fill:#57606a}\
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:1rem;height:.3rem;margin-right:.3rem;vertical-align:middle}\
nav.ranges a{margin-right:.6rem}nav.ranges a.current{font-weight:700;text-decoration:none;color:#1d2733}\
.muted{color:#57606a}ul.reasoning{margin:.2rem 0 .2rem 1rem;padding:0}";

/// A complete page: `title` (escaped here) and `body` (already HTML); with a sign-out
/// button when `signed_in_as` names the viewer.
pub fn page(title: &str, signed_in_as: Option<&str>, body: &str) -> String {
    let who = match signed_in_as {
        Some(user) => format!(
            r#"<form method="post" action="/dashboard/logout"><span class="muted">{}</span> <button type="submit">Sign out</button></form>"#,
            Esc(user)
        ),
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · crossguard</title><style>{STYLE}</style></head>\
<body><header><a href=\"/dashboard/\">crossguard</a>{who}</header><main>{body}</main></body></html>",
        title = Esc(title),
    )
}

/// The sign-in page: one password field, posted once; the token then lives in an
/// HttpOnly, SameSite=Strict cookie, never in a URL.
pub fn login_page(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!(r#"<p class="bad">{}</p>"#, Esc(p)))
        .unwrap_or_default();
    page(
        "Sign in",
        None,
        &format!(
            r#"<h1>Sign in</h1>{problem}<p>Paste a Kubernetes bearer token, e.g. from <code>kubectl create token NAME -n NAMESPACE</code>. You see the namespaces where it may <code>get managedclusters.crossguard.dev</code>.</p>
<form method="post" action="/dashboard/login"><label>Token <input type="password" name="token" autocomplete="off" required size="60"></label> <button type="submit">Sign in</button></form>"#
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_every_character_that_ends_text_or_an_attribute() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("prod-eu.1 ünïcode ✓"), "prod-eu.1 ünïcode ✓");
        assert_eq!(escape(""), "");
        assert_eq!(Esc("<b>").to_string(), "&lt;b&gt;");
    }

    #[test]
    fn escaped_text_never_contains_markup_characters() {
        // Every ASCII character and a few multi-byte ones, in every position.
        let all: String = (0u8..128).map(char::from).chain("é✓𝄞".chars()).collect();
        for s in [all.clone(), all.chars().rev().collect()] {
            let e = escape(&s);
            assert!(!e.contains(['<', '>', '"', '\'']), "{e}");
            // Every & starts one of our five references.
            for (i, _) in e.match_indices('&') {
                let rest = &e[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]
                        .iter()
                        .any(|r| rest.starts_with(r)),
                    "{rest}"
                );
            }
        }
    }

    #[test]
    fn path_segments_cannot_leave_the_segment() {
        assert_eq!(path_segment("acme-prod.eu"), "acme-prod.eu");
        assert_eq!(path_segment("a/../b?c#d\"e"), "a%2F..%2Fb%3Fc%23d%22e");
    }

    #[test]
    fn money_and_percentages() {
        assert_eq!(usd(0.0, 2), "$0.00");
        assert_eq!(usd(1234.567, 2), "$1,234.57");
        assert_eq!(usd(999.0, 0), "$999");
        assert_eq!(usd(1_000_000.0, 0), "$1,000,000");
        assert_eq!(usd(-1234.5, 2), "-$1,234.50");
        assert_eq!(usd(f64::NAN, 2), "—");
        assert_eq!(percent(0.435), "43.5%");
    }

    #[test]
    fn the_title_is_escaped_in_the_page_frame() {
        let p = page("<x>", Some("\"mallory\""), "<p>body</p>");
        assert!(p.contains("<title>&lt;x&gt; · crossguard</title>"));
        assert!(p.contains("&quot;mallory&quot;"));
        assert!(p.contains("<p>body</p>"));
    }
}
