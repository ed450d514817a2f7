//! include/namedmutex.h is what cbindgen makes of src/lib.rs: fails when the committed
//! header is stale. `NAMEDMUTEX_BLESS=1 cargo test -p namedmutex-capi --test header`
//! writes it anew.

#[test]
fn committed_header_matches_the_code() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = format!("{dir}/include/namedmutex.h");
    if std::env::var_os("NAMEDMUTEX_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is stale: run NAMEDMUTEX_BLESS=1 cargo test -p namedmutex-capi --test header"
    );
}
