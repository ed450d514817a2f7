//! Tests of the backend layer as a whole.

/// The dependency runs one way: no backend file and no file of the lock protocol (tests
/// aside, which drive the public API) names anything of the crate outside `crate::sys` and
/// `crate::protocol`: not the public API's modules, not the crate root's re-exports, not
/// the public value types (`Error`, `Name`, `WaitStatus`, `MutexInfo`, ...), which wrap or
/// convert from the contract's own (`sys/contract/`). Fails naming the file and the line.
#[test]
fn backends_import_no_public_type() {
    /// The `crate::` paths of `line` that lead outside the backend layer.
    fn outside(line: &str) -> Vec<String> {
        line.match_indices("crate::")
            .filter(|(at, _)| !line[..*at].ends_with('$'))
            .map(|(at, _)| {
                line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{')
                    .collect::<String>()
            })
            .filter(|first| first != "sys" && first != "protocol")
            .collect()
    }
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
                    if !comment && !outside(line).is_empty() {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert_eq!(
        outside("use crate::sys::contract::Error;"),
        Vec::<String>::new()
    );
    assert_eq!(
        outside("x: crate::Error, y: crate::name::Name"),
        ["Error", "name"]
    );
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
