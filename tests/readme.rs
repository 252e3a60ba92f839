//! The README's offline commands run as written, and every relative link in the docs
//! resolves.
//!
//! Convention (CONTRIBUTING.md, "The README's commands are tested"): a fenced ```` ```sh ````
//! block of README.md directly preceded by the HTML comment `<!-- readme-test: offline -->`
//! is run, all in one `bash -euo pipefail` shell and in order (as a reader types them), in a
//! temporary directory that holds the repository's `examples/`, with `CARGO_TARGET_DIR`
//! pointing at the freshly built `crossguard` (nothing else puts it on `PATH`) and
//! `.tools/bin` on `PATH`. Each must exit 0. The first fence with no info string after it, before the next heading or
//! marked block, is what the README says the command prints: each of its lines must appear
//! in the output.
//!
//! Links: every relative link in README.md, SECURITY.md, CONTRIBUTING.md, docs/*.md and the
//! chart README must name an existing file or directory, and a `#fragment` pointing into a
//! Markdown file must match one of its headings (GitHub's anchor rules).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// The marker that makes the next ```` ```sh ```` block of README.md a tested command.
const OFFLINE_MARKER: &str = "<!-- readme-test: offline -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One marked block of README.md: its shell text and what the README says it prints.
#[derive(Debug)]
struct OfflineBlock {
    script: String,
    expected: Vec<String>,
}

/// The marked blocks of a Markdown document, in order. Panics on a marker that is not
/// followed by a ```` ```sh ```` block, so a typo cannot silently untest a command.
fn offline_blocks(markdown: &str) -> Vec<OfflineBlock> {
    let mut blocks: Vec<OfflineBlock> = Vec::new();
    let mut marked = false;
    // Whether the last marked block may still take an expected-output block.
    let mut awaiting_expected = false;
    // The code block being read: (info string, text).
    let mut code: Option<(String, String)> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Html(html) | Event::InlineHtml(html) if html.contains(OFFLINE_MARKER) => {
                assert!(
                    !marked,
                    "two `{OFFLINE_MARKER}` markers without a block between them"
                );
                marked = true;
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let info = match kind {
                    CodeBlockKind::Fenced(info) => info.trim().to_string(),
                    CodeBlockKind::Indented => "(indented)".to_string(),
                };
                code = Some((info, String::new()));
            }
            Event::Text(text) if code.is_some() => {
                code.as_mut().expect("in a code block").1.push_str(&text);
            }
            Event::End(TagEnd::CodeBlock) => {
                let (info, text) = code.take().expect("a code block ends after it starts");
                if marked {
                    assert_eq!(
                        info, "sh",
                        "`{OFFLINE_MARKER}` must stand right before a ```sh block, not a `{info}` one:\n{text}"
                    );
                    blocks.push(OfflineBlock {
                        script: text,
                        expected: Vec::new(),
                    });
                    marked = false;
                    awaiting_expected = true;
                } else if awaiting_expected && info.is_empty() {
                    let last = blocks.last_mut().expect("awaiting only after a block");
                    last.expected = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect();
                    awaiting_expected = false;
                }
            }
            Event::Start(Tag::Heading { .. }) => {
                assert!(
                    !marked,
                    "`{OFFLINE_MARKER}` is followed by a heading, not a ```sh block"
                );
                awaiting_expected = false;
            }
            Event::Start(Tag::Paragraph) if marked => {
                panic!(
                    "`{OFFLINE_MARKER}` must stand right before its ```sh block, with no text between"
                )
            }
            _ => {}
        }
    }
    assert!(
        !marked,
        "`{OFFLINE_MARKER}` at the end of the document, with no block after it"
    );
    blocks
}

