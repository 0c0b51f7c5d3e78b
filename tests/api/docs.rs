//! The documents that describe measurements keep up with what is measured.

use std::path::Path;

/// `docs/performance.md` has one section per bench script, headed with the script's name,
/// holding a dated run.
#[test]
fn performance_md_has_a_dated_section_per_bench_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let performance = std::fs::read_to_string(root.join("docs/performance.md")).unwrap();
    let sections: Vec<&str> = performance.split("\n## ").skip(1).collect();
    let mut scripts: Vec<String> = std::fs::read_dir(root.join("benches"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "{scripts:?}");
    for script in scripts {
        let heading = format!("(`benches/{script}`)");
        let section =
            sections.iter().find(|section| section.lines().next().is_some_and(|line| line.contains(&heading)));
        let section = section.unwrap_or_else(|| panic!("docs/performance.md has no section headed {heading}"));
        assert!(has_a_date(section), "the {script} section holds no dated run (YYYY-MM-DD)");
    }
}

fn has_a_date(text: &str) -> bool {
    text.as_bytes().windows(10).any(|window| {
        window
            .iter()
            .enumerate()
            .all(|(at, byte)| if at == 4 || at == 7 { *byte == b'-' } else { byte.is_ascii_digit() })
    })
}
