//! The curl walkthrough in docs/api.md runs as written against the real binary: every ```sh
//! block, in order, in one shell, with the variables the blocks define. A documented command
//! that no longer works, or an answer the text checks (`grep`) that no longer holds, fails it.

use std::path::Path;
use std::process::Command;

use crate::helpers::spawn_default;

/// The ```sh blocks of a Markdown text, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(block), "```") => {
                blocks.push(block.join("\n"));
                current = None;
            }
            (Some(block), _) => block.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_guide_walkthrough_runs_as_written() {
    let app = spawn_default();
    let reader = tempfile::tempdir().unwrap();
    // The reader's directory: the server's state as `coffer-data` (the embedded default's
    // place) and a PDF to upload.
    std::os::unix::fs::symlink(&app.state_dir, reader.path().join("coffer-data")).unwrap();
    std::fs::write(reader.path().join("report.pdf"), b"%PDF-1.4\n% a quarterly report\n%%EOF\n").unwrap();
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let blocks = shell_blocks(&guide);
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    let script = format!("set -euo pipefail\nshopt -s expand_aliases\n{}\n", blocks.join("\n"))
        .replace("https://127.0.0.1:8443", &app.base_url);
    std::fs::write(reader.path().join("walkthrough.sh"), &script).unwrap();
    let dir = reader.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg("-x").arg("walkthrough.sh").current_dir(dir).output().unwrap()
    })
    .await
    .unwrap();
    let trace = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<String> = trace.lines().rev().take(20).map(|line| line.chars().take(300).collect()).collect();
    assert!(
        output.status.success(),
        "docs/api.md's walkthrough stopped ({}); the last lines of its trace:\n{}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
