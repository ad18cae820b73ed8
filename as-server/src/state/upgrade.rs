//! Bringing a store of an earlier layout to the current one, at open.

use super::*;

impl State {
    /// Brings records of an earlier layout to [`FORMAT`], in one atomic batch with the new
    /// format number. Before version 1, identity records had no `logged`: an identity has an
    /// entry in the log exactly if it holds or held a credential (issuance), or was ever
    /// revoked (which moves its epoch), since every entry kind does one of these.
    pub(super) fn upgrade(&self) -> Result<(), StateError> {
        let format = stored_u64(&self.tree, FORMAT_KEY)?.unwrap_or(0);
        if format >= FORMAT {
            return Ok(());
        }
        let mut holders = std::collections::HashSet::new();
        for item in self.tree.scan_prefix(b"c/") {
            let (key, value) = item?;
            let credential: CredentialRecord = decode(&key, &value)?;
            holders.insert(credential.identity);
        }
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix(b"i/") {
            let (key, value) = item?;
            let mut record: IdentityRecord = decode(&key, &value)?;
            let name = String::from_utf8_lossy(&key[2..]).into_owned();
            record.logged = record.status == IdentityStatus::Revoked
                || record.epoch > 0
                || !record.current.is_empty()
                || holders.contains(&name);
            batch.insert(key, encode(&record));
        }
        batch.insert(FORMAT_KEY, &FORMAT.to_be_bytes());
        self.tree.apply_batch(batch)?;
        self.make_durable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_the_earlier_layout_learn_whether_they_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state =
                State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
            let old = |status: &str, epoch: u64, current: &str| {
                format!(r#"{{"status":"{status}","epoch":{epoch},"current":[{current}]}}"#)
            };
            for (name, record) in [
                ("pending@b.co", old("active", 0, "")),
                ("holder@b.co", old("active", 0, r#""s1""#)),
                ("revoked@b.co", old("revoked", 1, "")),
                ("enabled@b.co", old("active", 1, "")),
                // Its only credential was revoked on its own: known from the credential.
                ("lost@b.co", old("active", 0, "")),
            ] {
                state
                    .tree
                    .insert(identity_key(name), record.as_bytes())
                    .unwrap();
            }
            let credential = CredentialRecord {
                identity: "lost@b.co".into(),
                public_key: "k".into(),
                not_before: 0,
                not_after: 1,
                log_index: 0,
                status: CredentialStatus::Revoked,
            };
            state
                .tree
                .insert(credential_key("s0"), encode(&credential))
                .unwrap();
            state.tree.remove(FORMAT_KEY).unwrap();
            state.db.flush().unwrap();
        }
        let state =
            super::reopen_for_test(&dir.path().join("state"), &dir.path().join("enrollments"));
        let logged = |name: &str| state.identity(name).unwrap().unwrap().logged;
        assert!(!logged("pending@b.co"));
        assert!(logged("holder@b.co"));
        assert!(logged("revoked@b.co"));
        assert!(logged("enabled@b.co"));
        assert!(logged("lost@b.co"));
        assert_eq!(
            state.tree.get(FORMAT_KEY).unwrap().as_deref(),
            Some(&FORMAT.to_be_bytes()[..])
        );
    }
}
