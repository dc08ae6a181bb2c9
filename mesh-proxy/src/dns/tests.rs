use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::Resolver;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn hosts(names: &[&str]) -> BTreeMap<String, Duration> {
    names
        .iter()
        .map(|name| (name.to_string(), Duration::from_secs(60)))
        .collect()
}

#[tokio::test]
async fn wanted_hosts_are_looked_up_and_forgotten_when_no_longer_wanted() {
    let resolver = Resolver::new();
    let mut changes = resolver.subscribe();
    resolver.follow(&hosts(&["localhost", "127.0.0.9"]), true);
    tokio::time::timeout(Duration::from_secs(20), async {
        while resolver.table().get("localhost").is_none()
            || resolver.table().get("127.0.0.9").is_none()
        {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("both lookups end");
    let table = resolver.table();
    assert!(table.get("localhost").unwrap().contains(&LOCALHOST));
    assert_eq!(
        table.get("127.0.0.9").unwrap(),
        ["127.0.0.9".parse::<IpAddr>().unwrap()]
    );

    // A compile that stopped early only adds.
    resolver.follow(&hosts(&["localhost"]), false);
    assert!(resolver.table().get("127.0.0.9").is_some());
    resolver.follow(&hosts(&["localhost"]), true);
    assert!(resolver.table().get("127.0.0.9").is_none());
    assert!(resolver.table().get("localhost").is_some());
}

/// `host` as followed, without a lookup running.
fn followed(resolver: &Resolver, host: &str) {
    let idle = tokio::spawn(std::future::pending::<()>()).abort_handle();
    resolver
        .lookups
        .lock()
        .unwrap()
        .insert(host.to_owned(), (Duration::from_secs(60), idle));
}

#[tokio::test]
async fn an_answer_for_a_host_no_longer_followed_is_dropped() {
    let resolver = Resolver::new();
    resolver.record("gone.example", Some(vec![LOCALHOST]));
    assert_eq!(resolver.table().get("gone.example"), None);
}

#[tokio::test]
async fn a_failed_lookup_keeps_the_last_addresses() {
    let resolver = Resolver::new();
    followed(&resolver, "db.example");
    resolver.record("db.example", None);
    assert_eq!(
        resolver.table().get("db.example"),
        Some(&[][..]),
        "looked up, nothing found"
    );
    resolver.record("db.example", Some(vec![LOCALHOST]));
    resolver.record("db.example", None);
    assert_eq!(resolver.table().get("db.example"), Some(&[LOCALHOST][..]));
}

#[tokio::test]
async fn only_a_changed_answer_wakes_the_watchers() {
    let resolver = Resolver::new();
    followed(&resolver, "a");
    let mut changes = resolver.subscribe();
    resolver.record("a", Some(vec![LOCALHOST]));
    assert!(changes.has_changed().unwrap());
    changes.borrow_and_update();
    resolver.record("a", Some(vec![LOCALHOST]));
    resolver.record("a", None);
    assert!(!changes.has_changed().unwrap());
}
