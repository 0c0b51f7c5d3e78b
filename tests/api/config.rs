//! Settings: layering, the shipped file, and clear errors for bad input.

use std::path::Path;

use coffer::config::Settings;

use crate::helpers::{Options, run_cli, start};

/// Uncomments every `# key = value` line of the shipped file (examples are indented deeper).
fn uncommented_shipped_config() -> String {
    let shipped = include_str!("../../config/coffer.toml");
    shipped
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn leaf_keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                leaf_keys(inner, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn shipped_config_lists_every_setting_with_its_built_in_default() {
    let uncommented = uncommented_shipped_config();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.toml");
    std::fs::write(&path, &uncommented).unwrap();
    let parsed = Settings::load(Some(&path), None).expect("the shipped config parses");
    assert_eq!(parsed, Settings::default(), "a commented default differs from the built-in one");

    let document: toml::Value = toml::from_str(&uncommented).unwrap();
    let mut listed = Vec::new();
    leaf_keys(&document, "", &mut listed);
    let mut defaults = Vec::new();
    leaf_keys(&toml::Value::try_from(Settings::default()).unwrap(), "", &mut defaults);
    for key in defaults {
        assert!(listed.contains(&key), "config/coffer.toml does not list `{key}`");
    }
    for documented_without_default in ["tls.cert_file", "tls.key_file"] {
        assert!(
            include_str!("../../config/coffer.toml").contains(documented_without_default.rsplit('.').next().unwrap())
        );
    }
}

/// Every setting, listed or built in, is in the admin guide's table of settings.
#[test]
fn the_admin_guide_names_every_setting() {
    let guide = include_str!("../../docs/admin-guide.md");
    let mut keys = Vec::new();
    leaf_keys(&toml::from_str(&uncommented_shipped_config()).unwrap(), "", &mut keys);
    leaf_keys(&toml::Value::try_from(Settings::default()).unwrap(), "", &mut keys);
    let missing: Vec<&String> = keys.iter().filter(|key| !guide.contains(&format!("| `{key}` |"))).collect();
    assert!(missing.is_empty(), "docs/admin-guide.md (\"Every setting\") lacks {missing:?}");
}

fn effective(config: &Path, env: &[(&str, &str)]) -> toml::Table {
    let (code, stdout, stderr) = run_cli(&["check-config", "--config", config.to_str().unwrap()], env);
    assert_eq!(code, 0, "check-config failed: {stderr}");
    toml::from_str(&stdout).expect("check-config prints TOML")
}

fn level(settings: &toml::Table) -> &str {
    settings["log"]["level"].as_str().unwrap()
}

#[test]
fn settings_layer_default_then_file_then_env_then_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(level(&effective(&empty, &[])), "info");

    let file = dir.path().join("coffer.toml");
    std::fs::write(&file, "[log]\nlevel = \"warn\"\n[server]\nmax_connections = 7\n").unwrap();
    let from_file = effective(&file, &[]);
    assert_eq!(level(&from_file), "warn");
    assert_eq!(from_file["server"]["max_connections"].as_integer(), Some(7));

    let from_env = effective(&file, &[("COFFER_LOG__LEVEL", "error")]);
    assert_eq!(level(&from_env), "error");
    assert_eq!(from_env["server"]["max_connections"].as_integer(), Some(7), "env overrides only what it names");

    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("log.level"), "debug\n").unwrap();
    let from_credentials =
        effective(&file, &[("COFFER_LOG__LEVEL", "error"), ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]);
    assert_eq!(level(&from_credentials), "debug");
}

fn assert_rejected(toml_text: &str, env: &[(&str, &str)], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coffer.toml");
    std::fs::write(&file, toml_text).unwrap();
    let file_arg = file.to_str().unwrap();
    for command in ["check-config", "serve"] {
        let (code, _, stderr) = run_cli(&[command, "--config", file_arg], env);
        assert_eq!(code, 2, "{command} should refuse the settings; stderr: {stderr}");
        for needle in expected.iter().map(|needle| needle.replace("{file}", file_arg)) {
            assert!(stderr.contains(&needle), "{command}: `{needle}` missing from: {stderr}");
        }
    }
}

#[test]
fn misspelled_key_is_refused_naming_file_and_key() {
    assert_rejected("[server]\nlsiten = [\"127.0.0.1:0\"]\n", &[], &["{file}", "lsiten", "unknown field"]);
    assert_rejected("[sever]\nlisten = []\n", &[], &["{file}", "sever"]);
}

#[test]
fn wrong_type_is_refused_naming_file_key_and_problem() {
    assert_rejected(
        "[server]\nmax_connections = \"many\"\n",
        &[],
        &["{file}", "server.max_connections", "invalid type"],
    );
    assert_rejected(
        "[server]\nidle_timeout = \"5 parsecs\"\n",
        &[],
        &["{file}", "server.idle_timeout", "not a duration"],
    );
}

#[test]
fn bad_environment_override_is_refused_naming_the_variable() {
    assert_rejected(
        "",
        &[("COFFER_SERVER__MAX_CONNECTIONS", "lots")],
        &["COFFER_SERVER__MAX_CONNECTIONS", "invalid type"],
    );
    assert_rejected("", &[("COFFER_SERVER__NO_SUCH_KEY", "1")], &["no_such_key"]);
}

#[test]
fn missing_config_file_is_refused() {
    let (code, _, stderr) = run_cli(&["check-config", "--config", "/nonexistent/coffer.toml"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/coffer.toml"), "{stderr}");
}

#[test]
fn out_of_range_values_are_refused_naming_the_bounds() {
    for window in ["\"16 KiB\"", "\"1 GiB\""] {
        assert_rejected(
            &format!("[server]\nhttp2_window = {window}\n"),
            &[],
            &["server.http2_window", "between 64 KiB and 64 MiB"],
        );
    }
    assert_rejected("[server]\nmax_header_size = \"1 KiB\"\n", &[], &["server.max_header_size", "at least 8 KiB"]);
}

#[test]
fn files_mode_without_files_is_refused() {
    assert_rejected("[tls]\nmode = \"files\"\n", &[], &["tls.cert_file", "tls.key_file"]);
}

#[test]
fn version_and_help_describe_the_commands() {
    let (code, stdout, _) = run_cli(&["version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), format!("coffer {}", env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = run_cli(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in ["serve", "check-config", "version"] {
        assert!(stdout.contains(command), "--help lacks {command}: {stdout}");
    }
    let (code, stdout, _) = run_cli(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--config"));
}

#[test]
fn serve_refuses_to_start_when_the_address_is_taken() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let result = start(Options { toml: format!("[server]\nlisten = [\"{taken}\"]\n"), ..Options::default() });
    let Err((status, log)) = result else { panic!("server started on an address in use") };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains(&format!("cannot listen on {taken}")), "{log}");
}
