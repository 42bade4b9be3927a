//! GitHub Actions cannot run here, so the workflow files are checked as data: they parse as
//! YAML, CI covers the three OSes with fmt, clippy and tests, and the release builds every
//! promised target and attaches archives with SHA-256 sums.

use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Yaml {
    let path = format!("{}/.github/workflows/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    docs.remove(0)
}

fn steps_text(job: &Yaml) -> String {
    job["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["run"].as_str().unwrap_or(""),
                s["uses"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ci_runs_fmt_clippy_and_tests_on_three_operating_systems() {
    let ci = load("ci.yml");
    let job = &ci["jobs"]["test"];
    let oses: Vec<&str> = job["strategy"]["matrix"]["os"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        oses,
        vec!["ubuntu-latest", "macos-latest", "windows-latest"]
    );
    let steps = steps_text(job);
    assert!(steps.contains("cargo fmt --all -- --check"));
    assert!(steps.contains("cargo clippy --all-targets -- -D warnings"));
    assert!(steps.contains("cargo test"));
    assert!(
        steps.contains("cargo build --all-targets"),
        "Windows at least builds"
    );
}

#[test]
fn release_builds_every_target_on_version_tags_and_attaches_checksums() {
    let release = load("release.yml");
    let tags: Vec<&str> = release["on"]["push"]["tags"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(tags, vec!["v*"]);
    let include = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap();
    let targets: Vec<&str> = include
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(
        targets,
        vec![
            "x86_64-unknown-linux-musl",
            "aarch64-unknown-linux-musl",
            "x86_64-apple-darwin",
            "aarch64-apple-darwin",
            "x86_64-pc-windows-msvc",
        ]
    );
    let build = steps_text(&release["jobs"]["build"]);
    assert!(build.contains("--release --locked --target"));
    assert!(build.contains("shasum -a 256") && build.contains("Get-FileHash -Algorithm SHA256"));
    assert!(build.contains("tar -C dist -czf") && build.contains("Compress-Archive"));
    let publish = steps_text(&release["jobs"]["release"]);
    assert!(publish.contains("SHA256SUMS"));
    assert!(publish.contains("softprops/action-gh-release"));
    assert_eq!(release["permissions"]["contents"].as_str(), Some("write"));
}

#[test]
fn skill_install_entries_point_at_the_release_archives() {
    let skill =
        std::fs::read_to_string(format!("{}/SKILL.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let front = skill.split("---").nth(1).expect("front matter");
    for line in front.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.contains(": "), "single-line keys only: {line}");
    }
    let metadata = front
        .lines()
        .find_map(|l| l.strip_prefix("metadata: "))
        .expect("metadata line");
    let meta: serde_json::Value =
        serde_json::from_str(metadata).expect("metadata is one-line JSON");
    assert_eq!(
        meta["openclaw"]["requires"]["bins"],
        serde_json::json!(["codex-imagen"])
    );
    let installs = meta["openclaw"]["install"].as_array().unwrap();
    let release = load("release.yml");
    for target in release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap()
    {
        let target = target["target"].as_str().unwrap();
        assert!(
            installs
                .iter()
                .any(|i| i["kind"] == "download" && i["url"].as_str().unwrap().contains(target)),
            "no download entry for {target}"
        );
    }
}
