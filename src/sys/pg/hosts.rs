//! Connecting host by host, as libpq does: with several hosts in a URL, `server.rs` tries
//! one single-host configuration after another, in libpq's order, so that each can have
//! its own password (the password file has a line per host; the `postgres` crate uses one
//! for all) and a read-only host (a standby) is passed over by the library's own check.

/// The port of host `i`: a configuration gives one port for every host, or one each; `None`
/// when it gives none (the default, 5432, then applies).
pub(super) fn port_of(config: &postgres::Config, i: usize) -> Option<u16> {
    match config.get_ports() {
        [one] => Some(*one),
        ports => ports.get(i).copied(),
    }
}

/// `host:port` of host `i`, for messages (a socket by its directory).
pub(super) fn host_label(config: &postgres::Config, i: usize) -> String {
    let host = match config.get_hosts().get(i) {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => config
            .get_hostaddrs()
            .get(i)
            .map_or_else(String::new, ToString::to_string),
    };
    format!("{host}:{}", port_of(config, i).unwrap_or(5432))
}

/// The order the hosts are tried in: as given, or, with `load_balance_hosts=random`, from
/// a random one on (libpq shuffles them all; a rotation spreads connections as well).
pub(super) fn host_order(config: &postgres::Config) -> Vec<usize> {
    let n = config.get_hosts().len().max(config.get_hostaddrs().len());
    let mut order: Vec<usize> = (0..n).collect();
    if config.get_load_balance_hosts() == postgres::config::LoadBalanceHosts::Random {
        // A random rotation is enough to spread connections; std's hasher keys are random.
        use std::hash::{BuildHasher, RandomState};
        let start = RandomState::new().hash_one(std::process::id()) as usize % n.max(1);
        order.rotate_left(start);
    }
    order
}

/// Host `i` of `config` (with its `hostaddr` and port) and everything else of `config`: the
/// `postgres` crate connects to every host of a configuration with one password, and cannot
/// drop hosts from one. Every setting of `tokio_postgres::Config` 0.7 is copied.
pub(super) fn single_host(config: &postgres::Config, i: usize) -> postgres::Config {
    let mut one = postgres::Config::new();
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    match config.get_hosts().get(i) {
        Some(postgres::config::Host::Tcp(name)) => {
            one.host(name);
        }
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(path)) => {
            one.host_path(path);
        }
        None => {}
    }
    if let Some(addr) = config.get_hostaddrs().get(i) {
        one.hostaddr(*addr);
    }
    if let Some(port) = port_of(config, i) {
        one.port(port);
    }
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    one.keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle());
    if let Some(interval) = config.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    one.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        // With one host, what is left to shuffle is its addresses.
        .load_balance_hosts(config.get_load_balance_hosts());
    one
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::pg::server::Server;
    use std::time::Duration;

    #[test]
    fn a_single_host_configuration_keeps_every_other_setting() {
        let s = Server::parse(
            "postgresql://bob:pw@db1:5433,db2:5434/x?application_name=a&connect_timeout=7&sslmode=disable&channel_binding=disable",
        )
        .unwrap();
        assert_eq!(s.tries(), 2, "a try per host");
        let all = s.config();
        let one = single_host(all, 1);
        assert_eq!(one.get_hosts(), [postgres::config::Host::Tcp("db2".into())]);
        assert_eq!(one.get_ports(), [5434]);
        // Everything but the host list, as the crate prints it, is the same.
        let without_hosts = |c: &postgres::Config| {
            let text = format!("{c:?}");
            let cut = |t: &str, field: &str| {
                let start = t.find(field).unwrap();
                let end = start + t[start..].find(']').unwrap();
                format!("{}{}", &t[..start], &t[end + 1..])
            };
            cut(&cut(&text, "host:"), "port:")
        };
        assert_eq!(without_hosts(&one), without_hosts(all));
        assert_eq!(one.get_password(), Some(&b"pw"[..]));
        assert_eq!(one.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(host_order(all), [0, 1]);
        // load_balance_hosts=random: the order is a rotation, and each host keeps the setting.
        let s =
            Server::parse("postgresql://bob:pw@db1,db2,db3/x?load_balance_hosts=random").unwrap();
        let all = s.config();
        assert_eq!(without_hosts(&single_host(all, 2)), without_hosts(all));
        let order = host_order(all);
        assert!(
            [[0, 1, 2], [1, 2, 0], [2, 0, 1]].contains(&order[..].try_into().unwrap()),
            "{order:?}"
        );
    }
}
