//! The PostgreSQL helper: each call gives a fresh database of its own on one server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kt_log::hash::leaf_hash;
use kt_log::store::{LogStore, PostgresStore};
use test_support::postgres::test_database;

#[test]
fn each_test_database_is_fresh_and_its_own() {
    let (one, two) = (test_database(), test_database());
    assert_ne!(one.name, two.name);
    assert_ne!(one.url, two.url);
    let first = PostgresStore::open(&one.url).unwrap();
    let second = PostgresStore::open(&two.url).unwrap();
    assert_eq!((first.size(), second.size()), (0, 0));
    first.append(&[b"x"], &[leaf_hash(b"x")]).unwrap();
    assert_eq!(PostgresStore::open(&one.url).unwrap().size(), 1);
    assert_eq!(PostgresStore::open(&two.url).unwrap().size(), 0);
}
