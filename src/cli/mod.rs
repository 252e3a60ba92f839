//! What the command-line subcommands share, so that they behave alike and like the tools
//! users know (`kubectl`, `jq`):
//!
//! - [`OutputFormat`]: the one `-o` enum (`text`, `json`, `yaml`, `csv`); a subcommand
//!   accepts the subset it can print ([`OutputFormat::parser`]) and clap names the others
//!   as invalid.
//! - [`open_input`] / [`read_input`]: a file, or `-` for stdin.
//! - [`emit`]: writes to stdout; a reader that went away (`| head -1`) ends the process
//!   quietly the way `kubectl` and `jq` end, by SIGPIPE.
//! - [`error_line`]: an error and its causes on one line, each cause once.
//! - [`csv`]: the analysis report as one CSV row per node, for spreadsheets.
//! - [`history`]: `crossguard history`'s `--since` and its table, JSON and CSV.
//!
//! docs/cli.md is the user's reference for all of this.

pub mod csv;
pub mod history;

use std::io::{IsTerminal as _, Read, Write as _};
use std::path::Path;

/// The `-o` / `--output` value of every subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A summary for people reading a terminal.
    Text,
    /// JSON (for `jq` and programs): the full document.
    Json,
    /// YAML: the same document as JSON.
    Yaml,
    /// CSV with a header row, for spreadsheets (`analyze`: one row per node).
    Csv,
}

impl OutputFormat {
    /// The value as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Json => "json",
            OutputFormat::Yaml => "yaml",
            OutputFormat::Csv => "csv",
        }
    }

    /// A clap value parser accepting only `allowed`, e.g. `sanitize`'s json and yaml: any
    /// other value is refused with the allowed ones listed, as for any bad value.
    pub fn parser(allowed: &'static [OutputFormat]) -> impl clap::builder::TypedValueParser {
        use clap::builder::TypedValueParser as _;
        clap::builder::PossibleValuesParser::new(allowed.iter().map(|f| f.as_str())).map(
            |s: String| {
                <OutputFormat as clap::ValueEnum>::from_str(&s, false)
                    .expect("only the enum's own names are possible values")
            },
        )
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reading error, naming what was read.
#[derive(Debug, thiserror::Error)]
#[error("reading {name}")]
pub struct InputError {
    /// The file's path, or `stdin`.
    pub name: String,
    /// What the system said.
    #[source]
    pub source: std::io::Error,
}

/// A stream of `path`, or of stdin when it is `-`, and the name to give it in messages
/// (the path, or `stdin`). On a terminal, stdin gets a hint on stderr so that a command
/// waiting for input does not look hung.
pub fn open_input(path: &Path) -> Result<(Box<dyn Read>, String), InputError> {
    if path.as_os_str() == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("reading from stdin (end with Ctrl-D; pass a file name to read a file)");
        }
        return Ok((Box::new(stdin.lock()), "stdin".to_string()));
    }
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(file) => Ok((Box::new(file), name)),
        Err(source) => Err(InputError { name, source }),
    }
}

/// All bytes of `path`, or of stdin when it is `-`, and the name to give them in messages.
pub fn read_input(path: &Path) -> Result<(Vec<u8>, String), InputError> {
    let (mut reader, name) = open_input(path)?;
    let mut bytes = Vec::new();
    match reader.read_to_end(&mut bytes) {
        Ok(_) => Ok((bytes, name)),
        Err(source) => Err(InputError { name, source }),
    }
}

/// Write `bytes` to stdout and flush. When the reader went away (`crossguard analyze |
/// head -1`) the process ends at once by SIGPIPE, with nothing on stderr, as `kubectl`,
/// `jq` and other Unix tools do (a shell reports exit status 141; with `set -o pipefail`
/// the pipeline fails just as it would with them). Other write errors are returned.
pub fn emit(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => end_by_sigpipe(),
        other => other,
    }
}

/// Ends the process the way the default SIGPIPE disposition would have (Rust's runtime
/// ignores SIGPIPE, which turns the signal into the `BrokenPipe` error seen by [`emit`]).
fn end_by_sigpipe() -> ! {
    // SAFETY: restoring the default disposition and raising a signal at our own process
    // touch no memory; nothing runs after the signal is delivered.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: the default disposition of SIGPIPE terminates the process.
    std::process::exit(128 + libc::SIGPIPE)
}

/// An error and its causes on one line, `what failed: why: root cause`, each cause once:
/// a cause whose text the line already holds (an error that prints its source in its own
/// message) is not repeated.
pub fn error_line<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_already_holds_prints_once() {
        let inner = std::io::Error::other("disk on fire");
        let e = Repeats(inner);
        let chain: Vec<&(dyn std::error::Error + 'static)> =
            vec![&e, std::error::Error::source(&e).unwrap()];
        assert_eq!(error_line(chain), "outer failed: disk on fire");
    }
}
