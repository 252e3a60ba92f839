//! `fake-apiserver` binary: runs the fake Kubernetes API server until
//! SIGTERM/SIGINT (used by `make demo` and end-to-end tests).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fake_apiserver::{FakeApiServer, Options};

/// In-memory Kubernetes API server for local demos and tests.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig pointing at the server to this path.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the kubeconfig's context.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Append every request as a JSON line to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Store the objects of this JSON or YAML file as given (status included, no
    /// validation) before serving: a v1 List, or one or more `---`-separated objects.
    /// Repeatable.
    #[arg(long)]
    seed: Vec<PathBuf>,
    /// Answer TokenReviews and SubjectAccessReviews from this YAML or JSON file
    /// (`tokens: [{token, username, groups}]`, `grants: [{subject, namespace, verbs,
    /// apiGroup, resources}]`; see README.md). Without it every token is invalid.
    #[arg(long)]
    reviews: Option<PathBuf>,
}

/// Objects of a seed file: a List's items, or every YAML/JSON document.
fn seed_objects(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        match value.get("items").and_then(|i| i.as_array()) {
            Some(items) if value["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                out.extend(items.iter().cloned())
            }
            _ if value.is_null() => {}
            _ => out.push(value),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = FakeApiServer::start_with(
        args.listen,
        Options {
            request_log: args.request_log,
            ..Options::default()
        },
    )
    .await?;
    for path in &args.seed {
        let text = std::fs::read_to_string(path)?;
        let objects = seed_objects(&text).map_err(std::io::Error::other)?;
        for obj in objects {
            server.seed(obj).map_err(std::io::Error::other)?;
        }
    }
    if let Some(path) = &args.reviews {
        let text = std::fs::read_to_string(path)?;
        let table: fake_apiserver::Reviews = serde_yaml::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        server.set_reviews(table);
    }
    if let Some(path) = &args.kubeconfig {
        std::fs::write(path, server.kubeconfig_yaml(&args.namespace))?;
    }
    {
        // Scripts wait for this exact line.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
