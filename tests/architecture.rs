//! Architecture rules that the compiler does not check, read from the source tree: the
//! module graph has no cycles (at the level of `src/<module>` and of `src/controller/<file>`),
//! and the two reconcilers' `apply`/`pipeline` functions stay short enough to read as the
//! flow in docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source of a file without its `#[cfg(test)]` tail (test modules may use test
/// support from anywhere) and without comment lines.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Edges between the modules named by `node_of`, from `crate::a::b` paths and `super::x`
/// paths in each file.
fn graph(
    node_of: impl Fn(&Path) -> Option<String>,
    resolve: impl Fn(&str, &str) -> Option<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let path_re = regex::Regex::new(r"\b(crate|super)::([a-z_]+)(?:::([a-z_]+))?").unwrap();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in all {
        let Some(from) = node_of(&file) else { continue };
        let code = production_code(&file);
        for cap in path_re.captures_iter(&code) {
            let path = format!(
                "{}::{}{}",
                &cap[1],
                &cap[2],
                cap.get(3)
                    .map(|m| format!("::{}", m.as_str()))
                    .unwrap_or_default()
            );
            if let Some(to) = resolve(&from, &path)
                && to != from
            {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "testing")).then(|| name.to_string())
}

#[test]
fn top_level_modules_have_no_cycles() {
    let edges = graph(top_module, |_, path| {
        let mut parts = path.split("::");
        (parts.next() == Some("crate")).then(|| parts.next().unwrap().to_string())
    });
    assert!(
        edges.contains_key("controller"),
        "the scan found nothing: {edges:?}"
    );
    assert_eq!(cycle(&edges), None, "module cycle; edges: {edges:#?}");
}

#[test]
fn controller_files_have_no_cycles() {
    let dir = src().join("controller");
    let node = |file: &Path| -> Option<String> {
        let rel = file.strip_prefix(&dir).ok()?;
        Some(rel.to_str()?.trim_end_matches(".rs").to_string())
    };
    let edges = graph(node, |_, path| {
        let parts: Vec<&str> = path.split("::").collect();
        match parts.as_slice() {
            ["super", name, ..] if *name != "super" => Some(name.to_string()),
            ["crate", "controller", name] => Some(name.to_string()),
            _ => None,
        }
    });
    assert!(
        edges.contains_key("managed_cluster"),
        "the scan found nothing: {edges:?}"
    );
    // `mod` is controller/mod.rs: the controllers use what it shares, and it names the
    // controllers only to wire them (runner) — drop those wiring edges.
    let mut edges = edges;
    for wiring in ["mod", "runner"] {
        edges.remove(wiring);
    }
    assert_eq!(
        cycle(&edges),
        None,
        "controller module cycle; edges: {edges:#?}"
    );
}

/// Lines of the body of `fn name` in `file` (from its signature to the closing brace).
fn fn_lines(file: &str, name: &str) -> usize {
    let text = std::fs::read_to_string(src().join(file)).unwrap();
    let start = text
        .find(&format!("fn {name}("))
        .unwrap_or_else(|| panic!("fn {name} not in {file}"));
    let rest = &text[start..];
    let end = rest.find("\n}\n").expect("closing brace at column 0");
    rest[..end].lines().count() + 1
}

#[test]
fn reconcilers_read_as_their_pipeline() {
    for file in [
        "controller/customer_account.rs",
        "controller/managed_cluster.rs",
    ] {
        for f in ["apply", "pipeline"] {
            let n = fn_lines(file, f);
            assert!(
                n <= 45,
                "{file}: fn {f} is {n} lines; keep it a screen (<= 45)"
            );
        }
    }
}
