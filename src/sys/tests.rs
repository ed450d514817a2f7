//! Tests of the backend layer as a whole.

/// The dependency runs one way: no backend file (tests aside, which drive the public API)
/// and no file of the lock protocol names a module of the public API or the crate root's
/// re-exports. Fails naming the file and the line.
#[test]
fn backends_import_no_api_module() {
    const API: [&str; 10] = [
        "crate::options",
        "crate::mutex",
        "crate::multi_wait",
        "crate::async_lock",
        "crate::prune",
        "crate::synchapi",
        "crate::MutexOptions",
        "crate::NamedMutex",
        "crate::AllUsers",
        "crate::{",
    ];
    fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("a source directory") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "tests" && name != "model" {
                    visit(&path, found);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).expect("a source file");
                for (n, line) in text.lines().enumerate() {
                    let comment = line.trim_start().starts_with("//");
                    if !comment && API.iter().any(|api| line.contains(api)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    visit(&src.join("sys"), &mut found);
    visit(&src.join("protocol"), &mut found);
    assert!(
        found.is_empty(),
        "backends must not import the public API:\n{}",
        found.join("\n")
    );
}