#[test]
fn readme_offline_commands_run_and_print_what_readme_says() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = offline_blocks(&readme);
    // The 5-minute trial must stay tested: both of its commands are marked.
    for command in ["crossguard analyze", "crossguard sanitize"] {
        assert!(
            blocks.iter().any(|b| b.script.contains(command)),
            "README.md has no `{OFFLINE_MARKER}` block running `{command}`"
        );
    }

    // A reader types the blocks into one terminal, in order, in the repository's
    // directory: run them in one shell (an `export` carries over), each block's output
    // captured on its own. The temp dir stands for the checkout (its `examples/`), and
    // CARGO_TARGET_DIR for where `make` built crossguard: nothing else puts it on PATH.
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_crossguard"),
        target.join("debug/crossguard"),
    )
    .unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), dir.path().join("examples")).unwrap();
    let out_dir = tempfile::tempdir().expect("temp dir for outputs");
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        let out = out_dir.path().join(i.to_string());
        script.push_str(&format!(
            "{{\n{}\n}} >'{}.out' 2>'{}.err'\ntouch '{}.ok'\n",
            block.script,
            out.display(),
            out.display(),
            out.display()
        ));
    }
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                repo().join(".tools/bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUST_LOG")
        .status()
        .expect("bash runs");

    for (i, block) in blocks.iter().enumerate() {
        let out = out_dir.path().join(i.to_string());
        let read = |ext: &str| std::fs::read_to_string(out.with_extension(ext)).unwrap_or_default();
        let (stdout, stderr) = (read("out"), read("err"));
        assert!(
            out.with_extension("ok").exists(),
            "README block failed (the shell exited {status}):\n{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            block.script
        );
        let printed = format!("{stdout}\n{stderr}");
        for line in &block.expected {
            assert!(
                printed.contains(line.as_str()),
                "README says\n{}\nprints `{line}`, but it printed:\n{printed}",
                block.script
            );
        }
    }
    assert!(status.success(), "the README's blocks exited {status}");
}

/// The sample dump the trial uses carries a planted secret: README says sanitize redacts
/// it, so the trial must show that, not just exit 0.
#[test]
fn readme_trial_sanitize_redacts_the_sample_secret() {
    let dump = repo().join("examples/dumps/sample-dump.json");
    let raw = std::fs::read_to_string(&dump).expect("examples/dumps/sample-dump.json");
    assert!(
        raw.contains("hunter2-sample-secret"),
        "the sample dump lost its planted secret"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_crossguard"))
        .arg("sanitize")
        .arg(&dump)
        .output()
        .expect("crossguard sanitize runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("hunter2-sample-secret"),
        "sanitize kept the secret:\n{stdout}"
    );
    assert!(stdout.contains("[redacted by crossguard]"), "{stdout}");
    assert!(
        stdout.contains("DB_PASSWORD") && stdout.contains("LOG_LEVEL"),
        "{stdout}"
    );
}

/// The Markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = [
        "README.md",
        "SECURITY.md",
        "CONTRIBUTING.md",
        "charts/crossguard/README.md",
    ]
    .iter()
    .map(|p| repo().join(p))
    .collect();
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown document's headings (duplicates get `-1`, `-2`, … as on GitHub).
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) if heading.is_some() => {
                heading.as_mut().unwrap().push_str(&t);
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap());
                let mut anchor = base.clone();
                let mut n = 0;
                while !seen.insert(anchor.clone()) {
                    n += 1;
                    anchor = format!("{base}-{n}");
                }
            }
            _ => {}
        }
    }
    seen
}

/// Every link destination of a Markdown document.
fn links(markdown: &str) -> Vec<String> {
    Parser::new(markdown)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_relative_doc_link_resolves() {
    let docs = documents();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text =
            std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!(
                    "{name}: `{link}`: {} does not exist",
                    target.display()
                ));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let target_text = std::fs::read_to_string(&target).unwrap();
            if !anchors(&target_text).contains(fragment) {
                broken.push(format!(
                    "{name}: `{link}`: no heading with anchor #{fragment}"
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser reading the docs?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("Many tenants: concurrency, AWS budgets, tuning"),
        "many-tenants-concurrency-aws-budgets-tuning"
    );
    assert_eq!(slug("A 5-minute offline trial"), "a-5-minute-offline-trial");
    assert_eq!(slug("The `crossguard` CLI"), "the-crossguard-cli");
    let a = anchors("# Notes\n## Notes\n## Automation (opt-in)\n");
    assert!(
        a.contains("notes") && a.contains("notes-1") && a.contains("automation-opt-in"),
        "{a:?}"
    );
}

#[test]
fn markers_must_precede_an_sh_block() {
    let ok = offline_blocks(&format!(
        "# T\n\n{OFFLINE_MARKER}\n```sh\necho hi\n```\n\nIt prints:\n\n```\nhi\n```\n\n## Next\n\n```\nnot expected\n```\n"
    ));
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].script, "echo hi\n");
    assert_eq!(ok[0].expected, vec!["hi".to_string()]);
    let wrong_kind = std::panic::catch_unwind(|| {
        offline_blocks(&format!("{OFFLINE_MARKER}\n```yaml\na: 1\n```\n"))
    });
    assert!(
        wrong_kind.is_err(),
        "a marker before a yaml block must be refused"
    );
    let dangling =
        std::panic::catch_unwind(|| offline_blocks(&format!("{OFFLINE_MARKER}\n\n## Heading\n")));
    assert!(
        dangling.is_err(),
        "a marker before a heading must be refused"
    );
}
