//! User ids across user namespaces: the key of a user's `Local\` namespace, and how the
//! file system shows a user's files to us.
//!
//! In a user namespace (rootless containers, `unshare --user --map-root-user`) the same
//! person has two uids: 1000 on the host, 0 inside. If each named its directory by the uid
//! it sees, the two would get two `Local\` namespaces and never exclude each other. So the
//! *key* of a user (in directory names, object user tables and registry headers) is the
//! uid one level out, read from `/proc/self/uid_map`: in the initial namespace, the uid
//! itself; in a namespace made by `unshare --user`, rootless Podman or Docker with
//! `userns-remap`, the host uid. (A namespace nested in another shows only its parent's ids:
//! there the key is the parent namespace's uid.) Ownership of files is still checked
//! against the uid the file system shows us, which the kernel maps the same way.

use std::sync::OnceLock;

/// The ids of this process.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ids {
    /// Our key: our uid one namespace out (see the module notes).
    pub key: u32,
    /// Our effective uid as we see it: what `fstat` shows for files we own.
    pub fs: u32,
    /// Whether we run in a user namespace other than the initial one.
    pub in_user_namespace: bool,
}

/// One line of `uid_map`: `inside outside count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    inside: u32,
    outside: u32,
    count: u32,
}

fn extents() -> &'static [Extent] {
    static MAP: OnceLock<Vec<Extent>> = OnceLock::new();
    MAP.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|text| parse(&text))
            .unwrap_or_default()
    })
}

fn parse(text: &str) -> Vec<Extent> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some(Extent {
                inside: f.next()??,
                outside: f.next()??,
                count: f.next()??,
            })
        })
        .collect()
}

/// The identity map of the initial user namespace.
const INITIAL: Extent = Extent {
    inside: 0,
    outside: 0,
    count: u32::MAX,
};

/// Our ids now (the map is read once: a process does not change user namespace under us,
/// but it may change its effective uid, so that is asked each time).
pub(super) fn ours() -> Ids {
    let fs = rustix::process::geteuid().as_raw();
    let map = extents();
    Ids {
        key: outside_of(map, fs).unwrap_or(fs),
        fs,
        in_user_namespace: !map.is_empty() && map != [INITIAL],
    }
}

fn outside_of(map: &[Extent], inside: u32) -> Option<u32> {
    map.iter().find_map(|e| {
        let offset = inside.checked_sub(e.inside)?;
        (offset < e.count).then(|| e.outside + offset)
    })
}

/// How the file system shows us the files of the user whose key is `key`: its uid in our
/// namespace, `None` when it is not mapped here (its files then show as the overflow uid,
/// which could be anyone's).
pub(super) fn seen_uid(key: u32) -> Option<u32> {
    let map = extents();
    if map.is_empty() {
        return Some(key); // no /proc: assume the initial namespace
    }
    map.iter().find_map(|e| {
        let offset = key.checked_sub(e.outside)?;
        (offset < e.count).then(|| e.inside + offset)
    })
}

/// The uid that files of unmapped owners show as in a user namespace (65534 by default).
pub(super) fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_one_level_out_and_back() {
        let map = parse("         0       1001          1\n         1     100000      65536\n");
        assert_eq!(outside_of(&map, 0), Some(1001));
        assert_eq!(outside_of(&map, 5), Some(100004));
        assert_eq!(outside_of(&map, 65537), None);
        let initial = parse("         0          0 4294967295\n");
        assert_eq!(initial, [INITIAL]);
        assert_eq!(outside_of(&initial, 1000), Some(1000));
    }
}
