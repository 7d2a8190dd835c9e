//! Architecture invariants from docs/ARCHITECTURE.md, checked from `cargo metadata` and the
//! sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Metadata {
    /// Workspace package name -> its manifest directory.
    members: BTreeMap<String, PathBuf>,
    /// Package id -> (name, normal dependency ids).
    graph: BTreeMap<String, (String, Vec<String>)>,
    /// Workspace package name -> names of its direct normal dependencies.
    direct: BTreeMap<String, BTreeSet<String>>,
}

/// The platform this test runs on, as rustc names it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("a host line from rustc -vV")
        .to_owned()
}

fn metadata() -> Metadata {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this machine's platform: the packages of others (Windows, Redox, WASM) are never
    // downloaded by a build here, and `--offline` must not need them.
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: BTreeSet<&str> = json["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut names = BTreeMap::new();
    let mut result = Metadata {
        members: BTreeMap::new(),
        graph: BTreeMap::new(),
        direct: BTreeMap::new(),
    };
    for package in json["packages"].as_array().unwrap() {
        let id = package["id"].as_str().unwrap();
        let name = package["name"].as_str().unwrap().to_owned();
        names.insert(id.to_owned(), name.clone());
        if members.contains(id) {
            let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
            result
                .members
                .insert(name.clone(), manifest.parent().unwrap().to_path_buf());
            let direct = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            result.direct.insert(name, direct);
        }
    }
    for node in json["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap().to_owned();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        result.graph.insert(id.clone(), (names[&id].clone(), deps));
    }
    result
}

/// Every package a workspace member depends on at run time, directly or not.
fn closure(meta: &Metadata, package: &str) -> BTreeSet<String> {
    let start = meta
        .graph
        .iter()
        .find(|(_, (name, _))| name == package)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no package {package}"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in &meta.graph[&id].1 {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen.iter().map(|id| meta.graph[id].0.clone()).collect()
}

#[test]
fn pure_crates_have_no_runtime_io_or_network() {
    let meta = metadata();
    for pure in ["holt-domain", "holt-plan"] {
        let deps = closure(&meta, pure);
        for banned in [
            "tokio",
            "hyper",
            "rusqlite",
            "r2d2",
            "tokio-postgres",
            "deadpool-postgres",
            "holt-storage",
            "holt-storage-postgres",
            "holt-engine",
            "holt-http",
        ] {
            assert!(!deps.contains(banned), "{pure} depends on {banned}");
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    let meta = metadata();
    // Each crate may depend only on the workspace crates listed for it.
    let allowed: &[(&str, &[&str])] = &[
        ("holt-plan", &[]),
        ("holt-domain", &["holt-plan"]),
        ("holt-storage", &["holt-domain", "holt-plan"]),
        // The second store sits beside the engine: only the server binary picks a store.
        (
            "holt-storage-postgres",
            &["holt-domain", "holt-plan", "holt-storage"],
        ),
        ("holt-engine", &["holt-domain", "holt-plan", "holt-storage"]),
        // The HTTP layer reads and follows logs through the engine, never the store.
        ("holt-http", &["holt-domain", "holt-plan", "holt-engine"]),
        // The client speaks HTTP to a server; it shares the domain's words, nothing else.
        ("holt-client", &["holt-domain", "holt-plan"]),
        // The command line is a client: it reaches holtd only over HTTP.
        ("holt", &["holt-client", "holt-domain", "holt-plan"]),
    ];
    for (package, may) in allowed {
        for dep in &meta.direct[*package] {
            if dep.starts_with("holt-") {
                assert!(
                    may.contains(&dep.as_str()),
                    "{package} must not depend on {dep}"
                );
            }
        }
    }
}

#[test]
fn the_client_and_the_command_line_reach_holtd_only_over_http() {
    let meta = metadata();
    for package in ["holt-client", "holt"] {
        let deps = closure(&meta, package);
        for banned in [
            "holt-engine",
            "holt-storage",
            "holt-storage-postgres",
            "holt-http",
            "rusqlite",
            "tokio-postgres",
            // One HTTP stack: hyper's own client, never a second one.
            "reqwest",
        ] {
            assert!(!deps.contains(banned), "{package} depends on {banned}");
        }
    }
    assert!(closure(&meta, "holt-client").contains("hyper-util"));
    assert!(closure(&meta, "holt").contains("holt-client"));
}

#[test]
fn only_storage_names_the_database_and_only_http_names_hyper() {
    let meta = metadata();
    // The test harness is an HTTP client of holtd, so it names hyper too; the benchmark driver
    // measures raw hyper, raw rusqlite and raw tokio-postgres as its baselines (the pool is
    // the store's alone).
    for (package, deps) in &meta.direct {
        for db in ["rusqlite", "r2d2", "r2d2_sqlite"] {
            let may = package == "holt-storage" || package == "holt-bench";
            assert!(!deps.contains(db) || may, "{package} names {db}");
        }
        for db in ["tokio-postgres", "deadpool-postgres"] {
            let may = package == "holt-storage-postgres"
                || (package == "holt-bench" && db == "tokio-postgres");
            assert!(!deps.contains(db) || may, "{package} names {db}");
        }
        for web in ["hyper", "hyper-util", "http-body-util"] {
            let may = matches!(
                package.as_str(),
                "holt-http" | "holt-client" | "holt-tests" | "holt-bench"
            );
            assert!(!deps.contains(web) || may, "{package} names {web}");
        }
    }
}

#[test]
fn every_member_uses_the_workspace_lints_and_every_lib_opens_with_a_doc_comment() {
    let meta = metadata();
    assert!(meta.members.len() >= 7, "{:?}", meta.members.keys());
    for (package, dir) in &meta.members {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{package} does not use the workspace lints"
        );
        for lib in [dir.join("src/lib.rs"), dir.join("lib.rs")] {
            if let Ok(text) = std::fs::read_to_string(&lib) {
                assert!(
                    text.starts_with("//!"),
                    "{} does not open with //!",
                    lib.display()
                );
            }
        }
    }
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    assert!(root.contains("unsafe_code = \"forbid\""));
}

/// Whether a source file is test code: a `tests.rs` unit-test module or anything under a
/// `tests` directory.
fn is_test_file(dir: &Path, file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "tests.rs")
        || file
            .strip_prefix(dir)
            .unwrap()
            .components()
            .any(|c| c.as_os_str() == "tests")
}

/// The storage crates: the only ones that may name a database client.
const STORAGE_CRATES: [&str; 2] = ["holt-storage", "holt-storage-postgres"];

/// The concrete stores the storage crates define: every type their non-test sources implement
/// `JobStore` for, so that a new backend is covered by the rule below without editing it.
fn concrete_stores(meta: &Metadata) -> BTreeSet<String> {
    let mut stores = BTreeSet::new();
    for dir in STORAGE_CRATES.map(|name| &meta.members[name]) {
        for file in rust_files(dir) {
            if is_test_file(dir, &file) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            const IMPL: &str = "impl JobStore for ";
            for (at, _) in text.match_indices(IMPL) {
                let name: String = text[at + IMPL.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                stores.insert(name);
            }
        }
    }
    stores
}

#[test]
fn only_the_server_binary_constructs_a_concrete_store() {
    let meta = metadata();
    let stores = concrete_stores(&meta);
    for expected in ["SqliteStore", "MemoryStore", "PgStore"] {
        assert!(stores.contains(expected), "{stores:?}");
    }
    for (package, dir) in &meta.members {
        if STORAGE_CRATES.contains(&package.as_str())
            || matches!(package.as_str(), "holtd" | "holt-tests" | "holt-bench")
        {
            continue;
        }
        // Unit tests may build any store: they test against real SQLite or in memory.
        for file in rust_files(dir)
            .into_iter()
            .filter(|f| !is_test_file(dir, f))
        {
            let text = std::fs::read_to_string(&file).unwrap();
            for store in &stores {
                assert!(
                    !text.contains(store.as_str()),
                    "{} names {store}",
                    file.display()
                );
            }
        }
    }
    // The examples show embedding: they keep jobs in memory and never open a database file.
    for file in rust_files(&workspace_root().join("examples")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for store in stores.iter().filter(|s| *s != "MemoryStore") {
            assert!(
                !text.contains(store.as_str()),
                "{} names {store}",
                file.display()
            );
        }
    }
}

#[test]
fn the_http_layer_names_no_storage_type() {
    let meta = metadata();
    let dir = &meta.members["holt-http"];
    // Unit tests may build a real store to serve; production code reaches storage only
    // through the engine.
    let production = rust_files(dir)
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"));
    for file in production {
        let text = std::fs::read_to_string(&file).unwrap();
        for name in [
            "holt_storage",
            "JobStore",
            "StoreError",
            "SqliteStore",
            "PgStore",
            "store()",
        ] {
            assert!(!text.contains(name), "{} names {name}", file.display());
        }
    }
}

/// The engine stays split by concern: no source file of it, tests included, passes 600 lines.
#[test]
fn no_engine_file_is_over_600_lines() {
    for file in rust_files(&workspace_root().join("crates/engine/src")) {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= 600, "{} has {lines} lines", file.display());
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}
